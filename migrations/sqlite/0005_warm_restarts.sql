-- What a restart keeps so it starts warm instead of asking Telegram everything again (issue 16).
--
-- channel_members: what Nezuko last learned about a (channel, user) pair: from getChatMember, from a
--                  chat_member update of a channel where the bot is an administrator, or from an
--                  "I have joined" check. checked_at (ms) ages it: an answer older than the
--                  membership TTL (enforce.membership_ttl_s; enforce.negative_ttl_s for "not
--                  subscribed") is not used, and rows older than a day are deleted.
-- parked_updates:  updates Telegram was told to forget before Nezuko was done with them (they held
--                  the getUpdates offset too long); body is the Update object as Telegram sent it.
--                  A row is deleted once its update is done with and handed out again at the bot's
--                  next start otherwise.
CREATE TABLE channel_members (
    channel_chat_id BIGINT  NOT NULL,
    user_id         BIGINT  NOT NULL,
    subscribed      BOOLEAN NOT NULL,
    checked_at      BIGINT  NOT NULL,
    PRIMARY KEY (channel_chat_id, user_id)
);
CREATE INDEX channel_members_checked_at ON channel_members (checked_at);

CREATE TABLE parked_updates (
    bot_instance_id BIGINT NOT NULL REFERENCES bot_instances (id) ON DELETE CASCADE,
    update_id       BIGINT NOT NULL,
    body            TEXT   NOT NULL,
    parked_at       BIGINT NOT NULL,
    PRIMARY KEY (bot_instance_id, update_id)
);
