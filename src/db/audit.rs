//! `audit_log`: who changed what, with the value before and after.

use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::{Store, StoreError, now_ms, push_newest_first, with_pool};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub before: Option<Json<serde_json::Value>>,
    pub after: Option<Json<serde_json::Value>>,
    pub ip: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub ip: Option<String>,
}

/// An audit query; empty fields do not filter. Newest first, paged by `before_id`.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor_id: Option<i64>,
    /// Entries with no Telegram id under this name (`cli`).
    pub actor_name: Option<String>,
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

macro_rules! columns {
    () => {
        "id, actor_id, actor_name, action, target_type, target_id, before, after, ip, created_at"
    };
}

impl Store {
    pub async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry, StoreError> {
        let sql = concat!(
            "INSERT INTO audit_log (actor_id, actor_name, action, target_type, target_id, before, after, ip, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ",
            columns!(),
            ""
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, AuditEntry>(sql)
            .bind(entry.actor_id)
            .bind(&entry.actor_name)
            .bind(&entry.action)
            .bind(&entry.target_type)
            .bind(&entry.target_id)
            .bind(entry.before.as_ref().map(Json))
            .bind(entry.after.as_ref().map(Json))
            .bind(&entry.ip)
            .bind(now_ms())
            .fetch_one(pool)
            .await)?,
        )
    }

    pub async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(with_pool!(self, pool => {
            let mut query = QueryBuilder::new(concat!("SELECT ", columns!(), " FROM audit_log WHERE 1 = 1"));
            if let Some(actor) = filter.actor_id {
                query.push(" AND actor_id = ").push_bind(actor);
            }
            if let Some(name) = &filter.actor_name {
                query.push(" AND actor_id IS NULL AND actor_name = ").push_bind(name.clone());
            }
            if let Some(action) = &filter.action {
                query.push(" AND action = ").push_bind(action);
            }
            if let Some(target_type) = &filter.target_type {
                query.push(" AND target_type = ").push_bind(target_type);
            }
            push_newest_first(&mut query, filter.from, filter.to, filter.before_id, filter.limit);
            query.build_query_as::<AuditEntry>().fetch_all(pool).await?
        }))
    }
}
