//! Waiting in tests. A test waits for a condition it can observe ([`eventually`], or the sandbox's
//! `wait_until`), never for a fixed time, except where time itself is the point, and then through
//! one of two named helpers so that every such wait says why: [`quiet_period`], the window after
//! which a test asserts that something did *not* happen (or happened at most so often), and
//! [`elapse`], time a scenario is made of (an outage that lasts 30 s, joins spread over seconds).

use std::fmt::Debug;
use std::time::Duration;

/// How often [`eventually`] looks again.
const RECHECK: Duration = Duration::from_millis(50);

/// Waits until `check` answers `Ok`, asking again every 50 ms for at most `within`, and returns
/// its value. Until then `check` answers `Err` with what it saw instead: a timeout panics naming
/// `what` (what was waited for) and that last state.
pub async fn eventually<T, S: Debug>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Result<T, S>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let seen = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {within:?} for {what}; last seen: {seen:?}"
        );
        tokio::time::sleep(RECHECK).await;
    }
}

/// A deliberate observation window: lets `length` pass so that the test can then assert that
/// something did *not* happen within it (no further call, no second message, no restart), or
/// happened at most so often. It is not a wait for the system to do something: wait for that
/// first, for a sign that the system handled what the test did (an update confirmed, a call
/// made), so that the window starts after it instead of racing it. `why` says what would have
/// happened within `length` had the product been wrong, which is what sets the length.
pub async fn quiet_period(length: Duration, why: &str) {
    tracing::debug!(?length, why, "a quiet period begins");
    tokio::time::sleep(length).await;
}

/// Lets `length` of wall-clock time pass because the scenario is made of it: an outage that lasts
/// that long, or input spread out over time. Not a wait for the system to do something (use
/// [`eventually`]) nor a window for asserting that nothing happened (use [`quiet_period`]).
pub async fn elapse(length: Duration, why: &str) {
    tracing::debug!(?length, why, "letting scenario time pass");
    tokio::time::sleep(length).await;
}
