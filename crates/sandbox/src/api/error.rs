//! Telegram's error replies: status codes and descriptions as `api.telegram.org` words them.

use serde_json::{Value, json};

/// An error reply of the Bot API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub description: String,
    /// `parameters.retry_after` of a 429, in seconds.
    pub retry_after: Option<u64>,
    /// `parameters.migrate_to_chat_id`: the supergroup a basic group was upgraded to.
    pub migrate_to_chat_id: Option<i64>,
}

impl ApiError {
    fn new(code: u16, description: String) -> Self {
        Self {
            code,
            description,
            retry_after: None,
            migrate_to_chat_id: None,
        }
    }

    pub fn bad_request(reason: &str) -> Self {
        Self::new(400, format!("Bad Request: {reason}"))
    }

    pub fn forbidden(reason: &str) -> Self {
        Self::new(403, format!("Forbidden: {reason}"))
    }

    /// A token of the right shape that no bot has (or a revoked one).
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized".into())
    }

    /// A token that cannot be a bot token at all (`ClientManager::send`, telegram-bot-api 10.0).
    pub fn invalid_token() -> Self {
        Self::new(401, "Unauthorized: invalid token specified".into())
    }

    /// A token whose bot id is not a number (`ClientManager::send`, telegram-bot-api 10.0).
    pub fn unallowed_token() -> Self {
        Self::new(421, "Misdirected Request: unallowed token specified".into())
    }

    /// A method the Bot API does not have.
    pub fn method_not_found() -> Self {
        Self::new(404, "Not Found: method not found".into())
    }

    /// A path that is not `/bot<token>/<method>`.
    pub fn not_found() -> Self {
        Self::new(404, "Not Found".into())
    }

    pub fn conflict(reason: &str) -> Self {
        Self::new(409, format!("Conflict: {reason}"))
    }

    pub fn terminated_by_other_poller() -> Self {
        Self::conflict(
            "terminated by other getUpdates request; make sure that only one bot instance is running",
        )
    }

    pub fn too_many_requests(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(429, format!("Too Many Requests: retry after {retry_after}"))
        }
    }

    pub fn server_error(code: u16) -> Self {
        let description = match code {
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Gateway Timeout",
            _ => "Internal Server Error",
        };
        Self::new(code, description.into())
    }

    pub fn chat_not_found() -> Self {
        Self::bad_request("chat not found")
    }

    /// A call naming a basic group that was upgraded (`Client::check_chat_access`,
    /// telegram-bot-api 10.0).
    pub fn upgraded(to: i64) -> Self {
        Self {
            migrate_to_chat_id: Some(to),
            ..Self::bad_request("group chat was upgraded to a supergroup chat")
        }
    }

    pub fn not_enough_rights_to_restrict() -> Self {
        Self::bad_request("not enough rights to restrict/unrestrict chat member")
    }

    /// The JSON body Telegram sends with the error.
    pub fn to_json(&self) -> Value {
        let mut body =
            json!({ "ok": false, "error_code": self.code, "description": self.description });
        if let Some(retry_after) = self.retry_after {
            body["parameters"] = json!({ "retry_after": retry_after });
        }
        if let Some(chat) = self.migrate_to_chat_id {
            body["parameters"] = json!({ "migrate_to_chat_id": chat });
        }
        body
    }
}
