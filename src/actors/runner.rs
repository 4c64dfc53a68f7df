//! On PostgreSQL, which `serve` process runs the bots: the one holding the runner lock
//! ([`RunnerLock`]); the others stand by with the admin API up and take over when it is freed.
//!
//! Until bots are leased one by one across nodes (issue 17), this keeps the rule Telegram sets —
//! one poller per token — with several processes on one database: without it each process polled
//! every bot, Telegram answered each with 409, and both parked the bot as failed. A runner that
//! loses its lock session stops its bots before another process can have taken the lock for
//! long: it checks the session every [`CHECK_EVERY`], and PostgreSQL frees a lock of a session
//! whose peer stopped answering only after its keepalive probes fail (about 11 s).

use std::time::Duration;

use tokio::task::JoinHandle;

use super::FleetHandle;
use super::heartbeat::RunsBots;
use crate::db::{RunnerLock, Store};

/// How often a standby asks for the lock, and how often the runner checks its lock's session.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a check of the session may take before the runner counts it as lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the bots of `fleet` while this process holds the runner lock of `store`'s PostgreSQL
/// database, standing by otherwise. The task ends when aborted (at shutdown), which closes the
/// session and frees the lock.
/// `runs_bots` follows it, for the node's heartbeat.
pub fn start(store: Store, fleet: FleetHandle, runs_bots: RunsBots) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut said_standby = false;
        loop {
            let mut lock = match RunnerLock::open(&store).await {
                Ok(Some(lock)) => lock,
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(%error, "cannot open a session for the runner lock; trying again");
                    tokio::time::sleep(CHECK_EVERY).await;
                    continue;
                }
            };
            // Standing by until the lock is held, or the session fails (then another is opened).
            let held = loop {
                match lock.try_take().await {
                    Ok(true) => break true,
                    Ok(false) => {
                        if !said_standby {
                            said_standby = true;
                            tracing::info!(
                                "another process runs the bots of this database; this one stands by \
                                 and takes over when that one stops (the admin API is served meanwhile)"
                            );
                        }
                        tokio::time::sleep(CHECK_EVERY).await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the runner lock's session failed; opening another");
                        break false;
                    }
                }
            };
            if !held {
                tokio::time::sleep(CHECK_EVERY).await;
                continue;
            }
            said_standby = false;
            tracing::info!("this process runs the bots (it holds the runner lock)");
            fleet.lead();
            runs_bots.set(true);
            // Running: the lock is held as long as its session lives.
            loop {
                tokio::time::sleep(CHECK_EVERY).await;
                let alive = tokio::time::timeout(CHECK_TIMEOUT, lock.alive())
                    .await
                    .unwrap_or(false);
                if !alive {
                    break;
                }
            }
            tracing::warn!(
                "the runner lock's session is lost: stopping the bots here, since another process may take them over"
            );
            fleet.step_down().await;
            runs_bots.set(false);
        }
    })
}
