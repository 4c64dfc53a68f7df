//! `nodes`: the `serve` processes sharing the database, with their heartbeats.

use super::{Store, StoreError, now_ms, with_pool};

/// How often a node refreshes its row, in ms.
pub const HEARTBEAT_MS: i64 = 5_000;
/// A node whose heartbeat is older than this (ms) is gone: three heartbeats missed.
pub const GONE_AFTER_MS: i64 = 3 * HEARTBEAT_MS;
/// Rows of gone nodes are deleted after this long (ms).
const FORGOTTEN_AFTER_MS: i64 = 3_600_000;

/// One node as stored.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NodeRow {
    pub id: String,
    pub host: String,
    pub pid: i64,
    pub version: String,
    pub role: String,
    pub runs_bots: bool,
    pub started_at: i64,
    pub heartbeat_at: i64,
}

impl NodeRow {
    /// Whether its heartbeat is recent at `now` (ms).
    pub fn alive(&self, now: i64) -> bool {
        now - self.heartbeat_at <= GONE_AFTER_MS
    }
}

impl Store {
    /// Writes `node`'s row with a heartbeat of now (inserted the first time), and deletes the rows
    /// of nodes gone for an hour.
    pub async fn heartbeat(&self, node: &NodeRow) -> Result<(), StoreError> {
        let now = now_ms();
        let sql = "INSERT INTO nodes (id, host, pid, version, role, runs_bots, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET \
             runs_bots = excluded.runs_bots, heartbeat_at = excluded.heartbeat_at";
        with_pool!(self, pool => {
            sqlx::query(sql)
                .bind(&node.id)
                .bind(&node.host)
                .bind(node.pid)
                .bind(&node.version)
                .bind(&node.role)
                .bind(node.runs_bots)
                .bind(node.started_at)
                .bind(now)
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM nodes WHERE heartbeat_at < $1")
                .bind(now - FORGOTTEN_AFTER_MS)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Deletes node `id`'s row (the node stops).
    pub async fn remove_node(&self, id: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// The nodes heartbeating now, each as `host · pid N`, for "stop the service first".
    pub async fn live_nodes(&self) -> Result<Vec<String>, StoreError> {
        let now = super::now_ms();
        Ok(self
            .nodes()
            .await?
            .into_iter()
            .filter(|node| node.alive(now))
            .map(|node| format!("{} · pid {}", node.host, node.pid))
            .collect())
    }

    /// Every node on record, oldest first.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let sql = "SELECT id, host, pid, version, role, runs_bots, started_at, heartbeat_at \
             FROM nodes ORDER BY started_at, id";
        Ok(with_pool!(self, pool => sqlx::query_as::<_, NodeRow>(sql).fetch_all(pool).await)?)
    }
}
