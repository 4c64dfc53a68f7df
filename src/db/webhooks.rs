//! `bot_webhooks` and `webhook_updates`: each bot's webhook secret, and the updates Telegram
//! delivered to a node's webhook route until the bot's runner is done with them (see the
//! migration `0008_webhooks.sql`).

use std::collections::HashSet;

use sqlx::{QueryBuilder, Row};

use super::{Store, StoreError, now_ms, with_pool};

/// Rows per statement: 3 binds each, well under either database's limit on parameters.
const ROWS_PER_STATEMENT: usize = 1000;

/// The PostgreSQL channel a stored webhook update is announced on, so the node running the bot
/// hands it out at once wherever it was received. Payload: `<bot id> <origin>`, the origin being
/// the storing node's [`Store::origin`] (which hands a bot of its own the update directly).
pub const WEBHOOK_CHANNEL: &str = "webhook_updates";

impl Store {
    /// A bot's webhook secret, encrypted, if one was made.
    pub async fn webhook_secret(&self, bot_instance_id: i64) -> Result<Option<String>, StoreError> {
        let sql = "SELECT secret_ciphertext FROM bot_webhooks WHERE bot_instance_id = $1";
        let row: Option<(String,)> = with_pool!(self, pool => sqlx::query_as(sql).bind(bot_instance_id).fetch_optional(pool).await)?;
        Ok(row.map(|(secret,)| secret))
    }

    /// Keeps `ciphertext` as the bot's webhook secret unless one exists, and returns the one kept:
    /// two nodes making a secret at once agree on the first written.
    pub async fn keep_webhook_secret(
        &self,
        bot_instance_id: i64,
        ciphertext: &str,
    ) -> Result<String, StoreError> {
        let insert = "INSERT INTO bot_webhooks (bot_instance_id, secret_ciphertext, created_at) \
                      VALUES ($1, $2, $3) ON CONFLICT (bot_instance_id) DO NOTHING";
        with_pool!(self, pool => sqlx::query(insert).bind(bot_instance_id).bind(ciphertext).bind(now_ms()).execute(pool).await.map(|_| ()))?;
        self.webhook_secret(bot_instance_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("bot {bot_instance_id}")))
    }

    /// Forgets a bot's webhook secret (one that can no longer be decrypted), so a new one is kept.
    pub async fn forget_webhook_secret(&self, bot_instance_id: i64) -> Result<(), StoreError> {
        let sql = "DELETE FROM bot_webhooks WHERE bot_instance_id = $1";
        with_pool!(self, pool => sqlx::query(sql).bind(bot_instance_id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Stores updates Telegram delivered: (bot id, update id, the update's JSON), in one
    /// statement. Returns those stored now; the rest were stored before (deliveries Telegram
    /// retried) and change nothing. On PostgreSQL each bot with a new update is announced on
    /// [`WEBHOOK_CHANNEL`] when the statement commits.
    pub async fn receive_webhook_updates(
        &self,
        updates: &[(i64, i64, &str)],
    ) -> Result<HashSet<(i64, i64)>, StoreError> {
        let now = now_ms();
        let mut stored = HashSet::new();
        for chunk in updates.chunks(ROWS_PER_STATEMENT) {
            let postgres = matches!(self.pool, super::Pool::Postgres(_));
            let origin = self.origin();
            let rows: Vec<(i64, i64)> = with_pool!(self, pool => {
                let mut query = QueryBuilder::new(if postgres { "WITH stored AS (" } else { "" });
                query.push(
                    "INSERT INTO webhook_updates (bot_instance_id, update_id, body, received_at) ",
                );
                query.push_values(chunk, |mut row, (bot, id, body)| {
                    row.push_bind(*bot)
                        .push_bind(*id)
                        .push_bind(*body)
                        .push_bind(now);
                });
                query.push(
                    " ON CONFLICT (bot_instance_id, update_id) DO NOTHING \
                     RETURNING bot_instance_id, update_id",
                );
                if postgres {
                    // One notification per bot: PostgreSQL delivers a payload once per
                    // transaction.
                    query
                        .push(") SELECT bot_instance_id, update_id, pg_notify(")
                        .push_bind(WEBHOOK_CHANNEL)
                        .push(", bot_instance_id::text || ' ' || ")
                        .push_bind(origin)
                        .push(")::text FROM stored");
                }
                query.build().fetch_all(pool).await.map(|rows| {
                    rows.iter()
                        .map(|row| (row.get::<i64, _>(0), row.get::<i64, _>(1)))
                        .collect()
                })
            })?;
            stored.extend(rows);
        }
        Ok(stored)
    }

    /// A bot's webhook updates not yet done with, lowest `update_id` first, at most `limit`:
    /// (update id, the update's JSON).
    pub async fn pending_webhook_updates(
        &self,
        bot_instance_id: i64,
        limit: i64,
    ) -> Result<Vec<(i32, String)>, StoreError> {
        let sql = "SELECT update_id, body FROM webhook_updates \
                   WHERE bot_instance_id = $1 AND done_at IS NULL \
                   ORDER BY update_id LIMIT $2";
        let rows: Vec<(i64, Option<String>)> = with_pool!(self, pool => sqlx::query_as(sql).bind(bot_instance_id).bind(limit).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(id, body)| (id as i32, body.unwrap_or_default()))
            .collect())
    }

    /// Marks webhook updates done with: the body goes, the row stays as a tombstone (see the
    /// module docs) until [`Store::prune_webhook_updates`].
    pub async fn finish_webhook_updates(
        &self,
        bot_instance_id: i64,
        update_ids: &[i32],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        for chunk in update_ids.chunks(ROWS_PER_STATEMENT) {
            with_pool!(self, pool => {
                let mut update =
                    QueryBuilder::new("UPDATE webhook_updates SET body = NULL, done_at = ");
                update
                    .push_bind(now)
                    .push(" WHERE bot_instance_id = ")
                    .push_bind(bot_instance_id)
                    .push(" AND done_at IS NULL AND update_id IN (");
                let mut ids = update.separated(", ");
                for id in chunk {
                    ids.push_bind(i64::from(*id));
                }
                update.push(")");
                update.build().execute(pool).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    /// Deletes the tombstones of webhook updates done with before `before_ms` (Unix ms); returns
    /// how many.
    pub async fn prune_webhook_updates(&self, before_ms: i64) -> Result<u64, StoreError> {
        let sql = "DELETE FROM webhook_updates WHERE done_at IS NOT NULL AND done_at < $1";
        let removed = with_pool!(self, pool => sqlx::query(sql).bind(before_ms).execute(pool).await.map(|done| done.rows_affected()))?;
        Ok(removed)
    }
}
