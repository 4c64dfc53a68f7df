//! Parsed domain types: values that are valid by construction.
//!
//! Everything that crosses an edge (configuration, HTTP, the database) is parsed into one of these
//! types once, so the rest of the code never re-checks a token's shape or a state's spelling.

mod alerts;
mod bot_token;
mod secret;
mod state;
mod vocabulary;

pub use alerts::{AlertConfig, check_chat_id};
pub use bot_token::{BotToken, BotTokenError};
pub use secret::Secret;
pub use state::{DesiredState, RunState, UnknownState};
pub use vocabulary::{AuditTarget, EndReason, EventKind, Outcome, ReasonCode, TimerKind};

/// The audit log's actor for what the command line changed (`nezuko bot …`, `rotate-key`,
/// `login-link`): no Telegram id, this name.
pub const CLI_ACTOR: &str = "cli";
