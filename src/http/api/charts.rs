//! Charts and analytics, all computed from `verification_log`, `api_call_log`, `events` and the
//! fleet tables (through their hourly and daily rollups) on either backend; nothing is estimated
//! or fixed. `period` is `24h` (hourly buckets, whole UTC hours), `7d` or `30d` (daily buckets,
//! whole UTC days); hours of the day are UTC.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};
use warp::http::{Method, StatusCode};

use crate::db::analytics::{BucketCount, Column, LatencyPoint, Table, is_success};
use crate::db::{KeyCount, now_ms};
use crate::domain::{EventKind, RunState};
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

/// The periods a chart covers.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
pub enum Period {
    /// The last 24 hours, hourly buckets.
    #[serde(rename = "24h")]
    Day,
    /// The last 7 days, daily buckets.
    #[serde(rename = "7d")]
    Week,
    /// The last 30 days, daily buckets.
    #[serde(rename = "30d")]
    Month,
}

impl Period {
    pub const ALL: [Period; 3] = [Period::Day, Period::Week, Period::Month];

    /// How far back it reaches, ms.
    pub const fn span_ms(self) -> i64 {
        match self {
            Period::Day => DAY_MS,
            Period::Week => 7 * DAY_MS,
            Period::Month => 30 * DAY_MS,
        }
    }

    /// Its buckets' width: whole UTC hours for a day, whole UTC days otherwise, ms.
    pub const fn bucket_ms(self) -> i64 {
        match self {
            Period::Day => HOUR_MS,
            _ => DAY_MS,
        }
    }

    /// The period spelled `text` (`24h`, `7d`, `30d`).
    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| {
            serde_json::to_value(p)
                .ok()
                .as_ref()
                .and_then(|v| v.as_str())
                == Some(text)
        })
    }
}

/// A chart's name: one of [`CHARTS`].
pub struct ChartName;

impl JsonSchema for ChartName {
    fn schema_name() -> Cow<'static, str> {
        "ChartName".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "enum": CHARTS })
    }
}

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/charts",
            Access::Admin,
            "The names of every chart",
            |c| Box::pin(index(c)),
        )
        .returns::<ChartIndex>(StatusCode::OK),
        Route::new(
            Method::GET,
            "/api/v1/charts/{name}",
            Access::Admin,
            "One chart's data",
            |c| Box::pin(chart(c)),
        )
        .param::<ChartName>("name")
        .query::<ChartQuery>()
        .returns::<Chart>(StatusCode::OK),
    ]
}

