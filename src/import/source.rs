//! Reading the original platform's database, read-only, whatever shape its two migration chains
//! and its bot's `create_all` left (the seed's `original-schema.md` §1): the columns are looked
//! up first and a missing optional column reads as NULL.
//!
//! Values are cast to text or integers in SQL, so one decoder serves SQLite (where a column
//! declared `DATETIME` holds text in three formats, and booleans are 0/1) and PostgreSQL (where
//! naive and aware timestamps mix; the session runs in UTC so both print as UTC).

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, Row, SqliteConnection};

use crate::db::DatabaseUrl;

/// Why the original database could not be read. Nothing was written anywhere.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open the original database at {location}: {source}")]
    Unreachable {
        location: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("the original SQLite database {0} does not exist")]
    Missing(String),
    #[error(
        "{location} is not the original platform's database: {why} (expected its protected_groups with a group_id column, or its bot_instances with token_encrypted)"
    )]
    NotOriginal { location: String, why: String },
    #[error(
        "{location}: table {table} has no {column} column, which every shape of the original has"
    )]
    Shape {
        location: String,
        table: &'static str,
        column: &'static str,
    },
    #[error("cannot read the original database at {location}: {source}")]
    Read {
        location: String,
        #[source]
        source: sqlx::Error,
    },
}

/// How a column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Text,
}

/// One value as read: integers (booleans as 0/1) or text (times, JSON, strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

/// A row of an original table, read by column name; absent columns are NULL. The names are
/// shared by every row of a table (a large `api_call_log` is mostly its values).
#[derive(Debug, Clone, Default)]
pub struct SourceRow {
    columns: std::sync::Arc<[&'static str]>,
    cells: Vec<Cell>,
}

impl SourceRow {
    fn cell(&self, column: &str) -> Option<&Cell> {
        self.columns
            .iter()
            .position(|name| *name == column)
            .map(|index| &self.cells[index])
    }

