//! `bot_leases`: which node runs each bot on PostgreSQL (see `actors::leases` for the rules the
//! nodes follow). Every time here is the database's clock, so nodes whose clocks disagree still
//! agree on when a lease ends.

use std::collections::HashMap;

use sqlx::PgPool;

use super::{Store, StoreError, now_ms, with_pool};

/// The database's clock in Unix ms, for SQL (a macro, so queries stay `&'static str`).
macro_rules! db_now_ms {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    };
}

/// Connections of a node's lease table: renewals, and the rest of the keeper's work.
const CONNECTIONS: u32 = 2;

/// A bot this node holds, with its fencing number (one more each time the bot changes hands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Held {
    pub bot_instance_id: i64,
    pub fence: i64,
}

/// One lease as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LeaseRow {
    pub bot_instance_id: i64,
    pub node_id: String,
    pub fence: i64,
    /// Unix ms, the database's clock (when it was let go, for a lease let go).
    pub expires_at: i64,
}

/// What a node looks at to decide which bots to take or let go: at one moment of the database's
/// clock (`now`, Unix ms), the enabled bots (ids, ascending) and every lease.
#[derive(Debug, Clone)]
pub struct Survey {
    pub now: i64,
    pub enabled: Vec<i64>,
    pub leases: Vec<LeaseRow>,
}

/// The lease table of a PostgreSQL store.
#[derive(Debug, Clone)]
pub struct LeaseTable {
    pool: PgPool,
}

impl LeaseTable {
    /// The table of `store`, on connections of its own (up to [`CONNECTIONS`], opened as
    /// needed with the store's settings); `None` on SQLite, where one process runs every bot.
    /// Its own, because renewals must not queue behind a busy fleet's queries: sharing the
    /// store's pool, a `bench failover` start-up burst held renewals back until the leases of two
    /// nodes of three ran out.
    pub fn of(store: &Store) -> Option<Self> {
        let options = store.postgres_pool()?.connect_options();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(std::time::Duration::from_secs(2))
            .connect_lazy_with((*options).clone());
        Some(Self { pool })
    }

    /// Refreshes node `node`'s heartbeat (the keeper does, every renewal).
    pub async fn touch(&self, node: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE nodes SET heartbeat_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every node on record (as [`Store::nodes`]).
    pub async fn nodes(&self) -> Result<Vec<super::NodeRow>, StoreError> {
        Ok(sqlx::query_as::<_, super::NodeRow>(
            "SELECT id, host, pid, version, role, runs_bots, started_at, heartbeat_at FROM nodes",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Extends every unexpired lease `node` holds to `lease_ms` from now; returns them. A lease
    /// that expired meanwhile is not renewed (another node may have taken it, or may be about to).
    pub async fn renew(&self, node: &str, lease_ms: i64) -> Result<Vec<Held>, StoreError> {
        let sql = concat!(
            "UPDATE bot_leases SET expires_at = ",
            db_now_ms!(),
            " + $2 WHERE node_id = $1 AND expires_at > ",
            db_now_ms!(),
            " RETURNING bot_instance_id, fence"
        );
        Ok(sqlx::query_as::<_, Held>(sql)
            .bind(node)
            .bind(lease_ms)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Takes, for `lease_ms`, those of the bots `ids` that are enabled and that nobody holds (no
    /// lease yet, or an expired one); returns what was taken, each with its new fencing number.
    /// Two nodes taking one bot at once: one gets it, the other's row is not returned.
    pub async fn take(
        &self,
        node: &str,
        lease_ms: i64,
        ids: &[i64],
    ) -> Result<Vec<Held>, StoreError> {
        let sql = concat!(
            "INSERT INTO bot_leases (bot_instance_id, node_id, fence, expires_at) SELECT id, $1, 1, ",
            db_now_ms!(),
            " + $2 FROM bot_instances \
             WHERE id = ANY($3) AND desired_state = 'enabled' \
             ON CONFLICT (bot_instance_id) DO UPDATE \
             SET node_id = excluded.node_id, fence = bot_leases.fence + 1, expires_at = excluded.expires_at \
             WHERE bot_leases.expires_at <= excluded.expires_at - $2 \
             RETURNING bot_instance_id, fence"
        );
        Ok(sqlx::query_as::<_, Held>(sql)
            .bind(node)
            .bind(lease_ms)
            .bind(ids)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Lets go of `ids` (all of `node`'s bots when `None`): their leases end now, and anyone may
    /// take them at once.
    pub async fn release(&self, node: &str, ids: Option<&[i64]>) -> Result<(), StoreError> {
        let query = match ids {
            Some(ids) => sqlx::query(concat!(
                "UPDATE bot_leases SET expires_at = ",
                db_now_ms!(),
                " WHERE node_id = $1 AND bot_instance_id = ANY($2) AND expires_at > ",
                db_now_ms!()
            ))
            .bind(node)
            .bind(ids),
            None => sqlx::query(concat!(
                "UPDATE bot_leases SET expires_at = ",
                db_now_ms!(),
                " WHERE node_id = $1 AND expires_at > ",
                db_now_ms!()
            ))
            .bind(node),
        };
        query.execute(&self.pool).await?;
        Ok(())
    }

    /// The enabled bots and every lease, at one moment of the database's clock.
    pub async fn survey(&self) -> Result<Survey, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let (now,): (i64,) = sqlx::query_as(concat!("SELECT ", db_now_ms!()))
            .fetch_one(&mut *tx)
            .await?;
        let enabled: Vec<(i64,)> = sqlx::query_as(
            "SELECT id FROM bot_instances WHERE desired_state = 'enabled' ORDER BY id",
        )
        .fetch_all(&mut *tx)
        .await?;
        let leases = sqlx::query_as::<_, LeaseRow>(
            "SELECT bot_instance_id, node_id, fence, expires_at FROM bot_leases",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Survey {
            now,
            enabled: enabled.into_iter().map(|(id,)| id).collect(),
            leases,
        })
    }
}

impl Store {
    /// Which node runs each bot now (`bot id → node id`): on PostgreSQL the holder of its
    /// unexpired lease; on SQLite, every enabled bot's is the live node that runs bots (one
    /// process runs them all). Bots nobody runs are absent.
    pub async fn bot_runners(&self) -> Result<HashMap<i64, String>, StoreError> {
        let now = now_ms();
        if self.postgres_pool().is_none() {
            let Some(runner) = self
                .nodes()
                .await?
                .into_iter()
                .find(|n| n.runs_bots && n.alive(now))
            else {
                return Ok(HashMap::new());
            };
            let enabled: Vec<(i64,)> = with_pool!(self, pool => sqlx::query_as(
                "SELECT id FROM bot_instances WHERE desired_state = 'enabled'",
            )
            .fetch_all(pool)
            .await)?;
            return Ok(enabled
                .into_iter()
                .map(|(id,)| (id, runner.id.clone()))
                .collect());
        }
        let rows: Vec<(i64, String)> = with_pool!(self, pool => sqlx::query_as(
            "SELECT bot_instance_id, node_id FROM bot_leases WHERE expires_at > $1",
        )
        .bind(now)
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().collect())
    }

    /// How many bots each node runs now (see [`Store::bot_runners`]).
    pub async fn bots_per_node(&self) -> Result<HashMap<String, usize>, StoreError> {
        let mut counts = HashMap::new();
        for node in self.bot_runners().await?.into_values() {
            *counts.entry(node).or_insert(0) += 1;
        }
        Ok(counts)
    }
}
