//! Charts and analytics, all computed from `verification_log`, `api_call_log`, `events` and the
//! fleet tables (through their hourly and daily rollups) on either backend; nothing is estimated
//! or fixed. `period` is `24h` (hourly buckets, whole UTC hours), `7d` or `30d` (daily buckets,
//! whole UTC days); hours of the day are UTC.

use serde::Deserialize;
use serde_json::{Value, json};
use warp::http::Method;

use crate::db::analytics::{Column, Table, is_success};
use crate::db::{KeyCount, now_ms};
use crate::domain::EventKind;
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Every chart name the API serves.
pub const CHARTS: [&str; 13] = [
    "verification_outcomes",
    "cache_vs_api",
    "groups_by_status",
    "telegram_calls",
    "hourly_activity",
    "latency_distribution",
    "top_groups",
    "cache_hit_trend",
    "latency_trend",
    "bot_health",
    "user_growth",
    "verification_trends",
    "overview",
];

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/charts",
            Access::Admin,
            "The names of every chart",
            |c| Box::pin(index(c)),
        ),
        Route::new(
            Method::GET,
            "/api/v1/charts/{name}",
            Access::Admin,
            "One chart's data",
            |c| Box::pin(chart(c)),
        )
        .query(&[("period", "24h (default), 7d or 30d")]),
    ]
}

