//! One update as a bot handles it ([`Turn`]), and the same in a protected group ([`GroupTurn`]):
//! what every step of a flow needs, passed as one value instead of long parameter lists.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::calls::Calls;
use super::directory::GroupView;
use super::{BotRuntime, Shared};
use crate::db::{Verification, now_ms};
use crate::domain::{EventKind, Outcome};

/// An update dated more than this many seconds ago arrived late (the service was down or behind):
/// before acting on it the member's current state is read, since it may have moved on.
pub const LATE_AFTER_S: i64 = 10;

/// One update being handled by one bot.
#[derive(Clone)]
pub struct Turn {
    pub shared: Arc<Shared>,
    pub runtime: Arc<BotRuntime>,
    /// When handling began (verification latencies count from here).
    pub started: Instant,
    /// When Telegram dated the update (Unix seconds), if it says.
    pub dated: Option<i64>,
}

impl Turn {
    pub fn new(shared: Arc<Shared>, runtime: Arc<BotRuntime>, dated: Option<i64>) -> Self {
        Self {
            shared,
            runtime,
            started: Instant::now(),
            dated,
        }
    }

    /// The bot instance handling it.
    pub fn bot(&self) -> i64 {
        self.runtime.id()
    }

    pub fn calls(&self) -> &Calls {
        &self.runtime.calls
    }

    /// Whether the update waited so long that Telegram's state may have moved on since.
    pub fn is_late(&self) -> bool {
        self.dated
            .is_some_and(|at| now_ms() / 1000 - at > LATE_AFTER_S)
    }

    /// Publishes an event of this bot.
    pub fn publish(&self, kind: EventKind, payload: serde_json::Value) {
        self.runtime.events.publish(kind, Some(self.bot()), payload);
    }

    /// The same turn in a protected group.
    pub fn in_group(&self, view: Arc<GroupView>, thread: Option<i32>) -> GroupTurn {
        GroupTurn {
            turn: self.clone(),
            view,
            thread,
        }
    }
}

/// A turn in a protected group.
#[derive(Clone)]
pub struct GroupTurn {
    pub turn: Turn,
    pub view: Arc<GroupView>,
    /// The forum topic the update came from: warnings and replies go there (`None`: General, or
    /// a group without topics).
    pub thread: Option<i32>,
}

impl std::ops::Deref for GroupTurn {
    type Target = Turn;

    fn deref(&self) -> &Turn {
        &self.turn
    }
}

impl GroupTurn {
    pub fn chat(&self) -> i64 {
        self.view.group.chat_id
    }

    /// Writes a `verification_log` row (through the write-behind) and counts it.
    pub fn record(&self, user: i64, outcome: Outcome, cached: bool) {
        crate::metrics::verification(outcome);
        self.shared.records.verification(Verification {
            bot_instance_id: self.bot(),
            group_id: self.view.group.id,
            chat_id: self.chat(),
            user_id: user,
            channel_ids: sqlx::types::Json(self.view.channels.iter().map(|c| c.chat_id).collect()),
            outcome: outcome.as_str().to_string(),
            cached,
            latency_ms: self.started.elapsed().as_millis() as i64,
            created_at: now_ms(),
        });
    }

    /// Publishes a `verification` event; `missing` names the channels when something was done.
    pub fn announce(&self, user: i64, outcome: Outcome, cached: bool, missing: &[i64]) {
        let mut payload = json!({
            "group_id": self.view.group.id,
            "chat_id": self.chat(),
            "title": self.view.group.title,
            "user_id": user,
            "outcome": outcome,
            "cached": cached,
        });
        if !missing.is_empty() {
            payload["missing"] = json!(missing);
        }
        self.publish(EventKind::Verification, payload);
    }

    /// Records an outcome and, if it is news, announces it.
    pub fn decided(&self, user: i64, outcome: Outcome, cached: bool, missing: &[i64]) {
        self.record(user, outcome, cached);
        if outcome.is_news() {
            self.announce(user, outcome, cached, missing);
        }
    }
}
