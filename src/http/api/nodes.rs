//! The `serve` processes sharing the database (`nodes`): which run bots and how many, and
//! whether each is alive (its heartbeat is under 15 s old).

use schemars::JsonSchema;
use serde::Serialize;
use warp::http::{Method, StatusCode};

use crate::db::now_ms;
use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/nodes",
            Access::Admin,
            "The processes sharing the database, which one runs the bots, their heartbeats",
            |c| Box::pin(list(c)),
        )
        .returns::<Nodes>(StatusCode::OK),
    ]
}

/// The processes sharing the database.
#[derive(Serialize, JsonSchema)]
struct Nodes {
    items: Vec<Node>,
    /// Whether a live node runs the bots.
    runner_alive: bool,
}

/// One `serve` process.
#[derive(Serialize, JsonSchema)]
struct Node {
    id: String,
    host: String,
    pid: i64,
    version: String,
    /// `all`, `api` or `bots` (`serve --role`).
    role: String,
    /// Whether it holds the bots' lease (takes bots).
    runs_bots: bool,
    /// Bots it runs now.
    bots: usize,
    /// Epoch ms.
    started_at: i64,
    /// Epoch ms.
    heartbeat_at: i64,
    /// Its heartbeat is under 15 s old.
    alive: bool,
    /// The node answering this request.
    this: bool,
}

async fn list(ctx: Ctx) -> ApiResult {
    let now = now_ms();
    let nodes = ctx.state.store.nodes().await?;
    let bots = ctx.state.store.bots_per_node().await?;
    let runner_alive = nodes.iter().any(|n| n.runs_bots && n.alive(now));
    let items: Vec<Node> = nodes
        .iter()
        .map(|n| Node {
            id: n.id.clone(),
            host: n.host.clone(),
            pid: n.pid,
            version: n.version.clone(),
            role: n.role.clone(),
            runs_bots: n.runs_bots,
            bots: bots.get(&n.id).copied().unwrap_or(0),
            started_at: n.started_at,
            heartbeat_at: n.heartbeat_at,
            alive: n.alive(now),
            this: n.id == ctx.state.store.origin(),
        })
        .collect();
    respond::ok(&Nodes {
        items,
        runner_alive,
    })
}
