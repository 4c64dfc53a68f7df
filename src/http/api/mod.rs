//! One file per resource; each exposes `routes()`, and [`routes`] concatenates them into the table.

mod admins;
mod attention;
pub mod audit;
mod bots;
mod channels;
pub mod charts;
mod dashboard;
mod events;
mod groups;
mod health;
mod join_requests;
mod logs;
mod metrics;
mod nodes;
pub mod openapi;
mod protect;
pub mod session;
mod settings;
pub mod telegram;
mod vocabulary;

use super::router::Route;

/// The probes alone: health, readiness and metrics.
pub fn probe_routes() -> Vec<Route> {
    [health::routes(), metrics::routes(), telegram::routes()].concat()
}

/// Every route the server answers.
pub fn routes() -> Vec<Route> {
    [
        health::routes(),
        session::routes(),
        admins::routes(),
        bots::routes(),
        groups::routes(),
        protect::routes(),
        join_requests::routes(),
        channels::routes(),
        settings::routes(),
        attention::routes(),
        events::routes(),
        audit::routes(),
        dashboard::routes(),
        charts::routes(),
        logs::routes(),
        metrics::routes(),
        nodes::routes(),
        openapi::routes(),
        vocabulary::routes(),
        telegram::routes(),
    ]
    .concat()
}
