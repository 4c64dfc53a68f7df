//! The store: one interface over native SQLite and native PostgreSQL pools.
//!
//! Both backends run the same SQL text (`$n` placeholders, `RETURNING`, `ON CONFLICT` work on both;
//! see the conventions at the top of `migrations/*/0001_platform.sql`). [`with_pool!`] expands a
//! query once per backend, so rows keep native types on each (sqlx's `Any` driver cannot decode
//! SQLite booleans or PostgreSQL JSONB). Each table's queries live in the file named after it.
//! The storage test suite (`tests/it/storage.rs`) runs unchanged against both backends.

pub mod analytics;
pub mod attention;
mod audit;
mod auth;
mod backup;
mod bots;
mod browse;
mod channel_members;
mod channels;
mod events;
mod groups;
pub mod import;
mod join_requests;
pub mod leases;
mod logs;
pub mod nodes;
mod parked_updates;
mod records;
mod restrictions;
mod rollups;
mod runner;
mod sessions;
mod settings;
mod timers;
pub mod update_progress;
mod url;
pub mod webhooks;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, PgConnection, PgPool, SqliteConnection, SqlitePool};

pub use audit::{AuditEntry, AuditFilter, NewAuditEntry};
pub use auth::AdminRow;
pub use backup::snapshot_sqlite;
pub use bots::{BotRow, NewBot, RunStateUpdate};
pub use browse::{ChannelListRow, GroupFilter, GroupSort};
pub use channel_members::ChannelMember;
pub use channels::ChannelChange;
pub use events::{EventRow, NewEvent};
pub use groups::{ChannelRow, GroupRow, NewChannel, NewGroup};
pub use join_requests::{JoinDecision, JoinRequestRow, NewJoinRequest};
pub use leases::{Held, LeaseRow, LeaseTable, Survey};
pub use logs::{LogFilter, LogRow, NewLog};
pub use nodes::NodeRow;
pub use records::{ApiCall, KeyCount, Verification};
pub use restrictions::{NewRestriction, Restricted, RestrictionRow};
pub use runner::{RunnerClaim, RunnerError};
pub use sessions::SessionRow;
pub use timers::{NewTimer, TimerRow};
pub use update_progress::UpdateProgress;
pub use url::{DatabaseUrl, UrlError, redact as redact_url};

/// How to reach the database: the store's own settings, so the store depends on nothing above it
/// (`settings` fills them in from the configuration).
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    /// Connections in the pool.
    pub max_connections: u32,
    /// How long a connection attempt (and a wait for a pooled connection) may take.
    pub connect_timeout: std::time::Duration,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// What can go wrong talking to the database. Callers branch on `NotFound` and `Conflict`;
/// the rest they report.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot connect to the database at {location}: {source}")]
    Unreachable {
        location: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "cannot lock the SQLite database for its migrations (`<file>.migrating` beside it): {0}"
    )]
    MigrationLock(#[source] std::io::Error),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Query(#[from] sqlx::Error),
    #[error("the database is read-only (a standby, or transactions default to read-only)")]
    ReadOnly,
    /// Asked of the backend that does not do it (a SQLite file copy of PostgreSQL).
    #[error("{0}")]
    Unsupported(&'static str),
    /// The database is the original Python platform's (its tables are listed): a configuration
    /// mistake, since both programs read `DATABASE_URL`. Nothing was changed.
    #[error(
        "this database belongs to the original Python platform (it has {0}); Nezuko leaves it untouched: point DATABASE_URL at a new database and bring the data over with `nezuko import --from <this database>` (README: \"Coming from the original platform\")"
    )]
    OriginalPlatform(String),
}

/// Tables only the original Python platform's database has: its owners, its two Alembic chains'
/// version tables, its dashboard's tables (the seed's schema note, `original-schema.md` §1 and §3).
const ORIGINAL_ONLY: [&str; 6] = [
    "owners",
    "alembic_version_bot",
    "alembic_version_api",
    "admin_sessions",
    "admin_audit_log",
    "admin_logs",
];

