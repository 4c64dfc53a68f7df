-- Why did my bot restart? `run_attempt` is the start attempt a bot's supervisor is on (0 while it
-- runs stably), written with every transition, so any node can tell a bot that keeps failing
-- from one that failed once. `alerts` holds each condition that needs a person (see
-- `src/actors/alerter.rs`): the row is the deduplication across passes, restarts and nodes, so a
-- condition is told once when it starts and once when it clears.
ALTER TABLE bot_instances ADD COLUMN run_attempt BIGINT NOT NULL DEFAULT 0;

CREATE TABLE alerts (
    -- The condition: kind and subject, e.g. `bot_failed:12`.
    key         TEXT   PRIMARY KEY,
    kind        TEXT   NOT NULL,
    -- What was said when it was raised, for the record and the recovery message.
    summary     TEXT   NOT NULL,
    raised_at   BIGINT NOT NULL,
    -- When a message about it last went out (NULL: none yet, e.g. alerts were off).
    notified_at BIGINT,
    -- NULL while it holds.
    cleared_at  BIGINT,
    -- When the recovery message went out.
    cleared_notified_at BIGINT
);
CREATE INDEX alerts_open ON alerts (cleared_at);
