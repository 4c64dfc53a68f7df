//! The root Supervisor: owns the Registry, the Broadcaster and one BotActor per enabled bot, and the
//! restart policy. It overrides ractor's default (which stops a supervisor when any child exits) and
//! treats spawn errors (`pre_start` failures) the same as supervision events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};
use serde_json::json;
use tokio::sync::broadcast;

use super::bot::{BotActor, BotArgs, BotRef};
use super::broadcaster::{Broadcaster, BroadcasterArgs, BroadcasterMsg, BroadcasterRef, Event};
use super::policy::{FailureWindow, RestartPolicy};
use super::registry::{Action, Registry, RegistryArgs, RegistryMsg, RegistryRef};
use crate::db::{BotRow, RunStateUpdate, Store, now_ms};
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
    /// A BotActor passed `getMe` and is polling.
    BotRunning { bot_instance_id: i64 },
    /// Ask the Registry to reconcile now.
    Nudge,
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
}

/// What a running actor is doing besides running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Nothing,
    Stop,
    Restart,
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

    /// The Broadcaster first (bots' first transitions go through it), then the Registry, whose
    /// first reconcile starts every enabled bot.
    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.spawn_broadcaster(&myself).await?;
        state.spawn_registry(&myself).await?;
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
            SupervisorMsg::BotRunning { bot_instance_id } => state.running(bot_instance_id),
            SupervisorMsg::Nudge => state.nudge(),
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

impl SupervisorState {
    async fn spawn_broadcaster(&mut self, myself: &SupervisorRef) -> Result<(), SpawnErr> {
        let args = BroadcasterArgs {
            store: self.args.store.clone(),
            sender: self.args.events.clone(),
        };
        let (broadcaster, _) =
            Actor::spawn_linked(None, Broadcaster, args, myself.get_cell()).await?;
        self.broadcaster = Some(broadcaster);
        Ok(())
    }

    async fn spawn_registry(&mut self, myself: &SupervisorRef) -> Result<(), SpawnErr> {
        let args = RegistryArgs {
            store: self.args.store.clone(),
            supervisor: myself.clone(),
            poll_interval: self.args.poll_interval,
            full_interval: self.args.full_interval,
        };
        let (registry, _) = Actor::spawn_linked(None, Registry, args, myself.get_cell()).await?;
        self.registry = Some(registry);
        Ok(())
    }

