//! [`Publisher`]: how code outside the tree (update handlers, the HTTP layer) publishes an event.
//! It goes through the supervisor to whichever Broadcaster is current, so a restarted Broadcaster
//! never leaves a publisher holding a dead reference.

use serde_json::Value;

use crate::domain::EventKind;

use super::supervisor::{SupervisorMsg, SupervisorRef};

#[derive(Clone)]
pub struct Publisher {
    supervisor: SupervisorRef,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    pub(crate) fn new(supervisor: SupervisorRef) -> Self {
        Self { supervisor }
    }

    /// Stores and fans out an event; never blocks. Lost only if the tree is gone (shutting down).
    pub fn publish(&self, kind: EventKind, bot_instance_id: Option<i64>, payload: Value) {
        let _ = self.supervisor.cast(SupervisorMsg::Publish {
            kind: kind.as_str().to_string(),
            bot_instance_id,
            payload,
        });
    }
}
