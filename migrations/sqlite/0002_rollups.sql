-- Hourly rollups of the record tables, so the dashboard's stats and charts read a few thousand rows
-- instead of scanning millions. Maintained in the same transaction as each batch of records
-- (src/db/records.rs); the backfill below covers rows written before this migration.
-- `hour` is the start of the UTC hour in epoch milliseconds, like every `*_at` column.

CREATE TABLE verification_hourly (
    hour        BIGINT  NOT NULL,
    outcome     TEXT    NOT NULL,
    cached      BOOLEAN NOT NULL,
    count       BIGINT  NOT NULL,
    latency_sum BIGINT  NOT NULL,
    PRIMARY KEY (hour, outcome, cached)
);

-- Exact latency histogram per hour: true percentiles without reading raw rows.
CREATE TABLE verification_latency_hourly (
    hour       BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    count      BIGINT NOT NULL,
    PRIMARY KEY (hour, latency_ms)
);

CREATE TABLE verification_group_hourly (
    hour     BIGINT NOT NULL,
    group_id BIGINT NOT NULL,
    count    BIGINT NOT NULL,
    PRIMARY KEY (hour, group_id)
);

-- The same two per UTC day, for windows of a week or more (a month of hourly histograms is large).
CREATE TABLE verification_latency_daily (
    day        BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    count      BIGINT NOT NULL,
    PRIMARY KEY (day, latency_ms)
);

CREATE TABLE verification_group_daily (
    day      BIGINT NOT NULL,
    group_id BIGINT NOT NULL,
    count    BIGINT NOT NULL,
    PRIMARY KEY (day, group_id)
);

CREATE TABLE api_call_hourly (
    hour    BIGINT NOT NULL,
    method  TEXT   NOT NULL,
    outcome TEXT   NOT NULL,
    count   BIGINT NOT NULL,
    PRIMARY KEY (hour, method, outcome)
);

INSERT INTO verification_hourly (hour, outcome, cached, count, latency_sum)
    SELECT (created_at / 3600000) * 3600000, outcome, cached, COUNT(*), SUM(latency_ms)
    FROM verification_log GROUP BY 1, 2, 3;
INSERT INTO verification_latency_hourly (hour, latency_ms, count)
    SELECT (created_at / 3600000) * 3600000, latency_ms, COUNT(*) FROM verification_log GROUP BY 1, 2;
INSERT INTO verification_group_hourly (hour, group_id, count)
    SELECT (created_at / 3600000) * 3600000, group_id, COUNT(*) FROM verification_log GROUP BY 1, 2;
INSERT INTO verification_latency_daily (day, latency_ms, count)
    SELECT (created_at / 86400000) * 86400000, latency_ms, COUNT(*) FROM verification_log GROUP BY 1, 2;
INSERT INTO verification_group_daily (day, group_id, count)
    SELECT (created_at / 86400000) * 86400000, group_id, COUNT(*) FROM verification_log GROUP BY 1, 2;
INSERT INTO api_call_hourly (hour, method, outcome, count)
    SELECT (created_at / 3600000) * 3600000, method, outcome, COUNT(*) FROM api_call_log GROUP BY 1, 2, 3;
