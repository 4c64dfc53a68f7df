//! Long polling that confirms an update to Telegram only once it was handled, or kept.
//!
//! `getUpdates` confirms every update below the `offset` it is called with
//! (<https://core.telegram.org/bots/api#getupdates>). teloxide's `Polling` asks with the offset
//! after the last update it *fetched*, so an update still being handled, or one that could not be
//! handled (the database was unreachable), is confirmed anyway and lost when the process stops.
//! Here the offset is the oldest update not yet done with ([`Ledger`]): Telegram keeps the rest and
//! delivers them again, and updates already handed out are not handed out twice. An update whose
//! handling hit an outage is handed out again after a pause, until it is handled: from memory, at
//! its time, while the long poll in flight goes on.
//!
//! Holding the offset has a price: `getUpdates` returns at most 100 updates from the offset, so one
//! slow update (waiting out a 429, retrying a 5xx) would stop the whole bot once 100 more arrived
//! behind it. An update open longer than [`PARK_AFTER`] while polls bring back only updates
//! already handed out is *parked*: written to the bot's [`Inbox`] (the `parked_updates` table),
//! after which it no longer holds the offset. A parked update is removed from the inbox once done
//! with, and handed out again from it when the bot next starts (after a crash). While the inbox
//! cannot be written (the database is away), nothing is parked and Telegram keeps everything.
//!
//! Requests go through Nezuko's [`transport`](super::transport): a 5xx costs no 10 s sleep, and a
//! 429's `retry_after` is waited out before the next poll.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};
use serde_json::value::RawValue;
use teloxide::Bot;
use teloxide::RequestError;
use teloxide::payloads::{GetUpdates, GetUpdatesSetters};
use teloxide::stop::{StopFlag, StopToken, mk_stop_token};
use teloxide::types::{AllowedUpdate, Update, UpdateKind};
use teloxide::update_listeners::{AsUpdateStream, UpdateListener};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Fence;
use super::progress::{MAX_PENDING, Progress};
use super::transport::{self, Attempt};

/// The first pause before an update whose handling hit an outage is handed out again; it doubles
/// up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// After a poll that brought back updates still being handled, the next waits for the oldest of
/// them to be done with, or this long; the wait doubles with each such poll in a row, up to
/// [`SETTLE_MAX`].
const SETTLE_WAIT: Duration = Duration::from_millis(100);
/// The longest wait between polls that bring back only open updates (the offset moving on ends
/// it at once). Asking again sooner is of little use: Telegram answers a `getUpdates` repeated with
/// the same offset within 0.5 s with at most one update, and raises the timeout of one repeated
/// within 3 s to 3 s (tdlib/telegram-bot-api, `Client::process_get_updates_query`); and a fleet
/// of 10,000 bots whose handlers wait on a busy database spent a whole core on polls that brought
/// back only what they already had (`nezuko bench fleet`: 10,000 polls/s at a 0.8 s bound).
const SETTLE_MAX: Duration = Duration::from_secs(3);
/// How long an update may hold the offset while polls bring back only what is already handed out,
/// before it is parked in the inbox so the offset can move on.
pub const PARK_AFTER: Duration = Duration::from_millis(100);
/// The least fence a leased bot's poll starts with: a poll ends a second before the fence, so
/// with less left it would be a `timeout=0` call, and a late renewal would turn polling into a
/// stream of them (a black-box run saw 600 calls/s from one node cut off from its database).
const MIN_POLL_LEFT: Duration = Duration::from_secs(2);
/// How often a bot waiting for its lease's renewal looks again.
const FENCE_RECHECK: Duration = Duration::from_millis(200);
/// Pauses after a failed poll that gave no `retry_after` (the actor restarts the bot meanwhile).
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// One bot's durable store of updates Telegram was told to forget before they were done with.
pub trait Inbox: Send + Sync + 'static {
    /// Keeps these updates: (`update_id`, the `Update` object as Telegram sent it).
    fn park(&self, updates: Vec<(i32, Arc<str>)>) -> BoxFuture<'static, anyhow::Result<()>>;
    /// Forgets these updates (done with).
    fn unpark(&self, update_ids: Vec<i32>) -> BoxFuture<'static, anyhow::Result<()>>;
    /// Every update kept, oldest first.
    fn parked(&self) -> BoxFuture<'static, anyhow::Result<Vec<(i32, String)>>>;
    /// Keeps what this runner has done with ([`Progress`]), written behind in the order given.
    /// Not kept by default.
    fn keep_progress(&self, _progress: Progress) {}
    /// What the bot's last runner had done with, if it was kept.
    fn progress(&self) -> BoxFuture<'static, anyhow::Result<Option<Progress>>> {
        Box::pin(async { Ok(None) })
    }
}

/// Which updates a bot has handed out and which of them are handled.
#[derive(Default)]
pub struct Ledger {
    state: Mutex<LedgerState>,
    /// An open update was done with, or is to be handed out again.
    pub(super) settled: Notify,
    /// An update is to be handed out again (wakes a poller waiting on its long poll; not every
    /// handled update does, which on a busy bot would be one wake-up per update).
    pub(super) rescheduled: Notify,
    /// Where this runner's [`Progress`] is kept (polling only: webhook deliveries are marked done
    /// in their own table).
    journal: std::sync::OnceLock<Arc<dyn Inbox>>,
}

