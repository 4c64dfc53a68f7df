//! Successful answers and the one list envelope every list endpoint uses.

use schemars::JsonSchema;
use serde::Serialize;
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

/// A page of a list with offset paging.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "PageOf{T}")]
pub struct Page<T> {
    pub items: Vec<T>,
    pub page: PageInfo,
}

/// Where a page sits in its list.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PageInfo {
    /// Items skipped before this page.
    pub offset: i64,
    /// The most items a page holds.
    pub limit: i64,
    /// Items in the whole list.
    pub total: i64,
}

/// A page of a newest-first list with cursor paging.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "CursorPageOf{T}")]
pub struct CursorPage<T> {
    pub items: Vec<T>,
    /// The `before` value for the next page; null at the end.
    pub next_cursor: Option<i64>,
}

impl<T> Page<T> {
    /// The whole list as one page.
    pub fn all(items: Vec<T>) -> Self {
        let total = items.len() as i64;
        Self {
            items,
            page: PageInfo {
                offset: 0,
                limit: total,
                total,
            },
        }
    }
}

/// A page of a list with offset paging: `{items, page: {offset, limit, total}}`.
pub fn page<T: Serialize>(items: Vec<T>, offset: i64, limit: i64, total: i64) -> ApiResult {
    ok(&Page {
        items,
        page: PageInfo {
            offset,
            limit,
            total,
        },
    })
}

/// A page of a newest-first list with cursor paging: `{items, next_cursor}`; `next_cursor` is the
/// `before` value for the next page, or null at the end.
pub fn cursor_page<T: Serialize>(items: Vec<T>, limit: i64, last_id: Option<i64>) -> ApiResult {
    let next_cursor = if items.len() as i64 == limit {
        last_id
    } else {
        None
    };
    ok(&CursorPage { items, next_cursor })
}
