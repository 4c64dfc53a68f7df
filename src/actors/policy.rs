//! The restart policy, in one place: which failures are weather and which are Nezuko's own
//! ([`cure`]), exponential backoff with jitter, reset after stable running, and a budget of own
//! faults per window beyond which a flapping bot is parked as `failed`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::domain::RunState;
use crate::telegram::Failure;

/// What the supervisor does about one failure of a bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cure {
    /// Telegram's weather (network, timeouts, 5xx, 429, another poller's 409): back off,
    /// honouring `retry_after`, and try again for as long as it lasts. Never parks the bot.
    RideOut { retry_after: Option<Duration> },
    /// Nezuko's own fault (the bot's task died with no outside cause): back off and try again,
    /// but repeated within the window it parks the bot as `failed` for an admin to look at.
    Retry,
    /// Retrying cannot help: the bot ends in this state (`stopped` for a token Telegram refuses,
    /// `failed` for one Nezuko cannot decrypt) until an admin acts.
    Halt(RunState),
}

/// The one place failures are sorted into cures. Weather never counts toward parking: a bot that
/// waited out an hour of 429s or another process's polls comes back by itself when they end.
pub fn cure(failure: &Failure) -> Cure {
    match failure {
        Failure::InvalidToken => Cure::Halt(RunState::Stopped),
        Failure::Undecryptable => Cure::Halt(RunState::Failed),
        Failure::Transient { retry_after, .. } => Cure::RideOut {
            retry_after: *retry_after,
        },
        Failure::Conflict => Cure::RideOut { retry_after: None },
        Failure::Died(_) => Cure::Retry,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// ±share of the delay added at random, so bots that failed together do not retry together.
    pub jitter: f64,
    /// Running this long without failing resets the backoff.
    pub stable_after: Duration,
    /// More of Nezuko's own faults than this within `window` park the bot in `failed`.
    pub max_failures: usize,
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
            jitter: 0.2,
            stable_after: Duration::from_secs(30),
            max_failures: 5,
            window: Duration::from_secs(60),
        }
    }
}

/// How the tree's own services (the Registry, the Broadcaster) are restarted: soon after the first
/// exit, then with a doubling pause up to 30 s, for as long as it takes (a process that cannot
/// watch `bot_instances` or store events cannot do its work, so it never gives up; each failure is
/// shown by `/readyz` and the dashboard meanwhile). 30 s of running resets the pause. Never parks
/// anything, so `max_failures` and `window` play no part.
pub const SERVICE_RESTARTS: RestartPolicy = RestartPolicy {
    initial_backoff: Duration::from_millis(100),
    max_backoff: Duration::from_secs(30),
    jitter: 0.2,
    stable_after: Duration::from_secs(30),
    max_failures: usize::MAX,
    window: Duration::from_secs(60),
};

impl RestartPolicy {
    /// The delay before retry number `attempt` (0-based), without jitter: initial × 2^attempt, capped.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(20));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// The delay with jitter, and never shorter than what Telegram asked for.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let base = self.base_delay(attempt).as_secs_f64();
        let spread = base * self.jitter;
        let jittered = if spread > 0.0 {
            base + rand::rng().random_range(-spread..=spread)
        } else {
            base
        };
        Duration::from_secs_f64(jittered.max(0.0)).max(retry_after.unwrap_or_default())
    }
}

/// Recent failures of one bot.
#[derive(Debug, Clone, Default)]
pub struct FailureWindow {
    failures: VecDeque<Instant>,
}

impl FailureWindow {
    /// Records a failure at `now`; returns whether the bot has now failed too often.
    pub fn record(&mut self, now: Instant, policy: &RestartPolicy) -> bool {
        self.failures.push_back(now);
        while self
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > policy.window)
        {
            self.failures.pop_front();
        }
        self.failures.len() > policy.max_failures
    }

    pub fn len(&self) -> usize {
        self.failures.len()
    }

    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }

    pub fn clear(&mut self) {
        self.failures.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nezukos_own_faults_can_park_a_bot_and_weather_waits_as_told() {
        let weather = [
            Failure::Conflict,
            Failure::Transient {
                reason: "network: connection reset".into(),
                retry_after: None,
            },
        ];
        for failure in &weather {
            assert_eq!(cure(failure), Cure::RideOut { retry_after: None });
        }
        let told = Failure::Transient {
            reason: "Telegram asked to retry after 5s".into(),
            retry_after: Some(Duration::from_secs(5)),
        };
        assert_eq!(
            cure(&told),
            Cure::RideOut {
                retry_after: Some(Duration::from_secs(5))
            }
        );
        assert_eq!(cure(&Failure::Died("panicked".into())), Cure::Retry);
        assert_eq!(cure(&Failure::InvalidToken), Cure::Halt(RunState::Stopped));
        assert_eq!(cure(&Failure::Undecryptable), Cure::Halt(RunState::Failed));
    }

    #[test]
    fn backoff_doubles_from_half_a_second_to_a_minute() {
        let policy = RestartPolicy::default();
        let delays: Vec<u64> = (0..10)
            .map(|a| policy.base_delay(a).as_millis() as u64)
            .collect();
        assert_eq!(
            delays,
            [
                500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000
            ]
        );
        assert_eq!(policy.base_delay(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_its_share_and_retry_after_is_honoured() {
        let policy = RestartPolicy::default();
        for _ in 0..100 {
            let d = policy.delay(1, None).as_millis();
            assert!((800..=1200).contains(&d), "{d}");
        }
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn too_many_failures_within_the_window_is_flapping() {
        let policy = RestartPolicy {
            max_failures: 3,
            window: Duration::from_secs(10),
            ..RestartPolicy::default()
        };
        let mut window = FailureWindow::default();
        let t = Instant::now();
        assert!(!window.record(t, &policy));
        assert!(!window.record(t + Duration::from_secs(1), &policy));
        assert!(!window.record(t + Duration::from_secs(2), &policy));
        assert!(window.record(t + Duration::from_secs(3), &policy));
        let mut spaced = FailureWindow::default();
        for n in 0..10 {
            assert!(
                !spaced.record(t + Duration::from_secs(11 * n), &policy),
                "old failures fall out of the window"
            );
        }
    }
}
