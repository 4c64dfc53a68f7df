//! What a bot does with Telegram: the shared HTTP client, the classification of Telegram's answers
//! that the restart policy acts on, long polling, and the dispatcher that runs a bot's update handler
//! per member with a panic guard.

mod classify;
pub mod dispatch;
mod fence;
pub mod init_data;
pub mod join_query;
pub mod polling;
pub mod progress;
mod refusal;
mod schema;
pub mod transport;
pub mod webhook;

pub use classify::{Failure, Unavailable, classify, is_weather, is_weather_cause};
pub use fence::{Fence, Fenced, RunnerStopped};
pub use refusal::{TokenRefused, TokenWatch, is_halt, is_halt_cause, is_token_refused_cause};
pub use schema::{ALLOWED, BotContext, BotIdentity, UpdateHandler, endpoint};
pub use transport::{Attempt, RetryPolicy};

use std::time::Duration;

/// The one HTTP client every bot shares (connection pool, TLS, timeouts).
///
/// The request timeout stays above the long-poll timeout ([`POLL_TIMEOUT`]) so a quiet poll is never
/// mistaken for a network failure.
///
/// Every bot talks to one host, so the pool's idle limit is for the whole fleet. Each long poll
/// holds a connection of its own while it waits and takes one back at once when it ends, so idle
/// connections serve only the calls between polls: a few dozen at a time even at 20,000 updates/s.
/// [`IDLE_CONNECTIONS`] keeps those and closes the thousands a start-up burst opens, each of
/// which would otherwise stay for 90 s at about 20 KB (hyper's buffers and dispatch channel,
/// measured with heaptrack on `nezuko bench fleet --bots 10000`).
pub fn http_client() -> reqwest::Client {
    teloxide::net::default_reqwest_settings()
        .timeout(POLL_TIMEOUT + Duration::from_secs(7))
        .pool_max_idle_per_host(IDLE_CONNECTIONS)
        .build()
        .expect("the HTTP client builds from static settings")
}

/// Idle connections the shared HTTP client keeps to Telegram (see [`http_client`]).
pub const IDLE_CONNECTIONS: usize = 256;

/// How long one `getUpdates` waits for updates.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(10);
