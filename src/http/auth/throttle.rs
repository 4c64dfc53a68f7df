//! Login attempts per client address: a fixed window of [`ATTEMPTS`] per [`WINDOW`]. Enough to make
//! guessing login links or replaying widget data pointless, small enough for a person who mistypes.

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
    /// Counts an attempt from `address`; `Err(seconds)` until the window ends when over the limit.
    pub fn attempt(&self, address: &str) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let (start, count) = windows.entry(address.to_string()).or_insert((now, 0));
        if now.duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        *count += 1;
        if *count > ATTEMPTS {
            let left = WINDOW.saturating_sub(now.duration_since(*start));
            return Err(left.as_secs().max(1));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_attempt_in_a_minute_is_refused_per_address() {
        let throttle = LoginThrottle::default();
        for _ in 0..ATTEMPTS {
            assert!(throttle.attempt("10.0.0.1").is_ok());
        }
        let wait = throttle.attempt("10.0.0.1").unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(throttle.attempt("10.0.0.2").is_ok());
    }
}
