-- Nezuko's whole schema, SQLite dialect. migrations/postgres/0001_platform.sql is the same schema
-- for PostgreSQL; keep the two in step (same tables, columns, numbering).
--
-- Conventions shared by both dialects, so one SQL text serves both backends:
--   * times are BIGINT milliseconds since the Unix epoch (`*_at` columns): range scans and hourly
--     buckets are plain integer arithmetic on both, and no driver has to decode a timestamp type;
--   * states are lowercase words guarded by CHECK constraints (see src/domain/state.rs);
--   * structured values (policies, payloads, before/after) are JSON: TEXT here, JSONB there;
--   * Telegram ids (users, chats, bots) are BIGINT and named `*_chat_id`, `*_user_id`, `telegram_*`;
--     our own row ids are `id` / `*_id`.

-- One row per bot the service runs. `desired_state` is written by admins; `run_state` and the
-- fields after it are written by the supervisor and only observed by everyone else.
CREATE TABLE bot_instances (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    telegram_bot_id   BIGINT  NOT NULL UNIQUE,
    username          TEXT    NOT NULL,
    display_name      TEXT    NOT NULL,
    token_ciphertext  TEXT    NOT NULL,
    owner_telegram_id BIGINT,
    desired_state     TEXT    NOT NULL DEFAULT 'enabled'
                      CHECK (desired_state IN ('enabled', 'disabled')),
    -- Bumped whenever the token or bot settings change, so the registry restarts just that bot.
    config_version    BIGINT  NOT NULL DEFAULT 1,
    run_state         TEXT    NOT NULL DEFAULT 'stopped'
                      CHECK (run_state IN ('stopped', 'starting', 'running', 'backoff', 'stopping', 'failed')),
    run_reason        TEXT,
    last_error        TEXT,
    restart_count     BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT,
    started_at        BIGINT,
    stopped_at        BIGINT,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL
);
CREATE INDEX bot_instances_desired_state ON bot_instances (desired_state);
CREATE INDEX bot_instances_run_state ON bot_instances (run_state);

-- A group a bot protects. `policy` holds only the overrides of the global defaults (settings table).
CREATE TABLE protected_groups (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_instance_id   BIGINT  NOT NULL REFERENCES bot_instances (id) ON DELETE CASCADE,
    chat_id           BIGINT  NOT NULL,
    title             TEXT    NOT NULL,
    username          TEXT,
    enabled           BOOLEAN NOT NULL DEFAULT TRUE,
    policy            TEXT    NOT NULL DEFAULT '{}',
    -- Permission health: ok, degraded (a right is missing), unknown (not checked yet).
    health            TEXT    NOT NULL DEFAULT 'unknown' CHECK (health IN ('ok', 'degraded', 'unknown')),
    health_detail     TEXT,
    health_checked_at BIGINT,
    member_count      BIGINT,
    created_at        BIGINT  NOT NULL,
    updated_at        BIGINT  NOT NULL,
    UNIQUE (bot_instance_id, chat_id)
);
CREATE INDEX protected_groups_chat ON protected_groups (chat_id);
CREATE INDEX protected_groups_health ON protected_groups (health);
CREATE INDEX protected_groups_title ON protected_groups (title);

-- A channel some group requires. Shared by every bot: one bot's knowledge of a member serves all.
CREATE TABLE enforced_channels (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id     BIGINT  NOT NULL UNIQUE,
    title       TEXT    NOT NULL,
    username    TEXT,
    invite_link TEXT,
    is_private  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX enforced_channels_username ON enforced_channels (username);

CREATE TABLE group_channel_links (
    group_id   BIGINT NOT NULL REFERENCES protected_groups (id) ON DELETE CASCADE,
    channel_id BIGINT NOT NULL REFERENCES enforced_channels (id) ON DELETE CASCADE,
    -- The bot's rights in the channel as last checked (JSON), and whether it can read members there.
    bot_rights TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, channel_id)
);
CREATE INDEX group_channel_links_channel ON group_channel_links (channel_id);

-- Restrictions Nezuko itself applied, so it lifts only those (never an admin's own mute), and the
-- warning it sent, so the warning can be removed when the member verifies.
CREATE TABLE member_restrictions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_instance_id    BIGINT NOT NULL REFERENCES bot_instances (id) ON DELETE CASCADE,
    chat_id            BIGINT NOT NULL,
    user_id            BIGINT NOT NULL,
    reason             TEXT   NOT NULL,
    missing_channels   TEXT   NOT NULL DEFAULT '[]',
    warning_message_id BIGINT,
    warnings           BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    lifted_at          BIGINT
);
CREATE UNIQUE INDEX member_restrictions_active ON member_restrictions (bot_instance_id, chat_id, user_id)
    WHERE lifted_at IS NULL;
