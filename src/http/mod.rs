//! The HTTP layer (warp): the route table in one place, one file per resource.
//!
//! [`serve`] takes an already-bound listener and a shutdown future, so tests bind port 0 and stop
//! the server when they are done.

mod health;

use std::future::Future;

use tokio::net::TcpListener;
use warp::Filter;

use crate::db::Store;

/// What every handler may need, cloned into each route.
#[derive(Debug, Clone)]
pub struct HttpState {
    pub store: Store,
}

/// Every route of the service.
pub fn routes(
    state: HttpState,
) -> impl Filter<Extract = (impl warp::Reply,), Error = std::convert::Infallible> + Clone {
    health::routes(state).recover(health::not_found)
}

/// Serves `routes` on `listener` until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    warp::serve(routes(state))
        .incoming(listener)
        .graceful(shutdown)
        .run()
        .await;
}
