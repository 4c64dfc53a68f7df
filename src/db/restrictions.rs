//! `member_restrictions`: what Nezuko itself did to a member, so it only ever undoes its own work
//! (never an administrator's), knows which warning names whom, and remembers what the member could
//! do before. A record is active until it ends (`lifted_at`, with an `end_reason`).

use sqlx::types::Json;

use super::BeginWrite;
use super::{Store, StoreError, now_ms, with_pool};
use crate::domain::EndReason;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RestrictionRow {
    pub id: i64,
    pub bot_instance_id: i64,
    pub chat_id: i64,
    pub user_id: i64,
    /// `restricted` (Nezuko muted the member) or `warned` (warn-only policy: nothing to lift).
    pub reason: String,
    pub missing_channels: Json<Vec<i64>>,
    pub warning_message_id: Option<i64>,
    pub warnings: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub lifted_at: Option<i64>,
    /// The `until_date` Nezuko sent (Unix seconds, 0 for until verified); `None` if it did not
    /// restrict.
    pub restricted_until: Option<i64>,
    /// What an administrator had already limited before Nezuko restricted (`ChatPermissions`).
    pub prior_permissions: Option<Json<serde_json::Value>>,
    pub prior_until: Option<i64>,
    pub member_name: Option<String>,
    pub warning_template: Option<String>,
    pub warning_thread_id: Option<i64>,
    pub end_reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewRestriction {
    pub bot_instance_id: i64,
    pub chat_id: i64,
    pub user_id: i64,
    pub reason: String,
    pub missing_channels: Vec<i64>,
    pub member_name: String,
    pub warning_template: String,
    pub warning_thread_id: Option<i64>,
}

/// What Nezuko's restriction replaced, to be put back when it is lifted.
#[derive(Debug, Clone, PartialEq)]
pub struct Restricted {
    /// The `until_date` sent, Unix seconds (0: until verified).
    pub until: i64,
    pub prior_permissions: Option<serde_json::Value>,
    pub prior_until: Option<i64>,
}

macro_rules! columns {
    () => {
        "id, bot_instance_id, chat_id, user_id, reason, missing_channels, warning_message_id, warnings, \
         created_at, updated_at, lifted_at, restricted_until, prior_permissions, prior_until, member_name, \
         warning_template, warning_thread_id, end_reason"
    };
}

impl Store {
    /// Records a restriction or warning, or counts one more warning on the active record. The
    /// returned row's `warnings` is the count including this one (escalation reads it).
    pub async fn record_restriction(
        &self,
        new: &NewRestriction,
    ) -> Result<RestrictionRow, StoreError> {
        let sql = concat!(
            "INSERT INTO member_restrictions (bot_instance_id, chat_id, user_id, reason, missing_channels, \
             warnings, created_at, updated_at, member_name, warning_template, warning_thread_id) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $6, $7, $8, $9) \
             ON CONFLICT (bot_instance_id, chat_id, user_id) WHERE lifted_at IS NULL DO UPDATE SET \
             reason = CASE WHEN member_restrictions.reason = 'restricted' THEN 'restricted' ELSE excluded.reason END, \
             missing_channels = excluded.missing_channels, warnings = member_restrictions.warnings + 1, \
             member_name = excluded.member_name, warning_template = excluded.warning_template, \
             warning_thread_id = excluded.warning_thread_id, updated_at = excluded.updated_at RETURNING ",
            columns!(),
            ""
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, RestrictionRow>(sql)
            .bind(new.bot_instance_id)
            .bind(new.chat_id)
            .bind(new.user_id)
            .bind(&new.reason)
            .bind(Json(&new.missing_channels))
            .bind(now_ms())
            .bind(&new.member_name)
            .bind(&new.warning_template)
            .bind(new.warning_thread_id)
            .fetch_one(pool)
            .await)?,
        )
    }

    /// Notes the restriction Nezuko just applied on an active record (and what it replaced).
    pub async fn set_restricted(&self, id: i64, restricted: &Restricted) -> Result<(), StoreError> {
        let sql = "UPDATE member_restrictions SET reason = 'restricted', restricted_until = $1, \
                   prior_permissions = $2, prior_until = $3, updated_at = $4 WHERE id = $5";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(restricted.until)
            .bind(restricted.prior_permissions.as_ref().map(Json))
            .bind(restricted.prior_until)
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn active_restriction(
        &self,
        bot_instance_id: i64,
        chat_id: i64,
        user_id: i64,
    ) -> Result<Option<RestrictionRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM member_restrictions WHERE bot_instance_id = $1 AND chat_id = $2 AND user_id = $3 \
             AND lifted_at IS NULL"
        );
        self.member_restriction(sql, bot_instance_id, chat_id, user_id)
            .await
    }

    /// The member's most recent record in a group, active or ended.
    pub async fn last_restriction(
        &self,
        bot_instance_id: i64,
        chat_id: i64,
        user_id: i64,
    ) -> Result<Option<RestrictionRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM member_restrictions WHERE bot_instance_id = $1 AND chat_id = $2 AND user_id = $3 \
             ORDER BY id DESC LIMIT 1"
        );
        self.member_restriction(sql, bot_instance_id, chat_id, user_id)
            .await
    }

    /// One record of a member in a group, by `sql` taking (bot, chat, user) as `$1`–`$3`.
    async fn member_restriction(
        &self,
        sql: &'static str,
        bot_instance_id: i64,
        chat_id: i64,
        user_id: i64,
    ) -> Result<Option<RestrictionRow>, StoreError> {
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, RestrictionRow>(sql)
            .bind(bot_instance_id)
            .bind(chat_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await)?,
        )
    }

    /// A bot's active records whose warning was never sent (queued when the process stopped, or
    /// refused by Telegram), oldest first, at most `limit`.
    pub async fn unwarned_restrictions(
        &self,
        bot_instance_id: i64,
        limit: i64,
    ) -> Result<Vec<RestrictionRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM member_restrictions WHERE bot_instance_id = $1 AND lifted_at IS NULL \
             AND warning_message_id IS NULL ORDER BY id LIMIT $2"
        );
        self.active_restrictions(sql, bot_instance_id, limit).await
    }

    /// The active records of one member across a bot's groups (a rejoined channel may restore several).
    pub async fn active_restrictions_of_user(
        &self,
        bot_instance_id: i64,
        user_id: i64,
    ) -> Result<Vec<RestrictionRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM member_restrictions WHERE bot_instance_id = $1 AND user_id = $2 AND lifted_at IS NULL \
             ORDER BY id"
        );
        self.active_restrictions(sql, bot_instance_id, user_id)
            .await
    }

    /// The active records in one group (`/unprotect` lifts them all).
    pub async fn active_restrictions_in_chat(
        &self,
        bot_instance_id: i64,
        chat_id: i64,
    ) -> Result<Vec<RestrictionRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM member_restrictions WHERE bot_instance_id = $1 AND chat_id = $2 AND lifted_at IS NULL \
             ORDER BY id"
        );
        self.active_restrictions(sql, bot_instance_id, chat_id)
            .await
    }

    async fn active_restrictions(
        &self,
        sql: &'static str,
        bot_instance_id: i64,
        other: i64,
    ) -> Result<Vec<RestrictionRow>, StoreError> {
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, RestrictionRow>(sql)
            .bind(bot_instance_id)
            .bind(other)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// The members a warning message still names (active records pointing at it), oldest first.
    pub async fn named_by_warning(
        &self,
        bot_instance_id: i64,
        chat_id: i64,
        message_id: i64,
    ) -> Result<Vec<RestrictionRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM member_restrictions WHERE bot_instance_id = $1 AND chat_id = $2 \
             AND warning_message_id = $3 AND lifted_at IS NULL ORDER BY id"
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, RestrictionRow>(sql)
            .bind(bot_instance_id)
            .bind(chat_id)
            .bind(message_id)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// Remembers which warning message names these members; returns the other warning messages
    /// that named any of them before (each now names fewer members, perhaps none).
    pub async fn set_warning_message(
        &self,
        restriction_ids: &[i64],
        message_id: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let read = "SELECT warning_message_id FROM member_restrictions WHERE id = $1";
        let write =
            "UPDATE member_restrictions SET warning_message_id = $1, updated_at = $2 WHERE id = $3";
        let now = now_ms();
        let mut before: Vec<i64> = Vec::new();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            for id in restriction_ids {
                let old: Option<i64> = sqlx::query_scalar(read).bind(id).fetch_optional(&mut *tx).await?.flatten();
                before.extend(old.filter(|old| *old != message_id));
                sqlx::query(write).bind(message_id).bind(now).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        before.sort_unstable();
        before.dedup();
        Ok(before)
    }

    /// The warning no longer names this member (they left the group; the record stays).
    pub async fn clear_warning(&self, id: i64) -> Result<(), StoreError> {
        let sql = "UPDATE member_restrictions SET warning_message_id = NULL, updated_at = $1 WHERE id = $2";
        with_pool!(self, pool => sqlx::query(sql).bind(now_ms()).bind(id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Ends the active record, saying why; returns it, or `None` if Nezuko had nothing active there.
    pub async fn end_restriction(
        &self,
        bot_instance_id: i64,
        chat_id: i64,
        user_id: i64,
        why: EndReason,
    ) -> Result<Option<RestrictionRow>, StoreError> {
        let sql = concat!(
            "UPDATE member_restrictions SET lifted_at = $1, updated_at = $1, end_reason = $2 \
             WHERE bot_instance_id = $3 AND chat_id = $4 AND user_id = $5 AND lifted_at IS NULL RETURNING ",
            columns!(),
            ""
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, RestrictionRow>(sql)
            .bind(now_ms())
            .bind(why.as_str())
            .bind(bot_instance_id)
            .bind(chat_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await)?,
        )
    }

    /// Changes what an active record stands for (a warning escalated to a restriction).
    pub async fn set_restriction_reason(&self, id: i64, reason: &str) -> Result<(), StoreError> {
        let sql = "UPDATE member_restrictions SET reason = $1, updated_at = $2 WHERE id = $3";
        with_pool!(self, pool => sqlx::query(sql).bind(reason).bind(now_ms()).bind(id).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}