/// What marks the original platform's database among `tables`, listed; `old_columns` counts the
/// original's own columns in shared table names: `protected_groups.group_id` (Nezuko's is
/// `chat_id`) and `bot_instances.token_encrypted` (Nezuko's is `token_ciphertext`).
fn original_marks(tables: &[String], old_columns: i64) -> Option<String> {
    let mut found: Vec<String> = ORIGINAL_ONLY
        .iter()
        .filter(|name| tables.iter().any(|t| t == *name))
        .map(|name| name.to_string())
        .collect();
    if old_columns > 0 {
        found.push("protected_groups.group_id or bot_instances.token_encrypted".into());
    }
    (!found.is_empty()).then(|| found.join(", "))
}

/// [`original_marks`] of a SQLite database; reads only.
async fn original_sqlite(connection: &mut SqliteConnection) -> Result<Option<String>, sqlx::Error> {
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut *connection)
            .await?;
    let old: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM pragma_table_info('protected_groups') WHERE name = 'group_id') \
         + (SELECT COUNT(*) FROM pragma_table_info('bot_instances') WHERE name = 'token_encrypted')",
    )
    .fetch_one(&mut *connection)
    .await?;
    Ok(original_marks(&tables, old))
}

/// Refuses the SQLite file at `path` when it is the original platform's database, reading it
/// through a read-only connection: opening it for writing would switch it to WAL, a change it
/// must not get. A missing file is a new database. Also called before anything else touches the
/// file's directory (`serve`'s runner lock beside it).
pub async fn refuse_original_sqlite(path: &std::path::Path) -> Result<(), StoreError> {
    if path.as_os_str() == ":memory:" || !path.exists() {
        return Ok(());
    }
    let read_only = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut probe = SqliteConnection::connect_with(&read_only).await?;
    let found = original_sqlite(&mut probe).await;
    let _ = probe.close().await;
    match found? {
        Some(found) => Err(StoreError::OriginalPlatform(found)),
        None => Ok(()),
    }
}

/// [`original_marks`] of the PostgreSQL schema in use; reads only.
async fn original_postgres(connection: &mut PgConnection) -> Result<Option<String>, sqlx::Error> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    .fetch_all(&mut *connection)
    .await?;
    let old: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() \
         AND ((table_name = 'protected_groups' AND column_name = 'group_id') \
         OR (table_name = 'bot_instances' AND column_name = 'token_encrypted'))",
    )
    .fetch_one(&mut *connection)
    .await?;
    Ok(original_marks(&tables, old))
}

impl StoreError {
    /// Whether the error is the configuration's (exit status 78).
    pub fn is_configuration(&self) -> bool {
        matches!(self, StoreError::OriginalPlatform(_))
    }
}

impl StoreError {
    /// Whether the database could not be reached or written just now (a retry later may succeed),
    /// as opposed to a refusal of the request itself.
    pub fn is_outage(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::ReadOnly => true,
            Self::Query(error) => is_sqlx_outage(error),
            _ => false,
        }
    }

    /// Whether a database that *answered* said it cannot take connections for now: PostgreSQL
    /// closed to connections (55000), starting up or shutting down (57P), out of connections (53);
    /// SQLite locked past its busy timeout (5). Worth waiting for, unlike a refused connection or
    /// a failed sign-in, which are more likely a wrong URL than a passing outage.
    pub fn is_passing(&self) -> bool {
        let (Self::Unreachable { source, .. } | Self::Query(source)) = self else {
            return false;
        };
        matches!(source, sqlx::Error::Database(db) if db.code().is_some_and(|code| {
            code == "5" || code == "55000" || code.starts_with("57P") || code.starts_with("53")
        }))
    }
}

