//! The event vocabulary every layer speaks: [`Event`] (what subscribers receive), [`Published`]
//! (what a publisher hands over) and the [`Publisher`] handle itself.
//!
//! It sits at the bottom of the module graph, beside `domain` and `db`, so the layers that publish
//! (`telegram`, `enforce`, `logstore`, `http`) do not depend on the supervision tree that stores
//! and fans out what they publish. The tree's Broadcaster drains the other end ([`Outbox`]); the
//! channel outlives any one Broadcaster, so events published while a Broadcaster restarts wait
//! in order for the next one instead of being lost.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Mutex, mpsc};

use crate::db::EventRow;
use crate::domain::EventKind;

/// One event as subscribers receive it; `id` is its row in `events`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Event {
    pub id: i64,
    pub kind: String,
    pub bot_instance_id: Option<i64>,
    pub payload: Value,
    /// Unix time, s.
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

/// An event on its way to be stored: what [`Publisher::publish`] hands over.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub kind: EventKind,
    pub bot_instance_id: Option<i64>,
    pub payload: Value,
}

/// How code outside the tree (update handlers, the HTTP layer, the log store) publishes an event;
/// cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    sender: mpsc::UnboundedSender<Published>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

/// The receiving end of every [`Publisher`] of one tree, shared by the Broadcasters that take
/// turns draining it (one at a time: the lock is the turn).
pub type Outbox = Arc<Mutex<Inbound>>;

/// What one turn at the [`Outbox`] reads from.
#[derive(Debug)]
pub struct Inbound {
    receiver: mpsc::UnboundedReceiver<Published>,
    /// Taken but not delivered (the reader stopped meanwhile): read first by the next turn.
    returned: VecDeque<Published>,
}

impl Inbound {
    /// The next event in publishing order; `None` once every publisher is gone.
    pub async fn next(&mut self) -> Option<Published> {
        match self.returned.pop_front() {
            Some(published) => Some(published),
            None => self.receiver.recv().await,
        }
    }

    /// The next event already published, without waiting; `None` when none is waiting.
    pub fn try_next(&mut self) -> Option<Published> {
        self.returned
            .pop_front()
            .or_else(|| self.receiver.try_recv().ok())
    }

    /// Puts back an event that was taken but could not be delivered, to be read next.
    pub fn give_back(&mut self, published: Published) {
        self.returned.push_front(published);
    }
}

impl Publisher {
    /// A publisher and the outbox its events arrive in.
    pub fn channel() -> (Self, Outbox) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let inbound = Inbound {
            receiver,
            returned: VecDeque::new(),
        };
        (Self { sender }, Arc::new(Mutex::new(inbound)))
    }

    /// Hands an event over to be stored and fanned out; never blocks. Unbounded like the actors'
    /// own mailboxes: an event is lost only once the tree has shut down (the outbox is gone).
    pub fn publish(&self, kind: EventKind, bot_instance_id: Option<i64>, payload: Value) {
        // An error means the tree is gone (shutting down): nothing is left to store the event.
        let _ = self.sender.send(Published {
            kind,
            bot_instance_id,
            payload,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_wait_in_order_for_the_next_reader_and_one_given_back_comes_first() {
        let (publisher, outbox) = Publisher::channel();
        publisher.publish(EventKind::Activity, Some(1), serde_json::json!({"n": 1}));
        publisher
            .clone()
            .publish(EventKind::Activity, None, serde_json::json!({"n": 2}));
        let mut turn = outbox.lock().await;
        let first = turn.next().await.expect("first event");
        assert_eq!(first.payload["n"], 1);
        assert_eq!(first.bot_instance_id, Some(1));
        turn.give_back(first);
        drop(turn);

        let mut next_turn = outbox.lock().await;
        let again = next_turn.next().await.expect("the event given back");
        let second = next_turn.next().await.expect("second event");
        assert_eq!(again.payload["n"], 1, "an undelivered event is read first");
        assert_eq!(second.payload["n"], 2);
    }
}