/// An update handed out, not yet done with, and not parked: it holds the offset.
struct Open {
    since: Instant,
    /// The update as Telegram sent it (what parking keeps).
    raw: Arc<str>,
}

#[derive(Default)]
struct LedgerState {
    /// By id, so the oldest (the offset) is the first: read at every poll and every settle check,
    /// it must not cost a scan (thousands of updates may be parked in a flood).
    open: BTreeMap<i32, Open>,
    /// Updates kept in the inbox and not yet done with: they no longer hold the offset.
    parked: HashSet<i32>,
    /// The highest update id a poll handed out.
    highest: Option<i32>,
    /// Updates handed out again from the inbox at start: Telegram may deliver them once more if
    /// the process ended between parking them and the next poll, and they are not handled twice.
    replayed: HashSet<i32>,
    /// Updates to hand out again, with when.
    again: VecDeque<(Instant, Update)>,
    /// Times each open update was handed out again.
    retries: HashMap<i32, u32>,
    /// Parked updates done with since the inbox was last told.
    unpark: Vec<i32>,
    /// The offset of the last `getUpdates` sent, and when: Telegram forgot everything below it.
    polled: Option<(i32, Instant)>,
    /// Open updates acted on whose records are being stored: done, as far as a next runner is
    /// concerned (their progress is written after their records).
    acted: HashSet<i32>,
    /// What the bot's previous runner was done with: Telegram may hand those updates out again.
    inherited: Option<Progress>,
    /// Guard-bot query ids of join requests not yet done with, by update id (teloxide's type
    /// drops them; see `telegram::join_query`).
    join_queries: HashMap<i32, String>,
}

impl LedgerState {
    /// Every update handed out so far is done with except those open or parked and not acted on:
    /// at most `limit` of them are listed, and the progress claims only up to the first one left
    /// out. `None` before any update.
    fn progress(&self, limit: usize) -> Option<Progress> {
        let mut highest = self.highest?;
        let mut waiting: Vec<i32> = self
            .open
            .keys()
            .filter(|id| !self.acted.contains(id))
            .take(limit + 1)
            .copied()
            .collect();
        waiting.extend(self.parked.iter().filter(|id| !self.acted.contains(id)));
        waiting.sort_unstable();
        if waiting.len() > limit {
            highest = highest.min(waiting[limit] - 1);
            waiting.truncate(limit);
        }
        Some(Progress {
            highest,
            pending: waiting,
        })
    }
}

impl Ledger {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `offset` for the next `getUpdates`: the oldest update not done with and not parked,
    /// else the one after the highest handed out (0 before any). A slow update holds the offset
    /// until it is parked: confirming it before would lose it to a crash.
    pub fn offset(&self) -> i32 {
        let state = self.lock();
        match (state.open.first_key_value(), state.highest) {
            (Some((oldest, _)), _) => *oldest,
            (None, Some(highest)) => highest.saturating_add(1),
            (None, None) => 0,
        }
    }

    /// The updates of a poll not handed out before, now marked open. Only these are read in full:
    /// a poll from an offset held by an update still being handled brings back what was already
    /// handed out, and reading it again (teloxide's `Update` is most of the cost of an update)
    /// would be wasted. Updates teloxide cannot read (`UpdateKind::Error`, or not at all) count
    /// as handled.
    fn take_new(&self, updates: Vec<(i32, Box<RawValue>)>) -> Vec<Update> {
        let unseen: Vec<(i32, Box<RawValue>)> = {
            let mut state = self.lock();
            let highest = state.highest;
            let unseen: Vec<_> = updates
                .into_iter()
                .filter(|(id, _)| highest.is_none_or(|highest| *id > highest))
                .collect();
            if let Some((last, _)) = unseen.last() {
                state.highest = Some(*last);
            }
            unseen
        };
        // Read outside the lock: the handlers mark updates handled meanwhile.
        let read: Vec<(i32, Update, Box<RawValue>)> = unseen
            .into_iter()
            .filter_map(|(id, raw)| {
                let update = serde_json::from_str::<Update>(raw.get()).ok()?;
                self.note_join_query(&update, raw.get());
                (!matches!(update.kind, UpdateKind::Error(_))).then_some((id, update, raw))
            })
            .collect();
        let mut state = self.lock();
        let now = Instant::now();
        let mut fresh = Vec::with_capacity(read.len());
        for (id, update, raw) in read {
            if state.replayed.contains(&id) {
                continue;
            }
            // Acted on by the previous runner, which died before confirming it: confirmed by the
            // next poll, not handled twice.
            if state.inherited.as_ref().is_some_and(|p| p.done(id)) {
                tracing::debug!(
                    update_id = id,
                    "done with by the bot's previous runner; confirmed, not handled again"
                );
                continue;
            }
            let raw = Arc::from(raw.get());
            state.open.insert(id, Open { since: now, raw });
            fresh.push(update);
        }
        fresh
    }

    /// A `getUpdates` with `offset` is on its way.
    fn note_poll(&self, offset: i32) {
        self.lock().polled = Some((offset, Instant::now()));
    }

    /// Whether a `getUpdates` sent at least `ago` ago already confirmed everything below
    /// `offset`: a confirmation of its own would be redundant, and, while that poll is still
    /// open at Telegram, would end it with 409.
    pub fn confirmed_by_poll(&self, offset: i32, ago: Duration) -> bool {
        self.lock()
            .polled
            .is_some_and(|(polled, at)| polled >= offset && at.elapsed() >= ago)
    }

