//! `settings`: global key/value configuration kept in the database (policy defaults, texts, the vault canary).

use sqlx::types::Json;

use super::{Store, StoreError, now_ms, with_pool};

pub(super) const UPSERT: &str = "INSERT INTO settings (key, value, updated_by, updated_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, \
     updated_at = excluded.updated_at";

impl Store {
    pub async fn setting(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let sql = "SELECT value FROM settings WHERE key = $1";
        let row = with_pool!(self, pool => sqlx::query_as::<_, (Json<serde_json::Value>,)>(sql)
            .bind(key)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(|(Json(value),)| value))
    }

    /// Every setting whose key starts with `prefix`, sorted by key.
    pub async fn settings_with_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        // substr instead of LIKE: no escaping of `%` and `_` in the prefix. The table is small.
        let sql =
            "SELECT key, value FROM settings WHERE substr(key, 1, length($1)) = $1 ORDER BY key";
        let rows = with_pool!(self, pool => sqlx::query_as::<_, (String, Json<serde_json::Value>)>(sql)
            .bind(prefix)
            .fetch_all(pool)
            .await)?;
        Ok(rows.into_iter().map(|(k, Json(v))| (k, v)).collect())
    }

    /// Inserts or replaces a setting, remembering who changed it.
    pub async fn put_setting(
        &self,
        key: &str,
        value: &serde_json::Value,
        updated_by: Option<i64>,
    ) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query(UPSERT)
            .bind(key)
            .bind(Json(value))
            .bind(updated_by)
            .bind(now_ms())
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}
