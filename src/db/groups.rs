//! `protected_groups`, `enforced_channels` and `group_channel_links`: what each bot protects.

use sqlx::types::Json;

use super::BeginWrite;
use super::{Store, StoreError, now_ms, with_pool};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct GroupRow {
    pub id: i64,
    pub bot_instance_id: i64,
    pub chat_id: i64,
    pub title: String,
    pub username: Option<String>,
    pub enabled: bool,
    pub policy: Json<serde_json::Value>,
    pub health: String,
    pub health_detail: Option<Json<serde_json::Value>>,
    pub health_checked_at: Option<i64>,
    pub member_count: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Telegram's `Chat.type`: `supergroup` (or `group` before an upgrade) or `channel`; a channel
    /// is protected through join requests only.
    pub chat_type: String,
}

impl GroupRow {
    /// A channel protected at the door (join requests), not a group enforced on messages.
    pub fn is_channel(&self) -> bool {
        self.chat_type == "channel"
    }
}

#[derive(Debug, Clone)]
pub struct NewGroup {
    pub bot_instance_id: i64,
    pub chat_id: i64,
    pub title: String,
    pub username: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChannelRow {
    pub id: i64,
    pub chat_id: i64,
    pub title: String,
    pub username: Option<String>,
    pub invite_link: Option<String>,
    pub is_private: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewChannel {
    pub chat_id: i64,
    pub title: String,
    pub username: Option<String>,
    pub invite_link: Option<String>,
    pub is_private: bool,
}

macro_rules! group_columns {
    () => {
        "id, bot_instance_id, chat_id, title, username, enabled, policy, health, \
     health_detail, health_checked_at, member_count, created_at, updated_at, chat_type"
    };
}
macro_rules! channel_columns {
    () => {
        "id, chat_id, title, username, invite_link, is_private, created_at, updated_at"
    };
}

impl Store {
    /// Adds a group to a bot, or refreshes its title if the bot already protects it
    /// (a bot re-added to a group keeps its policy).
    pub async fn upsert_group(&self, group: &NewGroup) -> Result<GroupRow, StoreError> {
        self.upsert_chat(group, "supergroup").await
    }

    /// [`Store::upsert_group`] for a chat of Telegram type `chat_type` (`supergroup`, `channel`).
    pub async fn upsert_chat(
        &self,
        group: &NewGroup,
        chat_type: &str,
    ) -> Result<GroupRow, StoreError> {
        let sql = concat!(
            "INSERT INTO protected_groups (bot_instance_id, chat_id, title, username, created_at, updated_at, chat_type) \
             VALUES ($1, $2, $3, $4, $5, $5, $6) \
             ON CONFLICT (bot_instance_id, chat_id) DO UPDATE SET title = excluded.title, \
             username = excluded.username, updated_at = excluded.updated_at, \
             chat_type = excluded.chat_type RETURNING ",
            group_columns!(),
            ""
        );
        let row = with_pool!(self, pool => sqlx::query_as::<_, GroupRow>(sql)
            .bind(group.bot_instance_id)
            .bind(group.chat_id)
            .bind(&group.title)
            .bind(&group.username)
            .bind(now_ms())
            .bind(chat_type)
            .fetch_one(pool)
            .await);
        row.map_err(|err| match err {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound(format!("bot instance {}", group.bot_instance_id))
            }
            other => other.into(),
        })
    }

    pub async fn group(&self, id: i64) -> Result<GroupRow, StoreError> {
        let sql = concat!(
            "SELECT ",
            group_columns!(),
            " FROM protected_groups WHERE id = $1"
        );
        with_pool!(self, pool => sqlx::query_as::<_, GroupRow>(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| StoreError::NotFound(format!("group {id}")))
    }

    /// `(id, title, policy overrides)` of every group, by id: what a change of the global
    /// defaults is checked against.
    pub async fn group_policies(
        &self,
    ) -> Result<Vec<(i64, String, Json<serde_json::Value>)>, StoreError> {
        let sql = "SELECT id, title, policy FROM protected_groups ORDER BY id";
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, (i64, String, Json<serde_json::Value>)>(sql)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// The groups one bot protects, by title.
    pub async fn groups_of_bot(&self, bot_instance_id: i64) -> Result<Vec<GroupRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            group_columns!(),
            " FROM protected_groups WHERE bot_instance_id = $1 ORDER BY title, id"
        );
        Ok(with_pool!(self, pool => sqlx::query_as::<_, GroupRow>(sql)
            .bind(bot_instance_id)
            .fetch_all(pool)
            .await)?)
    }

    pub async fn set_group_enabled(&self, id: i64, enabled: bool) -> Result<GroupRow, StoreError> {
        let sql = concat!(
            "UPDATE protected_groups SET enabled = $1, updated_at = $2 WHERE id = $3 RETURNING ",
            group_columns!(),
            ""
        );
        with_pool!(self, pool => sqlx::query_as::<_, GroupRow>(sql)
            .bind(enabled)
            .bind(now_ms())
            .bind(id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| StoreError::NotFound(format!("group {id}")))
    }

    /// Enables group `id` unless another bot's row for the same chat is enabled (`None` then): one
    /// statement, so no other writer slips in between the check and the update.
    pub async fn enable_group_alone(&self, id: i64) -> Result<Option<GroupRow>, StoreError> {
        let sql = concat!(
            "UPDATE protected_groups SET enabled = TRUE, updated_at = $2 WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM protected_groups o WHERE o.chat_id = protected_groups.chat_id \
             AND o.id <> protected_groups.id AND o.enabled) RETURNING ",
            group_columns!(),
            ""
        );
        Ok(with_pool!(self, pool => sqlx::query_as::<_, GroupRow>(sql)
            .bind(id)
            .bind(now_ms())
            .fetch_optional(pool)
            .await)?)
    }

    /// Replaces a group's policy overrides (a JSON object; absent keys fall back to the defaults).
    pub async fn set_group_policy(
        &self,
        id: i64,
        policy: &serde_json::Value,
    ) -> Result<GroupRow, StoreError> {
        let sql = concat!(
            "UPDATE protected_groups SET policy = $1, updated_at = $2 WHERE id = $3 RETURNING ",
            group_columns!(),
            ""
        );
        with_pool!(self, pool => sqlx::query_as::<_, GroupRow>(sql)
            .bind(Json(policy))
            .bind(now_ms())
            .bind(id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| StoreError::NotFound(format!("group {id}")))
    }

    /// Adds a channel, or refreshes what Telegram told us about it.
    pub async fn upsert_channel(&self, channel: &NewChannel) -> Result<ChannelRow, StoreError> {
        let sql = concat!(
            "INSERT INTO enforced_channels (chat_id, title, username, invite_link, is_private, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (chat_id) DO UPDATE SET title = excluded.title, username = excluded.username, \
             invite_link = COALESCE(excluded.invite_link, enforced_channels.invite_link), \
             is_private = excluded.is_private, updated_at = excluded.updated_at RETURNING ",
            channel_columns!(),
            ""
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, ChannelRow>(sql)
            .bind(channel.chat_id)
            .bind(&channel.title)
            .bind(&channel.username)
            .bind(&channel.invite_link)
            .bind(channel.is_private)
            .bind(now_ms())
            .fetch_one(pool)
            .await)?,
        )
    }

    /// Requires `channel_id` in `group_id`. Linking twice is harmless.
    pub async fn link_channel(&self, group_id: i64, channel_id: i64) -> Result<(), StoreError> {
        let sql = "INSERT INTO group_channel_links (group_id, channel_id, created_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (group_id, channel_id) DO NOTHING";
        let result = with_pool!(self, pool => sqlx::query(sql)
            .bind(group_id)
            .bind(channel_id)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|_| ()));
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => Err(
                StoreError::NotFound(format!("group {group_id} or channel {channel_id}")),
            ),
            Err(other) => Err(other.into()),
        }
    }