    /// Updates read back from the inbox at start, now open (and parked).
    fn take_replayed(&self, updates: &[Update]) {
        let mut state = self.lock();
        for update in updates {
            let id = update.id.0 as i32;
            state.replayed.insert(id);
            state.parked.insert(id);
        }
    }

    /// Updates read from the inbox as they arrive (webhook mode), now handed out: they are
    /// parked from the start, so handling one owes the inbox an unpark.
    pub(super) fn take_delivered(&self, updates: &[Update]) {
        let mut state = self.lock();
        for update in updates {
            state.parked.insert(update.id.0 as i32);
        }
    }

    /// Whether an inbox update is handed out and not yet removed from the inbox: reading it
    /// again from there must not hand it out twice.
    pub(super) fn holds_inbox_update(&self, update_id: i32) -> bool {
        let state = self.lock();
        state.parked.contains(&update_id) || state.unpark.contains(&update_id)
    }

    /// Keeps this runner's [`Progress`] in `journal` from now on (once; later calls are ignored).
    pub fn keep_progress_in(&self, journal: Arc<dyn Inbox>) {
        // Documented: only the first journal is kept.
        let _ = self.journal.set(journal);
    }

    /// What the bot's previous runner was done with: updates Telegram hands out again that it
    /// was done with are confirmed, not handed out.
    fn inherit(&self, progress: Progress) {
        self.lock().inherited = Some(progress);
    }

    /// The update was acted on and its records handed to the writer: it is done, as far as the
    /// bot's next runner is concerned. Keeps the progress (after those records, so it is never
    /// stored without them); [`Ledger::handled`] follows once they are stored.
    pub fn acted(&self, update_id: u32) {
        let mut state = self.lock();
        let id = update_id as i32;
        if state.open.contains_key(&id) || state.parked.contains(&id) {
            state.acted.insert(id);
        }
        // Sent under the lock, so progresses reach the writer in the order they were taken.
        if let Some(journal) = self.journal.get()
            && let Some(progress) = state.progress(MAX_PENDING)
        {
            journal.keep_progress(progress);
        }
    }

    /// Keeps the whole progress of a runner that has stopped handing out updates, however many
    /// are left waiting (at most the dispatcher's [`IN_HAND`](super::dispatch::IN_HAND)).
    pub fn keep_final_progress(&self) {
        let Some(journal) = self.journal.get() else {
            return;
        };
        let state = self.lock();
        if let Some(progress) = state.progress(usize::MAX - 1) {
            journal.keep_progress(progress);
        }
    }

    /// The update was handled (or failed for good): Telegram, or the inbox, may forget it.
    pub fn handled(&self, update_id: u32) {
        let mut state = self.lock();
        let id = update_id as i32;
        state.acted.remove(&id);
        if state.open.remove(&id).is_none() && state.parked.remove(&id) {
            state.unpark.push(id);
        }
        state.retries.remove(&id);
        state.join_queries.remove(&id);
        drop(state);
        self.settled.notify_waiters();
    }

    /// Keeps the guard-bot query id an update's JSON carries, if any, until the update is done.
    pub fn note_join_query(&self, update: &Update, raw: &str) {
        if matches!(update.kind, UpdateKind::ChatJoinRequest(_))
            && let Some(query) = super::join_query::query_id(raw)
        {
            self.lock().join_queries.insert(update.id.0 as i32, query);
        }
    }

    /// The guard-bot query id of update `update_id`, if it carried one.
    pub fn join_query(&self, update_id: u32) -> Option<String> {
        self.lock().join_queries.get(&(update_id as i32)).cloned()
    }

    /// The update could not be handled now (an outage): it stays unconfirmed and is handed out
    /// again after a pause that doubles with each try.
    pub fn retry_later(&self, update: Update) {
        let mut state = self.lock();
        let id = update.id.0 as i32;
        let tries = state.retries.entry(id).or_insert(0);
        let pause = doubled(RETRY_FIRST, *tries, RETRY_MAX);
        *tries += 1;
        state.again.push_back((Instant::now() + pause, update));
        drop(state);
        self.settled.notify_waiters();
        self.rescheduled.notify_waiters();
    }

    /// The next update due to be handed out again, or when the first one is due.
    pub(super) fn due_again(&self) -> Result<Option<Update>, Instant> {
        let mut state = self.lock();
        let now = Instant::now();
        let position = state.again.iter().position(|(at, _)| *at <= now);
        match position {
            Some(index) => {
                let update = state.again.remove(index).map(|(_, update)| update);
                if state.again.is_empty() {
                    // As with the poller's buffer: space is given back once the outage is over.
                    state.again = VecDeque::new();
                }
                Ok(update)
            }
            None => match state.again.iter().map(|(at, _)| *at).min() {
                Some(next) => Err(next),
                None => Ok(None),
            },
        }
    }

    /// Open updates holding the offset that were handed out at least `age` ago, to be parked.
    fn to_park(&self, age: Duration) -> Vec<(i32, Arc<str>)> {
        let state = self.lock();
        let now = Instant::now();
        state
            .open
            .iter()
            .filter(|(_, open)| now.duration_since(open.since) >= age)
            .map(|(id, open)| (*id, open.raw.clone()))
            .collect()
    }