/// The charts there are and the periods each covers.
#[derive(Serialize, JsonSchema)]
struct ChartIndex {
    #[schemars(with = "Vec<ChartName>")]
    items: [&'static str; 13],
    periods: [Period; 3],
}

async fn index(_: Ctx) -> ApiResult {
    respond::ok(&ChartIndex {
        items: CHARTS,
        periods: Period::ALL,
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ChartQuery {
    /// `24h` when absent.
    #[schemars(with = "Option<Period>")]
    period: Option<String>,
}

/// `[from, to)` and the bucket width of a period, ending now.
pub struct Window {
    pub from: i64,
    pub to: i64,
    pub bucket: i64,
    pub period: Period,
}

pub fn window(period: Option<&str>, now: i64) -> Result<Window, ApiError> {
    let text = period.unwrap_or("24h");
    let period = Period::parse(text).ok_or_else(|| {
        ApiError::invalid("period", format!("period `{text}` is not 24h, 7d or 30d"))
    })?;
    Ok(Window {
        from: now - period.span_ms(),
        to: now + 1,
        bucket: period.bucket_ms(),
        period,
    })
}

/// One chart over one period: `chart` names it and says what `data` holds.
#[derive(Serialize, JsonSchema)]
struct Chart {
    period: Period,
    /// The first millisecond covered, epoch ms.
    from: i64,
    /// The end, exclusive, epoch ms.
    to: i64,
    /// Bucket width of the trends, ms.
    bucket_ms: i64,
    #[serde(flatten)]
    data: ChartData,
}

/// A chart's data, by chart.
#[derive(Serialize, JsonSchema)]
#[serde(tag = "chart", content = "data", rename_all = "snake_case")]
pub enum ChartData {
    /// Verifications per outcome.
    VerificationOutcomes(Vec<KeyCount>),
    CacheVsApi(CacheVsApi),
    GroupsByStatus(GroupsByStatus),
    TelegramCalls(TelegramCalls),
    /// Verifications per hour of the day (UTC), all 24 hours.
    HourlyActivity(Vec<HourCount>),
    /// Verifications per latency range (ms), every range.
    LatencyDistribution(Vec<KeyCount>),
    /// The ten groups with the most verifications.
    TopGroups(Vec<TopGroup>),
    CacheHitTrend(Vec<CachePoint>),
    LatencyTrend(Vec<LatencyPoint>),
    BotHealth(BotHealth),
    UserGrowth(Vec<GrowthPoint>),
    /// Verifications per bucket and outcome.
    VerificationTrends(Vec<BucketCount>),
    Overview(Overview),
}

/// Where decisions came from, and the membership lookups they cost.
#[derive(Serialize, JsonSchema)]
pub struct CacheVsApi {
    /// Per source: `cache` or `api`.
    decisions: Vec<KeyCount>,
    get_chat_member_calls: i64,
}

#[derive(Serialize, JsonSchema)]
pub struct GroupsByStatus {
    /// Per health: `ok`, `degraded`, `unknown`.
    health: Vec<KeyCount>,
    /// `enabled` and `disabled`.
    enabled: Vec<KeyCount>,
}

#[derive(Serialize, JsonSchema)]
pub struct TelegramCalls {
    by_method: Vec<KeyCount>,
    by_outcome: Vec<KeyCount>,
}

#[derive(Serialize, JsonSchema)]
pub struct HourCount {
    /// 0..=23, UTC.
    hour: usize,
    count: i64,
}

#[derive(Serialize, JsonSchema)]
pub struct TopGroup {
    group_id: i64,
    title: String,
    count: i64,
}

#[derive(Serialize, JsonSchema)]
pub struct CachePoint {
    /// Bucket start, epoch ms.
    bucket: i64,
    cached: i64,
    fresh: i64,
    /// 0..=1; null for an empty bucket.
    hit_rate: Option<f64>,
}

#[derive(Serialize, JsonSchema)]
pub struct BotHealth {
    by_state: Vec<KeyCount>,
    bots: Vec<BotHealthRow>,
}

#[derive(Serialize, JsonSchema)]
pub struct BotHealthRow {
    id: i64,
    username: String,
    run_state: RunState,
    restart_count: i64,
    last_error: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct GrowthPoint {
    /// Bucket start, epoch ms.
    bucket: i64,
    joins: i64,
    leaves: i64,
    /// Joins minus leaves since the period began.
    net: i64,
}

/// Totals of the period, the real peak hour and the real average response time.
#[derive(Serialize, JsonSchema)]
pub struct Overview {
    verifications: i64,
    /// 0..=1; null when there were none.
    success_rate: Option<f64>,
    /// 0..=1; null when there were none.
    cache_hit_rate: Option<f64>,
    telegram_calls: i64,
    /// 0..=23; null when there were no verifications.
    peak_hour_utc: Option<i64>,
    peak_hour_count: Option<i64>,
    average_response_ms: Option<f64>,
    p95_response_ms: Option<i64>,
    p99_response_ms: Option<i64>,
}

async fn chart(ctx: Ctx) -> ApiResult {
    let name = ctx.params.first().cloned().unwrap_or_default();
    if !CHARTS.contains(&name.as_str()) {
        return Err(ApiError::not_found(format!(
            "chart `{name}` (see GET /api/v1/charts)"
        )));
    }
    let query: ChartQuery = ctx.query()?;
    let window = window(query.period.as_deref(), now_ms())?;
    let data = compute(&ctx, &name, &window).await?;
    respond::ok(&Chart {
        period: window.period,
        from: window.from,
        to: window.to,
        bucket_ms: window.bucket,
        data,
    })
}

/// One chart's data.
pub async fn compute(ctx: &Ctx, name: &str, w: &Window) -> Result<ChartData, ApiError> {
    let store = &ctx.state.store;
    let (from, to, bucket) = (w.from, w.to, w.bucket);
    Ok(match name {
        "verification_outcomes" => ChartData::VerificationOutcomes(
            store
                .counts_by(Table::Verifications, Column::Outcome, from, to)
                .await?,
        ),
        "cache_vs_api" => {
            let decisions = store
                .counts_by(Table::Verifications, Column::Cached, from, to)
                .await?;
            let calls = store
                .counts_by(Table::ApiCalls, Column::Method, from, to)
                .await?;
            let get_chat_member_calls = calls
                .iter()
                .find(|c| c.key == "getChatMember")
                .map(|c| c.count)
                .unwrap_or(0);
            ChartData::CacheVsApi(CacheVsApi {
                decisions,
                get_chat_member_calls,
            })
        }
        "groups_by_status" => {
            let counts = store.fleet_counts().await?;
            ChartData::GroupsByStatus(GroupsByStatus {
                health: counts.groups_by_health,
                enabled: counts
                    .groups_enabled
                    .iter()
                    .map(|(enabled, count)| KeyCount {
                        key: if *enabled { "enabled" } else { "disabled" }.into(),
                        count: *count,
                    })
                    .collect(),
            })
        }
        "telegram_calls" => ChartData::TelegramCalls(TelegramCalls {
            by_method: store
                .counts_by(Table::ApiCalls, Column::Method, from, to)
                .await?,
            by_outcome: store
                .counts_by(Table::ApiCalls, Column::Outcome, from, to)
                .await?,
        }),
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
            ChartData::HourlyActivity(
                hours
                    .iter()
                    .enumerate()
                    .map(|(hour, count)| HourCount {
                        hour,
                        count: *count,
                    })
                    .collect(),
            )
        }
        "latency_distribution" => {
            let rows = store
                .counts_by(Table::Verifications, Column::LatencyBucket, from, to)
                .await?;
            let order = [
                "0-10", "10-50", "50-100", "100-250", "250-500", "500-1000", "1000+",
            ];
            ChartData::LatencyDistribution(
                order
                    .iter()
                    .map(|key| KeyCount {
                        key: key.to_string(),
                        count: rows
                            .iter()
                            .find(|r| r.key == *key)
                            .map(|r| r.count)
                            .unwrap_or(0),
                    })
                    .collect(),
            )
        }
        "top_groups" => ChartData::TopGroups(
            store
                .top_groups(from, to, 10)
                .await?
                .into_iter()
                .map(|(group_id, title, count)| TopGroup {
                    group_id,
                    title,
                    count,
                })
                .collect(),
        ),
        "cache_hit_trend" => {
            let rows = store
                .bucketed_counts(Table::Verifications, Column::Cached, from, to, bucket)
                .await?;
            let mut points: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
            for row in rows {
                let entry = points.entry(row.bucket).or_default();
                if row.key == "cache" {
                    entry.0 += row.count
                } else {
                    entry.1 += row.count
                }
            }
            ChartData::CacheHitTrend(
                points
                    .into_iter()
                    .map(|(bucket, (cached, fresh))| CachePoint {
                        bucket,
                        cached,
                        fresh,
                        hit_rate: ratio(cached, cached + fresh),
                    })
                    .collect(),
            )
        }
        "latency_trend" => ChartData::LatencyTrend(store.latency_trend(from, to, bucket).await?),
        "bot_health" => {
            let bots = store.bots().await?;
            ChartData::BotHealth(BotHealth {
                by_state: store.fleet_counts().await?.bots_by_state,
                bots: bots
                    .into_iter()
                    .map(|b| BotHealthRow {
                        id: b.id,
                        username: b.username,
                        run_state: b.run_state,
                        restart_count: b.restart_count,
                        last_error: b.last_error,
                    })
                    .collect(),
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
            let mut points: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
            for row in rows {
                let entry = points.entry(row.bucket).or_default();
                if row.key == EventKind::MemberJoin.as_str() {
                    entry.0 += row.count
                } else {
                    entry.1 += row.count
                }
            }
            let mut net = 0;
            ChartData::UserGrowth(
                points
                    .into_iter()
                    .map(|(bucket, (joins, leaves))| {
                        net += joins - leaves;
                        GrowthPoint {
                            bucket,
                            joins,
                            leaves,
                            net,
                        }
                    })
                    .collect(),
            )
        }
        "verification_trends" => ChartData::VerificationTrends(
            store
                .bucketed_counts(Table::Verifications, Column::Outcome, from, to, bucket)
                .await?,
        ),
        "overview" => ChartData::Overview(overview(ctx, w).await?),
        _ => return Err(ApiError::not_found(format!("chart `{name}`"))),
    })
}

pub fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Totals of the period, the real peak hour and the real average response time.
async fn overview(ctx: &Ctx, w: &Window) -> Result<Overview, ApiError> {
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
    Ok(Overview {
        verifications: total,
        success_rate: ratio(successes, total),
        cache_hit_rate: ratio(hits, total),
        telegram_calls: calls,
        peak_hour_utc: peak.and_then(|p| p.key.parse::<i64>().ok()),
        peak_hour_count: peak.map(|p| p.count),
        average_response_ms: store.average_latency(w.from, w.to).await?,
        p95_response_ms: latency.as_ref().map(|l| l.p95),
        p99_response_ms: latency.as_ref().map(|l| l.p99),
    })
}
