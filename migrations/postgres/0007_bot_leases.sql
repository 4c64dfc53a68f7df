-- Which node runs each bot (issue 17), on PostgreSQL; SQLite keeps the table for one schema, but
-- one process runs all its bots (the `<file>.runner` lock) and never writes here.
--
-- A node holds a bot while expires_at (Unix ms, the database's clock) is ahead; it renews every
-- second and lets go of a bot by setting expires_at to now. Anyone may take a bot whose lease has
-- expired, and taking it adds one to fence: the fencing number of that holding, so a holder that
-- comes back from a pause can tell the bot has been run by someone else since.
--
-- A row is never deleted while its bot exists, so fence only grows.
CREATE TABLE bot_leases (
    bot_instance_id BIGINT PRIMARY KEY REFERENCES bot_instances (id) ON DELETE CASCADE,
    node_id         TEXT   NOT NULL,
    fence           BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX bot_leases_node ON bot_leases (node_id);
