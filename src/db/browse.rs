//! The lists the admin API pages through: groups with search, filters and sort; channels with how
//! many groups require them. Every list returns its total so clients can page.

use sqlx::QueryBuilder;

use super::{ChannelRow, GroupRow, Store, StoreError, with_pool};

/// How groups may be ordered. Each maps to a fixed column list, never to client text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupSort {
    #[default]
    Title,
    Created,
    Members,
    Health,
}

impl GroupSort {
    pub const ALL: [(&'static str, GroupSort); 4] = [
        ("title", Self::Title),
        ("created_at", Self::Created),
        ("member_count", Self::Members),
        ("health", Self::Health),
    ];

    fn order_by(self) -> &'static str {
        match self {
            Self::Title => "title",
            Self::Created => "created_at",
            Self::Members => "COALESCE(member_count, 0)",
            Self::Health => "health",
        }
    }
}

/// A group query; empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    /// Case-insensitive substring of the title or username.
    pub search: Option<String>,
    pub bot_instance_id: Option<i64>,
    pub enabled: Option<bool>,
    pub health: Option<String>,
    pub sort: GroupSort,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

/// A channel with the number of groups that require it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChannelListRow {
    #[sqlx(flatten)]
    pub channel: ChannelRow,
    pub group_count: i64,
}

impl Store {
    /// One page of groups matching `filter`, and how many match in all.
    pub async fn list_groups(
        &self,
        filter: &GroupFilter,
    ) -> Result<(Vec<GroupRow>, i64), StoreError> {
        let search = filter
            .search
            .as_ref()
            .map(|text| format!("%{}%", super::logs::escape_like(&text.to_lowercase())));
        Ok(with_pool!(self, pool => {
            let mut count = QueryBuilder::new("SELECT COUNT(*) FROM protected_groups WHERE 1 = 1");
            push_group_filter(&mut count, filter, search.as_deref());
            let (total,): (i64,) = count.build_query_as().fetch_one(pool).await?;
            let mut query = QueryBuilder::new(
                "SELECT id, bot_instance_id, chat_id, title, username, enabled, policy, health, \
                 health_detail, health_checked_at, member_count, created_at, updated_at, chat_type \
                 FROM protected_groups WHERE 1 = 1",
            );
            push_group_filter(&mut query, filter, search.as_deref());
            let direction = if filter.descending { " DESC" } else { " ASC" };
            query
                .push(" ORDER BY ")
                .push(filter.sort.order_by())
                .push(direction)
                .push(", id")
                .push(direction)
                .push(" LIMIT ")
                .push_bind(filter.limit)
                .push(" OFFSET ")
                .push_bind(filter.offset);
            (query.build_query_as::<GroupRow>().fetch_all(pool).await?, total)
        }))
    }

    /// How many groups each bot protects (bots without groups are absent).
    pub async fn group_counts_by_bot(
        &self,
    ) -> Result<std::collections::HashMap<i64, i64>, StoreError> {
        let sql = "SELECT bot_instance_id, COUNT(*) FROM protected_groups GROUP BY bot_instance_id";
        let rows =
            with_pool!(self, pool => sqlx::query_as::<_, (i64, i64)>(sql).fetch_all(pool).await)?;
        Ok(rows.into_iter().collect())
    }

    /// Every channel, by title, with its number of linked groups.
    pub async fn list_channels(&self) -> Result<Vec<ChannelListRow>, StoreError> {
        let sql = "SELECT c.id, c.chat_id, c.title, c.username, c.invite_link, c.is_private, c.created_at, \
                   c.updated_at, (SELECT COUNT(*) FROM group_channel_links l WHERE l.channel_id = c.id) AS group_count \
                   FROM enforced_channels c ORDER BY c.title, c.id";
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, ChannelListRow>(sql).fetch_all(pool).await)?,
        )
    }
}

fn push_group_filter<DB: sqlx::Database>(
    query: &mut QueryBuilder<DB>,
    filter: &GroupFilter,
    search: Option<&str>,
) where
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> bool: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    if let Some(pattern) = search {
        query
            .push(" AND (LOWER(title) LIKE ")
            .push_bind(pattern.to_string())
            .push(" ESCAPE '\\' OR LOWER(COALESCE(username, '')) LIKE ")
            .push_bind(pattern.to_string())
            .push(" ESCAPE '\\')");
    }
    if let Some(bot) = filter.bot_instance_id {
        query.push(" AND bot_instance_id = ").push_bind(bot);
    }
    if let Some(enabled) = filter.enabled {
        query.push(" AND enabled = ").push_bind(enabled);
    }
    if let Some(health) = &filter.health {
        query.push(" AND health = ").push_bind(health.clone());
    }
}
