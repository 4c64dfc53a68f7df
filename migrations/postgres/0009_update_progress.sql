-- What each bot's runner has done with the updates Telegram handed it by `getUpdates` (issue 17:
-- a node killed under load must not have its bots' updates acted on twice).
--
-- Telegram forgets an update only when a later `getUpdates` confirms it (its `offset`), so a
-- runner killed after acting on updates and before its next poll leaves them with Telegram, which
-- hands them to the bot's next runner. Each runner keeps here, written behind with the records of
-- the updates it acted on, that every update up to `highest_update_id` is done with except those
-- listed in `pending` (comma-separated ids still being handled or parked); the next runner
-- confirms those without acting again. One row per bot, overwritten; a row older than a day is
-- ignored (Telegram keeps an unconfirmed update at most that long, and may number a bot's updates
-- afresh after a quiet week).
CREATE TABLE update_progress (
    bot_instance_id   BIGINT PRIMARY KEY REFERENCES bot_instances (id) ON DELETE CASCADE,
    highest_update_id BIGINT NOT NULL,
    pending           TEXT   NOT NULL,
    updated_at        BIGINT NOT NULL
);
