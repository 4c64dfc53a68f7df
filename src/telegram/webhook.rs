//! Webhook mode's side of a running bot: the listener its dispatcher reads from, fed by the bot's
//! [`Inbox`] instead of `getUpdates`.
//!
//! In webhook mode Telegram posts each update to `<public_url>/telegram/<bot id>`, on whichever
//! node the load balancer picks; that node stores it in the inbox (`webhook_updates`) before
//! answering 200, and from then on Telegram has forgotten it. The node running the bot reads the
//! inbox here, lowest `update_id` first, hands out what it has not handed out yet, and removes
//! each update from the inbox once handled ([`Ledger::handled`] owes an unpark). So an update is
//! never lost to a crash (it stays in the inbox until done), and a delivery Telegram retries is
//! stored once (the inbox keeps done updates' ids for a day).
//!
//! Telegram sends a chat's updates one at a time, the next only after the previous was answered
//! (tdlib/telegram-bot-api `WebhookActor`: updates sharing a `webhook_queue_id`, the chat, wait in
//! one queue), so reading by `update_id` keeps each chat's order, and the dispatcher keeps it from
//! there.
//!
//! A node is told an update arrived by a wake-up ([`Arrivals`]): directly when it received the
//! update itself, through a PostgreSQL notification when another node did. The inbox is also read
//! every [`RECHECK`], so an update whose wake-up was missed (a notification channel reconnecting)
//! waits at most that long.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{self, BoxStream, StreamExt};
use teloxide::RequestError;
use teloxide::stop::{StopFlag, StopToken, mk_stop_token};
use teloxide::types::{AllowedUpdate, Update, UpdateKind};
use teloxide::update_listeners::{AsUpdateStream, UpdateListener};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Fence;
use super::polling::{Inbox, Ledger};

/// How often a bot reads its inbox when no wake-up came.
pub const RECHECK: Duration = Duration::from_secs(10);
/// The pause after the inbox could not be read (the database is away).
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// The least time between two reads of a bot's inbox: a busy bot reads what arrived meanwhile in
/// one go instead of once per update.
const MIN_READ_GAP: Duration = Duration::from_millis(50);
/// How often a bot waiting for its lease's renewal looks again.
const FENCE_RECHECK: Duration = Duration::from_millis(200);

/// Webhook updates read from the inbox at a time. A read that brings this many may have left
/// more behind it, so the next comes as soon as some of these are done with.
pub const READ_BATCH: usize = 500;
/// How many of the last update ids handed out a bot remembers, so that one reaching it twice
/// (from its mailbox and from a read of the inbox) is handed out once.
const REMEMBERED: usize = 4096;

/// The mailboxes of the bots running here: how the node that took in a delivery tells the bot's
/// reader, with the update itself when the bot runs on the same node.
#[derive(Clone, Default)]
pub struct Arrivals {
    bots: Arc<Mutex<HashMap<i64, Arc<Mailbox>>>>,
}

/// One bot's mailbox.
#[derive(Default)]
pub struct Mailbox {
    notify: Notify,
    state: Mutex<Letters>,
}

#[derive(Default)]
struct Letters {
    /// Updates stored by this node since the reader last looked: (update id, the update's JSON).
    delivered: Vec<(i32, Arc<str>)>,
    /// Another node stored something (or a notification may have been missed): read the inbox.
    look: bool,
}

impl Mailbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Letters> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> (Vec<(i32, Arc<str>)>, bool) {
        let mut letters = self.lock();
        let look = std::mem::take(&mut letters.look);
        (std::mem::take(&mut letters.delivered), look)
    }
}

impl Arrivals {
    /// The mailbox of a bot (made on first use; kept while the bot runs here).
    pub fn of(&self, bot_instance_id: i64) -> Arc<Mailbox> {
        self.lock().entry(bot_instance_id).or_default().clone()
    }

    /// Forgets a bot that stopped running here.
    pub fn forget(&self, bot_instance_id: i64) {
        self.lock().remove(&bot_instance_id);
    }

