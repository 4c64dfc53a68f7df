//! On PostgreSQL, which `serve` process runs the bots: the one holding the runner lock
//! ([`RunnerLock`]); the others stand by with the admin API up and take over when it is freed.
//!
//! Until bots are leased one by one across nodes (issue 17), this keeps the rule Telegram sets —
//! one poller per token — with several processes on one database: without it each process polled
//! every bot, Telegram answered each with 409, and both parked the bot as failed.
//!
//! A runner that loses its lock session stops polling within [`CHECK_EVERY`] + [`CHECK_TIMEOUT`]
//! of the loss, and a new holder waits that long and a second more ([`TAKEOVER_GRACE`]) before it
//! polls when the `nodes` table says another runner may still be about (not after a clean stop,
//! which deletes the runner's row, nor on a first start), so the two never poll at once: without the wait, a lock session ended from the server's
//! side (`pg_terminate_backend`, a proxy's reset) let a standby poll beside the old runner for
//! 0.3–0.7 s in 6 takeovers of 10, with 4–10 409s each. A session whose peer went silent is freed
//! by the server only after its keepalive probes fail (about 11 s), by which time the runner has
//! long stopped.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::FleetHandle;
use super::heartbeat::RunsBots;
use crate::db::{RunnerLock, Store};

/// How often a standby asks for the lock, and how often the runner checks its lock's session.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a check of the session may take before the runner counts it as lost.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a new holder of the lock waits before it runs the bots: the longest a runner that lost
/// its session may still be polling, and a second for it to stop.
const TAKEOVER_GRACE: Duration = Duration::from_secs(5);

/// Runs the bots of `fleet` while this process holds the runner lock of `store`'s PostgreSQL
/// database, standing by otherwise (`serving` says what it serves meanwhile, for the log). The
/// task ends when aborted (at shutdown), which closes the session and frees the lock.
/// `runs_bots` follows it, for the node's heartbeat.
pub fn start(
    store: Store,
    fleet: FleetHandle,
    runs_bots: RunsBots,
    serving: &'static str,
) -> JoinHandle<()> {
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
                                 and takes over when that one stops ({serving} served meanwhile)"
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
            if another_ran_lately(&store).await {
                tracing::info!(
                    grace_s = TAKEOVER_GRACE.as_secs(),
                    "this process holds the runner lock; it runs the bots once the last runner has surely stopped"
                );
                tokio::time::sleep(TAKEOVER_GRACE).await;
                if !lock.alive().await {
                    continue;
                }
            }
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

/// Whether another node says it ran the bots and is not known to be gone: its row has
/// `runs_bots` and a recent heartbeat. A runner that stopped cleanly deleted its row; one that was
/// killed, or lost its session while alive, has not. Unreadable nodes count as yes.
async fn another_ran_lately(store: &Store) -> bool {
    let now = crate::db::now_ms();
    match store.nodes().await {
        Ok(nodes) => nodes
            .iter()
            .any(|n| n.id != store.origin() && n.runs_bots && n.alive(now)),
        Err(_) => true,
    }
}
