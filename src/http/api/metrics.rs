//! `GET /metrics` in Prometheus' text format: bots by state and restarts (from the store), updates
//! handled, verification outcomes, membership cache hits, Telegram calls and errors by method, HTTP
//! latency (from this process). Like every non-probe route it needs a session, or the bearer token
//! in `server.metrics_token` for a scraper.

use warp::Reply;
use warp::http::{HeaderValue, Method, StatusCode, header};

use crate::domain::RunState;
use crate::http::respond::ApiResult;
use crate::http::router::{Access, Ctx, Route};
use crate::metrics::Exposition;

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/metrics",
            Access::Metrics,
            "Prometheus metrics",
            |c| Box::pin(metrics(c)),
        )
        .returns_text(StatusCode::OK, "text/plain; version=0.0.4"),
    ]
}

async fn metrics(ctx: Ctx) -> ApiResult {
    let mut text = Exposition::default();
    // The gauges the database knows are left out while it cannot answer (an outage, or a pool
    // busy under load): a scrape then still gets this process's own series, and says so.
    let counts = ctx.state.store.fleet_counts().await;
    text.family(
        "nezuko_store_up",
        "gauge",
        "Whether the database answered this scrape (the bot gauges need it).",
    )
    .sample("nezuko_store_up", &[], f64::from(u8::from(counts.is_ok())));
    match counts {
        Ok(counts) => {
            text.family("nezuko_bots", "gauge", "Bots by observed run state.");
            for state in RunState::ALL {
                let count = counts
                    .bots_by_state
                    .iter()
                    .find(|r| r.key == state.as_str())
                    .map(|r| r.count)
                    .unwrap_or(0);
                text.sample("nezuko_bots", &[("state", state.as_str())], count as f64);
            }
            text.family(
                "nezuko_bot_restarts",
                "gauge",
                "Restarts recorded across all bots.",
            )
            .sample("nezuko_bot_restarts", &[], counts.restarts as f64);
        }
        Err(error) => {
            tracing::warn!(%error, "metrics: the database did not answer; its gauges are left out")
        }
    }
    let (hits, misses) = ctx.state.enforcer.cache_stats();
    text.family(
        "nezuko_membership_cache_total",
        "counter",
        "Membership cache lookups by result.",
    )
    .sample(
        "nezuko_membership_cache_total",
        &[("result", "hit")],
        hits as f64,
    )
    .sample(
        "nezuko_membership_cache_total",
        &[("result", "miss")],
        misses as f64,
    );
    let mut response = text.finish().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
