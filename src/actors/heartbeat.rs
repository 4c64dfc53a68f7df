//! This process as a node of its database (the `nodes` table): its row is written when it starts,
//! refreshed every [`HEARTBEAT_MS`] and at once when it starts or stops running the bots, and
//! deleted when it stops. `nezuko nodes` and `GET /api/v1/nodes` read it, so an operator can tell
//! which process runs the bots and whether it is alive.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::db::nodes::HEARTBEAT_MS;
use crate::db::{NodeRow, Store, now_ms};

/// Whether this process runs the bots now, shared by whoever decides it (the runner lock) with
/// the heartbeat that reports it.
#[derive(Debug, Clone, Default)]
pub struct RunsBots {
    now: Arc<AtomicBool>,
    changed: Arc<Notify>,
}

impl RunsBots {
    pub fn set(&self, runs: bool) {
        if self.now.swap(runs, Ordering::SeqCst) != runs {
            self.changed.notify_one();
        }
    }

    pub fn get(&self) -> bool {
        self.now.load(Ordering::SeqCst)
    }
}

/// The running heartbeat; [`Heartbeat::stop`] deletes the row.
#[derive(Debug)]
pub struct Heartbeat {
    task: JoinHandle<()>,
    /// Asks the task to end between beats, never inside one (see [`Heartbeat::stop`]).
    leave: Arc<Notify>,
    store: Store,
    id: String,
}

/// How long [`Heartbeat::stop`] waits for a beat in flight before giving up on it.
const LAST_BEAT_WAIT: Duration = Duration::from_secs(5);

/// Starts beating for `store`'s process in `role` (`all`, `api` or `bots`).
pub fn start(store: Store, role: &str, runs_bots: RunsBots) -> Heartbeat {
    let mut node = NodeRow {
        id: store.origin().to_string(),
        host: nix::unistd::gethostname()
            .ok()
            .and_then(|name| name.into_string().ok())
            .unwrap_or_else(|| "unknown".into()),
        pid: i64::from(std::process::id()),
        version: env!("CARGO_PKG_VERSION").into(),
        role: role.into(),
        runs_bots: runs_bots.get(),
        started_at: now_ms(),
        heartbeat_at: 0,
    };
    let id = node.id.clone();
    let beating = store.clone();
    let leave = Arc::new(Notify::new());
    let leaving = leave.clone();
    let task = tokio::spawn(async move {
        let every = Duration::from_millis(HEARTBEAT_MS as u64);
        let mut failing = false;
        loop {
            node.runs_bots = runs_bots.get();
            match beating.heartbeat(&node).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("the node's heartbeat is stored again");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "cannot store the node's heartbeat; other processes may count this one as gone");
                }
                Err(_) => {}
            }
            // Either the interval passed or the role changed: beat now in both cases.
            tokio::select! {
                _ = leaving.notified() => return,
                _ = tokio::time::timeout(every, runs_bots.changed.notified()) => {}
            }
        }
    });
    Heartbeat {
        task,
        leave,
        store,
        id,
    }
}

impl Heartbeat {
    /// Stops beating and deletes the row: this node leaves. A beat in flight is let finish
    /// first: cancelled, its statement could still reach the database after the delete (SQLite
    /// runs a sent statement on its worker thread whatever becomes of the future) and bring the
    /// row back, so the node would look alive for 15 s after it left.
    pub async fn stop(mut self) {
        self.leave.notify_one();
        if tokio::time::timeout(LAST_BEAT_WAIT, &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
        if let Err(error) = self.store.remove_node(&self.id).await {
            tracing::warn!(%error, "could not remove this node's row; it will count as gone in 15 s");
        }
    }
}
