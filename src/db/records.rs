//! `verification_log` and `api_call_log`: the append-only records behind analytics.
//!
//! Both are written in batches (one multi-row INSERT) by background writers, off the update path.

use sqlx::types::Json;

use super::BeginWrite;
use super::{Store, StoreError, with_pool};

/// One verification decision.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Verification {
    pub bot_instance_id: i64,
    pub group_id: i64,
    pub chat_id: i64,
    pub user_id: i64,
    pub channel_ids: Json<Vec<i64>>,
    pub outcome: String,
    pub cached: bool,
    pub latency_ms: i64,
    pub created_at: i64,
}

/// One call to the Bot API.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiCall {
    pub bot_instance_id: i64,
    pub method: String,
    pub outcome: String,
    pub error_code: Option<i64>,
    pub latency_ms: i64,
    pub created_at: i64,
}

/// A row of a `GROUP BY` count: the grouped value and how many rows had it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, schemars::JsonSchema)]
pub struct KeyCount {
    pub key: String,
    pub count: i64,
}

/// Rows per INSERT statement: keeps bind parameters under SQLite's limit (32,766) and PostgreSQL's (65,535).
pub(super) const ROWS_PER_STATEMENT: usize = 1000;

/// Inserts `$rows` (`&[Verification]`) in transaction `$tx` and adds them to the rollups. A macro
/// so its body is compiled per backend (inside [`with_pool!`]); `nezuko import` uses it too.
macro_rules! insert_verification_rows {
    ($tx:expr, $rows:expr) => {{
        let rows: &[$crate::db::Verification] = $rows;
        for chunk in rows.chunks($crate::db::records::ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO verification_log (bot_instance_id, group_id, chat_id, user_id, channel_ids, \
                 outcome, cached, latency_ms, created_at) ",
            );
            insert.push_values(chunk, |mut row, v| {
                row.push_bind(v.bot_instance_id)
                    .push_bind(v.group_id)
                    .push_bind(v.chat_id)
                    .push_bind(v.user_id)
                    .push_bind(&v.channel_ids)
                    .push_bind(&v.outcome)
                    .push_bind(v.cached)
                    .push_bind(v.latency_ms)
                    .push_bind(v.created_at);
            });
            insert.build().execute(&mut *$tx).await?;
        }
        for statement in $crate::db::rollups::verification_statements(rows) {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use insert_verification_rows;

/// Inserts `$rows` (`&[ApiCall]`) in transaction `$tx` and adds them to the hourly rollup.
macro_rules! insert_api_call_rows {
    ($tx:expr, $rows:expr) => {{
        let rows: &[$crate::db::ApiCall] = $rows;
        for chunk in rows.chunks($crate::db::records::ROWS_PER_STATEMENT) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO api_call_log (bot_instance_id, method, outcome, error_code, latency_ms, created_at) ",
            );
            insert.push_values(chunk, |mut row, call| {
                row.push_bind(call.bot_instance_id)
                    .push_bind(&call.method)
                    .push_bind(&call.outcome)
                    .push_bind(call.error_code)
                    .push_bind(call.latency_ms)
                    .push_bind(call.created_at);
            });
            insert.build().execute(&mut *$tx).await?;
        }
        for statement in $crate::db::rollups::api_call_statements(rows) {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use insert_api_call_rows;

impl Store {
    /// Stores verification records and adds them to the hourly rollups, in one transaction.
    pub async fn insert_verifications(&self, rows: &[Verification]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            insert_verification_rows!(tx, rows);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Stores API call records and adds them to the hourly rollup, in one transaction.
    pub async fn insert_api_calls(&self, rows: &[ApiCall]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            insert_api_call_rows!(tx, rows);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Verifications per outcome with `from <= created_at < to`, most frequent first.
    pub async fn verification_outcomes(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<KeyCount>, StoreError> {
        let sql = "SELECT outcome AS key, COUNT(*) AS count FROM verification_log \
                   WHERE created_at >= $1 AND created_at < $2 GROUP BY outcome ORDER BY count DESC, outcome";
        Ok(with_pool!(self, pool => sqlx::query_as::<_, KeyCount>(sql)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await)?)
    }

    /// Verifications per outcome in one group with `from <= created_at < to`.
    pub async fn verification_outcomes_in_group(
        &self,
        group_id: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<KeyCount>, StoreError> {
        let sql = "SELECT outcome AS key, COUNT(*) AS count FROM verification_log \
                   WHERE group_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY outcome ORDER BY count DESC, outcome";
        Ok(with_pool!(self, pool => sqlx::query_as::<_, KeyCount>(sql)
            .bind(group_id)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await)?)
    }

    /// The newest verifications in one group.
    pub async fn recent_verifications(
        &self,
        group_id: i64,
        limit: i64,
    ) -> Result<Vec<Verification>, StoreError> {
        let sql = "SELECT bot_instance_id, group_id, chat_id, user_id, channel_ids, outcome, cached, latency_ms, \
                   created_at FROM verification_log WHERE group_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2";
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, Verification>(sql)
            .bind(group_id)
            .bind(limit)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Telegram calls per method with `from <= created_at < to`.
    pub async fn api_calls_by_method(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<KeyCount>, StoreError> {
        let sql = "SELECT method AS key, COUNT(*) AS count FROM api_call_log \
                   WHERE created_at >= $1 AND created_at < $2 GROUP BY method ORDER BY count DESC, method";
        Ok(with_pool!(self, pool => sqlx::query_as::<_, KeyCount>(sql)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await)?)
    }
}
