//! `GET /api/v1/stats`: the overview's numbers, every one read from the store or the running
//! process: groups, channels, bots by state, verifications today (since 00:00 UTC) and in the last
//! seven days, success rate, cache hit rate, uptime.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;
use warp::http::{Method, StatusCode};

use crate::actors::ServiceStatus;
use crate::db::Backend;
use crate::domain::RunState;

use crate::db::analytics::{Column, Table, is_success};
use crate::db::now_ms;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

use super::charts::ratio;

const DAY_MS: i64 = 86_400_000;

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/stats",
            Access::Admin,
            "Overview numbers",
            |c| Box::pin(stats(c)),
        )
        .returns::<Stats>(StatusCode::OK),
    ]
}

/// The overview's numbers.
#[derive(Serialize, JsonSchema)]
struct Stats {
    /// The supervision tree's own services in this process; one not running is shown.
    services: Vec<ServiceStatus>,
    groups: GroupCounts,
    /// Channels known.
    channels: i64,
    bots: BotCounts,
    verifications: VerificationCounts,
    /// Passed, exempt and grace over all verifications of the last 7 days, 0..=1; null when none.
    success_rate_7d: Option<f64>,
    /// Verifications of the last 7 days answered from the cache, 0..=1; null when none.
    cache_hit_rate_7d: Option<f64>,
    /// This process's membership cache since it started.
    membership_cache: CacheCounts,
    /// Since this process started, s.
    uptime_s: u64,
    database: Backend,
}

#[derive(Serialize, JsonSchema)]
struct GroupCounts {
    total: i64,
    enabled: i64,
}

#[derive(Serialize, JsonSchema)]
struct BotCounts {
    total: i64,
    /// Bots per observed run state (states with none are absent).
    by_state: BTreeMap<RunState, i64>,
    /// Restarts recorded across all bots.
    restarts: i64,
}

#[derive(Serialize, JsonSchema)]
struct VerificationCounts {
    /// Since 00:00 UTC.
    today: i64,
    /// The last 7 days.
    week: i64,
}

#[derive(Serialize, JsonSchema)]
struct CacheCounts {
    hits: u64,
    misses: u64,
    /// 0..=1; null before the first lookup.
    hit_rate: Option<f64>,
}

async fn stats(ctx: Ctx) -> ApiResult {
    let store = &ctx.state.store;
    let now = now_ms();
    let today_start = now - now % DAY_MS;
    let counts = store.fleet_counts().await?;
    let today = store
        .counts_by(Table::Verifications, Column::Outcome, today_start, now + 1)
        .await?;
    let week = store
        .counts_by(
            Table::Verifications,
            Column::Outcome,
            now - 7 * DAY_MS,
            now + 1,
        )
        .await?;
    let week_cached = store
        .counts_by(
            Table::Verifications,
            Column::Cached,
            now - 7 * DAY_MS,
            now + 1,
        )
        .await?;
    let total = |rows: &[crate::db::KeyCount]| rows.iter().map(|r| r.count).sum::<i64>();
    let successes: i64 = week
        .iter()
        .filter(|r| is_success(&r.key))
        .map(|r| r.count)
        .sum();
    let hits = week_cached
        .iter()
        .find(|r| r.key == "cache")
        .map(|r| r.count)
        .unwrap_or(0);
    let (process_hits, process_misses) = ctx.state.enforcer.cache_stats();
    let groups: i64 = counts.groups_by_health.iter().map(|r| r.count).sum();
    let enabled = counts
        .groups_enabled
        .iter()
        .find(|(e, _)| *e)
        .map(|(_, n)| *n)
        .unwrap_or(0);
    let by_state: BTreeMap<RunState, i64> = counts
        .bots_by_state
        .iter()
        .filter_map(|r| Some((r.key.parse::<RunState>().ok()?, r.count)))
        .collect();
    respond::ok(&Stats {
        services: ctx.state.fleet.view().services(),
        groups: GroupCounts {
            total: groups,
            enabled,
        },
        channels: counts.channels,
        bots: BotCounts {
            total: counts.bots_by_state.iter().map(|r| r.count).sum::<i64>(),
            by_state,
            restarts: counts.restarts,
        },
        verifications: VerificationCounts {
            today: total(&today),
            week: total(&week),
        },
        success_rate_7d: ratio(successes, total(&week)),
        cache_hit_rate_7d: ratio(hits, total(&week)),
        membership_cache: CacheCounts {
            hits: process_hits,
            misses: process_misses,
            hit_rate: ratio(process_hits as i64, (process_hits + process_misses) as i64),
        },
        uptime_s: ctx.state.started_at.elapsed().as_secs(),
        database: store.backend(),
    })
}
