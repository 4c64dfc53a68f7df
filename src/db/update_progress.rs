//! `update_progress`: what each bot's runner has done with the updates `getUpdates` handed it, so
//! the bot's next runner (after a SIGKILL, or on another node) confirms them to Telegram instead of
//! acting on them again (see `telegram::progress`). One row per bot, overwritten in batches by the
//! records writer; read once as a runner starts.

use std::collections::HashMap;

use sqlx::QueryBuilder;

use super::{Store, StoreError, now_ms, with_pool};

/// One bot's progress: every update up to `highest_update_id` is done with, except `pending`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateProgress {
    pub bot_instance_id: i64,
    pub highest_update_id: i64,
    /// Updates up to `highest_update_id` still being handled (or parked) when this was kept.
    pub pending: Vec<i64>,
}

/// How old a kept progress may be and still be believed (ms): Telegram keeps an unconfirmed
/// update for a day at most, and may number a bot's updates afresh after a quiet week
/// (<https://core.telegram.org/bots/api#getting-updates>), after which an old `highest` would
/// claim new updates done.
pub const PROGRESS_TRUSTED_FOR_MS: i64 = 24 * 60 * 60 * 1000;

/// Rows per statement: 4 binds each, under SQLite's 32,766 and PostgreSQL's 65,535 parameters.
const ROWS_PER_STATEMENT: usize = 1000;

impl Store {
    /// Keeps each bot's latest progress (a later entry for a bot replaces an earlier one).
    pub async fn keep_update_progress(&self, rows: &[UpdateProgress]) -> Result<(), StoreError> {
        // One row per bot per statement: an upsert may not touch the same row twice.
        let latest: HashMap<i64, &UpdateProgress> =
            rows.iter().map(|row| (row.bot_instance_id, row)).collect();
        let rows: Vec<&UpdateProgress> = latest.into_values().collect();
        let now = now_ms();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            with_pool!(self, pool => {
                // Only bots that still exist: a bot deleted while its last progress waited in the
                // records queue would fail the foreign key and take the other bots' rows with it.
                // (A VALUES list's columns are `column1`… in both SQLite and PostgreSQL; the WHERE
                // also settles SQLite's INSERT … SELECT … ON CONFLICT parsing ambiguity.)
                let mut upsert = QueryBuilder::new(
                    "INSERT INTO update_progress (bot_instance_id, highest_update_id, pending, updated_at) \
                     SELECT v.column1, v.column2, v.column3, v.column4 FROM (",
                );
                upsert.push_values(chunk, |mut row, p| {
                    row.push_bind(p.bot_instance_id)
                        .push_bind(p.highest_update_id)
                        .push_bind(join(&p.pending))
                        .push_bind(now);
                });
                upsert.push(
                    ") AS v WHERE EXISTS (SELECT 1 FROM bot_instances b WHERE b.id = v.column1) \
                     ON CONFLICT (bot_instance_id) DO UPDATE SET highest_update_id = excluded.highest_update_id, \
                     pending = excluded.pending, updated_at = excluded.updated_at",
                );
                upsert.build().execute(pool).await.map(|_| ())
            })?;
        }
        Ok(())
    }

    /// The bot's kept progress, if there is one younger than [`PROGRESS_TRUSTED_FOR_MS`]. A row
    /// whose `pending` cannot be read is ignored (nothing is skipped on its word).
    pub async fn update_progress(
        &self,
        bot_instance_id: i64,
    ) -> Result<Option<UpdateProgress>, StoreError> {
        let sql = "SELECT highest_update_id, pending FROM update_progress \
                   WHERE bot_instance_id = $1 AND updated_at >= $2";
        let row: Option<(i64, String)> = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(bot_instance_id)
            .bind(now_ms() - PROGRESS_TRUSTED_FOR_MS)
            .fetch_optional(pool)
            .await)?;
        Ok(row.and_then(|(highest_update_id, pending)| {
            Some(UpdateProgress {
                bot_instance_id,
                highest_update_id,
                pending: split(&pending)?,
            })
        }))
    }
}

fn join(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

fn split(text: &str) -> Option<Vec<i64>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',').map(|id| id.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_ids_survive_the_text_column_and_garbage_is_refused() {
        for ids in [vec![], vec![7], vec![3, 5, 2_147_483_647]] {
            assert_eq!(split(&join(&ids)), Some(ids));
        }
        assert_eq!(split("4,x"), None);
    }
}
