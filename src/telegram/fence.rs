//! A bot's fence: until when this process may still speak for the bot to Telegram.
//!
//! On PostgreSQL each bot is run by the node holding its lease (`actors::leases`), and a lease
//! that is not renewed in time passes to another node. A node cut off from the database, or
//! paused (SIGSTOP, a VM frozen), cannot learn that in time; what it can know is how long its
//! last renewal lasts. Every request a bot sends checks its fence first, so once that time has
//! passed the node sends nothing for the bot — not a poll, not an action, not a confirmation —
//! however late its own tasks wake up. The deadline is kept on the monotonic clock, which runs on
//! through a pause, and ends before the lease does in the database (see `actors::leases`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use teloxide::RequestError;

/// The start of this process's fence clock.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds since [`EPOCH`] at `at`.
fn ms_since_epoch(at: Instant) -> u64 {
    at.saturating_duration_since(*EPOCH).as_millis() as u64
}

/// Until when a bot's requests may be sent; cheap to clone (clones share the deadline).
#[derive(Clone)]
pub struct Fence {
    /// Milliseconds since [`EPOCH`]; `u64::MAX` for a bot that is not leased (SQLite: one process
    /// runs every bot), 0 once closed.
    until: Arc<AtomicU64>,
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.until.load(Ordering::Acquire) {
            u64::MAX => f.write_str("Fence(open)"),
            until => write!(f, "Fence(until {until} ms)"),
        }
    }
}

impl Fence {
    /// A fence that always holds: the bot is not leased.
    pub fn open() -> Self {
        Self {
            until: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }

    /// A fence that holds until `until`.
    pub fn until(until: Instant) -> Self {
        Self {
            until: Arc::new(AtomicU64::new(ms_since_epoch(until))),
        }
    }

    /// Moves the deadline to `until` (a renewal); never reopens a closed fence.
    pub fn extend(&self, until: Instant) {
        let until = ms_since_epoch(until);
        // Err means the fence is closed (0), which a renewal must not reopen: nothing to do.
        let _ = self
            .until
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now != 0).then_some(until.max(now))
            });
    }

    /// Ends the fence at once: nothing more is sent for the bot by this holder.
    pub fn close(&self) {
        self.until.store(0, Ordering::Release);
    }

    /// Whether requests may still be sent.
    pub fn holds(&self) -> bool {
        let until = self.until.load(Ordering::Acquire);
        until == u64::MAX || ms_since_epoch(Instant::now()) < until
    }

    /// How long the fence still holds; `None` for an open fence (no end).
    pub fn left(&self) -> Option<Duration> {
        match self.until.load(Ordering::Acquire) {
            u64::MAX => None,
            until => Some(Duration::from_millis(
                until.saturating_sub(ms_since_epoch(Instant::now())),
            )),
        }
    }

    /// `Ok` while the fence holds, else the error a request returns instead of being sent.
    pub fn check(&self) -> Result<(), RequestError> {
        if self.holds() {
            Ok(())
        } else {
            Err(Fenced.into())
        }
    }
}

/// A request not sent because this node's lease on the bot has ended. Carried inside
/// [`RequestError::Io`] like [`super::Unavailable`], so it counts as weather: the update is not
/// confirmed, and Telegram hands it to the bot's next runner.
#[derive(Debug)]
pub struct Fenced;

impl fmt::Display for Fenced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not sent: this node's lease on the bot has ended, another node may run it now")
    }
}

impl std::error::Error for Fenced {}

impl From<Fenced> for RequestError {
    fn from(fenced: Fenced) -> Self {
        RequestError::Io(Arc::new(std::io::Error::other(fenced)))
    }
}

/// A request not sent because the runner that would have sent it has stopped (the bot was
/// stopped or restarted): what it still had queued is the next runner's, from the database.
/// Carried like [`Fenced`], so it counts as weather.
#[derive(Debug)]
pub struct RunnerStopped;

impl fmt::Display for RunnerStopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not sent: the bot's runner has stopped; its next runner takes over")
    }
}

impl std::error::Error for RunnerStopped {}

impl From<RunnerStopped> for RequestError {
    fn from(stopped: RunnerStopped) -> Self {
        RequestError::Io(Arc::new(std::io::Error::other(stopped)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_holds_until_its_deadline_is_extended_by_renewals_and_never_reopens_once_closed() {
        assert!(Fence::open().holds());
        assert_eq!(Fence::open().left(), None);
        let long = Fence::until(Instant::now() + Duration::from_secs(6));
        assert!(long.left().unwrap() > Duration::from_secs(5));
        let fence = Fence::until(Instant::now() + Duration::from_millis(30));
        assert!(fence.holds());
        std::thread::sleep(Duration::from_millis(40));
        assert!(!fence.holds());
        assert!(fence.check().is_err());
        fence.extend(Instant::now() + Duration::from_secs(5));
        assert!(fence.holds(), "a renewal in time moves the deadline");
        fence.extend(Instant::now());
        assert!(fence.holds(), "a late renewal's answer never shortens it");
        fence.close();
        fence.extend(Instant::now() + Duration::from_secs(5));
        assert!(!fence.holds(), "closed is closed");
        let error = fence.check().unwrap_err().to_string();
        assert!(error.contains("lease on the bot has ended"), "{error}");
    }
}
