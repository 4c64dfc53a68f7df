//! `logs`: application log records, written in batches by a tracing layer and queried by the dashboard.

use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::{Store, StoreError, push_newest_first, with_pool};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LogRow {
    pub id: i64,
    pub level: String,
    pub target: String,
    pub message: String,
    pub fields: Json<serde_json::Value>,
    pub bot_instance_id: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewLog {
    /// One of trace, debug, info, warn, error (a CHECK constraint holds the table to these).
    pub level: String,
    pub target: String,
    pub message: String,
    pub fields: serde_json::Value,
    pub bot_instance_id: Option<i64>,
    pub created_at: i64,
}

/// A log query. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub levels: Vec<String>,
    /// Matches the target and its children (`nezuko::db` matches `nezuko::db::bots`).
    pub target: Option<String>,
    /// Case-insensitive substring of the message.
    pub text: Option<String>,
    pub bot_instance_id: Option<i64>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Cursor: only rows with a smaller id (for paging back in time).
    pub before_id: Option<i64>,
    pub limit: i64,
}

const ROWS_PER_STATEMENT: usize = 1000;

impl Store {
    pub async fn insert_logs(&self, rows: &[NewLog]) -> Result<(), StoreError> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            with_pool!(self, pool => {
                let mut insert = QueryBuilder::new(
                    "INSERT INTO logs (level, target, message, fields, bot_instance_id, created_at) ",
                );
                insert.push_values(chunk, |mut row, log| {
                    row.push_bind(&log.level)
                        .push_bind(&log.target)
                        .push_bind(&log.message)
                        .push_bind(Json(&log.fields))
                        .push_bind(log.bot_instance_id)
                        .push_bind(log.created_at);
                });
                insert.build().execute(pool).await?;
            });
        }
        Ok(())
    }

    /// Matching records, newest first.
    pub async fn query_logs(&self, filter: &LogFilter) -> Result<Vec<LogRow>, StoreError> {
        let text = filter
            .text
            .as_ref()
            .map(|t| format!("%{}%", escape_like(&t.to_lowercase())));
        let child_target = filter
            .target
            .as_ref()
            .map(|t| format!("{}::%", escape_like(t)));
        Ok(with_pool!(self, pool => {
            let mut query = QueryBuilder::new(
                "SELECT id, level, target, message, fields, bot_instance_id, created_at FROM logs WHERE 1 = 1",
            );
            if !filter.levels.is_empty() {
                query.push(" AND level IN (");
                let mut list = query.separated(", ");
                for level in &filter.levels {
                    list.push_bind(level);
                }
                query.push(")");
            }
            if let (Some(target), Some(children)) = (&filter.target, &child_target) {
                query.push(" AND (target = ").push_bind(target);
                query.push(" OR target LIKE ").push_bind(children).push(" ESCAPE '\\')");
            }
            if let Some(text) = &text {
                query.push(" AND LOWER(message) LIKE ").push_bind(text).push(" ESCAPE '\\'");
            }
            if let Some(bot) = filter.bot_instance_id {
                query.push(" AND bot_instance_id = ").push_bind(bot);
            }
            push_newest_first(&mut query, filter.from, filter.to, filter.before_id, filter.limit);
            query.build_query_as::<LogRow>().fetch_all(pool).await?
        }))
    }

    /// Deletes records older than `cutoff` (the retention setting); returns how many went.
    pub async fn prune_logs(&self, cutoff: i64) -> Result<u64, StoreError> {
        Ok(
            with_pool!(self, pool => sqlx::query("DELETE FROM logs WHERE created_at < $1")
            .bind(cutoff)
            .execute(pool)
            .await
        .map(|done| done.rows_affected()))?,
        )
    }
}

/// Escapes `%`, `_` and the escape character itself for `LIKE … ESCAPE '\'`.
pub(super) fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
