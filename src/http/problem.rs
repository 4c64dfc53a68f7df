//! One error format for the whole API: `application/problem+json` (RFC 9457) with a stable `code`
//! that clients branch on, and a `detail` written for the person reading it.
//!
//! Handlers return [`ApiError`] values instead of warp rejections, so a route that matched never
//! falls through to another one.

use serde_json::{Value, json};
use warp::Reply;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::db::StoreError;

/// An error answer: status, stable code, human detail.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Seconds, for 429 answers (sent as `Retry-After`).
    pub retry_after: Option<u64>,
    /// Extra members of the problem document (for example the field a validation error is about).
    pub extra: Option<Value>,
    /// For 405 answers: the methods the resource accepts, sent as `Allow` (RFC 9110 §15.5.6
    /// requires it on a 405).
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
            extra: None,
            allow: None,
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// A request that parsed but asks for something invalid; `field` names the culprit.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", detail);
        error.extra = Some(json!({ "field": field }));
        error
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} does not exist", what.into()),
        )
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    pub fn too_many(retry_after: u64, detail: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail);
        error.retry_after = Some(retry_after);
        error
    }

    /// Something on our side failed; the cause is logged, not shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to answer this request; the cause is in the logs",
        )
    }

    pub fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("https://nezuko.dev/problems/{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "code": self.code,
            "detail": self.detail,
        });
        if let Some(Value::Object(extra)) = self.extra {
            for (key, value) in extra {
                body[key] = value;
            }
        }
        let mut response =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(allow) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            headers.insert(header::ALLOW, allow);
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => Self::not_found(what),
            StoreError::Conflict(detail) => Self::conflict(detail),
            StoreError::Query(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed,
            )
            | StoreError::Unreachable { .. }
            | StoreError::ReadOnly => {
                tracing::warn!(%error, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is not answering; nothing was changed, try again shortly",
                )
            }
            // SQLite's busy timeout ran out behind another writer (SQLITE_BUSY, code 5).
            StoreError::Query(sqlx::Error::Database(ref db))
                if db.code().as_deref() == Some("5") =>
            {
                tracing::warn!(%error, "database locked");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is locked by another writer; nothing was changed, try again shortly",
                )
            }
            // Any other sign of an outage (a server refusing connections, out of them, shutting
            // down): the request did nothing and may succeed later.
            ref outage if outage.is_outage() => {
                tracing::warn!(%error, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database refuses connections or is shutting down; nothing was changed, try again shortly",
                )
            }
            other => Self::internal(other),
        }
    }
}