    /// These updates are in the inbox now. One done with meanwhile is owed an unpark.
    fn parked(&self, ids: &[i32]) {
        let mut state = self.lock();
        for id in ids {
            match state.open.remove(id) {
                Some(_) => {
                    state.parked.insert(*id);
                }
                None => state.unpark.push(*id),
            }
        }
        drop(state);
        self.settled.notify_waiters();
    }

    /// Parked updates done with, taken to be removed from the inbox.
    fn take_unpark(&self) -> Vec<i32> {
        std::mem::take(&mut self.lock().unpark)
    }

    /// Puts back unparks the inbox could not take (tried again later).
    fn return_unpark(&self, ids: Vec<i32>) {
        self.lock().unpark.extend(ids);
    }

    /// Whether nothing holds the offset (every update handed out was handled or parked).
    pub fn is_settled(&self) -> bool {
        self.lock().open.is_empty()
    }

    /// Waits until nothing holds the offset, or `within` has passed (updates waiting out an
    /// outage stay open and are delivered again on the next start).
    pub async fn settle(&self, within: Duration) {
        self.wait_until(within, Self::is_settled).await;
    }

    /// Waits until every update acted on has its records stored, or `within` has passed: what a
    /// stopping runner waits for once its dispatcher has ended (updates it never began stay open).
    pub async fn acted_stored(&self, within: Duration) {
        self.wait_until(within, |ledger| ledger.lock().acted.is_empty())
            .await;
    }

    /// Waits until `done` holds, checked each time the ledger changes, or `within` has passed.
    async fn wait_until(&self, within: Duration, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            // Registered before the check, so a change between the two is not missed.
            let changed = self.settled.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if done(self) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return;
            }
        }
    }

    /// Removes the updates done with from the inbox (kept for a later try if it cannot be written).
    pub async fn flush_unparked(&self, inbox: &dyn Inbox) {
        let ids = self.take_unpark();
        if ids.is_empty() {
            return;
        }
        if let Err(error) = inbox.unpark(ids.clone()).await {
            tracing::debug!(%error, "cannot remove handled updates from the inbox yet");
            self.return_unpark(ids);
        }
    }
}

/// Work on the inbox running beside polling, never cancelled: a write abandoned halfway could
/// still commit, leaving a row the ledger does not know about.
enum InboxWork {
    /// Ends `true` once the updates are kept (and the ledger told, which may move the offset).
    Park(tokio::task::JoinHandle<bool>),
    Unpark(tokio::task::JoinHandle<()>),
}

/// The listener a bot's dispatcher reads updates from.
pub struct Listener {
    bot: Bot,
    ledger: Arc<Ledger>,
    inbox: Option<Arc<dyn Inbox>>,
    timeout: Duration,
    allowed: Vec<AllowedUpdate>,
    token: StopToken,
    flag: StopFlag,
    fence: Fence,
}

impl Listener {
    /// A listener for `bot`; without an inbox, slow updates hold the offset however long they take
    /// and nothing is kept for the bot's next runner. With one, the ledger's progress is kept
    /// there too ([`Ledger::acted`]).
    pub fn new(
        bot: Bot,
        ledger: Arc<Ledger>,
        inbox: Option<Arc<dyn Inbox>>,
        timeout: Duration,
    ) -> Self {
        if let Some(inbox) = &inbox {
            ledger.keep_progress_in(inbox.clone());
        }
        let (token, flag) = mk_stop_token();
        Self {
            bot,
            ledger,
            inbox,
            timeout,
            allowed: Vec::new(),
            token,
            flag,
            fence: Fence::open(),
        }
    }

    /// Polls only while `fence` holds: once it has ended the stream ends, and what a poll
    /// brought back after that is dropped unconfirmed (the bot's next runner gets it).
    pub fn fenced(mut self, fence: Fence) -> Self {
        self.fence = fence;
        self
    }
}

impl UpdateListener for Listener {
    type Err = RequestError;

    fn stop_token(&mut self) -> StopToken {
        self.token.clone()
    }

    fn hint_allowed_updates(&mut self, hint: &mut dyn Iterator<Item = AllowedUpdate>) {
        self.allowed = hint.collect();
    }
}

impl<'a> AsUpdateStream<'a> for Listener {
    type StreamErr = RequestError;
    type Stream = BoxStream<'a, Result<Update, RequestError>>;

    fn as_stream(&'a mut self) -> Self::Stream {
        let poller = Poller {
            bot: self.bot.clone(),
            ledger: self.ledger.clone(),
            inbox: self.inbox.clone(),
            timeout: self.timeout,
            allowed: self.allowed.clone(),
            flag: self.flag.clone(),
            fence: self.fence.clone(),
            buffer: VecDeque::new(),
            pause: None,
            replayed: false,
            stalled: false,
            stalls: 0,
            polling: None,
            work: None,
            park_after: Instant::now(),
        };
        stream::unfold(poller, |mut poller| async move {
            let item = poller.next().await?;
            Some((item, poller))
        })
        .boxed()
    }
}

