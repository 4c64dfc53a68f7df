//! The Broadcaster: the one seam events leave the fleet through. It writes each event to the
//! `events` table (which gives it its id and makes it replayable), records bot state transitions in
//! `bot_instances`, and fans the event out to any number of subscribers.
//!
//! Fan-out is a bounded ring (`tokio::sync::broadcast`): a subscriber that falls behind by more than
//! its capacity is told how many events it missed (`Lagged`) and resyncs from the `events` table; it
//! never makes memory grow.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::db::{RunStateUpdate, Store};

/// One event as subscribers receive it; `id` is its row in `events` (0 if it could not be stored).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: i64,
    pub kind: String,
    pub bot_instance_id: Option<i64>,
    pub payload: Value,
    pub created_at: i64,
}

pub type BroadcasterRef = ActorRef<BroadcasterMsg>;

pub enum BroadcasterMsg {
    /// Store the event, then deliver it to every subscriber.
    Publish {
        kind: String,
        bot_instance_id: Option<i64>,
        payload: Value,
    },
    /// Record an observed bot state in `bot_instances`, then publish it as a `bot_status` event.
    BotStatus {
        bot_instance_id: i64,
        update: RunStateUpdate,
        payload: Value,
    },
}

pub struct BroadcasterArgs {
    pub store: Store,
    pub sender: broadcast::Sender<Arc<Event>>,
}

pub struct BroadcasterState {
    store: Store,
    sender: broadcast::Sender<Arc<Event>>,
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
        })
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BroadcasterMsg::Publish {
                kind,
                bot_instance_id,
                payload,
            } => state.publish(kind, bot_instance_id, payload).await,
            BroadcasterMsg::BotStatus {
                bot_instance_id,
                update,
                payload,
            } => state.bot_status(bot_instance_id, update, payload).await,
        }
        // Storage errors are logged and survived: the fleet must keep running through a database outage.
        Ok(())
    }
}

impl BroadcasterState {
    async fn publish(&self, kind: String, bot_instance_id: Option<i64>, payload: Value) {
        let event = match self
            .store
            .append_event(&kind, bot_instance_id, &payload)
            .await
        {
            Ok(row) => Event {
                id: row.id,
                kind,
                bot_instance_id,
                payload,
                created_at: row.created_at,
            },
            Err(error) => {
                tracing::warn!(%error, kind, "could not store an event; delivering it without an id");
                Event {
                    id: 0,
                    kind,
                    bot_instance_id,
                    payload,
                    created_at: crate::db::now_ms(),
                }
            }
        };
        // No subscribers is not an error.
        let _ = self.sender.send(Arc::new(event));
    }

    async fn bot_status(&self, bot_instance_id: i64, update: RunStateUpdate, mut payload: Value) {
        match self.store.record_run_state(bot_instance_id, &update).await {
            Ok(row) => {
                payload["restart_count"] = row.restart_count.into();
                payload["started_at"] = row.started_at.into();
            }
            // A deleted bot's last transition has no row to land in.
            Err(crate::db::StoreError::NotFound(_)) => {}
            Err(error) => tracing::warn!(%error, bot_instance_id, "could not record a bot's state"),
        }
        payload["bot_instance_id"] = bot_instance_id.into();
        payload["state"] = update.state.as_str().into();
        payload["reason"] = update.reason.clone().into();
        payload["next_attempt_at"] = update.next_attempt_at.into();
        self.publish("bot_status".into(), Some(bot_instance_id), payload)
            .await;
    }
}
