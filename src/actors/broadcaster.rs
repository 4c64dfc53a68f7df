//! The Broadcaster: the one seam events leave the fleet through. It writes each event to the
//! `events` table (which gives it its id and makes it replayable), records bot state transitions in
//! `bot_instances`, and fans the event out to any number of subscribers.
//!
//! While the database cannot store events they are held (up to [`MAX_HELD`], the oldest dropped
//! beyond it, counted) and offered again with a growing pause; each reaches subscribers once it is
//! stored, with its id, so the feed and a replay from the table agree.
//!
//! Fan-out is a bounded ring (`tokio::sync::broadcast`): a subscriber that falls behind by more than
//! its capacity is told how many events it missed (`Lagged`) and resyncs from the `events` table; it
//! never makes memory grow.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::db::{EventRow, NewEvent, RunStateUpdate, Store};

/// Events held while the database cannot store them; beyond this the oldest are dropped.
pub const MAX_HELD: usize = 100_000;

/// One event as subscribers receive it; `id` is its row in `events`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Event {
    pub id: i64,
    pub kind: String,
    pub bot_instance_id: Option<i64>,
    pub payload: Value,
    pub created_at: i64,
    /// Published by another process and relayed here (through Redis); never relayed back.
    #[serde(skip)]
    pub relayed: bool,
}

impl Event {
    /// A stored event as subscribers receive it; `relayed` when another process published it.
    pub fn from_row(row: EventRow, relayed: bool) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            bot_instance_id: row.bot_instance_id,
            payload: row.payload.0,
            created_at: row.created_at,
            relayed,
        }
    }
}

pub type BroadcasterRef = ActorRef<BroadcasterMsg>;

pub enum BroadcasterMsg {
    /// Store the event, then deliver it to every subscriber.
    Publish {
        kind: String,
        bot_instance_id: Option<i64>,
        payload: Value,
    },
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
}

pub struct BroadcasterState {
    store: Store,
    sender: broadcast::Sender<Arc<Event>>,
    pending: Vec<NewEvent>,
    flush_queued: bool,
    /// Failed writes in a row (the pause before the next grows with it).
    failures: u32,
}

pub struct Broadcaster;

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
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BroadcasterMsg::Publish {
                kind,
                bot_instance_id,
                payload,
            } => state.queue(
                &myself,
                NewEvent {
                    kind,
                    bot_instance_id,
                    payload,
                    transition: None,
                },
            ),
            BroadcasterMsg::BotStatus {
                bot_instance_id,
                update,
                payload,
            } => state.queue(&myself, status_event(bot_instance_id, update, payload)),
            BroadcasterMsg::Flush => state.flush(&myself).await,
            BroadcasterMsg::Drain(reply) => {
                state.flush(&myself).await;
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

fn status_event(bot_instance_id: i64, update: RunStateUpdate, mut payload: Value) -> NewEvent {
    payload["bot_instance_id"] = bot_instance_id.into();
    payload["state"] = update.state.as_str().into();
    payload["reason"] = update.reason.clone().into();
    payload["next_attempt_at"] = update.next_attempt_at.into();
    NewEvent {
        kind: crate::domain::EventKind::BotStatus.as_str().into(),
        bot_instance_id: Some(bot_instance_id),
        payload,
        transition: Some(update),
    }
}

impl BroadcasterState {
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
