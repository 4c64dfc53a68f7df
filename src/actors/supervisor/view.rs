//! What the supervisor last saw, readable without a call into its mailbox: each managed bot's
//! status and the tree's own services (the Registry, the Broadcaster). The HTTP layer's list and
//! detail pages and `/readyz` read this, so a supervisor busy with a thousand starts never holds
//! a page up. The supervisor refreshes it after the messages already queued (one refresh per
//! burst, see `SupervisorMsg::Refresh`), so it trails the tree by at most one batch.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::Serialize;

use super::BotStatus;

/// One of the tree's own services.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// Watches `bot_instances` and tells the supervisor what to start and stop.
    Registry,
    /// Stores and fans out events.
    Broadcaster,
    /// Tells the owner in Telegram what needs attention.
    Alerter,
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Registry => "registry",
            Service::Broadcaster => "broadcaster",
            Service::Alerter => "alerter",
        }
    }
}

/// How one service is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ServiceStatus {
    pub service: Service,
    pub running: bool,
    /// Exits and failed starts since it last ran stably (see `policy::SERVICE_RESTARTS`).
    pub failures: u32,
    /// Why it last stopped or could not start.
    pub last_error: Option<String>,
    /// While not running: when the next start is tried, Unix ms.
    pub next_attempt_at: Option<i64>,
}

/// A bot as last seen: its status without the uptime, which is computed when read.
#[derive(Debug, Clone)]
pub(super) struct SeenBot {
    pub status: BotStatus,
    pub running_since: Option<Instant>,
}

#[derive(Debug, Default)]
struct Seen {
    bots: Vec<SeenBot>,
    services: BTreeMap<Service, ServiceStatus>,
}

/// The shared view; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct TreeView {
    seen: Arc<RwLock<Seen>>,
}

impl TreeView {
    /// Every managed bot, ordered by id, with its uptime as of now.
    pub fn bots(&self) -> Vec<BotStatus> {
        let seen = self
            .seen
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.bots
            .iter()
            .map(|bot| BotStatus {
                uptime: bot.running_since.map(|since| since.elapsed()),
                ..bot.status.clone()
            })
            .collect()
    }

    /// The services this tree runs (the Registry only where the process runs bots).
    pub fn services(&self) -> Vec<ServiceStatus> {
        let seen = self
            .seen
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.services.values().cloned().collect()
    }

    pub(super) fn set_bots(&self, bots: Vec<SeenBot>) {
        let mut seen = self
            .seen
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.bots = bots;
    }

    pub(super) fn set_service(&self, service: Service, status: ServiceStatus) {
        let mut seen = self
            .seen
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.services.insert(service, status);
    }
}
