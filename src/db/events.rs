//! `events`: the durable activity feed. Ids only grow, so an SSE client's `Last-Event-ID` is a cursor.

use sqlx::types::Json;

use super::BeginWrite;
use super::bots::RUN_STATE_UPDATE_COUNTS;
use super::{RunStateUpdate, Store, StoreError, now_ms, with_pool};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EventRow {
    pub id: i64,
    pub kind: String,
    pub bot_instance_id: Option<i64>,
    pub payload: Json<serde_json::Value>,
    pub created_at: i64,
}

macro_rules! columns {
    () => {
        "id, kind, bot_instance_id, payload, created_at"
    };
}

/// Events in one multi-row statement at most: five parameters each, well under SQLite's 32,766
/// and PostgreSQL's 65,535.
const EVENTS_PER_STATEMENT: usize = 1_000;

/// An event to store, with the bot state transition it reports, if any.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: String,
    pub bot_instance_id: Option<i64>,
    pub payload: serde_json::Value,
    pub transition: Option<RunStateUpdate>,
}

impl Store {
    /// Stores events (and their transitions) in one transaction, in order: one commit for a burst,
    /// which is what keeps a thousand bots' transitions cheap. A transition's event reports the
    /// bot's `restart_count` and `started_at` after it; a transition of a deleted bot is skipped.
    pub async fn append_events(&self, items: &[NewEvent]) -> Result<Vec<EventRow>, StoreError> {
        let now = now_ms();
        Ok(with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut rows = Vec::with_capacity(items.len());
            // Runs of plain events go in multi-row statements (one round trip to SQLite's worker
            // thread each, not one per event: 58,073 single inserts in a 20 s `bench verify` were
            // a fifth of the product's queries); a transition goes alone, after its update.
            for run in items.chunk_by(|a, b| a.transition.is_none() && b.transition.is_none()) {
                if run[0].transition.is_none() {
                    for chunk in run.chunks(EVENTS_PER_STATEMENT) {
                        let mut insert = sqlx::QueryBuilder::new(
                            "INSERT INTO events (kind, bot_instance_id, payload, created_at, origin) ",
                        );
                        insert.push_values(chunk, |mut row, item| {
                            row.push_bind(&item.kind)
                                .push_bind(item.bot_instance_id)
                                .push_bind(Json(&item.payload))
                                .push_bind(now)
                                .push_bind(self.origin());
                        });
                        insert.push(concat!(" RETURNING ", columns!()));
                        let mut stored: Vec<EventRow> =
                            insert.build_query_as().fetch_all(&mut *tx).await?;
                        // Ids are given in the order of the rows; RETURNING's own order is not
                        // promised (SQLite's documentation says so).
                        stored.sort_by_key(|row| row.id);
                        rows.extend(stored);
                    }
                    continue;
                }
                // `chunk_by` only joins two plain events, so a transition is a run of its own.
                let item = &run[0];
                let mut payload = item.payload.clone();
                if let (Some(id), Some(update)) = (item.bot_instance_id, &item.transition) {
                    let counts: Option<(i64, Option<i64>)> = sqlx::query_as(RUN_STATE_UPDATE_COUNTS)
                        .bind(update.state.as_str())
                        .bind(&update.reason)
                        .bind(&update.last_error)
                        .bind(update.next_attempt_at)
                        .bind(i64::from(update.restarted))
                        .bind(now)
                        .bind(id)
                        .bind(update.code.map(|code| code.as_str()))
                        .bind(i64::from(update.attempt))
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some((restart_count, started_at)) = counts {
                        payload["restart_count"] = restart_count.into();
                        payload["started_at"] = started_at.into();
                    }
                }
                let row = sqlx::query_as::<_, EventRow>(concat!(
                    "INSERT INTO events (kind, bot_instance_id, payload, created_at, origin) VALUES ($1, $2, $3, $4, $5) RETURNING ",
                    columns!()
                ))
                .bind(&item.kind)
                .bind(item.bot_instance_id)
                .bind(Json(&payload))
                .bind(now)
                .bind(self.origin())
                .fetch_one(&mut *tx)
                .await?;
                rows.push(row);
            }
            tx.commit().await?;
            rows
        }))
    }

    /// Appends an event and returns it with its id.
    pub async fn append_event(
        &self,
        kind: &str,
        bot_instance_id: Option<i64>,
        payload: &serde_json::Value,
    ) -> Result<EventRow, StoreError> {
        let sql = concat!(
            "INSERT INTO events (kind, bot_instance_id, payload, created_at, origin) VALUES ($1, $2, $3, $4, $5) RETURNING ",
            columns!(),
            ""
        );
        Ok(with_pool!(self, pool => sqlx::query_as::<_, EventRow>(sql)
            .bind(kind)
            .bind(bot_instance_id)
            .bind(Json(payload))
            .bind(now_ms())
            .bind(self.origin())
            .fetch_one(pool)
            .await)?)
    }

    /// Events with an id above `after`, oldest first: what a reconnecting client missed.
    pub async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<EventRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM events WHERE id > $1 ORDER BY id LIMIT $2"
        );
        Ok(with_pool!(self, pool => sqlx::query_as::<_, EventRow>(sql)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// Events with an id above `after` that other processes stored, oldest first: what a process
    /// relaying events between processes replays after missing the live relay.
    pub async fn others_events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM events WHERE id > $1 AND (origin IS NULL OR origin <> $2) ORDER BY id LIMIT $3"
        );
        Ok(with_pool!(self, pool => sqlx::query_as::<_, EventRow>(sql)
            .bind(after)
            .bind(self.origin())
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// The newest event's id (0 when there is none).
    pub async fn newest_event_id(&self) -> Result<i64, StoreError> {
        let newest: Option<i64> = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT MAX(id) FROM events")
                .fetch_one(pool)
                .await
        })?;
        Ok(newest.unwrap_or(0))
    }

    /// Events with an id below `before` (all when `None`), newest first: a page of the activity feed.
    pub async fn events_before(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM events WHERE id < $1 ORDER BY id DESC LIMIT $2"
        );
        Ok(with_pool!(self, pool => sqlx::query_as::<_, EventRow>(sql)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// A page of the activity feed, newest first, optionally of one kind or one bot.
    pub async fn events_page(
        &self,
        before: Option<i64>,
        kinds: &[String],
        bot_instance_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        Ok(with_pool!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(concat!("SELECT ", columns!(), " FROM events WHERE id < "));
            query.push_bind(before.unwrap_or(i64::MAX));
            if !kinds.is_empty() {
                query.push(" AND kind IN (");
                let mut list = query.separated(", ");
                for kind in kinds {
                    list.push_bind(kind.clone());
                }
                query.push(")");
            }
            if let Some(bot) = bot_instance_id {
                query.push(" AND bot_instance_id = ").push_bind(bot);
            }
            query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
            query.build_query_as::<EventRow>().fetch_all(pool).await?
        }))
    }

    /// Deletes events older than `cutoff`; returns how many went.
    pub async fn prune_events(&self, cutoff: i64) -> Result<u64, StoreError> {
        Ok(
            with_pool!(self, pool => sqlx::query("DELETE FROM events WHERE created_at < $1")
            .bind(cutoff)
            .execute(pool)
            .await
        .map(|done| done.rows_affected()))?,
        )
    }
}