    /// Returns whether a link existed.
    pub async fn unlink_channel(&self, group_id: i64, channel_id: i64) -> Result<bool, StoreError> {
        let sql = "DELETE FROM group_channel_links WHERE group_id = $1 AND channel_id = $2";
        let affected = with_pool!(self, pool => sqlx::query(sql)
            .bind(group_id)
            .bind(channel_id)
            .execute(pool)
            .await
        .map(|done| done.rows_affected()))?;
        Ok(affected > 0)
    }

    /// The channels a group requires, by title.
    pub async fn channels_of_group(&self, group_id: i64) -> Result<Vec<ChannelRow>, StoreError> {
        let sql = "SELECT c.id, c.chat_id, c.title, c.username, c.invite_link, c.is_private, c.created_at, \
                   c.updated_at FROM enforced_channels c JOIN group_channel_links l ON l.channel_id = c.id \
                   WHERE l.group_id = $1 ORDER BY c.title, c.id";
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, ChannelRow>(sql)
            .bind(group_id)
            .fetch_all(pool)
            .await)?,
        )
    }

    /// The groups that require a channel: who is affected when a member leaves it.
    pub async fn groups_requiring_channel(
        &self,
        channel_chat_id: i64,
    ) -> Result<Vec<GroupRow>, StoreError> {
        let sql = "SELECT g.id, g.bot_instance_id, g.chat_id, g.title, g.username, g.enabled, g.policy, g.health, \
                   g.health_detail, g.health_checked_at, g.member_count, g.created_at, g.updated_at, g.chat_type \
                   FROM protected_groups g JOIN group_channel_links l ON l.group_id = g.id \
                   JOIN enforced_channels c ON c.id = l.channel_id WHERE c.chat_id = $1 ORDER BY g.id";
        Ok(with_pool!(self, pool => sqlx::query_as::<_, GroupRow>(sql)
            .bind(channel_chat_id)
            .fetch_all(pool)
            .await)?)
    }

    /// The group `chat_id` as protected by one bot, if it is.
    pub async fn group_by_chat(
        &self,
        bot_instance_id: i64,
        chat_id: i64,
    ) -> Result<Option<GroupRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            group_columns!(),
            " FROM protected_groups WHERE bot_instance_id = $1 AND chat_id = $2"
        );
        Ok(with_pool!(self, pool => sqlx::query_as::<_, GroupRow>(sql)
            .bind(bot_instance_id)
            .bind(chat_id)
            .fetch_optional(pool)
            .await)?)
    }

    /// The bot that protects `chat_id` and is enforcing there, other than `except` (one chat has
    /// one enforcing bot: two would both warn and restrict), with its username.
    pub async fn other_enforcer(
        &self,
        chat_id: i64,
        except: i64,
    ) -> Result<Option<(i64, String)>, StoreError> {
        let sql = "SELECT b.id, b.username FROM protected_groups g \
                   JOIN bot_instances b ON b.id = g.bot_instance_id \
                   WHERE g.chat_id = $1 AND g.bot_instance_id <> $2 AND g.enabled ORDER BY b.id LIMIT 1";
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, (i64, String)>(sql)
            .bind(chat_id)
            .bind(except)
            .fetch_optional(pool)
            .await)?,
        )
    }

    /// Stores the outcome of a permission check: `ok`, `degraded` (with what is missing) or `unknown`.
    pub async fn set_group_health(
        &self,
        id: i64,
        health: &str,
        detail: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE protected_groups SET health = $1, health_detail = $2, health_checked_at = $3, \
                   updated_at = $3 WHERE id = $4";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(health)
            .bind(detail.map(Json))
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Makes `channel_ids` exactly the channels a group requires, recording the bot's rights in each.
    pub async fn replace_channel_links(
        &self,
        group_id: i64,
        links: &[(i64, serde_json::Value)],
    ) -> Result<(), StoreError> {
        let now = now_ms();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query("DELETE FROM group_channel_links WHERE group_id = $1")
                .bind(group_id)
                .execute(&mut *tx)
                .await?;
            for (channel_id, rights) in links {
                sqlx::query(
                    "INSERT INTO group_channel_links (group_id, channel_id, bot_rights, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(group_id)
                .bind(channel_id)
                .bind(Json(rights))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// A basic group was upgraded to a supergroup: the bot's record of it, its channels and policy
    /// (kept on the row), what Nezuko holds there, its pending timers and its verification history
    /// move to the new chat id, in one transaction. Returns the moved row, or `None` when the bot
    /// has no record of the old chat, or already has one of the new chat (then the old record is
    /// only disabled, so the group is never enforced twice).
    pub async fn migrate_group_chat(
        &self,
        bot_instance_id: i64,
        old_chat_id: i64,
        new_chat_id: i64,
    ) -> Result<Option<GroupRow>, StoreError> {
        let now = now_ms();
        let moved = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let taken: Option<(i64,)> = sqlx::query_as(
                "SELECT id FROM protected_groups WHERE bot_instance_id = $1 AND chat_id = $2",
            )
            .bind(bot_instance_id)
            .bind(new_chat_id)
            .fetch_optional(&mut *tx)
            .await?;
            if taken.is_some() {
                sqlx::query(
                    "UPDATE protected_groups SET enabled = FALSE, updated_at = $1 \
                     WHERE bot_instance_id = $2 AND chat_id = $3",
                )
                .bind(now)
                .bind(bot_instance_id)
                .bind(old_chat_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                None
            } else {
                let sql = concat!(
                    "UPDATE protected_groups SET chat_id = $1, updated_at = $2 \
                     WHERE bot_instance_id = $3 AND chat_id = $4 RETURNING ",
                    group_columns!()
                );
                let row = sqlx::query_as::<_, GroupRow>(sql)
                    .bind(new_chat_id)
                    .bind(now)
                    .bind(bot_instance_id)
                    .bind(old_chat_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if row.is_some() {
                    for table in ["member_restrictions", "scheduled_actions", "verification_log"] {
                        let sql = format!(
                            "UPDATE {table} SET chat_id = $1 WHERE bot_instance_id = $2 AND chat_id = $3"
                        );
                        sqlx::query(sqlx::AssertSqlSafe(sql))
                            .bind(new_chat_id)
                            .bind(bot_instance_id)
                            .bind(old_chat_id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                row
            }
        });
        Ok(moved)
    }
}
