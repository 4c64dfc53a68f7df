//! The supervisor's bookkeeping: starting, stopping and restarting bots, applying the restart
//! policy to failures, recording transitions, and the whole-tree shutdown.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ractor::{ActorCell, ActorId, SpawnErr};
use serde_json::json;

use super::view::SeenBot;
use super::{After, BotStatus, Child, SupervisorMsg, SupervisorRef, SupervisorState, failure_of};
use crate::actors::bot::{self, BotArgs, BotMsg, BotRef, Delivery};
use crate::actors::broadcaster::{self, BroadcasterArgs, BroadcasterMsg};
use crate::actors::policy::{Cure, FailureWindow, cure};
use crate::actors::registry::{self, Action, RegistryArgs, RegistryMsg};
use crate::db::{BotRow, RunStateUpdate, now_ms};
use crate::domain::{ReasonCode, RunState};
use crate::telegram::{Failure, Fence};

/// Why a bot's actor is spawned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spawn {
    /// It joins the managed set.
    First,
    /// Once more after it stopped on its own: its backoff elapsed, or an admin started it again
    /// after it was parked. Counted as a restart.
    Again,
    /// An admin asked for a restart (or its config changed): counted, and shown as `restarting`.
    Restart,
}

/// A failed bot's wait before its next start, as recorded.
pub(super) struct Backoff {
    pub code: Option<ReasonCode>,
    pub reason: Option<String>,
    pub last_error: Option<String>,
    pub attempt: u32,
    /// Unix ms.
    pub next_attempt_at: i64,
}

impl SupervisorState {
    pub(super) async fn spawn_broadcaster(
        &mut self,
        myself: &SupervisorRef,
    ) -> Result<(), SpawnErr> {
        let args = BroadcasterArgs {
            store: self.args.store.clone(),
            sender: self.args.events.clone(),
            outbox: self.args.outbox.clone(),
        };
        let broadcaster = broadcaster::spawn(args, myself.get_cell()).await?;
        self.broadcaster = Some(broadcaster);
        Ok(())
    }

    pub(super) async fn spawn_registry(&mut self, myself: &SupervisorRef) -> Result<(), SpawnErr> {
        let args = RegistryArgs {
            store: self.args.store.clone(),
            supervisor: myself.clone(),
            poll_interval: self.args.poll_interval,
            full_interval: self.args.full_interval,
            leases: self.args.leases.clone(),
            arrivals: match &self.args.delivery {
                Delivery::Webhook(webhooks) => Some(webhooks.arrivals().clone()),
                Delivery::Polling => None,
            },
        };
        let registry = registry::spawn(args, myself.get_cell()).await?;
        self.registry = Some(registry);
        Ok(())
    }

    pub(super) async fn spawn_alerter(&mut self, myself: &SupervisorRef) -> Result<(), SpawnErr> {
        let Some(args) = self.args.alerts.clone() else {
            return Ok(());
        };
        self.alerter = Some(crate::actors::alerter::spawn(args, myself.get_cell()).await?);
        Ok(())
    }

