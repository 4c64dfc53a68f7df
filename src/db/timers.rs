//! `scheduled_actions`: durable timers (auto-deletes, grace periods, temporary restrictions).
//!
//! A timer is carried out at least once: a runner leases it (moves `due_at` a lease ahead), acts,
//! then marks it done. A process that dies mid-action leaves the lease to expire and the timer runs
//! again after the restart, so every action behind a timer is idempotent.

use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::{Store, StoreError, now_ms, with_pool};
use crate::domain::TimerKind;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TimerRow {
    pub id: i64,
    pub bot_instance_id: i64,
    pub kind: String,
    pub chat_id: i64,
    pub user_id: Option<i64>,
    pub message_id: Option<i64>,
    pub payload: Json<serde_json::Value>,
    pub due_at: i64,
    pub attempts: i64,
    pub created_at: i64,
    pub done_at: Option<i64>,
}

impl TimerRow {
    /// What the timer does; `None` for a kind this version does not know (written by a newer one).
    pub fn kind(&self) -> Option<TimerKind> {
        TimerKind::parse(&self.kind)
    }
}

#[derive(Debug, Clone)]
pub struct NewTimer {
    pub bot_instance_id: i64,
    pub kind: TimerKind,
    pub chat_id: i64,
    pub user_id: Option<i64>,
    pub message_id: Option<i64>,
    pub payload: serde_json::Value,
    pub due_at: i64,
}

macro_rules! columns {
    () => {
        "id, bot_instance_id, kind, chat_id, user_id, message_id, payload, due_at, attempts, created_at, done_at"
    };
}

/// Finishes a member's pending timers (see `Store::finish_pending`).
const FINISH_FOR_MEMBER: &str = "UPDATE scheduled_actions SET done_at = $1 WHERE bot_instance_id = $2 \
     AND kind = $3 AND chat_id = $4 AND user_id = $5 AND done_at IS NULL";
/// Finishes a message's pending timers (see `Store::finish_pending`).
const FINISH_FOR_MESSAGE: &str = "UPDATE scheduled_actions SET done_at = $1 WHERE bot_instance_id = $2 \
     AND kind = $3 AND chat_id = $4 AND message_id = $5 AND done_at IS NULL";