struct Poller {
    bot: Bot,
    ledger: Arc<Ledger>,
    inbox: Option<Arc<dyn Inbox>>,
    timeout: Duration,
    allowed: Vec<AllowedUpdate>,
    flag: StopFlag,
    fence: Fence,
    buffer: VecDeque<Update>,
    /// No poll before this (after an error, or a poll that brought nothing new).
    pause: Option<Pause>,
    /// Whether the inbox's updates were read back. Polling waits for it: an update parked just
    /// before a crash may come from Telegram too, and is handled once only if the inbox is read
    /// first.
    replayed: bool,
    /// The last poll brought back updates still being handled: the offset is held.
    stalled: bool,
    /// How many polls in a row brought back only updates still being handled.
    stalls: u32,
    /// The `getUpdates` in flight, with the offset it asked from.
    polling: Option<(i32, Poll)>,
    /// The inbox write in flight, if any.
    work: Option<InboxWork>,
    /// No park before this (the last one failed: the database is away).
    park_after: Instant,
}

/// The long-poll timeout (s) of the next `getUpdates`: `usual`, but for a leased bot ending a
/// second before its fence does. A poll open at Telegram when the fence ends would still be open
/// when the bot's next runner polls, and Telegram would end it with 409 ("terminated by other
/// getUpdates request"): cancelling it here cannot reach Telegram in time (or at all, from a
/// paused process). With leases renewed every second for 6 s of fence, polls last 4–5 s.
fn long_poll_timeout(usual: Duration, fence_left: Option<Duration>) -> u32 {
    let capped = match fence_left {
        Some(left) => usual.min(left.saturating_sub(Duration::from_secs(1))),
        None => usual,
    };
    capped.as_secs() as u32
}

/// A `getUpdates` on its way: each update's id with its JSON ([`read_updates`]).
type Poll = BoxFuture<'static, Attempt<Vec<(i32, Box<RawValue>)>>>;

#[derive(Clone, Copy)]
enum Pause {
    Until(Instant),
    /// Until an open update is handled (the offset moves on from the one given), or the instant.
    Settle(Instant, i32),
}

impl Poller {
    /// The next update (or polling error); `None` once stopped.
    async fn next(&mut self) -> Option<Result<Update, RequestError>> {
        loop {
            if !self.fence.holds() {
                return None;
            }
            if let Some(update) = self.buffer.pop_front() {
                if self.buffer.is_empty() {
                    // A bot rests far longer than it works: its drained buffer gives its space
                    // back (a few updates' worth, 7.8 KB a bot across 10,000 resting bots in
                    // heaptrack) instead of keeping it until the next busy moment.
                    self.buffer = VecDeque::new();
                }
                return Some(Ok(update));
            }
            if self.flag.is_stopped() {
                return None;
            }
            let next_again = match self.ledger.due_again() {
                Ok(Some(update)) => return Some(Ok(update)),
                Ok(None) => None,
                Err(at) => Some(at),
            };
            if let Some(pause) = self.pause.take() {
                self.wait(pause, next_again).await;
                // Cut short to hand out an update due again: the rest of the pause still holds
                // (that update is handed out from memory and needs no poll).
                if !self.pause_over(pause) {
                    self.pause = Some(pause);
                }
                continue;
            }
            if !self.replayed {
                self.replay().await;
                continue;
            }
            if self.polling.is_none() {
                self.tend_inbox();
            }
            // While the long poll waits, an update due again is handed out at its time (the poll
            // goes on): before, it waited for the poll to end, up to its whole timeout.
            let woken = self.ledger.rescheduled.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let due = match self.ledger.due_again() {
                Ok(Some(update)) => return Some(Ok(update)),
                Ok(None) => None,
                Err(at) => Some(at),
            };
            // A leased bot whose renewal is late has under a second of poll left: polling now
            // would be a stream of `timeout=0` calls. It waits for the renewal, or the fence's
            // end, instead.
            if self.polling.is_none()
                && let Some(left) = self.fence.left()
                && left < MIN_POLL_LEFT
            {
                self.pause = Some(Pause::Until(Instant::now() + left.min(FENCE_RECHECK)));
                continue;
            }
            let timeout = long_poll_timeout(self.timeout, self.fence.left());
            let fence = self.fence.clone();
            let ledger = self.ledger.clone();
            let (offset, poll) = self.polling.get_or_insert_with(|| {
                let offset = self.ledger.offset();
                ledger.note_poll(offset);
                let request = GetUpdates::new()
                    .offset(offset)
                    .timeout(timeout)
                    .allowed_updates(self.allowed.clone());
                let bot = self.bot.clone();
                let poll = transport::fenced(fence, async move {
                    transport::send_with(&bot, &request, read_updates).await
                });
                (offset, Box::pin(poll))
            });
            let offset = *offset;
            let attempt = tokio::select! {
                attempt = poll => attempt,
                () = &mut self.flag => {
                    // Dropped, which closes its connection, rather than kept waiting until its
                    // timeout: the stopping bot's confirmation, or its next runner's first poll,
                    // would end a waiting poll with 409, and nobody would read it.
                    self.polling = None;
                    return None;
                }
                // An update is to be handed out again: look when.
                () = &mut woken => continue,
                () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => continue,
            };
            self.polling = None;
            if !self.fence.holds() {
                return None;
            }
            match attempt.result {
                Ok(updates) => {
                    let brought = updates.len();
                    let fresh = self.ledger.take_new(updates);
                    // Updates still being handled came back: asking again at once would only
                    // bring them back again (each read anew). Poll when the oldest is done, or
                    // park it if it takes long.
                    self.stalled = brought > fresh.len();
                    if self.stalled && fresh.is_empty() {
                        self.stalls = self.stalls.saturating_add(1);
                    } else {
                        self.stalls = 0;
                    }
                    if self.stalled {
                        let wait = settle_wait(self.stalls);
                        self.pause = Some(Pause::Settle(Instant::now() + wait, offset));
                    }
                    self.buffer.extend(fresh);
                }
                Err(error) => {
                    let wait = match &error {
                        RequestError::RetryAfter(after) => after.duration(),
                        _ => ERROR_PAUSE,
                    };
                    self.pause = Some(Pause::Until(Instant::now() + wait));
                    return Some(Err(error));
                }
            }
        }
    }

