-- Webhook mode (issue 17): `telegram.mode = webhook`.
--
-- bot_webhooks:    each bot's webhook secret (the `secret_token` given to setWebhook, which
--                  Telegram sends back in `X-Telegram-Bot-Api-Secret-Token`), Fernet-encrypted
--                  like the token. Made once, by the first node to start the bot in webhook mode.
-- webhook_updates: updates Telegram delivered to any node's `/telegram/<bot id>`. A row is written
--                  before Telegram is answered 200 (from then on Telegram has forgotten the
--                  update), handed to the bot's runner, and marked done (body dropped) once
--                  handled. Done rows stay as tombstones so a delivery Telegram retries (its 200
--                  was lost) is recognised by update_id; they are deleted after 24 h, when
--                  Telegram has given up on the update anyway (tdlib/telegram-bot-api drops an
--                  update past its `expires_at`, at most 86,400 s after it happened).
CREATE TABLE bot_webhooks (
    bot_instance_id   BIGINT PRIMARY KEY REFERENCES bot_instances (id) ON DELETE CASCADE,
    secret_ciphertext TEXT   NOT NULL,
    created_at        BIGINT NOT NULL
);

CREATE TABLE webhook_updates (
    bot_instance_id BIGINT NOT NULL REFERENCES bot_instances (id) ON DELETE CASCADE,
    update_id       BIGINT NOT NULL,
    body            TEXT,
    received_at     BIGINT NOT NULL,
    done_at         BIGINT,
    PRIMARY KEY (bot_instance_id, update_id)
);
CREATE INDEX webhook_updates_pending ON webhook_updates (bot_instance_id, update_id)
    WHERE done_at IS NULL;
CREATE INDEX webhook_updates_done_at ON webhook_updates (done_at) WHERE done_at IS NOT NULL;
