//! `sessions`: dashboard sessions, keyed by the hash of the cookie value.

use super::{Store, StoreError, now_ms, with_pool};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    pub id_hash: String,
    pub telegram_user_id: i64,
    pub csrf_token: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

macro_rules! columns {
    () => {
        "id_hash, telegram_user_id, csrf_token, user_agent, ip, created_at, last_seen_at, expires_at"
    };
}

impl Store {
    pub async fn create_session(&self, session: &SessionRow) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO sessions (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        with_pool!(self, pool => sqlx::query(sql)
            .bind(&session.id_hash)
            .bind(session.telegram_user_id)
            .bind(&session.csrf_token)
            .bind(&session.user_agent)
            .bind(&session.ip)
            .bind(session.created_at)
            .bind(session.last_seen_at)
            .bind(session.expires_at)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The session with this hash if it has not expired; touches `last_seen_at`.
    pub async fn live_session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let sql = concat!(
            "UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2 AND expires_at > $1 RETURNING ",
            columns!(),
            ""
        );
        Ok(
            with_pool!(self, pool => sqlx::query_as::<_, SessionRow>(sql)
            .bind(now_ms())
            .bind(id_hash)
            .fetch_optional(pool)
            .await)?,
        )
    }

    /// Ends a session (logout). Returns whether it existed.
    pub async fn delete_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let affected = with_pool!(self, pool => sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(pool)
            .await
        .map(|done| done.rows_affected()))?;
        Ok(affected > 0)
    }

    /// Removes expired sessions; returns how many.
    pub async fn delete_expired_sessions(&self) -> Result<u64, StoreError> {
        Ok(
            with_pool!(self, pool => sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(pool)
            .await
        .map(|done| done.rows_affected()))?,
        )
    }
}
