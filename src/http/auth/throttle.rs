//! Failed sign-ins per client address: a fixed window of [`ATTEMPTS`] failures per [`WINDOW`].
//! Enough to make guessing login links or replaying widget data pointless, small enough for a
//! person who mistypes. Successful sign-ins do not count: an admin who signs in often from a
//! shared address never locks out the others.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const ATTEMPTS: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered before old windows are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Default)]
pub struct LoginThrottle {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl LoginThrottle {
    /// Whether `address` may try to sign in: `Err(seconds)` until its window ends once it has
    /// failed [`ATTEMPTS`] times within it.
    pub fn check(&self, address: &str) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(windows) = self.windows.lock() else {
            return Ok(());
        };
        match windows.get(address) {
            Some((start, failures))
                if now.duration_since(*start) < WINDOW && *failures >= ATTEMPTS =>
            {
                let left = WINDOW.saturating_sub(now.duration_since(*start));
                Err(left.as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed sign-in from `address`.
    pub fn failed(&self, address: &str) {
        let now = Instant::now();
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let (start, failures) = windows.entry(address.to_string()).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            *start = now;
            *failures = 0;
        }
        *failures += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_in_a_minute_refuse_the_address_and_successes_never_count() {
        let throttle = LoginThrottle::default();
        for _ in 0..100 {
            assert!(
                throttle.check("10.0.0.1").is_ok(),
                "checks alone never lock"
            );
        }
        for _ in 0..ATTEMPTS {
            assert!(throttle.check("10.0.0.1").is_ok());
            throttle.failed("10.0.0.1");
        }
        let wait = throttle.check("10.0.0.1").unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(throttle.check("10.0.0.2").is_ok());
    }
}
