//! Telegram's error replies: status codes and descriptions as `api.telegram.org` words them.

use serde_json::{Value, json};

/// An error reply of the Bot API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub description: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(code: u16, description: String) -> Self {
        Self {
            code,
            description,
            retry_after: None,
        }
    }

    pub fn bad_request(reason: &str) -> Self {
        Self::new(400, format!("Bad Request: {reason}"))
    }

    pub fn forbidden(reason: &str) -> Self {
        Self::new(403, format!("Forbidden: {reason}"))
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized".into())
    }

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
            code: 429,
            description: format!("Too Many Requests: retry after {retry_after}"),
            retry_after: Some(retry_after),
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
        body
    }
}
