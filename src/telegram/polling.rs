//! Long polling that confirms an update to Telegram only once it was handled.
//!
//! `getUpdates` confirms every update below the `offset` it is called with
//! (<https://core.telegram.org/bots/api#getupdates>). teloxide's `Polling` asks with the offset
//! after the last update it *fetched*, so an update still being handled, or one that could not be
//! handled (the database was unreachable), is confirmed anyway and lost when the process stops.
//! Here the offset is the oldest update not yet handled ([`Ledger`]): Telegram keeps the rest and
//! delivers them again, and updates already handed out are not handed out twice. An update whose
//! handling hit an outage is handed out again after a pause, until it is handled.
//!
//! Requests go through Nezuko's [`transport`](super::transport): a 5xx costs no 10 s sleep, and a
//! 429's `retry_after` is waited out before the next poll.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use teloxide::Bot;
use teloxide::RequestError;
use teloxide::payloads::{GetUpdates, GetUpdatesSetters};
use teloxide::stop::{StopFlag, StopToken, mk_stop_token};
use teloxide::types::{AllowedUpdate, Update, UpdateKind};
use teloxide::update_listeners::{AsUpdateStream, UpdateListener};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::transport;

/// The first pause before an update whose handling hit an outage is handed out again; it doubles
/// up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// After a poll that brought only updates still being handled, the next waits for the oldest of
/// them to be done with, or this long: the most a new update waits behind a slow one.
const SETTLE_WAIT: Duration = Duration::from_millis(100);
/// Pauses after a failed poll that gave no `retry_after` (the actor restarts the bot meanwhile).
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Which updates a bot has handed out and which of them are handled.
#[derive(Default)]
pub struct Ledger {
    state: Mutex<LedgerState>,
    settled: Notify,
}

#[derive(Default)]
struct LedgerState {
    /// Handed out, not yet done with.
    open: BTreeSet<i32>,
    /// The highest update id handed out.
    highest: Option<i32>,
    /// Updates to hand out again, with when.
    again: VecDeque<(Instant, Update)>,
    /// Times each open update was handed out again.
    retries: HashMap<i32, u32>,
}

impl Ledger {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `offset` for the next `getUpdates`: the oldest update not done with, else the one
    /// after the highest handed out (0 before any). A slow update holds the offset however long it
    /// takes: confirming it before it is done would lose it to a crash (an update waiting out
    /// SQLite's 5 s busy timeout is slow, and is exactly the one to keep).
    pub fn offset(&self) -> i32 {
        let state = self.lock();
        match (state.open.first(), state.highest) {
            (Some(oldest), _) => *oldest,
            (None, Some(highest)) => highest.saturating_add(1),
            (None, None) => 0,
        }
    }

    /// The updates of a poll not handed out before, now marked open. Updates teloxide cannot
    /// parse (`UpdateKind::Error`) are dropped by its dispatcher unseen, so they count as handled.
    fn take_new(&self, updates: Vec<Update>) -> Vec<Update> {
        let mut state = self.lock();
        let mut fresh = Vec::new();
        for update in updates {
            let id = update.id.0 as i32;
            if state.highest.is_some_and(|highest| id <= highest) {
                continue;
            }
            state.highest = Some(id);
            if matches!(update.kind, UpdateKind::Error(_)) {
                continue;
            }
            state.open.insert(id);
            fresh.push(update);
        }
        fresh
    }

    /// The update was handled (or failed for good): Telegram may forget it.
    pub fn handled(&self, update_id: u32) {
        let mut state = self.lock();
        let id = update_id as i32;
        state.open.remove(&id);
        state.retries.remove(&id);
        drop(state);
        self.settled.notify_waiters();
    }