    pub(super) async fn apply(&mut self, myself: &SupervisorRef, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Start(row) => self.start(myself, *row).await,
                Action::Stop(id) => self.stop(id),
                Action::Restart(row) => self.restart(myself, *row).await,
                Action::Release(id) => self.release(id),
            }
        }
    }

    pub(super) async fn start(&mut self, myself: &SupervisorRef, row: BotRow) {
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
                reason_code: None,
                actor: None,
                after_exit: After::Nothing,
                generation: 0,
                attempt: 0,
                failures: FailureWindow::default(),
                running_since: None,
                restart_count: 0,
            },
        );
        self.spawn(myself, id, Spawn::First).await;
    }

    /// Starts the bot's actor. Exactly one actor per bot: callers only spawn when `actor` is `None`.
    pub(super) async fn spawn(&mut self, myself: &SupervisorRef, id: i64, kind: Spawn) {
        // With leases, only while this node holds the bot's (a retry may come after it moved).
        let fence = match &self.args.leases {
            None => Fence::open(),
            Some(leases) => match leases.fence(id) {
                Some(fence) => fence,
                None => {
                    self.children.remove(&id);
                    return;
                }
            },
        };
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        child.generation += 1;
        child.after_exit = After::Nothing;
        let restarted = kind != Spawn::First;
        if restarted {
            child.restart_count += 1;
        }
        let args = BotArgs {
            fence,
            row: child.row.clone(),
            vault: self.args.vault.clone(),
            http: self.args.http.clone(),
            api_url: self.args.api_url.clone(),
            handler: self.args.handler.clone(),
            supervisor: myself.clone(),
            events: self.args.publisher.clone(),
            delivery: self.args.delivery.clone(),
        };
        // A restart an admin asked for stays visible as such until the bot runs again.
        let reason =
            (kind == Spawn::Restart).then(|| (ReasonCode::Restarting, "restarting".to_string()));
        self.transition(id, RunState::Starting, reason, None, restarted);
        match bot::spawn(args, myself.get_cell()).await {
            Ok(actor) => {
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

    /// The end of an admin's stop: the bot leaves the managed set.
    fn stopped_by_admin(&mut self, id: i64) {
        self.children.remove(&id);
        self.transition(
            id,
            RunState::Stopped,
            Some((ReasonCode::StoppedByAdmin, "stopped by an admin".into())),
            None,
            false,
        );
    }

    pub(super) fn running(&mut self, id: i64, actor: ActorId) {
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        // A late word from an actor that has failed since: the bot is in backoff, and calling it
        // running would make the backoff's retry a no-op, leaving it dead under a running badge.
        if child
            .actor
            .as_ref()
            .is_none_or(|current| current.get_id() != actor)
        {
            return;
        }
        child.running_since = Some(Instant::now());
        self.transition(id, RunState::Running, None, None, false);
    }

    pub(super) fn stop(&mut self, id: i64) {
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        match &child.actor {
            // Already on its way out: the wish repeated (the registry's next poll sees the bot
            // still managed until it has stopped) changes nothing and says nothing again.
            Some(_) if child.after_exit == After::Stop => {}
            Some(actor) => {
                child.after_exit = After::Stop;
                child.generation += 1;
                // Stopped for good: in webhook mode the bot also deletes its webhook.
                if actor.cast(BotMsg::Retire).is_err() {
                    actor.stop(Some("stop requested".into()));
                }
                self.transition(id, RunState::Stopping, None, None, false);
            }
            None => {
                self.stopped_by_admin(id);
            }
        }
    }

    /// Another node runs the bot from now on: a graceful stop (its last updates confirmed under
    /// the lease it still holds), and nothing recorded, since the next runner records its own.
    pub(super) fn release(&mut self, id: i64) {
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        match &child.actor {
            Some(_) if child.after_exit == After::Release => {}
            Some(actor) => {
                child.after_exit = After::Release;
                child.generation += 1;
                actor.stop(Some("another node runs the bot now".into()));
            }
            None => {
                self.children.remove(&id);
            }
        }
    }

    /// Whether a bot that failed may be started again here: always without leases; with them,
    /// only while this node still holds the bot's lease.
    fn holds(&self, id: i64) -> bool {
        self.args.leases.as_ref().is_none_or(|l| l.runs(id))
    }

    /// A graceful stop then a start; a parked (failed) bot starts afresh.
    pub(super) async fn restart(&mut self, myself: &SupervisorRef, row: BotRow) {
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
                    Some((ReasonCode::Restarting, "restarting".into())),
                    None,
                    false,
                );
            }
            // Parked (failed, or halted on an invalid token): started again, nothing to stop.
            None => self.spawn(myself, id, Spawn::Again).await,
        }
    }

    pub(super) async fn retry(&mut self, myself: &SupervisorRef, id: i64, generation: u64) {
        let due = self.children.get(&id).is_some_and(|c| {
            c.generation == generation && c.actor.is_none() && c.state == RunState::Backoff
        });
        if due && !self.shutting_down {
            self.spawn(myself, id, Spawn::Again).await;
        }
    }

    pub(super) async fn child_exited(
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
                self.stopped_by_admin(id);
            }
            After::Release => {
                self.children.remove(&id);
            }
            After::Restart => self.spawn(myself, id, Spawn::Restart).await,
            // `shutdown` records these stops itself, once.
            After::Nothing if self.shutting_down => {}
            After::Nothing => self.failed(
                myself,
                id,
                Failure::Died(reason.unwrap_or_else(|| "exited".into())),
            ),
        }
    }

    pub(super) async fn child_failed(
        &mut self,
        myself: &SupervisorRef,
        cell: &ActorCell,
        failure: Failure,
    ) {
        let Some(id) = self.by_actor.remove(&cell.get_id()) else {
            return;
        };
        if let Some(child) = self.children.get_mut(&id) {
            child.actor = None;
            if child.after_exit == After::Restart {
                return self.spawn(myself, id, Spawn::Restart).await;
            }
            if child.after_exit == After::Stop {
                return self.stopped_by_admin(id);
            }
            if child.after_exit == After::Release {
                self.children.remove(&id);
                return;
            }
        }
        self.failed(myself, id, failure);
    }

    /// The restart policy, as [`cure`] sorts the failure: halt what retrying cannot fix, ride out
    /// Telegram's weather for as long as it lasts, and park a bot whose own faults repeat.
    pub(super) fn failed(&mut self, myself: &SupervisorRef, id: i64, failure: Failure) {
        let policy = self.args.policy;
        if !self.holds(id) {
            // Its lease ended meanwhile (it failed because its fence closed, most likely): the
            // bot's next runner records its state, not this node.
            tracing::info!(bot_instance_id = id, %failure, "bot stopped: this node's lease on it ended");
            self.children.remove(&id);
            return;
        }
        let Some(child) = self.children.get_mut(&id) else {
            return;
        };
        child.actor = None;
        tracing::warn!(bot_instance_id = id, %failure, "bot failed");
        if self.shutting_down {
            return;
        }
        if child
            .running_since
            .take()
            .is_some_and(|since| since.elapsed() >= policy.stable_after)
        {
            child.attempt = 0;
        }
        let retry_after = match cure(&failure) {
            Cure::Halt(state) => {
                return self.transition(
                    id,
                    state,
                    Some((failure.code(), failure.to_string())),
                    Some(failure.to_string()),
                    false,
                );
            }
            Cure::RideOut { retry_after } => retry_after,
            Cure::Retry => {
                if child.failures.record(Instant::now(), &policy) {
                    let reason = format!(
                        "flapping: {} failures within {:?}; last: {failure}",
                        child.failures.len(),
                        policy.window
                    );
                    return self.transition(
                        id,
                        RunState::Failed,
                        Some((ReasonCode::CrashLoop, reason)),
                        Some(failure.to_string()),
                        false,
                    );
                }
                None
            }
        };
        let delay = policy.delay(child.attempt, retry_after);
        child.attempt += 1;
        child.generation += 1;
        let generation = child.generation;
        let next = now_ms() + delay.as_millis() as i64;
        self.transition(
            id,
            RunState::Backoff,
            Some((failure.code(), failure.to_string())),
            Some(failure.to_string()),
            false,
        );
        if let Some((code, reason, attempt)) = self
            .children
            .get(&id)
            .map(|c| (c.reason_code, c.reason.clone(), c.attempt))
        {
            let backoff = Backoff {
                code,
                reason,
                last_error: Some(failure.to_string()),
                attempt,
                next_attempt_at: next,
            };
            self.publish_backoff(id, backoff);
        }
        // ractor's timer: it ends with the supervisor (the message then has no one to reach).
        myself.send_after(delay, move || SupervisorMsg::RetryStart {
            bot_instance_id: id,
            generation,
        });
    }

    pub(super) fn publish_backoff(&mut self, id: i64, backoff: Backoff) {
        let update = RunStateUpdate {
            state: RunState::Backoff,
            reason: backoff.reason,
            code: backoff.code,
            // Every failure is the bot's last error, a transient one too: "why did it restart?"
            last_error: backoff.last_error,
            next_attempt_at: Some(backoff.next_attempt_at),
            restarted: false,
            attempt: backoff.attempt,
        };
        let payload = json!({ "attempt": backoff.attempt });
        self.broadcast(BroadcasterMsg::BotStatus {
            bot_instance_id: id,
            update,
            payload,
        });
    }

    /// Hands a transition to the Broadcaster, or holds it (in order) while none runs: the
    /// Broadcaster is what writes the bot's state to `bot_instances`, so none may be lost.
    pub(super) fn broadcast(&mut self, message: BroadcasterMsg) {
        let message = match &self.broadcaster {
            Some(broadcaster) => match broadcaster.cast(message) {
                Ok(()) => return,
                Err(ractor::MessagingErr::SendErr(message)) => message,
                // Only `SendErr` gives the message back; the others mean it was not taken either.
                Err(_) => return,
            },
            None => message,
        };
        if self.held_statuses.len() >= crate::actors::broadcaster::MAX_HELD {
            self.held_statuses.remove(0);
            crate::metrics::events_dropped(1);
        }
        self.held_statuses.push(message);
    }

    /// A Broadcaster runs again: what was held goes to it first.
    pub(super) fn release_held_statuses(&mut self) {
        for message in std::mem::take(&mut self.held_statuses) {
            self.broadcast(message);
        }
    }

    /// Asks for a [`TreeView`](super::view::TreeView) refresh after the messages already queued.
    pub(super) fn queue_refresh(&mut self, myself: &SupervisorRef) {
        if !self.refresh_queued {
            self.refresh_queued = myself.cast(SupervisorMsg::Refresh).is_ok();
        }
    }

    pub(super) fn refresh_view(&self) {
        let mut bots: Vec<SeenBot> = self
            .children
            .iter()
            .map(|(id, c)| SeenBot {
                status: BotStatus {
                    bot_instance_id: *id,
                    state: c.state,
                    reason: c.reason.clone(),
                    restart_count: c.restart_count,
                    attempt: c.attempt,
                    uptime: None,
                },
                running_since: c.running_since,
            })
            .collect();
        bots.sort_by_key(|b| b.status.bot_instance_id);
        self.view.set_bots(bots);
    }

    /// Records a state change and hands it to the Broadcaster (which persists and publishes it).
    pub(super) fn transition(
        &mut self,
        id: i64,
        state: RunState,
        reason: Option<(ReasonCode, String)>,
        last_error: Option<String>,
        restarted: bool,
    ) {
        let (code, reason) = reason.unzip();
        let attempt = match self.children.get_mut(&id) {
            Some(child) => {
                child.state = state;
                child.reason = reason.clone();
                child.reason_code = code;
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
            code,
            last_error,
            next_attempt_at: None,
            restarted,
            attempt,
        };
        let payload = json!({ "attempt": attempt });
        self.broadcast(BroadcasterMsg::BotStatus {
            bot_instance_id: id,
            update,
            payload,
        });
    }

    pub(super) fn reconcile_all(&self) {
        if let Some(registry) = &self.registry {
            // A stopped Registry is being restarted; its first reconcile covers every bot.
            let _ = registry.cast(RegistryMsg::Reconcile);
        }
    }

    /// Passes an admin's change of these bots to the Registry (a no-op where none runs here).
    pub(super) fn nudge(&self, ids: Vec<i64>) {
        if let Some(registry) = &self.registry {
            // A stopped Registry is being restarted; its first reconcile covers every bot.
            let _ = registry.cast(RegistryMsg::Nudged(ids));
        }
    }

    pub(super) fn managed(&self) -> HashMap<i64, i64> {
        self.children
            .iter()
            .map(|(id, child)| (*id, child.row.config_version))
            .collect()
    }

    pub(super) fn status(&self) -> Vec<BotStatus> {
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
    pub(super) async fn shutdown(&mut self) {
        self.shutting_down = true;
        if let Some(registry) = self.registry.take() {
            registry.stop(None);
        }
        if let Some(alerter) = self.alerter.take() {
            alerter.stop(None);
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
                Some((ReasonCode::ShuttingDown, "service shutting down".into())),
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
