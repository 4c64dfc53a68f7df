//! `enforced_channels` one at a time: what the admin API reads, edits and removes.

use super::{ChannelRow, GroupRow, Store, StoreError, now_ms, with_pool};

/// The editable fields of a channel; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ChannelChange {
    pub title: Option<String>,
    pub username: Option<Option<String>>,
    pub invite_link: Option<Option<String>>,
    pub is_private: Option<bool>,
}

macro_rules! channel_columns {
    () => {
        "id, chat_id, title, username, invite_link, is_private, created_at, updated_at"
    };
}

impl Store {
    pub async fn channel(&self, id: i64) -> Result<ChannelRow, StoreError> {
        let sql = concat!(
            "SELECT ",
            channel_columns!(),
            " FROM enforced_channels WHERE id = $1"
        );
        with_pool!(self, pool => sqlx::query_as::<_, ChannelRow>(sql).bind(id).fetch_optional(pool).await)?
            .ok_or_else(|| StoreError::NotFound(format!("channel {id}")))
    }

    /// Adds a channel; a second channel with the same Telegram chat id is a `Conflict`.
    pub async fn insert_channel(
        &self,
        channel: &super::NewChannel,
    ) -> Result<ChannelRow, StoreError> {
        let sql = concat!(
            "INSERT INTO enforced_channels (chat_id, title, username, invite_link, is_private, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (chat_id) DO NOTHING RETURNING ",
            channel_columns!()
        );
        with_pool!(self, pool => sqlx::query_as::<_, ChannelRow>(sql)
            .bind(channel.chat_id)
            .bind(&channel.title)
            .bind(&channel.username)
            .bind(&channel.invite_link)
            .bind(channel.is_private)
            .bind(now_ms())
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| {
            StoreError::Conflict(format!("channel {} is already known", channel.chat_id))
        })
    }

    pub async fn update_channel(
        &self,
        id: i64,
        change: &ChannelChange,
    ) -> Result<ChannelRow, StoreError> {
        let current = self.channel(id).await?;
        let sql = concat!(
            "UPDATE enforced_channels SET title = $1, username = $2, invite_link = $3, is_private = $4, \
             updated_at = $5 WHERE id = $6 RETURNING ",
            channel_columns!()
        );
        with_pool!(self, pool => sqlx::query_as::<_, ChannelRow>(sql)
            .bind(change.title.clone().unwrap_or(current.title))
            .bind(change.username.clone().unwrap_or(current.username))
            .bind(change.invite_link.clone().unwrap_or(current.invite_link))
            .bind(change.is_private.unwrap_or(current.is_private))
            .bind(now_ms())
            .bind(id)
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| StoreError::NotFound(format!("channel {id}")))
    }

    /// Removes a channel and, by cascade, every group's requirement of it.
    pub async fn delete_channel(&self, id: i64) -> Result<(), StoreError> {
        let removed = with_pool!(self, pool => sqlx::query("DELETE FROM enforced_channels WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        match removed {
            0 => Err(StoreError::NotFound(format!("channel {id}"))),
            _ => Ok(()),
        }
    }

    /// The groups that require a channel, by our row id.
    pub async fn groups_of_channel(&self, channel_id: i64) -> Result<Vec<GroupRow>, StoreError> {
        let sql = "SELECT g.id, g.bot_instance_id, g.chat_id, g.title, g.username, g.enabled, g.policy, g.health, \
                   g.health_detail, g.health_checked_at, g.member_count, g.created_at, g.updated_at, g.chat_type \
                   FROM protected_groups g JOIN group_channel_links l ON l.group_id = g.id \
                   WHERE l.channel_id = $1 ORDER BY g.title, g.id";
        Ok(with_pool!(self, pool => sqlx::query_as::<_, GroupRow>(sql)
            .bind(channel_id)
            .fetch_all(pool)
            .await)?)
    }
}