    /// Hands a bot running here an update this node has just stored, so it need not read the
    /// inbox for it; nothing when the bot does not run here (its runner is told by the database).
    pub fn deliver(&self, bot_instance_id: i64, update_id: i32, body: &str) {
        let Some(mailbox) = self.lock().get(&bot_instance_id).cloned() else {
            return;
        };
        mailbox.lock().delivered.push((update_id, Arc::from(body)));
        mailbox.notify.notify_one();
    }

    /// Says that the bot's inbox has something new (another node stored it); nothing when the
    /// bot does not run here.
    pub fn wake(&self, bot_instance_id: i64) {
        if let Some(mailbox) = self.lock().get(&bot_instance_id) {
            mailbox.lock().look = true;
            mailbox.notify.notify_one();
        }
    }

    /// Every bot running here reads its inbox (a notification may have been missed).
    pub fn wake_all(&self) {
        for mailbox in self.lock().values() {
            mailbox.lock().look = true;
            mailbox.notify.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Arc<Mailbox>>> {
        self.bots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The listener a webhook-mode bot's dispatcher reads updates from.
pub struct WebhookListener {
    ledger: Arc<Ledger>,
    inbox: Arc<dyn Inbox>,
    arrived: Arc<Mailbox>,
    token: StopToken,
    flag: StopFlag,
    fence: Fence,
}

impl WebhookListener {
    /// Hands out what arrives in `inbox`, told by `arrived`, while `fence` holds.
    pub fn new(
        ledger: Arc<Ledger>,
        inbox: Arc<dyn Inbox>,
        arrived: Arc<Mailbox>,
        fence: Fence,
    ) -> Self {
        let (token, flag) = mk_stop_token();
        Self {
            ledger,
            inbox,
            arrived,
            token,
            flag,
            fence,
        }
    }
}

impl UpdateListener for WebhookListener {
    type Err = RequestError;

    fn stop_token(&mut self) -> StopToken {
        self.token.clone()
    }

    /// Telegram filters by the `allowed_updates` given to `setWebhook`; nothing to do here.
    fn hint_allowed_updates(&mut self, _: &mut dyn Iterator<Item = AllowedUpdate>) {}
}

impl<'a> AsUpdateStream<'a> for WebhookListener {
    type StreamErr = RequestError;
    type Stream = BoxStream<'a, Result<Update, RequestError>>;

    fn as_stream(&'a mut self) -> Self::Stream {
        let reader = Reader {
            ledger: self.ledger.clone(),
            inbox: self.inbox.clone(),
            arrived: self.arrived.clone(),
            flag: self.flag.clone(),
            fence: self.fence.clone(),
            buffer: VecDeque::new(),
            look: true,
            pause_until: None,
            read_at: None,
            more: false,
            handed: VecDeque::new(),
            handed_set: HashSet::new(),
        };
        stream::unfold(reader, |mut reader| async move {
            let update = reader.next().await?;
            Some((Ok(update), reader))
        })
        .boxed()
    }
}

struct Reader {
    ledger: Arc<Ledger>,
    inbox: Arc<dyn Inbox>,
    arrived: Arc<Mailbox>,
    flag: StopFlag,
    fence: Fence,
    buffer: VecDeque<Update>,
    /// Whether to read the inbox now (something arrived, or at the start).
    look: bool,
    /// No read before this (the last one failed).
    pause_until: Option<Instant>,
    /// When the inbox was last read.
    read_at: Option<Instant>,
    /// The last read brought a whole batch: there may be more.
    more: bool,
    /// The last [`REMEMBERED`] update ids handed out, oldest first, and as a set.
    handed: VecDeque<i32>,
    handed_set: HashSet<i32>,
}

impl Reader {
    /// The next update; `None` once stopped or once the fence has ended.
    async fn next(&mut self) -> Option<Update> {
        loop {
            if !self.fence.holds() || self.flag.is_stopped() {
                return None;
            }
            if let Some(update) = self.buffer.pop_front() {
                if self.buffer.is_empty() {
                    self.buffer = VecDeque::new();
                }
                return Some(update);
            }
            let due = match self.ledger.due_again() {
                Ok(Some(update)) => return Some(update),
                Ok(None) => None,
                Err(at) => Some(at),
            };
            // Registered before looking, so an arrival in between is not missed.
            let (mailbox, ledger) = (self.arrived.clone(), self.ledger.clone());
            let arrived = mailbox.notify.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let (delivered, look) = mailbox.take();
            self.look |= look;
            if !delivered.is_empty() {
                self.hand_out(delivered).await;
                continue;
            }
            let rescheduled = ledger.rescheduled.notified();
            tokio::pin!(rescheduled);
            rescheduled.as_mut().enable();
            let settled = ledger.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            let now = Instant::now();
            // The periodic look, for an arrival whose wake-up was missed.
            if self.read_at.is_none_or(|at| now >= at + RECHECK) {
                self.look = true;
            }
            let next_read = self
                .read_at
                .map_or(now, |at| at + MIN_READ_GAP)
                .max(self.pause_until.unwrap_or(now));
            if self.look && now >= next_read {
                self.look = false;
                self.read().await;
                continue;
            }
            let mut wake = self.read_at.map_or(now, |at| at + RECHECK);
            if self.look {
                wake = wake.min(next_read);
            }
            if let Some(at) = due {
                wake = wake.min(at);
            }
            // A leased bot looks at its fence often: once it ends, the stream ends.
            if self.fence.left().is_some() {
                wake = wake.min(now + FENCE_RECHECK);
            }
            tokio::select! {
                () = &mut self.flag => return None,
                () = &mut arrived => {}
                () = &mut rescheduled => {}
                // Handled updates leave the inbox at once: a node killed between handling an
                // update and saying so would leave it to be handled again by the next runner.
                // Those handled while one removal is written go in the next. And a read that
                // took a whole batch may have left more behind.
                () = &mut settled => {
                    self.ledger.flush_unparked(&*self.inbox).await;
                    self.look |= self.more;
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Removes what was handled from the inbox, then reads what is new. A failure is logged and
    /// retried after [`ERROR_PAUSE`]: the updates stay in the inbox meanwhile.
    async fn read(&mut self) {
        self.read_at = Some(Instant::now());
        self.ledger.flush_unparked(&*self.inbox).await;
        let stored = match self.inbox.parked().await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(%error, "cannot read the webhook inbox; trying again shortly");
                self.look = true;
                self.pause_until = Some(Instant::now() + ERROR_PAUSE);
                return;
            }
        };
        self.pause_until = None;
        self.more = stored.len() >= READ_BATCH;
        let stored = stored
            .into_iter()
            .map(|(id, body)| (id, Arc::from(body)))
            .collect();
        self.hand_out(stored).await;
    }

    /// Hands out the updates not handed out before (a bot's mailbox and a read of its inbox may
    /// both bring one); one that cannot be read is done with at once.
    async fn hand_out(&mut self, updates: Vec<(i32, Arc<str>)>) {
        let mut fresh = Vec::new();
        let mut unreadable = Vec::new();
        for (id, raw) in updates {
            if self.handed_set.contains(&id) || self.ledger.holds_inbox_update(id) {
                continue;
            }
            self.remember(id);
            match serde_json::from_str::<Update>(&raw) {
                Ok(update) if !matches!(update.kind, UpdateKind::Error(_)) => {
                    self.ledger.note_join_query(&update, &raw);
                    fresh.push(update);
                }
                // An update of a kind this teloxide cannot read: nothing Nezuko acts on.
                _ => unreadable.push(id),
            }
        }
        if !unreadable.is_empty() {
            tracing::debug!(
                count = unreadable.len(),
                "webhook updates of a kind Nezuko does not read; done with"
            );
            // Best effort: an update left parked is read again (and dropped again) at the next
            // start.
            let _ = self.inbox.unpark(unreadable).await;
        }
        self.ledger.take_delivered(&fresh);
        self.buffer.extend(fresh);
    }

    fn remember(&mut self, id: i32) {
        if self.handed.len() == REMEMBERED
            && let Some(oldest) = self.handed.pop_front()
        {
            self.handed_set.remove(&oldest);
        }
        self.handed.push_back(id);
        self.handed_set.insert(id);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use futures_util::future::BoxFuture;

    use super::*;

    /// The inbox as the database keeps it: by update id, done or not.
    #[derive(Default)]
    struct Kept(Mutex<BTreeMap<i32, (String, bool)>>);

    impl Kept {
        /// Stores update `id` (unless stored before); its JSON.
        fn deliver(&self, id: i32) -> String {
            let json = serde_json::json!({
                "update_id": id,
                "message": {
                    "message_id": id, "date": 0,
                    "chat": {"id": -100, "type": "supergroup", "title": "G"},
                    "from": {"id": 7, "is_bot": false, "first_name": "A"},
                    "text": "hi"
                }
            });
            let mut kept = self.0.lock().unwrap();
            kept.entry(id).or_insert((json.to_string(), false));
            json.to_string()
        }

        fn done(&self) -> Vec<i32> {
            let kept = self.0.lock().unwrap();
            kept.iter()
                .filter(|(_, (_, done))| *done)
                .map(|(id, _)| *id)
                .collect()
        }
    }

    impl Inbox for Arc<Kept> {
        fn park(&self, _: Vec<(i32, Arc<str>)>) -> BoxFuture<'static, anyhow::Result<()>> {
            unreachable!("webhook mode parks nothing")
        }

        fn unpark(&self, ids: Vec<i32>) -> BoxFuture<'static, anyhow::Result<()>> {
            let mut kept = self.0.lock().unwrap();
            for id in ids {
                if let Some(entry) = kept.get_mut(&id) {
                    entry.1 = true;
                }
            }
            Box::pin(async { Ok(()) })
        }

        fn parked(&self) -> BoxFuture<'static, anyhow::Result<Vec<(i32, String)>>> {
            let kept = self.0.lock().unwrap();
            let pending = kept
                .iter()
                .filter(|(_, (_, done))| !done)
                .map(|(id, (body, _))| (*id, body.clone()))
                .collect();
            Box::pin(async { Ok(pending) })
        }
    }

    fn id_of(update: &Update) -> i32 {
        update.id.0 as i32
    }

    async fn next(stream: &mut BoxStream<'_, Result<Update, RequestError>>) -> Update {
        tokio::time::timeout(Duration::from_secs(2), stream.next())
            .await
            .expect("an update within 2 s")
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn updates_are_handed_out_once_in_id_order_and_leave_the_inbox_once_handled() {
        let kept = Arc::new(Kept::default());
        let ledger = Ledger::new();
        let arrivals = Arrivals::default();
        kept.deliver(2);
        kept.deliver(1);
        let mut listener = WebhookListener::new(
            ledger.clone(),
            Arc::new(kept.clone()),
            arrivals.of(5),
            Fence::open(),
        );
        let mut stream = listener.as_stream();
        assert_eq!(id_of(&next(&mut stream).await), 1);
        assert_eq!(id_of(&next(&mut stream).await), 2);
        // A new arrival stored by this node comes with its mailbox letter; read again from the
        // inbox too (another node's notification), with the two still there (not handled yet),
        // it is still handed out once.
        let body = kept.deliver(3);
        arrivals.deliver(5, 3, &body);
        assert_eq!(id_of(&next(&mut stream).await), 3);
        arrivals.wake(5);
        // Handling one takes it out of the inbox at once; a retried delivery of a handled
        // update (already stored) is not handed out again.
        ledger.handled(1);
        ledger.handled(3);
        kept.deliver(3);
        kept.deliver(4);
        arrivals.wake(5);
        assert_eq!(id_of(&next(&mut stream).await), 4);
        assert_eq!(kept.done(), vec![1, 3]);
        // Nothing else is handed out: 2 is still being handled.
        let more = tokio::time::timeout(Duration::from_millis(300), stream.next()).await;
        assert!(more.is_err(), "nothing more to hand out");
    }

    #[tokio::test]
    async fn the_stream_ends_when_the_fence_does() {
        let kept = Arc::new(Kept::default());
        let fence = Fence::until(std::time::Instant::now() + Duration::from_millis(300));
        let mut listener = WebhookListener::new(
            Ledger::new(),
            Arc::new(kept.clone()),
            Arrivals::default().of(1),
            fence,
        );
        let mut stream = listener.as_stream();
        let ended = tokio::time::timeout(Duration::from_secs(2), stream.next()).await;
        assert!(matches!(ended, Ok(None)), "the stream ended with the fence");
    }
}
