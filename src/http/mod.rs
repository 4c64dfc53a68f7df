//! The HTTP layer (warp): the admin API under `/api/v1`, the health probes and `/metrics`.
//!
//! Routes live in a table ([`router`]) built from one file per resource under [`api`]; the same
//! table produces the OpenAPI document. [`serve`] takes an already-bound listener and a shutdown
//! future, so tests bind port 0 and stop the server when they are done.

pub mod api;
pub mod auth;
pub mod forwarded;
pub mod input;
pub mod problem;
pub mod respond;
pub mod router;
pub mod static_files;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use warp::Filter;

use crate::actors::FleetHandle;
use crate::db::Store;
use crate::enforce::Enforcer;
use crate::vault::Vault;

pub use auth::AuthConfig;
pub use router::{Access, Route, Router};

/// What every handler may need; cheap to clone.
#[derive(Clone)]
pub struct HttpState {
    pub store: Store,
    pub vault: Vault,
    pub fleet: FleetHandle,
    pub enforcer: Enforcer,
    pub auth: Arc<AuthConfig>,
    /// Where bots' tokens are checked with `getMe` (the configured Bot API URL).
    pub telegram_api_url: String,
    pub http_client: reqwest::Client,
    pub throttle: Arc<auth::throttle::LoginThrottle>,
    pub started_at: Instant,
    /// Filled by [`serve`]; the OpenAPI route reads the table from here.
    pub router: Arc<std::sync::OnceLock<Arc<Router>>>,
    /// Turns true when the server shuts down: open event streams end, so the graceful shutdown
    /// does not wait on dashboards that never hang up.
    pub closing: tokio::sync::watch::Receiver<bool>,
    /// Takes in Telegram's webhook deliveries (`POST /telegram/{id}`), in either mode.
    pub webhooks: crate::webhooks::Webhooks,
    /// Sends alerts (the settings page's "Send a test").
    pub alerts: crate::actors::alerter::AlertSender,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The whole route table.
pub fn router() -> Arc<Router> {
    Router::new(api::routes())
}

/// What a process that only runs bots serves: `/healthz`, `/readyz`, `/metrics` and Telegram's
/// webhook deliveries (`/telegram/{id}`), no admin API and no dashboard.
pub fn probe_router() -> Arc<Router> {
    Router::without_dashboard(api::probe_routes())
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_with(listener, state, router(), shutdown).await
}

/// Serves `router`'s routes on `listener` until `shutdown` resolves, then finishes in-flight
/// requests.
pub async fn serve_with(
    listener: TcpListener,
    mut state: HttpState,
    router: Arc<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (closing, closed) = tokio::sync::watch::channel(false);
    state.closing = closed;
    let shutdown = async move {
        shutdown.await;
        // No open stream is listening when nobody subscribed.
        let _ = closing.send(true);
    };
    // Set once per state; a second `serve` on the same state keeps the first table.
    let _ = state.router.set(router.clone());
    let routes = router::filter(state, router).with(warp::log::custom(|_| {}));
    warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}
