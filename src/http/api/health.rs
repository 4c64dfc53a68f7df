//! `/healthz` (the process answers) and `/readyz` (the store would take a write too: a database
//! that answers reads but not writes cannot record what Nezuko does). Public: probes carry no
//! session.

use std::time::Duration;

use serde_json::json;
use warp::http::{Method, StatusCode};

use crate::http::respond::{self, ApiResult};
use crate::http::router::{Access, Ctx, Route};

/// How long a readiness probe waits for the database (a SQLite write lock included) before calling
/// it unavailable.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/healthz",
            Access::Public,
            "The process is up",
            |c| Box::pin(healthz(c)),
        ),
        Route::new(
            Method::GET,
            "/readyz",
            Access::Public,
            "The process answers and its database takes writes",
            |c| Box::pin(readyz(c)),
        ),
    ]
}

async fn healthz(_: Ctx) -> ApiResult {
    respond::ok(&json!({ "status": "ok" }))
}

async fn readyz(ctx: Ctx) -> ApiResult {
    {
        let store = &ctx.state.store;
        let backend = store.backend().as_str();
        let reason = match tokio::time::timeout(READY_TIMEOUT, store.probe_write()).await {
            Ok(Ok(())) => return respond::ok(&json!({ "status": "ready", "database": backend })),
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!(
                "the database did not answer within {} s",
                READY_TIMEOUT.as_secs()
            ),
        };
        tracing::warn!(reason, "readiness check failed");
        respond::with_status(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "unavailable", "database": backend, "reason": reason }),
        )
    }
}