async fn index(_: Ctx) -> ApiResult {
    respond::ok(&json!({ "items": CHARTS, "periods": ["24h", "7d", "30d"] }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Query {
    period: Option<String>,
}

/// `[from, to)` and the bucket width of a period, ending now.
pub struct Window {
    pub from: i64,
    pub to: i64,
    pub bucket: i64,
    pub period: &'static str,
}

pub fn window(period: Option<&str>, now: i64) -> Result<Window, ApiError> {
    let (span, bucket, period) = match period.unwrap_or("24h") {
        "24h" => (DAY_MS, HOUR_MS, "24h"),
        "7d" => (7 * DAY_MS, DAY_MS, "7d"),
        "30d" => (30 * DAY_MS, DAY_MS, "30d"),
        other => {
            return Err(ApiError::invalid(
                "period",
                format!("period `{other}` is not 24h, 7d or 30d"),
            ));
        }
    };
    Ok(Window {
        from: now - span,
        to: now + 1,
        bucket,
        period,
    })
}

async fn chart(ctx: Ctx) -> ApiResult {
    let name = ctx.params.first().cloned().unwrap_or_default();
    if !CHARTS.contains(&name.as_str()) {
        return Err(ApiError::not_found(format!(
            "chart `{name}` (see GET /api/v1/charts)"
        )));
    }
    let query: Query = ctx.query()?;
    let window = window(query.period.as_deref(), now_ms())?;
    let data = compute(&ctx, &name, &window).await?;
    respond::ok(&json!({
        "chart": name,
        "period": window.period,
        "from": window.from,
        "to": window.to,
        "bucket_ms": window.bucket,
        "data": data,
    }))
}

fn keyed(rows: &[KeyCount]) -> Value {
    rows.iter()
        .map(|r| json!({ "key": r.key, "count": r.count }))
        .collect()
}

/// One chart's data.
pub async fn compute(ctx: &Ctx, name: &str, w: &Window) -> Result<Value, ApiError> {
    let store = &ctx.state.store;
    let (from, to, bucket) = (w.from, w.to, w.bucket);
    Ok(match name {
        "verification_outcomes" => keyed(
            &store
                .counts_by(Table::Verifications, Column::Outcome, from, to)
                .await?,
        ),
        "cache_vs_api" => {
            let sources = store
                .counts_by(Table::Verifications, Column::Cached, from, to)
                .await?;
            let calls = store
                .counts_by(Table::ApiCalls, Column::Method, from, to)
                .await?;
            let checks = calls
                .iter()
                .find(|c| c.key == "getChatMember")
                .map(|c| c.count)
                .unwrap_or(0);
            json!({ "decisions": keyed(&sources), "get_chat_member_calls": checks })
        }
        "groups_by_status" => {
            let counts = store.fleet_counts().await?;
            json!({
                "health": keyed(&counts.groups_by_health),
                "enabled": counts.groups_enabled.iter().map(|(e, n)| json!({ "key": if *e { "enabled" } else { "disabled" }, "count": n })).collect::<Vec<_>>(),
            })
        }
        "telegram_calls" => {
            let methods = store
                .counts_by(Table::ApiCalls, Column::Method, from, to)
                .await?;
            let outcomes = store
                .counts_by(Table::ApiCalls, Column::Outcome, from, to)
                .await?;
            json!({ "by_method": keyed(&methods), "by_outcome": keyed(&outcomes) })
        }
        "hourly_activity" => {
            let rows = store
                .counts_by(Table::Verifications, Column::HourOfDay, from, to)
                .await?;
            let mut hours = [0i64; 24];
            for row in rows {
                if let Ok(hour) = row.key.parse::<usize>()
                    && hour < 24
                {
                    hours[hour] = row.count;
                }
            }
            hours
                .iter()
                .enumerate()
                .map(|(hour, count)| json!({ "hour": hour, "count": count }))
                .collect()
        }
        "latency_distribution" => {
            let rows = store
                .counts_by(Table::Verifications, Column::LatencyBucket, from, to)
                .await?;
            let order = [
                "0-10", "10-50", "50-100", "100-250", "250-500", "500-1000", "1000+",
            ];
            order
                .iter()
                .map(|key| json!({ "key": key, "count": rows.iter().find(|r| r.key == *key).map(|r| r.count).unwrap_or(0) }))
                .collect()
        }
        "top_groups" => store
            .top_groups(from, to, 10)
            .await?
            .into_iter()
            .map(|(id, title, count)| json!({ "group_id": id, "title": title, "count": count }))
            .collect(),
        "cache_hit_trend" => {
            let rows = store
                .bucketed_counts(Table::Verifications, Column::Cached, from, to, bucket)
                .await?;
            let mut points: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
            for row in rows {
                let entry = points.entry(row.bucket).or_default();
                if row.key == "cache" {
                    entry.0 += row.count
                } else {
                    entry.1 += row.count
                }
            }
            points
                .into_iter()
                .map(|(b, (hits, misses))| json!({ "bucket": b, "cached": hits, "fresh": misses, "hit_rate": ratio(hits, hits + misses) }))
                .collect()
        }
        "latency_trend" => {
            serde_json::to_value(store.latency_trend(from, to, bucket).await?).unwrap_or_default()
        }
        "bot_health" => {
            let bots = store.bots().await?;
            json!({
                "by_state": keyed(&store.fleet_counts().await?.bots_by_state),
                "bots": bots.iter().map(|b| json!({
                    "id": b.id, "username": b.username, "run_state": b.run_state.as_str(),
                    "restart_count": b.restart_count, "last_error": b.last_error,
                })).collect::<Vec<_>>(),
            })
        }
        "user_growth" => {
            let rows = store
                .events_per_bucket(
                    &[
                        EventKind::MemberJoin.as_str(),
                        EventKind::MemberLeave.as_str(),
                    ],
                    from,
                    to,
                    bucket,
                )
                .await?;
            let mut points: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
            for row in rows {
                let entry = points.entry(row.bucket).or_default();
                if row.key == EventKind::MemberJoin.as_str() {
                    entry.0 += row.count
                } else {
                    entry.1 += row.count
                }
            }
            let mut net = 0;
            points
                .into_iter()
                .map(|(b, (joins, leaves))| {
                    net += joins - leaves;
                    json!({ "bucket": b, "joins": joins, "leaves": leaves, "net": net })
                })
                .collect()
        }
        "verification_trends" => serde_json::to_value(
            store
                .bucketed_counts(Table::Verifications, Column::Outcome, from, to, bucket)
                .await?,
        )
        .unwrap_or_default(),
        "overview" => overview(ctx, w).await?,
        _ => return Err(ApiError::not_found(format!("chart `{name}`"))),
    })
}

pub fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Totals of the period, the real peak hour and the real average response time.
async fn overview(ctx: &Ctx, w: &Window) -> Result<Value, ApiError> {
    let store = &ctx.state.store;
    let outcomes = store
        .counts_by(Table::Verifications, Column::Outcome, w.from, w.to)
        .await?;
    let total: i64 = outcomes.iter().map(|r| r.count).sum();
    let successes: i64 = outcomes
        .iter()
        .filter(|r| is_success(&r.key))
        .map(|r| r.count)
        .sum();
    let cached = store
        .counts_by(Table::Verifications, Column::Cached, w.from, w.to)
        .await?;
    let hits = cached
        .iter()
        .find(|r| r.key == "cache")
        .map(|r| r.count)
        .unwrap_or(0);
    let hours = store
        .counts_by(Table::Verifications, Column::HourOfDay, w.from, w.to)
        .await?;
    let peak = hours.iter().max_by_key(|r| {
        (
            r.count,
            std::cmp::Reverse(r.key.parse::<i64>().unwrap_or(0)),
        )
    });
    let latency = store.latency_summary(w.from, w.to).await?;
    let calls: i64 = store
        .counts_by(Table::ApiCalls, Column::Method, w.from, w.to)
        .await?
        .iter()
        .map(|r| r.count)
        .sum();
    Ok(json!({
        "verifications": total,
        "success_rate": ratio(successes, total),
        "cache_hit_rate": ratio(hits, total),
        "telegram_calls": calls,
        "peak_hour_utc": peak.and_then(|p| p.key.parse::<i64>().ok()),
        "peak_hour_count": peak.map(|p| p.count),
        "average_response_ms": store.average_latency(w.from, w.to).await?,
        "p95_response_ms": latency.as_ref().map(|l| l.p95),
        "p99_response_ms": latency.as_ref().map(|l| l.p99),
    }))
}
