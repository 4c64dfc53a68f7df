//! `parked_updates`: updates confirmed to Telegram before Nezuko was done with them, because they
//! held the `getUpdates` offset too long (see `telegram::polling`). A row leaves once its update is
//! done with; the rest are handed out again when the bot next starts.

use sqlx::QueryBuilder;

use super::{Store, StoreError, now_ms, with_pool};

/// Rows per statement: 4 binds each, under SQLite's 32,766 and PostgreSQL's 65,535 parameters.
const ROWS_PER_STATEMENT: usize = 1000;

impl Store {
    /// Keeps updates of a bot that Telegram is about to forget: (update id, the update's JSON).
    pub async fn park_updates(
        &self,
        bot_instance_id: i64,
        updates: &[(i32, &str)],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        for chunk in updates.chunks(ROWS_PER_STATEMENT) {
            with_pool!(self, pool => {
                let mut insert = QueryBuilder::new(
                    "INSERT INTO parked_updates (bot_instance_id, update_id, body, parked_at) ",
                );
                insert.push_values(chunk, |mut row, (id, body)| {
                    row.push_bind(bot_instance_id)
                        .push_bind(i64::from(*id))
                        .push_bind(*body)
                        .push_bind(now);
                });
                insert.push(" ON CONFLICT (bot_instance_id, update_id) DO NOTHING");
                insert.build().execute(pool).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    /// Removes a bot's parked updates that were done with.
    pub async fn unpark_updates(
        &self,
        bot_instance_id: i64,
        update_ids: &[i32],
    ) -> Result<(), StoreError> {
        for chunk in update_ids.chunks(ROWS_PER_STATEMENT) {
            with_pool!(self, pool => {
                let mut delete =
                    QueryBuilder::new("DELETE FROM parked_updates WHERE bot_instance_id = ");
                delete.push_bind(bot_instance_id).push(" AND update_id IN (");
                let mut ids = delete.separated(", ");
                for id in chunk {
                    ids.push_bind(i64::from(*id));
                }
                delete.push(")");
                delete.build().execute(pool).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    /// A bot's parked updates, oldest first: (update id, the update's JSON).
    pub async fn parked_updates(
        &self,
        bot_instance_id: i64,
    ) -> Result<Vec<(i32, String)>, StoreError> {
        let sql = "SELECT update_id, body FROM parked_updates WHERE bot_instance_id = $1 \
                   ORDER BY parked_at, update_id";
        let rows: Vec<(i64, String)> = with_pool!(self, pool => sqlx::query_as(sql).bind(bot_instance_id).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|(id, body)| (id as i32, body))
            .collect())
    }
}
