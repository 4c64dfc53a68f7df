-- The `serve` processes sharing this database (issue 17): each is a node. A node writes its row when
-- it starts and refreshes heartbeat_at (Unix ms) every 5 s; it deletes the row when it stops. A row
-- whose heartbeat is older than 15 s belongs to a process that ended without saying so (killed, cut
-- off, paused); such rows are deleted after an hour.
--
-- id:        the process's store origin (random per start; also written with every event it stores)
-- role:      all, api or bots (`nezuko serve --role`)
-- runs_bots: whether it runs the bots now (SQLite: holds the runner file lock; PostgreSQL: holds
--            the runner advisory lock)
CREATE TABLE nodes (
    id           TEXT    PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          BIGINT  NOT NULL,
    version      TEXT    NOT NULL,
    role         TEXT    NOT NULL,
    runs_bots    BOOLEAN NOT NULL,
    started_at   BIGINT  NOT NULL,
    heartbeat_at BIGINT  NOT NULL
);
