//! The `serve` processes sharing the database (`nodes`): which run bots and how many, and
//! whether each is alive (its heartbeat is under 15 s old).

use serde_json::{Value, json};
use warp::http::Method;

use crate::db::now_ms;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

pub fn routes() -> Vec<Route> {
    vec![Route::new(
        Method::GET,
        "/api/v1/nodes",
        Access::Admin,
        "The processes sharing the database, which one runs the bots, their heartbeats",
        |c| Box::pin(list(c)),
    )]
}

async fn list(ctx: Ctx) -> ApiResult {
    let now = now_ms();
    let nodes = ctx.state.store.nodes().await?;
    let bots = ctx.state.store.bots_per_node().await?;
    let runner_alive = nodes.iter().any(|n| n.runs_bots && n.alive(now));
    let items: Vec<Value> = nodes
        .iter()
        .map(|n| {
            json!({
                "id": n.id,
                "host": n.host,
                "pid": n.pid,
                "version": n.version,
                "role": n.role,
                "runs_bots": n.runs_bots,
                "bots": bots.get(&n.id).copied().unwrap_or(0),
                "started_at": n.started_at,
                "heartbeat_at": n.heartbeat_at,
                "alive": n.alive(now),
                "this": n.id == ctx.state.store.origin(),
            })
        })
        .collect();
    respond::ok(&json!({ "items": items, "runner_alive": runner_alive }))
}
