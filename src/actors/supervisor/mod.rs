//! The root Supervisor: owns the Registry, the Broadcaster and one BotActor per enabled bot, and the
//! restart policy. It overrides ractor's default (which stops a supervisor when any child exits) and
//! treats spawn errors (`pre_start` failures) the same as supervision events. The bookkeeping behind
//! each message lives in `lifecycle.rs`.

mod lifecycle;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::broadcast;

use super::bot::BotRef;
use super::broadcaster::{BroadcasterMsg, BroadcasterRef, Event};
use super::leases::Leases;
use super::policy::{FailureWindow, RestartPolicy};
use super::registry::{Action, RegistryRef};
use crate::db::{BotRow, Store};
use crate::domain::RunState;
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
    /// Ask the Registry to reconcile now.
    Nudge,
    /// Hand an event to the current Broadcaster (bots publish through here, so a restarted
    /// Broadcaster never leaves them holding a dead reference).
    Publish {
        kind: String,
        bot_instance_id: Option<i64>,
        payload: serde_json::Value,
    },
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
    /// SQLite: how often the Registry looks for changes; both: how often it reconciles fully.
    pub poll_interval: Duration,
    pub full_interval: Duration,
    /// Whether to spawn the Registry, and so run bots (see `FleetOptions::runs_bots`).
    pub runs_bots: bool,
    /// On PostgreSQL, the bots this node holds (see `actors::leases`); `None` runs them all.
    pub leases: Option<Leases>,
    /// How the bots receive updates.
    pub delivery: super::bot::Delivery,
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
    children: HashMap<i64, Child>,
    by_actor: HashMap<ActorId, i64>,
    shutting_down: bool,
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
            args,
            broadcaster: None,
            registry: None,
            children: HashMap::new(),
            by_actor: HashMap::new(),
            shutting_down: false,
        })
    }

    /// The Broadcaster first (bots' first transitions go through it), then, where this process runs
    /// bots, the Registry, whose first reconcile starts every enabled bot.
    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.spawn_broadcaster(&myself).await?;
        if state.args.runs_bots {
            state.spawn_registry(&myself).await?;
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
            SupervisorMsg::Nudge => state.nudge(),
            SupervisorMsg::Publish {
                kind,
                bot_instance_id,
                payload,
            } => {
                if let Some(broadcaster) = &state.broadcaster {
                    let _ = broadcaster.cast(BroadcasterMsg::Publish {
                        kind,
                        bot_instance_id,
                        payload,
                    });
                }
            }
            SupervisorMsg::Managed(reply) => drop(reply.send(state.managed())),
            SupervisorMsg::Status(reply) => drop(reply.send(state.status())),
            SupervisorMsg::Shutdown(reply) => {
                state.shutdown().await;
                drop(reply.send(()));
            }
        }
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
        // The Registry and the Broadcaster are restarted at once; only bots have a backoff.
        if state
            .registry
            .as_ref()
            .is_some_and(|r| r.get_id() == cell.get_id())
        {
            state.registry = None;
            if !state.shutting_down {
                tracing::error!("the registry stopped; restarting it");
                state.spawn_registry(&myself).await?;
            }
            return Ok(());
        }
        if state
            .broadcaster
            .as_ref()
            .is_some_and(|b| b.get_id() == cell.get_id())
        {
            tracing::error!("the broadcaster stopped; restarting it");
            state.spawn_broadcaster(&myself).await?;
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