    /// Hands out again what the inbox kept from before (the process ended with updates parked).
    /// While the inbox cannot be read, waits a little and says so (the caller asks again).
    async fn replay(&mut self) {
        let Some(inbox) = &self.inbox else {
            self.replayed = true;
            return;
        };
        let progress = match inbox.progress().await {
            Ok(progress) => progress,
            Err(error) => {
                tracing::warn!(%error, "cannot read what the last runner was done with yet; polling waits for it");
                self.pause = Some(Pause::Until(Instant::now() + ERROR_PAUSE));
                return;
            }
        };
        let parked = match inbox.parked().await {
            Ok(parked) => parked,
            Err(error) => {
                tracing::warn!(%error, "cannot read the parked updates yet; polling waits for them");
                self.pause = Some(Pause::Until(Instant::now() + ERROR_PAUSE));
                return;
            }
        };
        self.replayed = true;
        let mut updates = Vec::with_capacity(parked.len());
        for (id, raw) in parked {
            // Handled by the last runner, which died before removing it from the inbox.
            if progress.as_ref().is_some_and(|p| p.done(id)) {
                self.ledger.lock().unpark.push(id);
                continue;
            }
            match serde_json::from_str::<Update>(&raw) {
                Ok(update) if !matches!(update.kind, UpdateKind::Error(_)) => {
                    self.ledger.note_join_query(&update, &raw);
                    updates.push(update);
                }
                _ => {
                    tracing::warn!(
                        update_id = id,
                        "a parked update cannot be read; dropping it"
                    );
                    self.ledger.lock().unpark.push(id);
                }
            }
        }
        if !updates.is_empty() {
            tracing::info!(
                count = updates.len(),
                "handing out the updates parked before the last stop"
            );
        }
        if let Some(progress) = progress {
            self.ledger.inherit(progress);
        }
        self.ledger.take_replayed(&updates);
        self.buffer.extend(updates);
    }

    /// Takes in a finished inbox write, and starts the next one: removing what is done with
    /// first, else parking what holds the offset too long while polls bring back nothing new.
    fn tend_inbox(&mut self) {
        let Some(inbox) = self.inbox.clone() else {
            return;
        };
        match self.work.take() {
            Some(InboxWork::Park(task)) if task.is_finished() => {
                let parked = futures_util::FutureExt::now_or_never(task);
                // A failed park waits a moment before the next try (the database is away).
                let failed = !matches!(parked, Some(Ok(true)));
                if failed {
                    self.park_after = Instant::now() + ERROR_PAUSE;
                }
            }
            Some(InboxWork::Unpark(task)) if task.is_finished() => {}
            Some(busy) => {
                self.work = Some(busy);
                return;
            }
            None => {}
        }
        let ledger = self.ledger.clone();
        let unpark = ledger.take_unpark();
        if !unpark.is_empty() {
            self.work = Some(InboxWork::Unpark(tokio::spawn(async move {
                if let Err(error) = inbox.unpark(unpark.clone()).await {
                    tracing::debug!(%error, "cannot remove handled updates from the inbox yet");
                    ledger.return_unpark(unpark);
                }
            })));
            return;
        }
        if !self.stalled || Instant::now() < self.park_after {
            return;
        }
        let slow = ledger.to_park(PARK_AFTER);
        if slow.is_empty() {
            return;
        }
        let ids: Vec<i32> = slow.iter().map(|(id, _)| *id).collect();
        self.work = Some(InboxWork::Park(tokio::spawn(async move {
            match inbox.park(slow).await {
                Ok(()) => {
                    ledger.parked(&ids);
                    true
                }
                Err(error) => {
                    // Not kept: Telegram keeps them, the offset stays where it is.
                    tracing::debug!(%error, count = ids.len(), "cannot park slow updates; the offset waits");
                    false
                }
            }
        })));
    }

    /// Whether `pause` has run its course: its instant passed, or (settling) the offset moved on.
    fn pause_over(&self, pause: Pause) -> bool {
        match pause {
            Pause::Until(at) => Instant::now() >= at,
            Pause::Settle(at, offset) => Instant::now() >= at || self.ledger.offset() != offset,
        }
    }