CREATE INDEX member_restrictions_user ON member_restrictions (user_id);

-- Durable timers: auto-deletes, grace periods, temporary restrictions. Carried out after a restart.
CREATE TABLE scheduled_actions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_instance_id BIGINT NOT NULL REFERENCES bot_instances (id) ON DELETE CASCADE,
    kind            TEXT   NOT NULL,
    chat_id         BIGINT NOT NULL,
    user_id         BIGINT,
    message_id      BIGINT,
    payload         TEXT   NOT NULL DEFAULT '{}',
    due_at          BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    done_at         BIGINT
);
CREATE INDEX scheduled_actions_pending ON scheduled_actions (due_at) WHERE done_at IS NULL;
CREATE INDEX scheduled_actions_bot ON scheduled_actions (bot_instance_id, due_at);

-- Every verification decision. No foreign keys: history outlives the bots and groups it mentions.
CREATE TABLE verification_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_instance_id BIGINT  NOT NULL,
    group_id        BIGINT  NOT NULL,
    chat_id         BIGINT  NOT NULL,
    user_id         BIGINT  NOT NULL,
    channel_ids     TEXT    NOT NULL DEFAULT '[]',
    outcome         TEXT    NOT NULL,
    cached          BOOLEAN NOT NULL,
    latency_ms      BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL
);
CREATE INDEX verification_log_time ON verification_log (created_at, outcome, cached, latency_ms);
CREATE INDEX verification_log_group ON verification_log (group_id, created_at);
CREATE INDEX verification_log_bot ON verification_log (bot_instance_id, created_at);
CREATE INDEX verification_log_user ON verification_log (user_id, created_at);

-- Every call a bot made to Telegram.
CREATE TABLE api_call_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    bot_instance_id BIGINT NOT NULL,
    method          TEXT   NOT NULL,
    outcome         TEXT   NOT NULL,
    error_code      BIGINT,
    latency_ms      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX api_call_log_time ON api_call_log (created_at, method, outcome);
CREATE INDEX api_call_log_bot ON api_call_log (bot_instance_id, created_at);

-- The durable activity feed behind SSE ids and Last-Event-ID replay. AUTOINCREMENT: an id is never
-- reused, even after the newest rows are deleted by retention.
CREATE TABLE events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT   NOT NULL,
    bot_instance_id BIGINT,
    payload         TEXT   NOT NULL DEFAULT '{}',
    created_at      BIGINT NOT NULL
);
CREATE INDEX events_time ON events (created_at);
CREATE INDEX events_kind ON events (kind, id);
CREATE INDEX events_bot ON events (bot_instance_id, id);

-- Application logs, fed by a tracing layer.
CREATE TABLE logs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    level           TEXT   NOT NULL CHECK (level IN ('trace', 'debug', 'info', 'warn', 'error')),
    target          TEXT   NOT NULL,
    message         TEXT   NOT NULL,
    fields          TEXT   NOT NULL DEFAULT '{}',
    bot_instance_id BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX logs_time ON logs (created_at);
CREATE INDEX logs_level ON logs (level, created_at);
CREATE INDEX logs_target ON logs (target, created_at);
CREATE INDEX logs_bot ON logs (bot_instance_id, created_at);

-- People allowed into the dashboard besides BOT_OWNER_TELEGRAM_ID.
CREATE TABLE admin_users (
    telegram_user_id BIGINT PRIMARY KEY,
    username         TEXT,
    display_name     TEXT NOT NULL,
    added_by         BIGINT,
    created_at       BIGINT NOT NULL
);

-- Dashboard sessions. `id_hash` is the SHA-256 of the cookie value: a leaked table opens no session.
CREATE TABLE sessions (
    id_hash          TEXT   PRIMARY KEY,
    telegram_user_id BIGINT NOT NULL,
    csrf_token       TEXT   NOT NULL,
    user_agent       TEXT,
    ip               TEXT,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX sessions_user ON sessions (telegram_user_id);

-- One-time login links (`nezuko login-link`), stored hashed, single use.
CREATE TABLE login_links (
    token_hash       TEXT   PRIMARY KEY,
    telegram_user_id BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    used_at          BIGINT
);
CREATE INDEX login_links_expiry ON login_links (expires_at);

-- Global settings: policy defaults, message texts, the vault canary.
CREATE TABLE settings (
    key        TEXT   PRIMARY KEY,
    value      TEXT   NOT NULL,
    updated_by BIGINT,
    updated_at BIGINT NOT NULL
);

-- Every admin mutation.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    actor_id    BIGINT,
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT,
    before      TEXT,
    after       TEXT,
    ip          TEXT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX audit_log_time ON audit_log (created_at);
CREATE INDEX audit_log_actor ON audit_log (actor_id, created_at);
CREATE INDEX audit_log_action ON audit_log (action, created_at);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id);
