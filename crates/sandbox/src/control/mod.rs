//! The control API: build a world, play its users and administrators, inject faults and read back
//! what the bots did.
//!
//! Every operation is a variant of [`Operation`]; [`Sandbox::apply`] carries one out, and the HTTP
//! layer turns `POST /_sandbox/<operation>` with a JSON body into the same value, so whatever Rust
//! can do, HTTP can. The typed methods ([`Sandbox::join`], [`Sandbox::say`], …) are the same
//! operations with Rust types, in [`world`] (building), [`users`] (members acting), [`admins`]
//! (administrators acting by hand), [`inspect`] (reading back) and [`operator`] (faults, tokens,
//! the clock). Only the in-process measurement hook ([`Sandbox::set_observer`]) and waiting on a
//! Rust closure ([`Sandbox::wait_until`]) have no HTTP form.

mod admins;
mod inspect;
mod join_requests;
mod operation;
mod operator;
mod users;
mod world;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::join_requests::{OpenedWebApp, PendingRequest, sign_init_data};
pub use self::operation::{
    AdminRestrict, ChatUser, Forward, NewChat, Operation, OperationError, Say, operation_names,
};
use super::api::ApiError;

/// Why a control operation could not be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    #[error("no chat {0}")]
    UnknownChat(i64),
    #[error("no account {0}")]
    UnknownAccount(i64),
    #[error("user {user} is banned from chat {chat}")]
    Banned { chat: i64, user: i64 },
    #[error("the message was not delivered: {0}")]
    Blocked(String),
    #[error("account {0} was deleted and can no longer act")]
    Deleted(i64),
    #[error("chat {chat} was upgraded to the supergroup {to}")]
    Upgraded { chat: i64, to: i64 },
    #[error("user {user} may not do this in chat {chat}: {reason}")]
    NotAllowed {
        chat: i64,
        user: i64,
        reason: String,
    },
    #[error("no message {message} in chat {chat}")]
    NoSuchMessage { chat: i64, message: i64 },
    #[error("message {message} has no button with callback data {data:?}")]
    NoSuchButton { message: i64, data: String },
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    #[error("{0}")]
    Telegram(String),
}

impl From<ApiError> for ControlError {
    fn from(error: ApiError) -> Self {
        Self::Telegram(error.description)
    }
}

/// A bot account created in the sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxBot {
    pub id: i64,
    pub token: String,
    pub username: String,
}

/// One message of a chat's history as the sandbox keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptEntry {
    pub message_id: i64,
    /// The sender shown (a service account for anonymous and channel identities).
    pub from: i64,
    pub sender_chat: Option<i64>,
    /// The forum topic, `None` for General or a chat without topics.
    pub thread: Option<i64>,
    pub text: Option<String>,
    pub reply_markup: Option<Value>,
    /// The message this one replies to, explicitly or as the first message of its topic.
    pub reply_to: Option<i64>,
    pub deleted: bool,
    pub edited: bool,
}
