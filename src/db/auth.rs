//! `login_links` and `admin_users`: who may open the dashboard, and the one-time links that let them.

use super::BeginWrite;
use super::{Store, StoreError, now_ms, with_pool};

/// Someone the owner let into the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, schemars::JsonSchema)]
pub struct AdminRow {
    pub telegram_user_id: i64,
    pub username: Option<String>,
    pub display_name: String,
    pub added_by: Option<i64>,
    pub created_at: i64,
}

impl Store {
    /// Stores a login link by the hash of its secret, valid until `expires_at`.
    pub async fn create_login_link(
        &self,
        token_hash: &str,
        telegram_user_id: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO login_links (token_hash, telegram_user_id, created_at, expires_at) \
                   VALUES ($1, $2, $3, $4)";
        with_pool!(self, pool => sqlx::query(sql)
            .bind(token_hash)
            .bind(telegram_user_id)
            .bind(now_ms())
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Uses a login link: one UPDATE marks it used only if it is unused and unexpired, so two
    /// concurrent attempts cannot both succeed. Returns the user it signs in.
    pub async fn consume_login_link(&self, token_hash: &str) -> Result<Option<i64>, StoreError> {
        let sql = "UPDATE login_links SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL \
                   AND expires_at > $1 RETURNING telegram_user_id";
        let row = with_pool!(self, pool => sqlx::query_as::<_, (i64,)>(sql)
            .bind(now_ms())
            .bind(token_hash)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(|(user,)| user))
    }

    pub async fn admins(&self) -> Result<Vec<AdminRow>, StoreError> {
        let sql = "SELECT telegram_user_id, username, display_name, added_by, created_at FROM admin_users \
                   ORDER BY created_at, telegram_user_id";
        Ok(with_pool!(self, pool => sqlx::query_as::<_, AdminRow>(sql).fetch_all(pool).await)?)
    }

    pub async fn admin(&self, telegram_user_id: i64) -> Result<Option<AdminRow>, StoreError> {
        let sql = "SELECT telegram_user_id, username, display_name, added_by, created_at FROM admin_users \
                   WHERE telegram_user_id = $1";
        Ok(with_pool!(self, pool => sqlx::query_as::<_, AdminRow>(sql)
            .bind(telegram_user_id)
            .fetch_optional(pool)
            .await)?)
    }

    /// Adds an admin; adding one twice is a `Conflict`.
    pub async fn add_admin(&self, admin: &AdminRow) -> Result<AdminRow, StoreError> {
        let sql = "INSERT INTO admin_users (telegram_user_id, username, display_name, added_by, created_at) \
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (telegram_user_id) DO NOTHING \
                   RETURNING telegram_user_id, username, display_name, added_by, created_at";
        with_pool!(self, pool => sqlx::query_as::<_, AdminRow>(sql)
            .bind(admin.telegram_user_id)
            .bind(&admin.username)
            .bind(&admin.display_name)
            .bind(admin.added_by)
            .bind(now_ms())
            .fetch_optional(pool)
            .await)?
        .ok_or_else(|| {
            StoreError::Conflict(format!(
                "user {} is already an admin",
                admin.telegram_user_id
            ))
        })
    }

    /// Removes an admin and ends their sessions, in one transaction.
    pub async fn remove_admin(&self, telegram_user_id: i64) -> Result<(), StoreError> {
        let removed = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query("DELETE FROM admin_users WHERE telegram_user_id = $1")
                .bind(telegram_user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM sessions WHERE telegram_user_id = $1")
                .bind(telegram_user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            done.rows_affected()
        });
        match removed {
            0 => Err(StoreError::NotFound(format!("admin {telegram_user_id}"))),
            _ => Ok(()),
        }
    }

    /// Removes the admin row only, leaving sessions (what an edit of the table by hand does;
    /// the API must then refuse those sessions with 403).
    pub async fn remove_admin_row_only(&self, telegram_user_id: i64) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query("DELETE FROM admin_users WHERE telegram_user_id = $1")
            .bind(telegram_user_id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}