/// Whether `error` (anywhere in a chain) says the database is unreachable, unwritable or locked.
pub fn is_outage(error: &(dyn std::error::Error + 'static)) -> bool {
    error
        .downcast_ref::<StoreError>()
        .is_some_and(StoreError::is_outage)
        || error
            .downcast_ref::<sqlx::Error>()
            .is_some_and(is_sqlx_outage)
}

fn is_sqlx_outage(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        // SQLite's busy timeout ran out behind another writer (SQLITE_BUSY, code 5). PostgreSQL
        // (https://www.postgresql.org/docs/current/errcodes-appendix.html): shutting down or in
        // recovery (class 57P), connection exceptions (08), read-only (25006), out of resources
        // such as too many connections (53), a database closed to connections
        // (`ALLOW_CONNECTIONS false`, 55000 at connect; Nezuko's own statements never raise it),
        // and a server that stopped letting Nezuko's role in (class 28, `pg_hba.conf` now
        // rejecting, a changed password: only a new connection meets it, so it is the server's
        // state, not a refusal of the statement).
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code == "5"
                || code.starts_with("57P")
                || code.starts_with("08")
                || code.starts_with("28")
                || code.starts_with("53")
                || code == "25006"
                || code == "55000"
        }),
        _ => false,
    }
}

/// A handle to the database; cheap to clone (the pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    location: String,
    /// The SQLite file, for the lock that serialises migrations ([`runner::MigrationLock`]).
    sqlite_path: Option<std::sync::Arc<std::path::Path>>,
    /// Names this handle (and its clones) in the events it stores; see [`Store::origin`].
    origin: std::sync::Arc<str>,
}

/// Runs `$body` with `$pool` bound to whichever native pool the store has.
/// The body is compiled once per backend, so it must be valid SQL for both.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.pool {
            $crate::db::Pool::Sqlite($pool) => $body,
            $crate::db::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// Opens a transaction that will write; every transaction in the store does.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;

    /// On SQLite, `BEGIN IMMEDIATE`: the write lock is taken at the start, waiting up to the busy
    /// timeout for another writer. A deferred transaction that reads first and writes later gets
    /// SQLITE_BUSY ("database is locked") at once when another connection wrote in between, and
    /// the busy timeout does not retry that (<https://sqlite.org/lang_transaction.html>, "Read
    /// transactions", and `SQLITE_BUSY_SNAPSHOT`). On PostgreSQL, a plain `BEGIN`: row locks
    /// order concurrent writers.
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>>
    + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