impl Store {
    pub async fn schedule(&self, timer: &NewTimer) -> Result<i64, StoreError> {
        let sql = "INSERT INTO scheduled_actions (bot_instance_id, kind, chat_id, user_id, message_id, payload, \
                   due_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
        let (id,): (i64,) = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(timer.bot_instance_id)
            .bind(timer.kind.as_str())
            .bind(timer.chat_id)
            .bind(timer.user_id)
            .bind(timer.message_id)
            .bind(Json(&timer.payload))
            .bind(timer.due_at)
            .bind(now_ms())
            .fetch_one(pool)
            .await)?;
        Ok(id)
    }

    /// Pending timers of these bots due by `now`, oldest first.
    pub async fn due_timers(
        &self,
        bot_instance_ids: &[i64],
        now: i64,
        limit: i64,
    ) -> Result<Vec<TimerRow>, StoreError> {
        if bot_instance_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(with_pool!(self, pool => {
            let mut query = QueryBuilder::new(concat!("SELECT ", columns!(), " FROM scheduled_actions WHERE done_at IS NULL AND due_at <= "));
            query.push_bind(now).push(" AND bot_instance_id IN (");
            let mut ids = query.separated(", ");
            for id in bot_instance_ids {
                ids.push_bind(*id);
            }
            query.push(") ORDER BY due_at, id LIMIT ").push_bind(limit);
            query.build_query_as::<TimerRow>().fetch_all(pool).await?
        }))
    }

    /// Takes a timer for `lease_ms`: true if this caller got it (no one else took it meanwhile).
    pub async fn lease_timer(&self, timer: &TimerRow, lease_ms: i64) -> Result<bool, StoreError> {
        let sql = "UPDATE scheduled_actions SET due_at = $1, attempts = attempts + 1 \
                   WHERE id = $2 AND due_at = $3 AND done_at IS NULL";
        let affected = with_pool!(self, pool => sqlx::query(sql)
            .bind(now_ms() + lease_ms)
            .bind(timer.id)
            .bind(timer.due_at)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(affected == 1)
    }

    pub async fn finish_timer(&self, id: i64) -> Result<(), StoreError> {
        let sql = "UPDATE scheduled_actions SET done_at = $1 WHERE id = $2";
        with_pool!(self, pool => sqlx::query(sql).bind(now_ms()).bind(id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Moves a timer that failed for a passing reason to a later time.
    pub async fn postpone_timer(&self, id: i64, due_at: i64) -> Result<(), StoreError> {
        let sql = "UPDATE scheduled_actions SET due_at = $1 WHERE id = $2 AND done_at IS NULL";
        with_pool!(self, pool => sqlx::query(sql).bind(due_at).bind(id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Cancels a member's pending timers of one kind in a chat (e.g. a grace check once they verified).
    pub async fn cancel_timers(
        &self,
        bot_instance_id: i64,
        kind: TimerKind,
        chat_id: i64,
        user_id: i64,
    ) -> Result<u64, StoreError> {
        self.finish_pending(FINISH_FOR_MEMBER, bot_instance_id, kind, chat_id, user_id)
            .await
    }

    /// Cancels the pending deletion of a message (it was deleted another way). Returns how many
    /// timers were cancelled.
    pub async fn cancel_message_deletion(
        &self,
        bot_instance_id: i64,
        chat_id: i64,
        message_id: i64,
    ) -> Result<u64, StoreError> {
        self.finish_pending(
            FINISH_FOR_MESSAGE,
            bot_instance_id,
            TimerKind::DeleteMessage,
            chat_id,
            message_id,
        )
        .await
    }

    /// Whether a deletion timer of the message ran (or was cancelled because the message was
    /// deleted another way, see [`Store::cancel_message_deletion`]): the message is gone.
    pub async fn message_deletion_done(
        &self,
        bot_instance_id: i64,
        chat_id: i64,
        message_id: i64,
    ) -> Result<bool, StoreError> {
        let sql = "SELECT 1 FROM scheduled_actions WHERE bot_instance_id = $1 AND chat_id = $2 \
                   AND message_id = $3 AND kind = $4 AND done_at IS NOT NULL LIMIT 1";
        Ok(with_pool!(self, pool => sqlx::query_scalar::<_, i32>(sql)
            .bind(bot_instance_id)
            .bind(chat_id)
            .bind(message_id)
            .bind(TimerKind::DeleteMessage.as_str())
            .fetch_optional(pool)
            .await
            .map(|row| row.is_some()))?)
    }

    /// Whether a deletion timer of the message has come due: it ran, was cancelled (as
    /// [`Store::message_deletion_done`]), is being carried out or retried (leased at least once),
    /// or is due now. Unlike `message_deletion_done` this is true from the moment the message's
    /// time is up, before Telegram has answered the `deleteMessage`.
    pub async fn message_deletion_due(
        &self,
        bot_instance_id: i64,
        chat_id: i64,
        message_id: i64,
    ) -> Result<bool, StoreError> {
        let sql = "SELECT 1 FROM scheduled_actions WHERE bot_instance_id = $1 AND chat_id = $2 \
                   AND message_id = $3 AND kind = $4 \
                   AND (done_at IS NOT NULL OR attempts > 0 OR due_at <= $5) LIMIT 1";
        Ok(with_pool!(self, pool => sqlx::query_scalar::<_, i32>(sql)
            .bind(bot_instance_id)
            .bind(chat_id)
            .bind(message_id)
            .bind(TimerKind::DeleteMessage.as_str())
            .bind(now_ms())
            .fetch_optional(pool)
            .await
            .map(|row| row.is_some()))?)
    }

    /// Marks a bot's pending timers of `kind` in `chat_id` done, those whose subject (the column
    /// `sql` names: [`FINISH_FOR_MEMBER`] or [`FINISH_FOR_MESSAGE`]) is `subject`. Returns how many.
    async fn finish_pending(
        &self,
        sql: &'static str,
        bot_instance_id: i64,
        kind: TimerKind,
        chat_id: i64,
        subject: i64,
    ) -> Result<u64, StoreError> {
        Ok(with_pool!(self, pool => sqlx::query(sql)
            .bind(now_ms())
            .bind(bot_instance_id)
            .bind(kind.as_str())
            .bind(chat_id)
            .bind(subject)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?)
    }

    /// Every pending timer of a bot (for status pages and tests).
    pub async fn pending_timers(&self, bot_instance_id: i64) -> Result<Vec<TimerRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM scheduled_actions WHERE bot_instance_id = $1 AND done_at IS NULL ORDER BY due_at, id"
        );
        Ok(with_pool!(self, pool => sqlx::query_as::<_, TimerRow>(sql)
            .bind(bot_instance_id)
            .fetch_all(pool)
            .await)?)
    }

    /// Whether a member has a pending timer of one kind in a chat (a grace period still running).
    pub async fn has_pending_timer(
        &self,
        bot_instance_id: i64,
        kind: TimerKind,
        chat_id: i64,
        user_id: i64,
    ) -> Result<bool, StoreError> {
        let sql = "SELECT COUNT(*) FROM scheduled_actions WHERE bot_instance_id = $1 AND kind = $2 \
                   AND chat_id = $3 AND user_id = $4 AND done_at IS NULL";
        let (count,): (i64,) = with_pool!(self, pool => sqlx::query_as(sql)
            .bind(bot_instance_id)
            .bind(kind.as_str())
            .bind(chat_id)
            .bind(user_id)
            .fetch_one(pool)
            .await)?;
        Ok(count > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::NewBot;
    use crate::domain::DesiredState;

    /// A scratch store in `dir` holding one bot; returns the store and the bot's id.
    async fn store_with_bot(dir: &std::path::Path) -> (Store, i64) {
        let store = crate::db::scratch_store(dir).await;
        let bot = store
            .insert_bot(&NewBot {
                telegram_bot_id: 1,
                username: "b".into(),
                display_name: "b".into(),
                token_ciphertext: "x".into(),
                owner_telegram_id: None,
                desired_state: DesiredState::Enabled,
            })
            .await
            .unwrap()
            .id;
        (store, bot)
    }

    fn deletion(bot_instance_id: i64, message_id: i64) -> NewTimer {
        NewTimer {
            bot_instance_id,
            kind: TimerKind::DeleteMessage,
            chat_id: -100,
            user_id: None,
            message_id: Some(message_id),
            payload: serde_json::json!({}),
            due_at: now_ms() + 60_000,
        }
    }

    /// A message is known gone once its deletion timer ran, or was cancelled because something
    /// else deleted it; a pending timer, or another message's, says nothing.
    #[tokio::test]
    async fn a_message_is_gone_once_its_deletion_timer_ran_or_was_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let (store, bot) = store_with_bot(dir.path()).await;
        let ran = store.schedule(&deletion(bot, 7)).await.unwrap();
        store.schedule(&deletion(bot, 8)).await.unwrap();
        store.schedule(&deletion(bot, 9)).await.unwrap();
        assert!(!store.message_deletion_done(bot, -100, 7).await.unwrap());

        store.finish_timer(ran).await.unwrap();
        assert_eq!(
            store.cancel_message_deletion(bot, -100, 8).await.unwrap(),
            1
        );
        assert!(store.message_deletion_done(bot, -100, 7).await.unwrap());
        assert!(store.message_deletion_done(bot, -100, 8).await.unwrap());
        assert!(!store.message_deletion_done(bot, -100, 9).await.unwrap());
        assert!(!store.message_deletion_done(bot, -200, 7).await.unwrap());
    }

    /// A deletion is due from the moment its time is up: while it is being carried out (leased)
    /// and once it ran; a timer still ahead is not.
    #[tokio::test]
    async fn a_deletion_is_due_once_its_time_is_up_even_before_it_ran() {
        let dir = tempfile::tempdir().unwrap();
        let (store, bot) = store_with_bot(dir.path()).await;
        store.schedule(&deletion(bot, 7)).await.unwrap();
        let past = NewTimer {
            due_at: now_ms() - 1,
            ..deletion(bot, 8)
        };
        store.schedule(&past).await.unwrap();
        assert!(!store.message_deletion_due(bot, -100, 7).await.unwrap());
        assert!(store.message_deletion_due(bot, -100, 8).await.unwrap());
        // Leased: its due time moves a lease ahead, and it is still due.
        let taken = store.due_timers(&[bot], now_ms(), 10).await.unwrap();
        assert_eq!(taken.len(), 1);
        assert!(store.lease_timer(&taken[0], 60_000).await.unwrap());
        assert!(store.message_deletion_due(bot, -100, 8).await.unwrap());
        assert!(!store.message_deletion_done(bot, -100, 8).await.unwrap());
        assert!(!store.message_deletion_due(bot, -100, 7).await.unwrap());
        assert!(!store.message_deletion_due(bot, -200, 8).await.unwrap());
    }
}
