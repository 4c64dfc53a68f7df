-- `nezuko import` (src/import/): which rows of the original platform's history tables (audit log,
-- API calls, verifications) were brought over, by the original's own id, so a second import of the
-- same database adds nothing. Bots, groups, channels, links and admins need no such record: their
-- natural keys (Telegram ids) make a second insert a no-op.
CREATE TABLE imported_rows (
    source_table TEXT   NOT NULL,
    source_id    TEXT   NOT NULL,
    imported_at  BIGINT NOT NULL,
    PRIMARY KEY (source_table, source_id)
);
