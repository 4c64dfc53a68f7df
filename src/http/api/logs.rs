//! `GET /api/v1/logs`: stored log records by level, target, text, bot and time range, newest first,
//! cursor-paged. The records come from the tracing layer in [`crate::logstore`]; new ones also
//! arrive live as `log` events on the stream.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use warp::http::{Method, StatusCode};

use crate::db::LogFilter;
use crate::http::input;
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult, CursorPage};
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
        .query::<LogQuery>()
        .returns::<CursorPage<LogView>>(StatusCode::OK),
    ]
}

/// A log level, as tracing names it: one of [`LEVELS`].
struct Level;

impl JsonSchema for Level {
    fn schema_name() -> Cow<'static, str> {
        "LogLevel".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "enum": LEVELS })
    }
}

/// Which records.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    /// Comma-separated levels (`trace`, `debug`, `info`, `warn`, `error`).
    level: Option<String>,
    /// This level and above (instead of `level`).
    #[schemars(with = "Option<Level>")]
    min_level: Option<String>,
    /// A module path; matches its children too.
    target: Option<String>,
    /// A case-insensitive substring of the message.
    text: Option<String>,
    /// Only this bot's records.
    bot: Option<i64>,
    /// Epoch ms, inclusive.
    from: Option<i64>,
    /// Epoch ms, exclusive.
    to: Option<i64>,
    /// Cursor: records with a smaller id.
    before: Option<i64>,
    /// 1..=500, default 100.
    limit: Option<i64>,
}

/// One stored log record.
#[derive(Serialize, JsonSchema)]
struct LogView {
    id: i64,
    #[schemars(with = "Level")]
    level: String,
    /// The module that wrote it.
    target: String,
    message: String,
    /// The record's structured fields.
    #[schemars(with = "Map<String, Value>")]
    fields: Value,
    bot_instance_id: Option<i64>,
    /// Epoch ms.
    created_at: i64,
}

fn levels(query: &LogQuery) -> Result<Vec<String>, ApiError> {
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
    let query: LogQuery = ctx.query()?;
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
    let last = rows.last().map(|r| r.id);
    let items: Vec<LogView> = rows
        .into_iter()
        .map(|r| LogView {
            id: r.id,
            level: r.level,
            target: r.target,
            message: r.message,
            fields: r.fields.0,
            bot_instance_id: r.bot_instance_id,
            created_at: r.created_at,
        })
        .collect();
    respond::cursor_page(items, filter.limit, last)
}
