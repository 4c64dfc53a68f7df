//! The Broadcaster: the one seam events leave the fleet through. It writes each event to the
//! `events` table (which gives it its id and makes it replayable), records bot state transitions in
//! `bot_instances`, and fans the event out to any number of subscribers.
//!
//! While the database cannot store events they are held (up to [`MAX_HELD`], the oldest dropped
//! beyond it, counted) and offered again with a growing pause; each reaches subscribers once it is
//! stored, with its id, so the feed and a replay from the table agree.
//!
//! Publishers anywhere in the process hand events over through [`crate::events::Publisher`]; the
//! Broadcaster drains that channel's [`Outbox`] with a task it owns (aborted when it stops, so the
//! next Broadcaster takes its turn), never through the root supervisor's mailbox.
//!
//! Fan-out is a bounded ring (`tokio::sync::broadcast`): a subscriber that falls behind by more than
//! its capacity is told how many events it missed (`Lagged`) and resyncs from the `events` table; it
//! never makes memory grow.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr};
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::task::AbortOnDropHandle;

use crate::db::{NewEvent, RunStateUpdate, Store};
use crate::events::{Event, Outbox, Published};

/// Events held while the database cannot store them; beyond this the oldest are dropped.
pub const MAX_HELD: usize = 100_000;

pub type BroadcasterRef = ActorRef<BroadcasterMsg>;

pub enum BroadcasterMsg {
    /// Store the event, then deliver it to every subscriber.
    Publish(Published),
    /// Record an observed bot state in `bot_instances` and publish it as a `bot_status` event.
    BotStatus {
        bot_instance_id: i64,
        update: RunStateUpdate,
        payload: Value,
    },
    /// Internal: write what has queued up since the last flush, in one transaction.
    Flush,
    /// Write everything queued so far, then answer (used before shutting down).
    Drain(ractor::RpcReplyPort<()>),
}

pub struct BroadcasterArgs {
    pub store: Store,
    pub sender: broadcast::Sender<Arc<Event>>,
    /// Where the tree's publishers' events arrive (see [`crate::events`]).
    pub outbox: Outbox,
}

pub struct BroadcasterState {
    store: Store,
    sender: broadcast::Sender<Arc<Event>>,
    pending: Vec<NewEvent>,
    flush_queued: bool,
    /// Failed writes in a row (the pause before the next grows with it).
    failures: u32,
    outbox: Outbox,
    /// Moves published events from the outbox into this mailbox; ends with this state, however
    /// the actor ends (which frees the outbox for the next Broadcaster).
    pump: Option<AbortOnDropHandle<()>>,
}

pub struct Broadcaster;

/// Starts the Broadcaster linked to `supervisor`; it takes its turn at the outbox at once.
pub(crate) async fn spawn(
    args: BroadcasterArgs,
    supervisor: ActorCell,
) -> Result<BroadcasterRef, SpawnErr> {
    Actor::spawn_linked(None, Broadcaster, args, supervisor)
        .await
        .map(|(actor, _)| actor)
}

