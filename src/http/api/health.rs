//! `/healthz` (the process answers) and `/readyz` (the store would take a write too: a database
//! that answers reads but not writes cannot record what Nezuko does; and the supervision tree's
//! own services, the Registry and the Broadcaster, are running). Public: probes carry no session.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;
use warp::http::{Method, StatusCode};

use crate::actors::ServiceStatus;
use crate::db::{Backend, StoreError};
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
        )
        .returns::<Health>(StatusCode::OK),
        Route::new(
            Method::GET,
            "/readyz",
            Access::Public,
            "The process answers, its database takes writes and its services run",
            |c| Box::pin(readyz(c)),
        )
        .returns::<Readiness>(StatusCode::OK)
        .returns::<Readiness>(StatusCode::SERVICE_UNAVAILABLE),
    ]
}

/// The process answers.
#[derive(Serialize, JsonSchema)]
struct Health {
    /// Always `ok`.
    status: HealthStatus,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum HealthStatus {
    Ok,
}

/// Whether this process can do its work (200) or not (503, with the reason).
#[derive(Serialize, JsonSchema)]
struct Readiness {
    status: ReadyStatus,
    /// The database backend.
    database: Backend,
    /// What is wrong, for people (absent when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The supervision tree's own services.
    services: Vec<ServiceStatus>,
}

#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ReadyStatus {
    Ready,
    Unavailable,
}

async fn healthz(_: Ctx) -> ApiResult {
    respond::ok(&Health {
        status: HealthStatus::Ok,
    })
}

async fn readyz(ctx: Ctx) -> ApiResult {
    let store = &ctx.state.store;
    let backend = store.backend();
    let services = ctx.state.fleet.view().services();
    let database = match tokio::time::timeout(READY_TIMEOUT, store.probe_write()).await {
        Ok(Ok(())) => None,
        // The probe is public: the answer says what kind of trouble, the log says exactly what
        // (the server's own words can name its users and databases).
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness: the database failed the test write");
            Some(
                match &error {
                    StoreError::ReadOnly => "the database is read-only",
                    error if error.is_outage() => {
                        "the database is not reachable, refuses connections or is locked"
                    }
                    _ => "the database refused a test write",
                }
                .to_string(),
            )
        }
        Err(_) => Some(format!(
            "the database did not answer within {} s",
            READY_TIMEOUT.as_secs()
        )),
    };
    let stopped: Vec<String> = services
        .iter()
        .filter(|s| !s.running)
        .map(|s| {
            format!(
                "the {} is not running ({})",
                s.service,
                s.last_error.as_deref().unwrap_or("starting")
            )
        })
        .collect();
    let reasons: Vec<String> = database.into_iter().chain(stopped).collect();
    if reasons.is_empty() {
        return respond::ok(&Readiness {
            status: ReadyStatus::Ready,
            database: backend,
            reason: None,
            services,
        });
    }
    let reason = reasons.join("; ");
    tracing::warn!(reason, "readiness check failed");
    respond::with_status(
        StatusCode::SERVICE_UNAVAILABLE,
        &Readiness {
            status: ReadyStatus::Unavailable,
            database: backend,
            reason: Some(reason),
            services,
        },
    )
}
