//! A count that only grows, and waiters for it to reach a mark, each woken once when it does.
//!
//! The records writer's progress had been a `tokio::sync::watch`: every write woke every update
//! waiting for its rows to be stored, and each looked and went back to sleep. With thousands of
//! updates in hand (`bench verify`, 100 bots) that herd was a fifth of the product's CPU. Here a
//! waiter sits under its mark and only the marks reached are woken.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

#[derive(Default)]
pub struct Progress {
    done: AtomicU64,
    /// Nothing more will be counted (the counting side ended): nobody waits any more.
    closed: AtomicBool,
    waiters: Mutex<BTreeMap<u64, Vec<oneshot::Sender<()>>>>,
}

impl Progress {
    fn waiters(&self) -> MutexGuard<'_, BTreeMap<u64, Vec<oneshot::Sender<()>>>> {
        // Nothing panics while holding it; the map stays whole either way.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reached(&self, mark: u64) -> bool {
        self.done.load(Ordering::SeqCst) >= mark || self.closed.load(Ordering::SeqCst)
    }

    /// Resolves once the count is at least `mark`, or the count was closed.
    pub async fn reach(&self, mark: u64) {
        if self.reached(mark) {
            return;
        }
        let (wake, woken) = oneshot::channel();
        self.waiters().entry(mark).or_default().push(wake);
        // Looked at again after queueing: an advance in between took the waiters before this one
        // was among them.
        if self.reached(mark) {
            return;
        }
        // A dropped waker means the writer ended: there is nothing more to wait for.
        let _ = woken.await;
    }

    /// Adds `n` and wakes whoever waited for a mark now reached.
    pub fn advance(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::SeqCst) + n;
        let ready = {
            let mut waiters = self.waiters();
            let later = waiters.split_off(&(done + 1));
            std::mem::replace(&mut *waiters, later)
        };
        for wake in ready.into_values().flatten() {
            // A waiter that gave up (timed out) needs no wake-up.
            let _ = wake.send(());
        }
    }

    /// Nothing more will be counted: every waiter, present and future, is let go.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let all = std::mem::take(&mut *self.waiters());
        drop(all);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_waiter_is_let_go_when_its_mark_is_reached_and_not_before() {
        let progress = Arc::new(Progress::default());
        let early = tokio::spawn({
            let progress = progress.clone();
            async move { progress.reach(2).await }
        });
        let late = tokio::spawn({
            let progress = progress.clone();
            async move { progress.reach(5).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        progress.advance(3);
        tokio::time::timeout(Duration::from_secs(1), early)
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!late.is_finished(), "5 is not reached at 3");
        assert_eq!(
            progress.waiters().len(),
            1,
            "only the reached mark was taken"
        );
        progress.advance(2);
        tokio::time::timeout(Duration::from_secs(1), late)
            .await
            .unwrap()
            .unwrap();
        progress.reach(4).await;
    }

    #[tokio::test]
    async fn closing_lets_everyone_go() {
        let progress = Arc::new(Progress::default());
        let waiting = tokio::spawn({
            let progress = progress.clone();
            async move { progress.reach(10).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        progress.close();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        progress.reach(100).await;
    }
}
