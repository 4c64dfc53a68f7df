//! What a bot does with Telegram: the shared HTTP client, the classification of Telegram's answers
//! that the restart policy acts on, long polling, and the dispatcher that runs a bot's update handler
//! per member with a panic guard.

mod classify;
pub mod dispatch;
pub mod polling;
mod schema;
pub mod transport;

pub use classify::{Failure, Unavailable, classify, is_weather, is_weather_cause};
pub use schema::{ALLOWED, BotContext, BotIdentity, UpdateHandler, endpoint};
pub use transport::{Attempt, RetryPolicy};

use std::time::Duration;

/// The one HTTP client every bot shares (connection pool, TLS, timeouts).
///
/// The request timeout stays above the long-poll timeout ([`POLL_TIMEOUT`]) so a quiet poll is never
/// mistaken for a network failure.
pub fn http_client() -> reqwest::Client {
    teloxide::net::default_reqwest_settings()
        .timeout(POLL_TIMEOUT + Duration::from_secs(7))
        .pool_max_idle_per_host(4096)
        .build()
        .expect("the HTTP client builds from static settings")
}

/// How long one `getUpdates` waits for updates.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(10);
