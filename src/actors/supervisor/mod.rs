//! The root Supervisor: owns the Registry, the Broadcaster and one BotActor per enabled bot, and the
//! restart policy. It overrides ractor's default (which stops a supervisor when any child exits) and
//! treats spawn errors (`pre_start` failures) the same as supervision events. The bookkeeping behind
//! each message lives in `lifecycle.rs`; the Registry's and the Broadcaster's restarts in
//! `services.rs`; what the HTTP layer reads without a call in `view.rs`.

mod lifecycle;
mod services;
pub mod view;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::broadcast;

use self::services::ServiceRun;
use self::view::{Service, TreeView};
use super::alerter::{AlerterArgs, AlerterRef};
use super::bot::BotRef;
use super::broadcaster::{BroadcasterMsg, BroadcasterRef};
use super::leases::Leases;
use super::policy::{FailureWindow, RestartPolicy};
use super::registry::{Action, RegistryRef};
use crate::db::{BotRow, Store};
use crate::domain::{ReasonCode, RunState};
use crate::events::{Event, Outbox, Publisher};
use crate::telegram::{Failure, UpdateHandler};
use crate::vault::Vault;

pub type SupervisorRef = ActorRef<SupervisorMsg>;

pub enum SupervisorMsg {
    /// What the Registry found to do.
    Apply(Vec<Action>),
    /// A backoff elapsed; ignored if the bot's generation moved on meanwhile.
    RetryStart {
        bot_instance_id: i64,
        generation: u64,
    },
    /// A BotActor passed `getMe` and is polling. Ignored unless `actor` is still the bot's
    /// current actor: its first poll may already have failed it (a 409 comes back at once), and
    /// this message can arrive after that failure was handled.
    BotRunning {
        bot_instance_id: i64,
        actor: ractor::ActorId,
    },
    /// Ask the Registry to reconcile these bots now (an admin changed them).
    Nudge(Vec<i64>),
    /// Ask the Registry to reconcile every bot now (the leases held here changed).
    ReconcileAll,
    /// Start a service of the tree again (after its restart pause).
    RestartService(Service),
    /// Internal: copy what changed into the [`TreeView`], once per burst of messages.
    Refresh,
    /// The bots under management and their `config_version`.
    Managed(RpcReplyPort<HashMap<i64, i64>>),
    /// A snapshot of every managed bot.
    Status(RpcReplyPort<Vec<BotStatus>>),
    /// Stop every bot gracefully, then answer.
    Shutdown(RpcReplyPort<()>),
}

/// What the supervisor knows of one bot.
#[derive(Debug, Clone, PartialEq)]
pub struct BotStatus {
    pub bot_instance_id: i64,
    pub state: RunState,
    pub reason: Option<String>,
    pub restart_count: u64,
    pub attempt: u32,
    pub uptime: Option<Duration>,
}

pub struct SupervisorArgs {
    pub store: Store,
    pub vault: Vault,
    pub http: reqwest::Client,
    pub api_url: reqwest::Url,
    pub handler: Arc<dyn UpdateHandler>,
    pub policy: RestartPolicy,
    /// The fan-out the Broadcaster publishes to (created by the caller, who subscribes to it).
    pub events: broadcast::Sender<Arc<Event>>,
    /// Handed to every BotActor; its outbox is drained by the current Broadcaster.
    pub publisher: Publisher,
    pub outbox: Outbox,
    /// SQLite: how often the Registry looks for changes; both: how often it reconciles fully.
    pub poll_interval: Duration,
    pub full_interval: Duration,
    /// Whether to spawn the Registry, and so run bots (see `FleetOptions::runs_bots`).
    pub runs_bots: bool,
    /// On PostgreSQL, the bots this node holds (see `actors::leases`); `None` runs them all.
    pub leases: Option<Leases>,
    /// How the bots receive updates.
    pub delivery: super::bot::Delivery,
    /// Where the supervisor shows what it sees (read by the HTTP layer).
    pub view: TreeView,
    /// The Alerter's set-up; `None` runs none (tools and tests that only need bots).
    pub alerts: Option<AlerterArgs>,
}

/// What a running actor is doing besides running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Nothing,
    Stop,
    Restart,
    /// Handed over to another node: forgotten once stopped, no state recorded.
    Release,
}

struct Child {
    row: BotRow,
    state: RunState,
    reason: Option<String>,
    reason_code: Option<ReasonCode>,
    actor: Option<BotRef>,
    after_exit: After,
    generation: u64,
    attempt: u32,
    failures: FailureWindow,
    running_since: Option<Instant>,
    restart_count: u64,
}