    /// Waits out a pause (ended early by a stop, or by an update due again).
    async fn wait(&mut self, pause: Pause, next_again: Option<Instant>) {
        let (until, settle) = match pause {
            Pause::Until(at) => (at, None),
            Pause::Settle(at, offset) => (at, Some(offset)),
        };
        let until = next_again.map_or(until, |again| again.min(until));
        // Settling waits for the offset to move (the oldest open update done with), not for any
        // update to finish: a poll before that would only bring back what is still open.
        loop {
            // Registered before looking, so a handling that ends in between is not missed.
            let settled = self.ledger.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if settle.is_some_and(|offset| self.ledger.offset() != offset) {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(until) => return,
                () = &mut settled, if settle.is_some() => {}
                () = &mut self.flag => return,
            }
        }
    }
}

/// The pause before the next poll after `stalls` polls in a row brought back nothing new:
/// [`SETTLE_WAIT`] doubled per further stall, at most [`SETTLE_MAX`].
fn settle_wait(stalls: u32) -> Duration {
    doubled(SETTLE_WAIT, stalls.saturating_sub(1), SETTLE_MAX)
}

/// `first` doubled `times` times, at most `max`.
fn doubled(first: Duration, times: u32, max: Duration) -> Duration {
    first
        .saturating_mul(2u32.saturating_pow(times.min(16)))
        .min(max)
}

