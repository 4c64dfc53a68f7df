//! What the sandbox saw: every call with its outcome, spec violations, and counters, for tests
//! and the load driver to read back.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

/// One call a bot made.
#[derive(Debug, Clone, Serialize)]
pub struct CallRecord {
    pub seq: u64,
    /// Unix milliseconds when the call arrived.
    pub at_ms: i64,
    pub bot: i64,
    pub method: String,
    pub params: Value,
    pub ok: bool,
    pub error_code: Option<u16>,
    pub description: Option<String>,
}

/// A request (or reply) that does not match the Bot API specification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub bot: Option<i64>,
    pub method: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    pub calls: u64,
    pub by_method: BTreeMap<String, u64>,
    pub too_many_requests: u64,
    /// Updates handed to bots (a poll's reply or a webhook delivery), counting redeliveries.
    pub updates_delivered: u64,
    /// Updates the bots confirmed (a later offset, or a 2xx from the webhook).
    pub updates_confirmed: u64,
}

#[derive(Debug)]
pub struct Journal {
    capacity: usize,
    calls: VecDeque<CallRecord>,
    pub violations: Vec<Violation>,
    pub counters: Counters,
    /// Bumped on every call, so waiting helpers wake without polling.
    pub changed: watch::Sender<u64>,
}

impl Journal {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            calls: VecDeque::new(),
            violations: Vec::new(),
            counters: Counters::default(),
            changed: watch::channel(0).0,
        }
    }

    pub fn record(&mut self, mut call: CallRecord) {
        self.counters.calls += 1;
        call.seq = self.counters.calls;
        match self.counters.by_method.get_mut(&call.method) {
            Some(count) => *count += 1,
            None => {
                self.counters.by_method.insert(call.method.clone(), 1);
            }
        }
        if call.error_code == Some(429) {
            self.counters.too_many_requests += 1;
        }
        if self.calls.len() == self.capacity {
            self.calls.pop_front();
        }
        self.calls.push_back(call);
        self.changed.send_replace(self.counters.calls);
    }

    pub fn violation(&mut self, violation: Violation) {
        tracing::warn!(method = %violation.method, reason = %violation.reason, "Bot API spec violation");
        self.violations.push(violation);
        self.changed.send_modify(|n| *n += 0);
    }

    /// Calls kept (the newest `capacity`), oldest first, that match `keep`.
    pub fn calls(&self, keep: impl Fn(&CallRecord) -> bool) -> Vec<CallRecord> {
        self.calls.iter().filter(|c| keep(c)).cloned().collect()
    }
}