    pub fn int(&self, column: &str) -> Option<i64> {
        match self.cell(column) {
            Some(Cell::Int(value)) => Some(*value),
            Some(Cell::Text(text)) => text.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn text(&self, column: &str) -> Option<String> {
        match self.cell(column) {
            Some(Cell::Text(text)) => Some(text.clone()),
            Some(Cell::Int(value)) => Some(value.to_string()),
            _ => None,
        }
    }

    /// A boolean: 0/1 on SQLite, `boolean` on PostgreSQL (read as 0/1); NULL reads as `default`.
    pub fn flag(&self, column: &str, default: bool) -> bool {
        self.int(column).map_or(default, |value| value != 0)
    }
}

/// The tables an import reads, with the columns it wants and which of them must exist.
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    required: &'static [&'static str],
}

const BOTS: Table = Table {
    name: "bot_instances",
    columns: &[
        ("id", Kind::Int),
        ("owner_telegram_id", Kind::Int),
        ("bot_id", Kind::Int),
        ("bot_username", Kind::Text),
        ("bot_name", Kind::Text),
        ("token_encrypted", Kind::Text),
        ("is_active", Kind::Int),
        ("created_at", Kind::Text),
    ],
    required: &["bot_id", "token_encrypted"],
};

const GROUPS: Table = Table {
    name: "protected_groups",
    columns: &[
        ("group_id", Kind::Int),
        ("owner_id", Kind::Int),
        ("title", Kind::Text),
        ("enabled", Kind::Int),
        ("params", Kind::Text),
        ("member_count", Kind::Int),
        ("last_sync_at", Kind::Text),
        ("created_at", Kind::Text),
    ],
    required: &["group_id"],
};

const CHANNELS: Table = Table {
    name: "enforced_channels",
    columns: &[
        ("channel_id", Kind::Int),
        ("title", Kind::Text),
        ("username", Kind::Text),
        ("invite_link", Kind::Text),
        ("created_at", Kind::Text),
    ],
    required: &["channel_id"],
};

const LINKS: Table = Table {
    name: "group_channel_links",
    columns: &[
        ("group_id", Kind::Int),
        ("channel_id", Kind::Int),
        ("created_at", Kind::Text),
    ],
    required: &["group_id", "channel_id"],
};

const OWNERS: Table = Table {
    name: "owners",
    columns: &[("user_id", Kind::Int), ("username", Kind::Text)],
    required: &["user_id"],
};

const ADMINS: Table = Table {
    name: "admin_users",
    columns: &[
        ("id", Kind::Text),
        ("email", Kind::Text),
        ("full_name", Kind::Text),
        ("role", Kind::Text),
        ("is_active", Kind::Int),
        ("telegram_id", Kind::Int),
        ("created_at", Kind::Text),
    ],
    required: &["id"],
};

const SESSIONS: Table = Table {
    name: "sessions",
    columns: &[("id", Kind::Text), ("telegram_id", Kind::Int)],
    required: &["id", "telegram_id"],
};

/// Both shapes of the audit log: the dashboard chain's (`resource_type`, `old_value`) and the
/// legacy script's (`entity_type`, `diff_json`), §1.
const AUDIT: Table = Table {
    name: "admin_audit_log",
    columns: &[
        ("id", Kind::Text),
        ("user_id", Kind::Text),
        ("action", Kind::Text),
        ("resource_type", Kind::Text),
        ("entity_type", Kind::Text),
        ("resource_id", Kind::Text),
        ("entity_id", Kind::Text),
        ("old_value", Kind::Text),
        ("new_value", Kind::Text),
        ("diff_json", Kind::Text),
        ("ip_address", Kind::Text),
        ("created_at", Kind::Text),
    ],
    required: &["id", "action"],
};

const API_CALLS: Table = Table {
    name: "api_call_log",
    columns: &[
        ("id", Kind::Int),
        ("method", Kind::Text),
        ("chat_id", Kind::Int),
        ("user_id", Kind::Int),
        ("success", Kind::Int),
        ("latency_ms", Kind::Int),
        ("error_type", Kind::Text),
        ("timestamp", Kind::Text),
    ],
    required: &["id", "method", "timestamp"],
};

const VERIFICATIONS: Table = Table {
    name: "verification_log",
    columns: &[
        ("id", Kind::Int),
        ("user_id", Kind::Int),
        ("group_id", Kind::Int),
        ("channel_id", Kind::Int),
        ("status", Kind::Text),
        ("latency_ms", Kind::Int),
        ("cached", Kind::Int),
        ("timestamp", Kind::Text),
    ],
    required: &[
        "id",
        "user_id",
        "group_id",
        "channel_id",
        "status",
        "timestamp",
    ],
};

/// What the original database holds, table by table (a table that does not exist is empty).
#[derive(Debug, Default)]
pub struct Original {
    /// Where it was read from, safe to print.
    pub location: String,
    /// Rows per table read (kept when the rows themselves are dropped after planning).
    pub found: BTreeMap<&'static str, usize>,
    /// The Alembic revisions stamped (`alembic_version_bot`, `…_api`).
    pub revisions: BTreeMap<String, String>,
    pub bots: Vec<SourceRow>,
    pub groups: Vec<SourceRow>,
    pub channels: Vec<SourceRow>,
    pub links: Vec<SourceRow>,
    pub owners: Vec<SourceRow>,
    pub admins: Vec<SourceRow>,
    pub sessions: Vec<SourceRow>,
    pub audit: Vec<SourceRow>,
    pub api_calls: Vec<SourceRow>,
    pub verifications: Vec<SourceRow>,
}

enum Source {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Reads the whole original database at `url`, through a read-only connection, in one
/// read-only transaction (a consistent snapshot even while the old bot still writes).
///
/// Errors: [`SourceError`]: unreachable, a SQLite file that does not exist (it is never
/// created), a database that is not the original's, a table missing a column all its shapes have.
pub async fn read(url: &DatabaseUrl, timeout: Duration) -> Result<Original, SourceError> {
    let location = url.redacted();
    let unreachable = |source| SourceError::Unreachable {
        location: location.clone(),
        source,
    };
    let mut source = match url {
        DatabaseUrl::Sqlite { path } => {
            if path.as_os_str() == ":memory:" || !path.exists() {
                return Err(SourceError::Missing(path.display().to_string()));
            }
            // Reading a whole large table is the point here, not a slow statement to warn about.
            let options = SqliteConnectOptions::new()
                .filename(path)
                .read_only(true)
                .disable_statement_logging();
            Source::Sqlite(
                SqliteConnection::connect_with(&options)
                    .await
                    .map_err(unreachable)?,
            )
        }
        DatabaseUrl::Postgres { url } => {
            let options: PgConnectOptions = url.expose().parse().map_err(unreachable)?;
            let options = options
                .application_name("nezuko import")
                .disable_statement_logging();
            let connection = tokio::time::timeout(timeout, PgConnection::connect_with(&options))
                .await
                .map_err(|_| unreachable(sqlx::Error::PoolTimedOut))?
                .map_err(unreachable)?;
            Source::Postgres(connection)
        }
    };
    let read = source.read_all(&location).await;
    source.close().await;
    read
}

impl Source {
    async fn close(self) {
        let _ = match self {
            Source::Sqlite(connection) => connection.close().await,
            Source::Postgres(connection) => connection.close().await,
        };
    }

