//! What a bot's runner has done with the updates `getUpdates` handed it, kept so the bot's next
//! runner does not act on them again.
//!
//! Telegram forgets an update only when a later `getUpdates` confirms it with its `offset`
//! (<https://core.telegram.org/bots/api#getupdates>), and a runner confirms only on its next poll.
//! A runner killed between acting on an update and that poll leaves the update with Telegram, which
//! hands it to the bot's next runner: on another node after a SIGKILL, or the same process after a
//! restart. So each runner keeps its [`Progress`] (through its [`Inbox`](super::polling::Inbox),
//! written behind together with the records of the updates it acted on), and the next runner
//! confirms what its predecessor was done with instead of handling it again. What is left is the
//! moment between an action and the write of its records (tens of ms), not the seconds up to the
//! next poll.

/// Most updates a progress lists as pending while the runner works (one is kept per update acted
/// on). With more waiting, it claims only the updates below the first one left out: less
/// complete, still true. A stopping runner keeps the whole of it once.
pub const MAX_PENDING: usize = 256;

/// Every update up to `highest` is done with, except those in `pending`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub highest: i32,
    /// Updates up to `highest` still being handled, waiting to be handled again, or parked.
    pub pending: Vec<i32>,
}

impl Progress {
    /// Whether update `id` was done with, by this progress's word.
    pub fn done(&self, id: i32) -> bool {
        id <= self.highest && !self.pending.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_means_at_or_below_the_highest_and_not_pending() {
        let progress = Progress {
            highest: 10,
            pending: vec![7],
        };
        assert!(progress.done(3) && progress.done(10));
        assert!(!progress.done(7), "still being handled");
        assert!(!progress.done(11), "never handed out");
    }
}
