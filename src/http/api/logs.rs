//! `GET /api/v1/logs`: stored log records by level, target, text, bot and time range, newest first,
//! cursor-paged. The records come from the tracing layer in [`crate::logstore`]; new ones also
//! arrive live as `log` events on the stream.

use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::Method;

use crate::db::LogFilter;
use crate::http::input;
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

const LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/logs",
            Access::Admin,
            "Stored log records, newest first",
            |c| Box::pin(list(c)),
        )
        .query(&[
            ("level", "comma-separated levels, or min_level"),
            ("min_level", "this level and above"),
            ("target", "module path; matches its children too"),
            ("text", "case-insensitive substring of the message"),
            ("bot", "bot id"),
            ("from", "epoch ms, inclusive"),
            ("to", "epoch ms, exclusive"),
            ("before", "cursor: records with a smaller id"),
            ("limit", "1..=500, default 100"),
        ]),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    level: Option<String>,
    min_level: Option<String>,
    target: Option<String>,
    text: Option<String>,
    bot: Option<i64>,
    from: Option<i64>,
    to: Option<i64>,
    before: Option<i64>,
    limit: Option<i64>,
}

fn levels(query: &Query) -> Result<Vec<String>, ApiError> {
    let unknown = |level: &str| {
        ApiError::invalid(
            "level",
            format!("`{level}` is not a level; use {}", LEVELS.join(", ")),
        )
    };
    if let Some(min) = query.min_level.as_deref().filter(|m| !m.is_empty()) {
        let start = LEVELS
            .iter()
            .position(|l| *l == min)
            .ok_or_else(|| unknown(min))?;
        return Ok(LEVELS[start..].iter().map(|l| l.to_string()).collect());
    }
    let mut out = Vec::new();
    for level in query
        .level
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        if !LEVELS.contains(&level) {
            return Err(unknown(level));
        }
        out.push(level.to_string());
    }
    Ok(out)
}

async fn list(ctx: Ctx) -> ApiResult {
    let query: Query = ctx.query()?;
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from >= to
    {
        return Err(ApiError::invalid("from", "from must be before to"));
    }
    let filter = LogFilter {
        levels: levels(&query)?,
        target: query.target.clone().filter(|t| !t.is_empty()),
        text: query.text.clone().filter(|t| !t.is_empty()),
        bot_instance_id: query.bot,
        from: query.from,
        to: query.to,
        before_id: query.before,
        limit: input::limit(query.limit, 100, 500)?,
    };
    let rows = ctx.state.store.query_logs(&filter).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id, "level": r.level, "target": r.target, "message": r.message,
                "fields": r.fields.0, "bot_instance_id": r.bot_instance_id, "created_at": r.created_at,
            })
        })
        .collect();
    respond::cursor_page(&items, filter.limit, rows.last().map(|r| r.id))
}