/// `getUpdates`' result: each update's id, with its JSON as Telegram sent it (read in full only
/// if new: [`Ledger::take_new`]). An update without a readable id is dropped.
fn read_updates(raw: Vec<Box<RawValue>>) -> Vec<(i32, Box<RawValue>)> {
    #[derive(serde::Deserialize)]
    struct Id {
        update_id: i32,
    }
    raw.into_iter()
        .filter_map(|raw| Some((serde_json::from_str::<Id>(raw.get()).ok()?.update_id, raw)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(id: u32) -> (i32, Box<RawValue>) {
        let json = serde_json::json!({
            "update_id": id,
            "message": {
                "message_id": 1, "date": 0,
                "chat": {"id": -100, "type": "supergroup", "title": "G"},
                "from": {"id": 7, "is_bot": false, "first_name": "A"},
                "text": "hi"
            }
        });
        // From text, as teloxide reads Telegram's replies (its Update does not read from a Value).
        (id as i32, RawValue::from_string(json.to_string()).unwrap())
    }

    /// The update as teloxide reads it (from text, as it reads Telegram's replies).
    fn parsed(id: u32) -> Update {
        serde_json::from_str(update(id).1.get()).unwrap()
    }

    #[test]
    fn polls_that_bring_back_nothing_new_come_ever_less_often_up_to_a_bound() {
        assert_eq!(settle_wait(1), SETTLE_WAIT);
        assert_eq!(settle_wait(2), SETTLE_WAIT * 2);
        assert_eq!(settle_wait(3), SETTLE_WAIT * 4);
        assert_eq!(settle_wait(50), SETTLE_MAX);
        assert!(
            SETTLE_MAX <= Duration::from_secs(3),
            "a stuck update's neighbours wait at most this"
        );
    }

    #[test]
    fn an_update_that_cannot_be_read_does_not_hold_the_offset() {
        let ledger = Ledger::new();
        let unreadable = RawValue::from_string(r#"{"update_id":9,"message":{"chat":7}}"#.into());
        let fresh = ledger.take_new(vec![(9, unreadable.unwrap())]);
        assert!(fresh.is_empty());
        assert_eq!(
            ledger.offset(),
            10,
            "confirmed, or Telegram sends it forever"
        );
    }

    #[test]
    fn an_update_brought_back_while_open_is_not_handed_out_twice() {
        let ledger = Ledger::new();
        assert_eq!(ledger.take_new(vec![update(3), update(4)]).len(), 2);
        let again = ledger.take_new(vec![update(3), update(4), update(5)]);
        let ids: Vec<u32> = again.iter().map(|u| u.id.0).collect();
        assert_eq!(ids, [5]);
        assert_eq!(ledger.offset(), 3);
    }

    #[test]
    fn a_leased_bots_long_poll_ends_a_second_before_its_fence() {
        let usual = Duration::from_secs(10);
        assert_eq!(long_poll_timeout(usual, None), 10);
        assert_eq!(
            long_poll_timeout(usual, Some(Duration::from_millis(5_900))),
            4
        );
        assert_eq!(long_poll_timeout(usual, Some(Duration::from_secs(30))), 10);
        assert_eq!(
            long_poll_timeout(usual, Some(Duration::from_millis(300))),
            0
        );
    }

    #[test]
    fn the_offset_stays_at_the_oldest_update_not_handled() {
        let ledger = Ledger::new();
        assert_eq!(ledger.offset(), 0);
        let fresh = ledger.take_new(vec![update(5), update(6), update(7)]);
        assert_eq!(fresh.len(), 3);
        assert_eq!(ledger.offset(), 5, "nothing handled: nothing confirmed");
        ledger.handled(6);
        assert_eq!(
            ledger.offset(),
            5,
            "a later one done confirms nothing before it"
        );
        ledger.handled(5);
        assert_eq!(ledger.offset(), 7);
        // Telegram delivers 7 again with 8: only 8 is new.
        let fresh = ledger.take_new(vec![update(7), update(8)]);
        assert_eq!(fresh.iter().map(|u| u.id.0).collect::<Vec<_>>(), [8]);
        ledger.handled(7);
        ledger.handled(8);
        assert_eq!(ledger.offset(), 9);
        assert!(ledger.is_settled());
    }

    #[test]
    fn an_update_that_hit_an_outage_stays_unconfirmed_and_comes_back() {
        let ledger = Ledger::new();
        ledger.take_new(vec![update(1), update(2)]);
        ledger.handled(2);
        ledger.retry_later(parsed(1));
        assert_eq!(ledger.offset(), 1, "not handled: Telegram keeps it");
        assert!(ledger.due_again().is_err(), "not at once: after a pause");
        assert!(!ledger.is_settled());
    }

    #[test]
    fn a_parked_update_no_longer_holds_the_offset_and_is_unparked_when_done() {
        let ledger = Ledger::new();
        ledger.take_new(vec![update(1), update(2), update(3)]);
        ledger.handled(2);
        let slow = ledger.to_park(Duration::ZERO);
        assert_eq!(slow.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 3]);
        assert!(
            slow[0].1.contains("\"update_id\":1"),
            "the JSON Telegram sent is kept"
        );
        ledger.parked(&[1]);
        assert_eq!(
            ledger.offset(),
            3,
            "1 is kept in the inbox: Telegram may forget it"
        );
        ledger.handled(3);
        assert_eq!(ledger.offset(), 4);
        assert!(ledger.is_settled(), "a parked update does not hold a stop");
        ledger.handled(1);
        assert_eq!(ledger.take_unpark(), [1], "done: it leaves the inbox");
    }

    #[test]
    fn an_update_done_with_while_being_parked_leaves_the_inbox_again() {
        let ledger = Ledger::new();
        ledger.take_new(vec![update(1)]);
        let slow = ledger.to_park(Duration::ZERO);
        ledger.handled(1);
        ledger.parked(&slow.iter().map(|(id, _)| *id).collect::<Vec<_>>());
        assert_eq!(ledger.take_unpark(), [1]);
    }

    #[test]
    fn a_replayed_update_is_not_handed_out_again_when_telegram_delivers_it_too() {
        let ledger = Ledger::new();
        ledger.take_replayed(&[parsed(4)]);
        ledger.handled(4);
        let fresh = ledger.take_new(vec![update(4), update(5)]);
        assert_eq!(fresh.iter().map(|u| u.id.0).collect::<Vec<_>>(), [5]);
        assert_eq!(ledger.take_unpark(), [4]);
    }

    /// An inbox that only remembers the progresses it was given.
    #[derive(Default)]
    struct Journal(Mutex<Vec<Progress>>);

    impl Inbox for Journal {
        fn park(&self, _: Vec<(i32, Arc<str>)>) -> BoxFuture<'static, anyhow::Result<()>> {
            Box::pin(async { Ok(()) })
        }
        fn unpark(&self, _: Vec<i32>) -> BoxFuture<'static, anyhow::Result<()>> {
            Box::pin(async { Ok(()) })
        }
        fn parked(&self) -> BoxFuture<'static, anyhow::Result<Vec<(i32, String)>>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn keep_progress(&self, progress: Progress) {
            self.0.lock().unwrap().push(progress);
        }
    }

    #[test]
    fn what_a_runner_acted_on_is_confirmed_not_handled_again_by_the_next() {
        let journal = Arc::new(Journal::default());
        let first = Ledger::new();
        first.keep_progress_in(journal.clone());
        first.take_new(vec![update(1), update(2), update(3)]);
        first.acted(2);
        first.acted(3);
        // Killed here: records written, nothing confirmed to Telegram.
        let kept = journal.0.lock().unwrap().last().cloned().unwrap();
        assert_eq!(
            kept,
            Progress {
                highest: 3,
                pending: vec![1]
            }
        );
        let next = Ledger::new();
        next.inherit(kept);
        let fresh = next.take_new(vec![update(1), update(2), update(3), update(4)]);
        assert_eq!(fresh.iter().map(|u| u.id.0).collect::<Vec<_>>(), [1, 4]);
        next.handled(1);
        next.handled(4);
        assert_eq!(next.offset(), 5, "2 and 3 are confirmed by the next poll");
    }

    #[test]
    fn a_progress_with_more_waiting_than_it_lists_claims_only_below_the_first_left_out() {
        let ledger = Ledger::new();
        ledger.take_new((1..=10).map(update).collect());
        ledger.lock().acted.insert(2);
        let progress = ledger.lock().progress(3).unwrap();
        assert_eq!(
            progress,
            Progress {
                highest: 4,
                pending: vec![1, 3, 4]
            },
            "5 is left out, so nothing from 5 on is claimed"
        );
        assert!(!progress.done(7));
        let whole = ledger.lock().progress(usize::MAX - 1).unwrap();
        assert_eq!(whole.highest, 10);
        assert_eq!(whole.pending.len(), 9);
    }

    #[tokio::test]
    async fn a_stopping_runner_waits_for_what_it_acted_on_not_for_what_it_never_began() {
        let ledger = Ledger::new();
        ledger.take_new(vec![update(1), update(2)]);
        ledger.acted(1);
        assert_eq!(ledger.offset(), 1, "acted is not handled: the offset waits");
        let waiting = {
            let ledger = ledger.clone();
            tokio::spawn(async move { ledger.acted_stored(Duration::from_secs(5)).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "1's records are not stored yet");
        ledger.handled(1);
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("2, never begun, is not waited for")
            .unwrap();
        assert_eq!(ledger.offset(), 2, "2 stays with Telegram");
    }
}
