-- Join requests Nezuko decides on (policy `join_requests`): one row per request it took up, pending
-- until approved, declined (by Nezuko, by its timeout, by an admin on the dashboard), queued for the
-- chat's administrators, or found withdrawn. The row is what "Check again", the durable timeout,
-- the dashboard's pending list and a later approval after a restart all read.
CREATE TABLE join_requests (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_instance_id BIGINT NOT NULL REFERENCES bot_instances (id) ON DELETE CASCADE,
    group_id        BIGINT NOT NULL REFERENCES protected_groups (id) ON DELETE CASCADE,
    chat_id         BIGINT NOT NULL,
    user_id         BIGINT NOT NULL,
    -- `ChatJoinRequest.user_chat_id`: where the requester may be written to for 5 minutes.
    user_chat_id    BIGINT NOT NULL,
    name            TEXT   NOT NULL,
    -- A guard bot's query (Bot API 10.1), answered within 10 s of `requested_at`.
    query_id        TEXT,
    status          TEXT   NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'approved', 'declined', 'withdrawn')),
    -- The message written to the requester (in the private chat `user_chat_id`).
    message_id      BIGINT,
    requested_at    BIGINT NOT NULL,
    decided_at      BIGINT,
    -- Who decided: `nezuko`, `timeout` or `admin:<admin user id>`.
    decided_by      TEXT
);
CREATE UNIQUE INDEX join_requests_open ON join_requests (bot_instance_id, chat_id, user_id)
    WHERE status = 'pending';
CREATE INDEX join_requests_group ON join_requests (group_id, status, requested_at);
