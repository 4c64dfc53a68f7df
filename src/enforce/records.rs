//! The write-behind for `verification_log`, `api_call_log`, `channel_members` and
//! `update_progress`: handlers hand rows
//! to a channel and move on; one task writes them in multi-row statements. A database outage keeps rows queued (up to
//! [`MAX_QUEUED`]) and retries; [`Records::flush`] writes everything queued before shutdown.
//!
//! Rows are counted as they are handed over and as they are written, so an update can be confirmed
//! to Telegram only once its rows are stored ([`Records::mark`], [`Records::written`]): a process
//! killed with rows still queued loses nothing, because Telegram delivers those updates again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::progress::Progress;

use crate::db::{ApiCall, ChannelMember, Store, UpdateProgress, Verification};

/// Rows kept while the database is unreachable; beyond this the oldest are dropped and counted.
const MAX_QUEUED: usize = 200_000;
/// Rows gathered into one write at most.
const BATCH: usize = 5_000;
/// How long rows wait for company before being written.
const LINGER: Duration = Duration::from_millis(20);

enum Record {
    Verification(Verification),
    Call(ApiCall),
    Member(ChannelMember),
    Progress(UpdateProgress),
    Flush(oneshot::Sender<()>),
}

/// A handle to the writer; cheap to clone.
#[derive(Clone)]
pub struct Records {
    sender: mpsc::UnboundedSender<Record>,
    dropped: Arc<AtomicU64>,
    /// Rows handed over so far.
    sent: Arc<AtomicU64>,
    /// Rows done with so far (stored, or dropped as unstorable), in the order handed over.
    written: Arc<Progress>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").finish_non_exhaustive()
    }
}

impl Records {
    /// Starts the writer task.
    pub fn start(store: Store) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let dropped = Arc::new(AtomicU64::new(0));
        let written = Arc::new(Progress::default());
        tokio::spawn(write_loop(
            store,
            receiver,
            dropped.clone(),
            written.clone(),
        ));
        Self {
            sender,
            dropped,
            sent: Arc::new(AtomicU64::new(0)),
            written,
        }
    }

    pub fn verification(&self, row: Verification) {
        self.hand_over(Record::Verification(row));
    }

    pub fn call(&self, row: ApiCall) {
        self.hand_over(Record::Call(row));
    }

    /// What Telegram said about a (channel, user) pair, kept for the next start.
    pub fn member(&self, row: ChannelMember) {
        self.hand_over(Record::Member(row));
    }

    /// What a bot's runner is done with (`telegram::progress`). Written after every row handed
    /// over before it, never before them.
    pub fn progress(&self, row: UpdateProgress) {
        self.hand_over(Record::Progress(row));
    }

    fn hand_over(&self, record: Record) {
        self.sent.fetch_add(1, Ordering::SeqCst);
        if self.sender.send(record).is_err() {
            // The writer is gone (shutting down): nothing will be written; do not wait for it.
            self.sent.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A mark covering every row handed over so far by anyone, this caller's included. The channel
    /// is first in, first out, so once [`Records::written`] reaches the mark, this caller's rows
    /// are stored.
    pub fn mark(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Waits until the rows up to `mark` are stored. It waits as long as the database is away;
    /// a row the database refuses for good is dropped (and counted), not waited for.
    pub async fn written(&self, mark: u64) {
        self.written.reach(mark).await;
    }

    /// Writes everything handed over so far (or gives up after `timeout`).
    pub async fn flush(&self, timeout: Duration) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Record::Flush(done)).is_ok() {
            // A timeout is the answer: the caller stops waiting, the records are still written.
            let _ = tokio::time::timeout(timeout, wait).await;
        }
    }

    /// Rows lost because the database stayed away too long.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_loop(
    store: Store,
    mut receiver: mpsc::UnboundedReceiver<Record>,
    dropped: Arc<AtomicU64>,
    progress: Arc<Progress>,
) {
    let mut rows = Rows::default();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = receiver.recv().await {
        let deadline = tokio::time::Instant::now() + LINGER;
        let mut next = Some(first);
        loop {
            match next.take() {
                Some(Record::Verification(row)) => rows.verifications.push(row),
                Some(Record::Call(row)) => rows.calls.push(row),
                Some(Record::Member(row)) => rows.members.push(row),
                Some(Record::Progress(row)) => rows.progress.push(row),
                Some(Record::Flush(done)) => {
                    waiting.push(done);
                    break;
                }
                None => {}
            }
            if rows.len() >= BATCH {
                break;
            }
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(record)) => next = Some(record),
                Ok(None) | Err(_) => break,
            }
        }
        // Retry in place while the database is away: records wait in the channel meanwhile, and the
        // rows in hand are trimmed to the newest MAX_QUEUED. Rows the database refuses for good
        // (not an outage) are dropped after a few tries rather than holding up everything behind.
        let batch = rows.len() as u64;
        let mut failures = 0u32;
        while let Err(error) = rows.write(&store).await {
            failures += 1;
            if failures == 1 || failures.is_multiple_of(50) {
                tracing::warn!(%error, queued = rows.len(), "cannot write records yet; retrying");
            }
            if !error.is_outage() && failures >= 5 {
                tracing::error!(%error, rows = rows.len(), "the database refuses these records; dropped");
                dropped.fetch_add(rows.len() as u64, Ordering::Relaxed);
                rows = Rows::default();
                break;
            }
            trim(&mut rows.verifications, &dropped);
            trim(&mut rows.calls, &dropped);
            trim(&mut rows.members, &dropped);
            trim(&mut rows.progress, &dropped);
            tokio::time::sleep(Duration::from_millis(200 * u64::from(failures.min(25)))).await;
        }
        progress.advance(batch);
        for done in waiting.drain(..) {
            // A waiter that gave up (timed out) needs no answer.
            let _ = done.send(());
        }
    }
    // Every handle is gone: nothing more will be written, so nobody waits for it.
    progress.close();
}

/// Rows in hand, by table.
#[derive(Default)]
struct Rows {
    verifications: Vec<Verification>,
    calls: Vec<ApiCall>,
    members: Vec<ChannelMember>,
    progress: Vec<UpdateProgress>,
}

impl Rows {
    fn len(&self) -> usize {
        self.verifications.len() + self.calls.len() + self.members.len() + self.progress.len()
    }

    /// Writes and clears each kind on success, so a retry never writes a row twice.
    async fn write(&mut self, store: &Store) -> Result<(), crate::db::StoreError> {
        if !self.verifications.is_empty() {
            store.insert_verifications(&self.verifications).await?;
            self.verifications.clear();
        }
        if !self.calls.is_empty() {
            store.insert_api_calls(&self.calls).await?;
            self.calls.clear();
        }
        if !self.members.is_empty() {
            store.remember_channel_members(&self.members).await?;
            self.members.clear();
        }
        // Last: a progress says its updates' records are stored.
        if !self.progress.is_empty() {
            store.keep_update_progress(&self.progress).await?;
            self.progress.clear();
        }
        Ok(())
    }
}

fn trim<T>(rows: &mut Vec<T>, dropped: &AtomicU64) {
    if rows.len() > MAX_QUEUED {
        let excess = rows.len() - MAX_QUEUED;
        rows.drain(..excess);
        dropped.fetch_add(excess as u64, Ordering::Relaxed);
    }
}