impl Actor for Broadcaster {
    type Msg = BroadcasterMsg;
    type State = BroadcasterState;
    type Arguments = BroadcasterArgs;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(BroadcasterState {
            store: args.store,
            sender: args.sender,
            pending: Vec::new(),
            flush_queued: false,
            failures: 0,
            outbox: args.outbox,
            pump: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.start_pump(myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BroadcasterMsg::Publish(published) => state.queue(&myself, new_event(published)),
            BroadcasterMsg::BotStatus {
                bot_instance_id,
                update,
                payload,
            } => state.queue(&myself, status_event(bot_instance_id, update, payload)),
            BroadcasterMsg::Flush => state.flush(&myself).await,
            BroadcasterMsg::Drain(reply) => {
                state.take_published().await;
                state.start_pump(myself.clone());
                state.flush(&myself).await;
                // The caller may have given up waiting; the events are stored either way.
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

fn new_event(published: Published) -> NewEvent {
    NewEvent {
        kind: published.kind.as_str().into(),
        bot_instance_id: published.bot_instance_id,
        payload: published.payload,
        transition: None,
    }
}

fn status_event(bot_instance_id: i64, update: RunStateUpdate, mut payload: Value) -> NewEvent {
    payload["bot_instance_id"] = bot_instance_id.into();
    payload["state"] = update.state.as_str().into();
    payload["reason"] = update.reason.clone().into();
    payload["reason_code"] = update.code.map(|code| code.as_str()).into();
    payload["next_attempt_at"] = update.next_attempt_at.into();
    NewEvent {
        kind: crate::domain::EventKind::BotStatus.as_str().into(),
        bot_instance_id: Some(bot_instance_id),
        payload,
        transition: Some(update),
    }
}

impl BroadcasterState {
    /// Takes the outbox's turn: holds its lock while this Broadcaster lives. Through the mailbox
    /// (rather than storing here) so published events and `BotStatus` keep one order and batch.
    fn start_pump(&mut self, myself: BroadcasterRef) {
        let outbox = self.outbox.clone();
        self.pump = Some(AbortOnDropHandle::new(tokio::spawn(async move {
            let mut turn = outbox.lock().await;
            while let Some(published) = turn.next().await {
                // A failed cast means this Broadcaster has stopped and this task is about to be
                // aborted with its state: the event goes back for the Broadcaster after it.
                if let Err(error) = myself.cast(BroadcasterMsg::Publish(published)) {
                    if let ractor::MessagingErr::SendErr(BroadcasterMsg::Publish(published)) = error
                    {
                        turn.give_back(published);
                    }
                    break;
                }
            }
        })));
    }

    /// Stops the pump and queues every event published so far, so a `Drain` stores all of them,
    /// not only those the pump had already moved into the mailbox.
    async fn take_published(&mut self) {
        if let Some(pump) = self.pump.take() {
            pump.abort();
            // Cancelled or finished: either way the outbox's lock is free once it has ended.
            let _ = pump.await;
        }
        let mut turn = self.outbox.lock().await;
        while let Some(published) = turn.try_next() {
            self.pending.push(new_event(published));
        }
    }

    /// Batches by mailbox order: the `Flush` sent with the first queued event is handled after every
    /// message already waiting, so a burst becomes one transaction.
    fn queue(&mut self, myself: &BroadcasterRef, event: NewEvent) {
        self.pending.push(event);
        if !self.flush_queued {
            self.flush_queued = myself.cast(BroadcasterMsg::Flush).is_ok();
        }
    }

    async fn flush(&mut self, myself: &BroadcasterRef) {
        self.flush_queued = false;
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        match self.store.append_events(&batch).await {
            Ok(rows) => {
                self.failures = 0;
                for row in rows {
                    // No subscribers is not an error.
                    let _ = self.sender.send(Arc::new(Event::from_row(row, false)));
                }
            }
            // The fleet runs through a database outage: the events wait, in order, and go out with
            // their ids once stored.
            Err(error) => {
                self.failures += 1;
                let later = std::mem::replace(&mut self.pending, batch);
                self.pending.extend(later);
                if self.pending.len() > MAX_HELD {
                    let dropped = self.pending.len() - MAX_HELD;
                    self.pending.drain(..dropped);
                    crate::metrics::events_dropped(dropped as u64);
                    tracing::error!(
                        dropped,
                        "the database stayed away too long; the oldest events were dropped"
                    );
                }
                let pause = Duration::from_millis(200)
                    .saturating_mul(2u32.saturating_pow(self.failures.min(5)))
                    .min(Duration::from_secs(5));
                if self.failures == 1 || self.failures.is_multiple_of(20) {
                    tracing::warn!(%error, held = self.pending.len(), "could not store events; holding them");
                }
                myself.send_after(pause, || BroadcasterMsg::Flush);
                self.flush_queued = true;
            }
        }
    }
}