    /// The update could not be handled now (an outage): it stays unconfirmed and is handed out
    /// again after a pause that doubles with each try.
    pub fn retry_later(&self, update: Update) {
        let mut state = self.lock();
        let id = update.id.0 as i32;
        let tries = state.retries.entry(id).or_insert(0);
        let pause = RETRY_FIRST
            .saturating_mul(2u32.saturating_pow((*tries).min(8)))
            .min(RETRY_MAX);
        *tries += 1;
        state.again.push_back((Instant::now() + pause, update));
        drop(state);
        self.settled.notify_waiters();
    }

    /// The next update due to be handed out again, or when the first one is due.
    fn due_again(&self) -> Result<Option<Update>, Instant> {
        let mut state = self.lock();
        let now = Instant::now();
        let position = state.again.iter().position(|(at, _)| *at <= now);
        match position {
            Some(index) => Ok(state.again.remove(index).map(|(_, update)| update)),
            None => match state.again.iter().map(|(at, _)| *at).min() {
                Some(next) => Err(next),
                None => Ok(None),
            },
        }
    }

    /// Whether nothing is open (every update handed out was handled).
    pub fn is_settled(&self) -> bool {
        self.lock().open.is_empty()
    }

    /// Waits until nothing is open, or `within` has passed (updates waiting out an outage stay
    /// open and are delivered again on the next start).
    pub async fn settle(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.is_settled() {
                return;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return;
            }
        }
    }
}

/// The listener a bot's dispatcher reads updates from.
pub struct Listener {
    bot: Bot,
    ledger: Arc<Ledger>,
    timeout: Duration,
    allowed: Vec<AllowedUpdate>,
    token: StopToken,
    flag: StopFlag,
}

impl Listener {
    pub fn new(bot: Bot, ledger: Arc<Ledger>, timeout: Duration) -> Self {
        let (token, flag) = mk_stop_token();
        Self {
            bot,
            ledger,
            timeout,
            allowed: Vec::new(),
            token,
            flag,
        }
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
            timeout: self.timeout,
            allowed: self.allowed.clone(),
            flag: self.flag.clone(),
            buffer: VecDeque::new(),
            pause: None,
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
    timeout: Duration,
    allowed: Vec<AllowedUpdate>,
    flag: StopFlag,
    buffer: VecDeque<Update>,
    /// No poll before this (after an error, or a poll that brought nothing new).
    pause: Option<Pause>,
}

enum Pause {
    Until(Instant),
    /// Until an open update is handled (the offset moves on from the one given), or the instant.
    Settle(Instant, i32),
}

impl Poller {
    /// The next update (or polling error); `None` once stopped.
    async fn next(&mut self) -> Option<Result<Update, RequestError>> {
        loop {
            if let Some(update) = self.buffer.pop_front() {
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
                continue;
            }
            // A long poll, cut short when an update is due to be handed out again.
            let timeout = match next_again {
                Some(at) => at
                    .saturating_duration_since(Instant::now())
                    .min(self.timeout),
                None => self.timeout,
            };
            let offset = self.ledger.offset();
            let request = GetUpdates::new()
                .offset(offset)
                .timeout(timeout.as_secs() as u32)
                .allowed_updates(self.allowed.clone());
            let attempt = tokio::select! {
                attempt = transport::send(&self.bot, &request) => attempt,
                () = &mut self.flag => return None,
            };
            match attempt.result {
                Ok(updates) => {
                    let brought = updates.len();
                    let fresh = self.ledger.take_new(updates);
                    if brought > fresh.len() {
                        // Updates still being handled came back: asking again at once would only
                        // bring them back again (each read anew). Poll when the oldest is done.
                        self.pause = Some(Pause::Settle(Instant::now() + SETTLE_WAIT, offset));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn update(id: u32) -> Update {
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
        serde_json::from_str(&json.to_string()).unwrap()
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
        ledger.retry_later(update(1));
        assert_eq!(ledger.offset(), 1, "not handled: Telegram keeps it");
        assert!(ledger.due_again().is_err(), "not at once: after a pause");
        assert!(!ledger.is_settled());
    }
}