    async fn apply(&mut self, myself: &SupervisorRef, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Start(row) => self.start(myself, *row).await,
                Action::Stop(id) => self.stop(id),
                Action::Restart(row) => self.restart(myself, *row).await,
            }
        }
    }

    async fn start(&mut self, myself: &SupervisorRef, row: BotRow) {
        if self.shutting_down || self.children.contains_key(&row.id) {
            return;
        }
        let id = row.id;
        self.children.insert(
            id,
            Child {
                row,
                state: RunState::Stopped,
                reason: None,
                actor: None,
                after_exit: After::Nothing,
                generation: 0,
                attempt: 0,
                failures: FailureWindow::default(),
                running_since: None,
                restart_count: 0,
            },
        );
        self.spawn(myself, id, false).await;
    }

    /// Starts the bot's actor. Exactly one actor per bot: callers only spawn when `actor` is `None`.
    async fn spawn(&mut self, myself: &SupervisorRef, id: i64, restarted: bool) {
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        child.generation += 1;
        child.after_exit = After::Nothing;
        if restarted {
            child.restart_count += 1;
        }
        let args = BotArgs {
            row: child.row.clone(),
            vault: self.args.vault.clone(),
            http: self.args.http.clone(),
            api_url: self.args.api_url.clone(),
            handler: self.args.handler.clone(),
            supervisor: myself.clone(),
        };
        self.transition(id, RunState::Starting, None, None, restarted);
        match Actor::spawn_linked(None, BotActor, args, myself.get_cell()).await {
            Ok((actor, _)) => {
                self.by_actor.insert(actor.get_id(), id);
                if let Some(child) = self.children.get_mut(&id) {
                    child.actor = Some(actor);
                }
            }
            Err(SpawnErr::StartupFailed(error)) => {
                self.failed(myself, id, failure_of(error.as_ref()))
            }
            Err(error) => self.failed(myself, id, Failure::Died(error.to_string())),
        }
    }

    fn running(&mut self, id: i64) {
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        child.running_since = Some(Instant::now());
        self.transition(id, RunState::Running, None, None, false);
    }

    fn stop(&mut self, id: i64) {
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        match &child.actor {
            Some(actor) => {
                child.after_exit = After::Stop;
                child.generation += 1;
                actor.stop(Some("stop requested".into()));
                self.transition(id, RunState::Stopping, None, None, false);
            }
            None => {
                self.children.remove(&id);
                self.transition(
                    id,
                    RunState::Stopped,
                    Some("stopped by an admin".into()),
                    None,
                    false,
                );
            }
        }
    }

    /// A graceful stop then a start; a parked (failed) bot starts afresh.
    async fn restart(&mut self, myself: &SupervisorRef, row: BotRow) {
        let id = row.id;
        let Some(child) = self.children.get_mut(&id) else {
            return self.start(myself, row).await;
        };
        child.row = row;
        child.attempt = 0;
        child.failures.clear();
        match &child.actor {
            Some(actor) => {
                child.after_exit = After::Restart;
                child.generation += 1;
                actor.stop(Some("restart requested".into()));
                self.transition(
                    id,
                    RunState::Stopping,
                    Some("restarting".into()),
                    None,
                    false,
                );
            }
            None => self.spawn(myself, id, false).await,
        }
    }

    async fn retry(&mut self, myself: &SupervisorRef, id: i64, generation: u64) {
        let due = self.children.get(&id).is_some_and(|c| {
            c.generation == generation && c.actor.is_none() && c.state == RunState::Backoff
        });
        if due && !self.shutting_down {
            self.spawn(myself, id, true).await;
        }
    }

    async fn child_exited(
        &mut self,
        myself: &SupervisorRef,
        cell: &ActorCell,
        reason: Option<String>,
    ) {
        let Some(id) = self.by_actor.remove(&cell.get_id()) else {
            return;
        };
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        child.actor = None;
        child.running_since = None;
        match child.after_exit {
            After::Stop => {
                self.children.remove(&id);
                self.transition(
                    id,
                    RunState::Stopped,
                    Some("stopped by an admin".into()),
                    None,
                    false,
                );
            }
            After::Restart => self.spawn(myself, id, false).await,
            // `shutdown` records these stops itself, once.
            After::Nothing if self.shutting_down => {}
            After::Nothing => self.failed(
                myself,
                id,
                Failure::Died(reason.unwrap_or_else(|| "exited".into())),
            ),
        }
    }

    async fn child_failed(&mut self, myself: &SupervisorRef, cell: &ActorCell, failure: Failure) {
        let Some(id) = self.by_actor.remove(&cell.get_id()) else {
            return;
        };
        if let Some(child) = self.children.get_mut(&id) {
            child.actor = None;
            if child.after_exit == After::Restart {
                return self.spawn(myself, id, false).await;
            }
            if child.after_exit == After::Stop {
                self.children.remove(&id);
                return self.transition(
                    id,
                    RunState::Stopped,
                    Some("stopped by an admin".into()),
                    None,
                    false,
                );
            }
        }
        self.failed(myself, id, failure);
    }

    /// The restart policy: park permanent failures and flapping bots, back off the rest.
    fn failed(&mut self, myself: &SupervisorRef, id: i64, failure: Failure) {
        let policy = self.args.policy;
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        child.actor = None;
        tracing::warn!(bot_instance_id = id, %failure, "bot failed");
        if self.shutting_down {
            return;
        }
        if failure.is_permanent() {
            let state = if failure == Failure::InvalidToken {
                RunState::Stopped
            } else {
                RunState::Failed
            };
            return self.transition(
                id,
                state,
                Some(failure.to_string()),
                Some(failure.to_string()),
                false,
            );
        }
        if child
            .running_since
            .take()
            .is_some_and(|since| since.elapsed() >= policy.stable_after)
        {
            child.attempt = 0;
        }
        if child.failures.record(Instant::now(), &policy) {
            let reason = format!(
                "flapping: {} failures within {:?}; last: {failure}",
                child.failures.len(),
                policy.window
            );
            return self.transition(
                id,
                RunState::Failed,
                Some(reason),
                Some(failure.to_string()),
                false,
            );
        }
        let retry_after = match &failure {
            Failure::Transient { retry_after, .. } => *retry_after,
            _ => None,
        };
        let delay = policy.delay(child.attempt, retry_after);
        child.attempt += 1;
        child.generation += 1;
        let generation = child.generation;
        let next = now_ms() + delay.as_millis() as i64;
        self.transition(
            id,
            RunState::Backoff,
            Some(failure.to_string()),
            Some(failure.to_string()),
            false,
        );
        if let Some(child) = self.children.get(&id) {
            self.publish_backoff(id, child, next);
        }
        let supervisor = myself.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = supervisor.cast(SupervisorMsg::RetryStart {
                bot_instance_id: id,
                generation,
            });
        });
    }

    fn publish_backoff(&self, id: i64, child: &Child, next_attempt_at: i64) {
        let update = RunStateUpdate {
            state: RunState::Backoff,
            reason: child.reason.clone(),
            last_error: None,
            next_attempt_at: Some(next_attempt_at),
            restarted: false,
        };
        let payload = json!({ "attempt": child.attempt });
        self.broadcast(BroadcasterMsg::BotStatus {
            bot_instance_id: id,
            update,
            payload,
        });
    }

    fn broadcast(&self, message: BroadcasterMsg) {
        if let Some(broadcaster) = &self.broadcaster {
            // A Broadcaster that just died is being restarted; this one event is lost, the row is not.
            let _ = broadcaster.cast(message);
        }
    }

    /// Records a state change and hands it to the Broadcaster (which persists and publishes it).
    fn transition(
        &mut self,
        id: i64,
        state: RunState,
        reason: Option<String>,
        last_error: Option<String>,
        restarted: bool,
    ) {
        let attempt = match self.children.get_mut(&id) {
            Some(child) => {
                child.state = state;
                child.reason = reason.clone();
                child.attempt
            }
            None => 0,
        };
        if state == RunState::Backoff {
            // Published with its next attempt time by `publish_backoff`.
            return;
        }
        tracing::info!(
            bot_instance_id = id,
            state = state.as_str(),
            reason = reason.as_deref().unwrap_or(""),
            "bot state"
        );
        let update = RunStateUpdate {
            state,
            reason,
            last_error,
            next_attempt_at: None,
            restarted,
        };
        let payload = json!({ "attempt": attempt });
        self.broadcast(BroadcasterMsg::BotStatus {
            bot_instance_id: id,
            update,
            payload,
        });
    }

    fn nudge(&self) {
        if let Some(registry) = &self.registry {
            let _ = registry.cast(RegistryMsg::Reconcile);
        }
    }

    fn managed(&self) -> HashMap<i64, i64> {
        self.children
            .iter()
            .map(|(id, child)| (*id, child.row.config_version))
            .collect()
    }

    fn status(&self) -> Vec<BotStatus> {
        let mut all: Vec<BotStatus> = self
            .children
            .iter()
            .map(|(id, c)| BotStatus {
                bot_instance_id: *id,
                state: c.state,
                reason: c.reason.clone(),
                restart_count: c.restart_count,
                attempt: c.attempt,
                uptime: c.running_since.map(|t| t.elapsed()),
            })
            .collect();
        all.sort_by_key(|s| s.bot_instance_id);
        all
    }

    /// Stops every bot at once and waits for all of them (each bounded by its stop grace).
    async fn shutdown(&mut self) {
        self.shutting_down = true;
        if let Some(registry) = self.registry.take() {
            registry.stop(None);
        }
        let actors: Vec<(i64, BotRef)> = self
            .children
            .iter()
            .filter_map(|(id, c)| c.actor.clone().map(|a| (*id, a)))
            .collect();
        let stops = actors.iter().map(|(_, actor)| {
            actor.stop_and_wait(
                Some("service shutting down".into()),
                Some(Duration::from_secs(9)),
            )
        });
        futures_util::future::join_all(stops).await;
        for (id, _) in actors {
            if let Some(child) = self.children.get_mut(&id) {
                // The exit event that follows must not record the stop a second time.
                child.actor = None;
            }
            self.transition(
                id,
                RunState::Stopped,
                Some("service shutting down".into()),
                None,
                false,
            );
        }
        // The last transitions must reach the database before the tree goes away.
        if let Some(broadcaster) = &self.broadcaster
            && let Err(error) = ractor::call_t!(broadcaster, BroadcasterMsg::Drain, 5_000)
        {
            tracing::warn!(%error, "could not record the final bot states");
        }
    }
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