    async fn read_all(&mut self, location: &str) -> Result<Original, SourceError> {
        let failed = |source| SourceError::Read {
            location: location.to_string(),
            source,
        };
        match self {
            Source::Sqlite(connection) => {
                sqlx::query("BEGIN")
                    .execute(&mut *connection)
                    .await
                    .map_err(failed)?;
            }
            Source::Postgres(connection) => {
                sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .execute(&mut *connection)
                    .await
                    .map_err(failed)?;
                // Aware timestamps print in the session's zone: UTC, like the naive ones.
                sqlx::query("SET LOCAL TIME ZONE 'UTC'")
                    .execute(&mut *connection)
                    .await
                    .map_err(failed)?;
            }
        }
        let columns = self.columns().await.map_err(failed)?;
        let mut tables: Vec<String> = columns.keys().cloned().collect();
        tables.sort();
        let has = |table: &str, column: &str| {
            columns
                .get(table)
                .is_some_and(|found| found.iter().any(|c| c == column))
        };
        if !has("protected_groups", "group_id") && !has("bot_instances", "token_encrypted") {
            let why = if has("protected_groups", "chat_id")
                && tables.iter().any(|t| t == "_sqlx_migrations")
            {
                "it is a Nezuko database".to_string()
            } else if tables.is_empty() {
                "it has no tables".to_string()
            } else {
                format!("it has {}", shorten(&tables))
            };
            return Err(SourceError::NotOriginal {
                location: location.to_string(),
                why,
            });
        }
        let mut original = Original {
            location: location.to_string(),
            ..Original::default()
        };
        for table in ["alembic_version_bot", "alembic_version_api"] {
            if has(table, "version_num") {
                let rows = self
                    .rows(&format!("SELECT version_num FROM {table}"), &[Kind::Text])
                    .await
                    .map_err(failed)?;
                if let Some(Cell::Text(revision)) =
                    rows.into_iter().next().and_then(|r| r.into_iter().next())
                {
                    original.revisions.insert(table.to_string(), revision);
                }
            }
        }
        let mut read = async |table: &Table| -> Result<Vec<SourceRow>, SourceError> {
            let Some(found) = columns.get(table.name) else {
                return Ok(Vec::new());
            };
            for column in table.required {
                if !found.iter().any(|c| c == column) {
                    return Err(SourceError::Shape {
                        location: location.to_string(),
                        table: table.name,
                        column,
                    });
                }
            }
            let present: Vec<(&'static str, Kind)> = table
                .columns
                .iter()
                .filter(|(name, _)| found.iter().any(|c| c == name))
                .copied()
                .collect();
            let sql = self.select(table.name, &present);
            let kinds: Vec<Kind> = present.iter().map(|(_, kind)| *kind).collect();
            let rows = self.rows(&sql, &kinds).await.map_err(failed)?;
            let names: std::sync::Arc<[&'static str]> =
                present.iter().map(|(name, _)| *name).collect();
            Ok(rows
                .into_iter()
                .map(|cells| SourceRow {
                    columns: names.clone(),
                    cells,
                })
                .collect())
        };
        original.bots = read(&BOTS).await?;
        original.groups = read(&GROUPS).await?;
        original.channels = read(&CHANNELS).await?;
        original.links = read(&LINKS).await?;
        original.owners = read(&OWNERS).await?;
        original.admins = read(&ADMINS).await?;
        original.sessions = read(&SESSIONS).await?;
        original.audit = read(&AUDIT).await?;
        original.api_calls = read(&API_CALLS).await?;
        original.verifications = read(&VERIFICATIONS).await?;
        for (table, rows) in [
            (BOTS.name, &original.bots),
            (GROUPS.name, &original.groups),
            (CHANNELS.name, &original.channels),
            (LINKS.name, &original.links),
            (ADMINS.name, &original.admins),
            (AUDIT.name, &original.audit),
            (API_CALLS.name, &original.api_calls),
            (VERIFICATIONS.name, &original.verifications),
        ] {
            original.found.insert(table, rows.len());
        }
        let end = match self {
            Source::Sqlite(connection) => sqlx::query("ROLLBACK")
                .execute(&mut *connection)
                .await
                .map(|_| ()),
            Source::Postgres(connection) => sqlx::query("ROLLBACK")
                .execute(&mut *connection)
                .await
                .map(|_| ()),
        };
        end.map_err(failed)?;
        Ok(original)
    }

    /// Every table and its columns, introspected (`PRAGMA table_info`, `information_schema`).
    async fn columns(&mut self) -> Result<BTreeMap<String, Vec<String>>, sqlx::Error> {
        let pairs: Vec<(String, String)> =
            match self {
                Source::Sqlite(connection) => sqlx::query_as(
                    "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p \
                     WHERE m.type = 'table'",
                )
                .fetch_all(&mut *connection)
                .await?,
                Source::Postgres(connection) => sqlx::query_as(
                    "SELECT table_name::text, column_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position",
                )
                .fetch_all(&mut *connection)
                .await?,
            };
        let mut columns: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (table, column) in pairs {
            columns.entry(table).or_default().push(column);
        }
        Ok(columns)
    }

    /// `SELECT` of `columns` of `table`, each cast to what it is read as.
    fn select(&self, table: &str, columns: &[(&str, Kind)]) -> String {
        let postgres = matches!(self, Source::Postgres(_));
        let list: Vec<String> = columns
            .iter()
            .map(|(name, kind)| {
                let quoted = format!("\"{name}\"");
                match (postgres, kind) {
                    // Only what is an integer: CAST would read '-100abc' as -100 and 1006.5 as
                    // 1006 (SQLite stores what it is given, whatever the declared type).
                    (false, Kind::Int) => format!(
                        "CASE WHEN typeof({quoted}) = 'integer' THEN {quoted} \
                         WHEN CAST(CAST({quoted} AS INTEGER) AS TEXT) = trim(CAST({quoted} AS TEXT)) \
                         THEN CAST({quoted} AS INTEGER) END"
                    ),
                    (false, Kind::Text) => format!("CAST({quoted} AS TEXT)"),
                    // A boolean casts to int4 only; anything else numeric straight to int8.
                    (true, Kind::Int) => format!(
                        "(CASE WHEN pg_typeof({quoted}) = 'boolean'::regtype THEN ({quoted}::text::boolean)::int::int8 \
                         ELSE ({quoted}::text)::numeric::int8 END)"
                    ),
                    (true, Kind::Text) => format!("{quoted}::text"),
                }
            })
            .collect();
        format!("SELECT {} FROM \"{table}\"", list.join(", "))
    }

    /// The rows of `sql`, decoded as they arrive (a large table is never held twice).
    async fn rows(&mut self, sql: &str, kinds: &[Kind]) -> Result<Vec<Vec<Cell>>, sqlx::Error> {
        use futures_util::TryStreamExt;
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        let mut decoded = Vec::new();
        match self {
            Source::Sqlite(connection) => {
                let mut rows = sqlx::query(sql).fetch(&mut *connection);
                while let Some(row) = rows.try_next().await? {
                    decoded.push(decode(&row, kinds)?);
                }
            }
            Source::Postgres(connection) => {
                let mut rows = sqlx::query(sql).fetch(&mut *connection);
                while let Some(row) = rows.try_next().await? {
                    decoded.push(decode(&row, kinds)?);
                }
            }
        }
        Ok(decoded)
    }
}

fn decode<R>(row: &R, kinds: &[Kind]) -> Result<Vec<Cell>, sqlx::Error>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    kinds
        .iter()
        .enumerate()
        .map(|(index, kind)| {
            Ok(match kind {
                Kind::Int => row
                    .try_get_unchecked::<Option<i64>, _>(index)?
                    .map_or(Cell::Null, Cell::Int),
                Kind::Text => row
                    .try_get_unchecked::<Option<String>, _>(index)?
                    .map_or(Cell::Null, Cell::Text),
            })
        })
        .collect()
}

/// The first few of `names`, for a one-line message.
fn shorten(names: &[String]) -> String {
    let mut listed: Vec<&str> = names.iter().take(6).map(String::as_str).collect();
    if names.len() > listed.len() {
        listed.push("…");
    }
    listed.join(", ")
}
