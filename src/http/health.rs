//! `/healthz` (the process answers) and `/readyz` (the store answers too).

use std::convert::Infallible;
use std::time::Duration;

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::HttpState;

/// How long a readiness probe waits for the database before calling it unavailable.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes(state: HttpState) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&json!({ "status": "ok" })));
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(warp::any().map(move || state.clone()))
        .then(readyz);
    healthz.or(readyz)
}

async fn readyz(state: HttpState) -> warp::reply::WithStatus<warp::reply::Json> {
    let backend = state.store.backend().as_str();
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => warp::reply::with_status(
            warp::reply::json(&json!({ "status": "ready", "database": backend })),
            StatusCode::OK,
        ),
        Ok(Err(err)) => unavailable(backend, &err.to_string()),
        Err(_) => unavailable(backend, "the database did not answer within 2 s"),
    }
}

fn unavailable(backend: &str, reason: &str) -> warp::reply::WithStatus<warp::reply::Json> {
    tracing::warn!(reason, "readiness check failed");
    warp::reply::with_status(
        warp::reply::json(
            &json!({ "status": "unavailable", "database": backend, "reason": reason }),
        ),
        StatusCode::SERVICE_UNAVAILABLE,
    )
}

/// Renders unmatched routes and wrong methods as JSON instead of warp's plain text.
pub async fn not_found(rejection: Rejection) -> Result<impl Reply, Infallible> {
    let (status, message) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "no such route")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this route",
        )
    } else {
        (StatusCode::BAD_REQUEST, "bad request")
    };
    Ok(warp::reply::with_status(
        warp::reply::json(&json!({ "status": status.as_u16(), "error": message })),
        status,
    ))
}
