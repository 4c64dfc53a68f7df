//! `channel_members`: what Nezuko last learned about a (channel, user) pair, so a restart starts
//! with what it knew instead of asking Telegram about everyone again. Written in batches by the
//! membership cache's writer, read once when enforcement starts.

use sqlx::QueryBuilder;

use super::{Store, StoreError, with_pool};

/// What Telegram last said about one user in one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct ChannelMember {
    pub channel_chat_id: i64,
    pub user_id: i64,
    pub subscribed: bool,
    /// When Telegram said it (ms since the Unix epoch).
    pub checked_at: i64,
}

/// Rows per statement: 4 binds each, under SQLite's 32,766 and PostgreSQL's 65,535 parameters.
const ROWS_PER_STATEMENT: usize = 1000;

impl Store {
    /// Keeps the latest answer per pair (a newer `checked_at` replaces an older one; an older one,
    /// written late, does not replace a newer).
    pub async fn remember_channel_members(&self, rows: &[ChannelMember]) -> Result<(), StoreError> {
        // One row per pair per statement: an upsert may not touch the same row twice.
        let mut latest = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let entry = latest
                .entry((row.channel_chat_id, row.user_id))
                .or_insert(*row);
            if row.checked_at >= entry.checked_at {
                *entry = *row;
            }
        }
        let rows: Vec<ChannelMember> = latest.into_values().collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            with_pool!(self, pool => {
                let mut upsert = QueryBuilder::new(
                    "INSERT INTO channel_members (channel_chat_id, user_id, subscribed, checked_at) ",
                );
                upsert.push_values(chunk, |mut row, m| {
                    row.push_bind(m.channel_chat_id)
                        .push_bind(m.user_id)
                        .push_bind(m.subscribed)
                        .push_bind(m.checked_at);
                });
                upsert.push(
                    " ON CONFLICT (channel_chat_id, user_id) DO UPDATE SET subscribed = excluded.subscribed, \
                     checked_at = excluded.checked_at WHERE channel_members.checked_at <= excluded.checked_at",
                );
                upsert.build().execute(pool).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    /// Every answer checked since `since` (ms), for a cache warming up at start.
    pub async fn channel_members_since(
        &self,
        since: i64,
    ) -> Result<Vec<ChannelMember>, StoreError> {
        let sql = "SELECT channel_chat_id, user_id, subscribed, checked_at FROM channel_members \
                   WHERE checked_at >= $1";
        Ok(with_pool!(self, pool => sqlx::query_as(sql).bind(since).fetch_all(pool).await)?)
    }

    /// Deletes answers checked before `before` (ms); returns how many.
    pub async fn forget_channel_members(&self, before: i64) -> Result<u64, StoreError> {
        let sql = "DELETE FROM channel_members WHERE checked_at < $1";
        let done = with_pool!(self, pool => sqlx::query(sql).bind(before).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(done)
    }
}
