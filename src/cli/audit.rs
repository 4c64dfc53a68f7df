//! What the command line changes goes into the audit log like what the dashboard changes, with
//! actor `cli`: an operator reading the log sees every change, whichever way it was made. A
//! failure to record is reported, not fatal: the change itself has been made.

use serde_json::Value;

use crate::db::{NewAuditEntry, Store};
use crate::domain::AuditTarget;

/// Records `action` on `target` (`target_id`), with the state before and after where known.
pub async fn record(
    store: &Store,
    action: &str,
    target: AuditTarget,
    target_id: Option<String>,
    before: Option<Value>,
    after: Option<Value>,
) {
    let entry = NewAuditEntry {
        actor_id: None,
        actor_name: crate::domain::CLI_ACTOR.into(),
        action: action.into(),
        target_type: target.as_str().into(),
        target_id,
        before,
        after,
        ip: None,
    };
    if let Err(error) = store.append_audit(&entry).await {
        eprintln!(
            "warning: the change was made but could not be recorded in the audit log: {error}"
        );
    }
}

/// What the audit log keeps of a bot: its identity and states, never its token.
pub fn bot(row: &crate::db::BotRow) -> Value {
    serde_json::json!({
        "id": row.id,
        "username": row.username,
        "desired_state": row.desired_state.as_str(),
        "run_state": row.run_state.as_str(),
    })
}
