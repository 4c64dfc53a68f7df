//! Successful answers and the one list envelope every list endpoint uses.

use serde::Serialize;
use serde_json::json;
use warp::Reply;
use warp::http::StatusCode;
use warp::reply::Response;

use super::problem::ApiError;

pub type ApiResult = Result<Response, ApiError>;

/// Turns a handler's result into the response (errors as problem documents).
pub fn finish(result: ApiResult) -> Response {
    result.unwrap_or_else(ApiError::into_response)
}

pub fn ok(body: &impl Serialize) -> ApiResult {
    Ok(warp::reply::json(body).into_response())
}

pub fn with_status(status: StatusCode, body: &impl Serialize) -> ApiResult {
    Ok(warp::reply::with_status(warp::reply::json(body), status).into_response())
}

pub fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A page of a list with offset paging: `{items, page: {offset, limit, total}}`.
pub fn page<T: Serialize>(items: &[T], offset: i64, limit: i64, total: i64) -> ApiResult {
    ok(&json!({
        "items": items,
        "page": { "offset": offset, "limit": limit, "total": total },
    }))
}

/// A page of a newest-first list with cursor paging: `{items, next_cursor}`; `next_cursor` is the
/// `before` value for the next page, or null at the end.
pub fn cursor_page<T: Serialize>(items: &[T], limit: i64, last_id: Option<i64>) -> ApiResult {
    let next = if items.len() as i64 == limit {
        last_id
    } else {
        None
    };
    ok(&json!({ "items": items, "next_cursor": next }))
}
