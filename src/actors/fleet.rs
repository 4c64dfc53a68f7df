//! `Fleet`: the handle the application (and tests) hold on the supervision tree.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ractor::Actor;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::leases::Leases;
use super::policy::RestartPolicy;
use super::registry::{Action, reconcile_once};
use super::supervisor::view::TreeView;
use super::supervisor::{BotStatus, Supervisor, SupervisorArgs, SupervisorMsg, SupervisorRef};
use crate::db::Store;
use crate::events::{Event, Publisher};
use crate::telegram::UpdateHandler;
use crate::vault::Vault;

/// How a fleet runs.
#[derive(Clone)]
pub struct FleetOptions {
    pub api_url: String,
    pub http: reqwest::Client,
    pub handler: Arc<dyn UpdateHandler>,
    pub policy: RestartPolicy,
    pub poll_interval: Duration,
    pub full_interval: Duration,
    /// Events a subscriber may fall behind by before it is told it lagged.
    pub event_capacity: usize,
    /// Whether this process runs bots. Without, the tree has its Broadcaster (the admin API
    /// publishes through it) but no Registry, so no BotActor is ever started (`serve --role api`).
    pub runs_bots: bool,
    /// On PostgreSQL, the bots this node holds (kept by `actors::leases`): only those run here.
    /// `None` runs every enabled bot (SQLite, where one process runs them all).
    pub leases: Option<Leases>,
    /// How the bots receive updates (`telegram.mode`).
    pub delivery: super::bot::Delivery,
    /// The Alerter's set-up (`alerts.*`); `None` runs none.
    pub alerts: Option<super::alerter::AlerterArgs>,
}

/// A running supervision tree. What it shares with the HTTP layer (nudge, publish, subscribe,
/// status) is its [`FleetHandle`], reached through `Deref`; the tree itself adds reconciling and
/// shutting down.
pub struct Fleet {
    handle: FleetHandle,
    store: Store,
    leases: Option<Leases>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("supervisor", &self.handle.supervisor.get_id())
            .finish()
    }
}

/// What the HTTP layer holds on the tree; cheap to clone, never keeps the tree alive on its own.
#[derive(Clone)]
pub struct FleetHandle {
    supervisor: SupervisorRef,
    events: broadcast::Sender<Arc<Event>>,
    publisher: Publisher,
    view: TreeView,
}

impl std::fmt::Debug for FleetHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetHandle").finish_non_exhaustive()
    }
}

impl FleetHandle {
    /// Tells the Registry an admin changed bot `id` in `bot_instances`, so it acts at once
    /// (SQLite; PostgreSQL's notification does the same). A no-op where no Registry runs.
    pub fn nudge(&self, id: i64) {
        // Fails only once the tree is gone (shutting down).
        let _ = self.supervisor.cast(SupervisorMsg::Nudge(vec![id]));
    }

    /// Asks the Registry to reconcile every bot now (the leases held here changed, or a test or
    /// tool changed the database directly).
    pub fn reconcile_all(&self) {
        // Fails only once the tree is gone (shutting down).
        let _ = self.supervisor.cast(SupervisorMsg::ReconcileAll);
    }

    /// What the supervisor last saw (bots, services), read without a call into its mailbox.
    pub fn view(&self) -> &TreeView {
        &self.view
    }

    /// Publishes events into the tree's Broadcaster (stored, then fanned out).
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// Events as they happen. A receiver that lags gets `RecvError::Lagged` and should resync from
    /// the `events` table.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// The sender itself, for relays that inject events from other processes.
    pub fn event_sender(&self) -> broadcast::Sender<Arc<Event>> {
        self.events.clone()
    }

    /// What the supervisor sees of each managed bot right now.
    pub async fn status(&self) -> anyhow::Result<Vec<BotStatus>> {
        Ok(ractor::call!(self.supervisor, SupervisorMsg::Status)?)
    }

    /// The bots under management here (`id → config_version`), stopping ones included.
    pub async fn managed(&self) -> anyhow::Result<std::collections::HashMap<i64, i64>> {
        Ok(ractor::call_t!(
            self.supervisor,
            SupervisorMsg::Managed,
            2_000
        )?)
    }
}

impl Fleet {
    /// Spawns the tree; the Registry's first reconcile starts every enabled bot.
    pub async fn start(store: Store, vault: Vault, options: FleetOptions) -> anyhow::Result<Self> {
        let api_url = options
            .api_url
            .parse()
            .with_context(|| format!("`{}` is not a Bot API URL", options.api_url))?;
        let (events, _) = broadcast::channel(options.event_capacity);
        let (publisher, outbox) = Publisher::channel();
        let view = TreeView::default();
        let args = SupervisorArgs {
            store: store.clone(),
            vault,
            http: options.http,
            api_url,
            handler: options.handler,
            policy: options.policy,
            events: events.clone(),
            publisher: publisher.clone(),
            outbox,
            poll_interval: options.poll_interval,
            full_interval: options.full_interval,
            runs_bots: options.runs_bots,
            leases: options.leases.clone(),
            delivery: options.delivery,
            view: view.clone(),
            alerts: options.alerts,
        };
        let (supervisor, task) = Actor::spawn(None, Supervisor, args)
            .await
            .context("cannot start the bot supervisor")?;
        // Answered once `post_start` has started the services (or seen them fail and planned a
        // retry), so readiness is decided by the time the fleet is handed out.
        ractor::call!(supervisor, SupervisorMsg::Managed)
            .context("the bot supervisor stopped while starting")?;
        Ok(Self {
            handle: FleetHandle {
                supervisor,
                events,
                publisher,
                view,
            },
            store,
            leases: options.leases,
            task,
        })
    }

    /// A cloneable handle for the HTTP layer: nudge, publish, subscribe, status.
    pub fn handle(&self) -> FleetHandle {
        self.handle.clone()
    }

    /// The root supervisor's cell, for looking into the tree (its children, their types): tests
    /// and diagnostics.
    pub fn supervisor_cell(&self) -> ractor::ActorCell {
        self.handle.supervisor.get_cell()
    }

    /// One reconcile step, run by the caller; returns what it asked the supervisor to do.
    pub async fn reconcile(&self) -> anyhow::Result<Vec<Action>> {
        reconcile_once(&self.store, &self.handle.supervisor, self.leases.as_ref()).await
    }

    /// Stops every bot gracefully (in-flight updates finish), then the tree, within `timeout`.
    pub async fn shutdown(self, timeout: Duration) {
        let supervisor = self.handle.supervisor;
        let stopped = ractor::call_t!(
            supervisor,
            SupervisorMsg::Shutdown,
            timeout.as_millis() as u64
        );
        if let Err(error) = stopped {
            tracing::warn!(%error, "not every bot stopped in time");
        }
        supervisor.stop(None);
        // Whether it ended in time or not, the tree was told to stop; nothing else to do.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.task).await;
    }
}

impl std::ops::Deref for Fleet {
    type Target = FleetHandle;

    fn deref(&self) -> &FleetHandle {
        &self.handle
    }
}