pub struct SupervisorState {
    args: SupervisorArgs,
    broadcaster: Option<BroadcasterRef>,
    registry: Option<RegistryRef>,
    alerter: Option<AlerterRef>,
    children: HashMap<i64, Child>,
    by_actor: HashMap<ActorId, i64>,
    shutting_down: bool,
    services: HashMap<Service, ServiceRun>,
    view: TreeView,
    /// A `Refresh` is in the mailbox.
    refresh_queued: bool,
    /// Bot transitions made while no Broadcaster runs, handed to the next one in order.
    held_statuses: Vec<BroadcasterMsg>,
}

pub struct Supervisor;

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(SupervisorState {
            view: args.view.clone(),
            args,
            broadcaster: None,
            registry: None,
            alerter: None,
            children: HashMap::new(),
            by_actor: HashMap::new(),
            shutting_down: false,
            services: HashMap::new(),
            refresh_queued: false,
            held_statuses: Vec::new(),
        })
    }

    /// The Broadcaster first (bots' first transitions go through it), then, where this process runs
    /// bots, the Registry, whose first reconcile starts every enabled bot. Either one failing to
    /// start is retried (see `services.rs`); the tree itself starts regardless.
    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.start_service(&myself, Service::Broadcaster).await;
        if state.args.runs_bots {
            state.start_service(&myself, Service::Registry).await;
        }
        if state.args.alerts.is_some() {
            state.start_service(&myself, Service::Alerter).await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::Apply(actions) => state.apply(&myself, actions).await,
            SupervisorMsg::RetryStart {
                bot_instance_id,
                generation,
            } => state.retry(&myself, bot_instance_id, generation).await,
            SupervisorMsg::BotRunning {
                bot_instance_id,
                actor,
            } => state.running(bot_instance_id, actor),
            SupervisorMsg::Nudge(ids) => state.nudge(ids),
            SupervisorMsg::ReconcileAll => state.reconcile_all(),
            SupervisorMsg::RestartService(service) => {
                let running = match service {
                    Service::Registry => state.registry.is_some(),
                    Service::Broadcaster => state.broadcaster.is_some(),
                    Service::Alerter => state.alerter.is_some(),
                };
                if !running {
                    state.start_service(&myself, service).await;
                }
            }
            SupervisorMsg::Refresh => {
                state.refresh_queued = false;
                state.refresh_view();
                return Ok(());
            }
            SupervisorMsg::Managed(reply) => drop(reply.send(state.managed())),
            SupervisorMsg::Status(reply) => drop(reply.send(state.status())),
            SupervisorMsg::Shutdown(reply) => {
                state.shutdown().await;
                drop(reply.send(()));
            }
        }
        state.queue_refresh(&myself);
        Ok(())
    }

    /// Overrides ractor's default, which would stop the whole tree when any bot exits.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let cell = match &event {
            SupervisionEvent::ActorFailed(cell, _)
            | SupervisionEvent::ActorTerminated(cell, _, _) => cell.clone(),
            _ => return Ok(()),
        };
        // The tree's services follow `SERVICE_RESTARTS`; bots their own policy.
        let service = if state
            .alerter
            .as_ref()
            .is_some_and(|a| a.get_id() == cell.get_id())
        {
            Some(Service::Alerter)
        } else if state
            .registry
            .as_ref()
            .is_some_and(|r| r.get_id() == cell.get_id())
        {
            Some(Service::Registry)
        } else if state
            .broadcaster
            .as_ref()
            .is_some_and(|b| b.get_id() == cell.get_id())
        {
            Some(Service::Broadcaster)
        } else {
            None
        };
        if let Some(service) = service {
            let reason = match &event {
                SupervisionEvent::ActorFailed(_, error) => format!("failed: {error}"),
                SupervisionEvent::ActorTerminated(_, _, Some(reason)) => {
                    format!("stopped: {reason}")
                }
                _ => "stopped".to_string(),
            };
            state.service_stopped(&myself, service, reason);
            return Ok(());
        }
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                state
                    .child_failed(&myself, &cell, failure_of(error.as_ref()))
                    .await
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                state.child_exited(&myself, &cell, reason).await
            }
            _ => {}
        }
        state.queue_refresh(&myself);
        Ok(())
    }
}

fn failure_of(error: &(dyn std::error::Error + Send + Sync + 'static)) -> Failure {
    error
        .downcast_ref::<Failure>()
        .cloned()
        .unwrap_or_else(|| Failure::Died(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_classified_failure_survives_the_trip_through_ractor_and_anything_else_is_a_death() {
        let classified: ActorProcessingErr = Box::new(Failure::Conflict);
        assert_eq!(failure_of(classified.as_ref()), Failure::Conflict);
        let other: ActorProcessingErr = "the dispatcher panicked".into();
        assert_eq!(
            failure_of(other.as_ref()),
            Failure::Died("the dispatcher panicked".into())
        );
    }
}