impl Store {
    /// Connects to the configured database. For SQLite the file's directory is created and the
    /// database runs in WAL mode (readers never block the writer). Does not migrate.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let location = settings.url.redacted();
        let unreachable = |source| StoreError::Unreachable {
            location: location.clone(),
            source,
        };
        let pool = match &settings.url {
            DatabaseUrl::Sqlite { path } => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                refuse_original_sqlite(path)
                    .await
                    .map_err(|error| match error {
                        StoreError::Query(source) => unreachable(source),
                        other => other,
                    })?;
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // NORMAL is durable across application crashes in WAL mode; only an OS crash
                    // can lose the last transactions, which is the usual trade for WAL.
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.connect_timeout)
                    .connect_with(options)
                    .await
                    .map_err(unreachable)?;
                Pool::Sqlite(pool)
            }
            DatabaseUrl::Postgres { url } => {
                let options: PgConnectOptions = url.expose().parse().map_err(unreachable)?;
                let options = options.application_name("nezuko");
                // One direct attempt first: the pool retries until its timeout and then reports only
                // "pool timed out", hiding the real cause (refused, unknown host, auth failed).
                let probe = tokio::time::timeout(
                    settings.connect_timeout,
                    PgConnection::connect_with(&options),
                )
                .await
                .map_err(|_| unreachable(sqlx::Error::PoolTimedOut))?
                .map_err(unreachable)?;
                probe.close().await.map_err(unreachable)?;
                let pool = PgPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(settings.connect_timeout)
                    .connect_with(options)
                    .await
                    .map_err(unreachable)?;
                Pool::Postgres(pool)
            }
        };
        let sqlite_path = match &settings.url {
            DatabaseUrl::Sqlite { path } if path.as_os_str() != ":memory:" => {
                Some(path.as_path().into())
            }
            _ => None,
        };
        Ok(Self {
            pool,
            location,
            sqlite_path,
            origin: format!("{:016x}", rand::random::<u64>()).into(),
        })
    }

    /// A random name for this connection, written with every event it stores, so a process can
    /// tell its own events from those other processes on the same database stored.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Applies the migrations embedded in the binary that the database has not seen yet. A
    /// database of the original Python platform is refused before anything is written (its
    /// tables share eight names with different shapes, so the first migration would fail half
    /// way).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        // SQLite's file was looked at before it was opened (`connect`).
        if let Some(pool) = self.postgres_pool() {
            let mut connection = pool.acquire().await?;
            if let Some(found) = original_postgres(&mut connection).await? {
                return Err(StoreError::OriginalPlatform(found));
            }
        }
        match &self.pool {
            Pool::Sqlite(pool) => {
                // sqlx locks PostgreSQL migrations itself, SQLite's not: two processes started
                // together on a new file (`--role api` and `--role bots`) would both create the
                // tables, and one would fail.
                let _lock = match &self.sqlite_path {
                    Some(path) => Some(runner::MigrationLock::take(path).await?),
                    None => None,
                };
                SQLITE_MIGRATIONS.run(pool).await?
            }
            Pool::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// Refreshes the planner's statistics after a bulk load; on PostgreSQL also vacuums, so the
    /// autovacuum a million fresh rows would trigger does not run in the middle of a measurement.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        let sql = match self.backend() {
            Backend::Sqlite => "ANALYZE",
            Backend::Postgres => "VACUUM ANALYZE",
        };
        with_pool!(self, pool => sqlx::query(sql).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// A round trip to the database, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Whether the database would take a write now, without writing: on SQLite the write lock is
    /// taken and given back (`BEGIN IMMEDIATE`, failing once the busy timeout passes while another
    /// connection holds it); on PostgreSQL the server must not be a read-only standby or session.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let transaction = pool.begin_write().await?;
                transaction.rollback().await?;
            }
            Pool::Postgres(pool) => {
                let (standby, read_only): (bool, String) = sqlx::query_as(
                    "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')",
                )
                .fetch_one(pool)
                .await?;
                if standby || read_only == "on" {
                    return Err(StoreError::ReadOnly);
                }
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Where the data lives, safe to log (no password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The PostgreSQL pool, for features only PostgreSQL has (LISTEN/NOTIFY).
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }

    /// Closes every connection; waits for checked-out ones to come back.
    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

/// Appends the time range, the id cursor and the limit shared by every newest-first listing
/// (`created_at` in `[from, to)`, `id < before_id`), then `ORDER BY id DESC`.
pub(crate) fn push_newest_first<DB: sqlx::Database>(
    query: &mut sqlx::QueryBuilder<DB>,
    from: Option<i64>,
    to: Option<i64>,
    before_id: Option<i64>,
    limit: i64,
) where
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    if let Some(from) = from {
        query.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(to) = to {
        query.push(" AND created_at < ").push_bind(to);
    }
    if let Some(before) = before_id {
        query.push(" AND id < ").push_bind(before);
    }
    query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
}

/// Now, in the unit every `*_at` column uses: milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        // A clock before 1970 is a broken machine; 0 keeps ordering sane rather than panicking.
        .unwrap_or(0)
}

/// A store on a fresh SQLite file in `dir`, migrated, for unit tests.
#[cfg(test)]
pub(crate) async fn scratch_store(dir: &std::path::Path) -> Store {
    let settings = DatabaseSettings {
        url: DatabaseUrl::Sqlite {
            path: dir.join("t.db"),
        },
        max_connections: 1,
        connect_timeout: Duration::from_secs(5),
    };
    let store = Store::connect(&settings).await.unwrap();
    store.migrate().await.unwrap();
    store
}
