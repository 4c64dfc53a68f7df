//! Hands a bot's updates to its handler: the updates of one member of one chat one after another,
//! so what is done to a member keeps its order, and everything else at once.
//!
//! Nezuko's own rather than teloxide's `Dispatcher`, because ordering per member is the core of what
//! it does and teloxide's costs grew with the number of keys: it keeps a worker task and a channel
//! per key for as long as the key was ever seen, and once more keys exist than ever worked at once
//! it scans all of them before every update. Keyed per member (a busy fleet speaks with tens of
//! thousands) that took the CPU and gigabytes (`bench verify` at 5,000 events/s: 437 updates/s,
//! 2.4 GB). Here a key exists only while its member has updates in hand: a map entry holding the
//! member's waiting updates, and one task carrying them out in order.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, Stream, StreamExt};
use teloxide::RequestError;
use teloxide::types::{Update, UpdateKind};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Updates taken from the listener and not yet handled, across all members of one bot. At the
/// limit the dispatcher stops reading (Telegram keeps the rest) until some are done, so a flood
/// costs bounded memory; one slow member alone never gets there before the others are served.
pub const IN_HAND: usize = 4096;

/// Updates in hand across every bot of the process. Each costs its handling futures and queued
/// statements (kilobytes) from the moment it is taken until it is done, and when 10,000 bots
/// start, their 40,000 first updates arrive within seconds while the database takes a few
/// thousand a second: taken all at once, they held up to 1.5 GB until the backlog drained
/// (`nezuko bench fleet --bots 10000`). At the limit, bots stop reading and Telegram keeps their
/// updates. Far above what steady work needs (`bench verify` at 5,000 updates/s has a few hundred
/// in hand), and twice [`IN_HAND`], so one flooded bot cannot hold up the rest.
pub const IN_HAND_PER_PROCESS: usize = 2 * IN_HAND;

static PROCESS_SLOTS: Semaphore = Semaphore::const_new(IN_HAND_PER_PROCESS);

/// Updates in hand now across every bot of the process (taken and not yet done with).
pub fn in_hand() -> usize {
    IN_HAND_PER_PROCESS - PROCESS_SLOTS.available_permits()
}

/// What carries out one update (routing, the handler, telling the ledger). It must not panic; if it
/// does, only that update is lost.
pub type Handle = Arc<dyn Fn(Update) -> BoxFuture<'static, ()> + Send + Sync>;

/// The chat and the member an update is about: a `chat_member` change is about the member changed,
/// anything else about whoever sent it (0 when nobody did, e.g. a channel post). Updates with the
/// same key are handled in the order Telegram sent them; `None` (no chat) is handled at once.
pub fn member_of(update: &Update) -> Option<(i64, i64)> {
    let chat = update.chat()?.id.0;
    let user = match &update.kind {
        UpdateKind::ChatMember(change) | UpdateKind::MyChatMember(change) => {
            change.new_chat_member.user.id.0 as i64
        }
        _ => update.from().map_or(0, |user| user.id.0 as i64),
    };
    Some((chat, user))
}

type Key = (i64, i64);
/// An update in hand, boxed: teloxide's `Update` is over a kilobyte by value, and a member's task
/// held four of them in its future (the first, the next, and `run`'s two), 6.6 KB a task when
/// 10,000 bots start with 40,000 updates (heaptrack, `nezuko bench fleet --bots 10000`).
type InHand = (Box<Update>, Slot);

/// An update's place among the bot's [`IN_HAND`] and the process's [`IN_HAND_PER_PROCESS`];
/// given back when it is done.
struct Slot {
    _bot: OwnedSemaphorePermit,
    _process: SemaphorePermit<'static>,
}
type Waiting = Arc<Mutex<HashMap<Key, VecDeque<InHand>>>>;

fn lock(waiting: &Waiting) -> MutexGuard<'_, HashMap<Key, VecDeque<InHand>>> {
    // Nothing panics while holding it; if something did, the map is still whole.
    waiting.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads `updates` (a [`Listener`]'s stream) until it ends, handing each update to `handle` in
/// per-member order and each polling error to `on_error`; returns once every update taken has been
/// handled. Once `stopping` is cancelled (with the listener's stop), an update read but still
/// waiting for room in the process is left unhandled: it stays open, holding the offset, so
/// Telegram (or the inbox) hands it to the next runner, and the stop does not wait behind the
/// process's queue.
///
/// [`Listener`]: super::polling::Listener
pub async fn dispatch(
    updates: impl Stream<Item = Result<Update, RequestError>> + Unpin,
    handle: Handle,
    on_error: impl FnMut(RequestError),
    stopping: CancellationToken,
) {
    dispatch_within(&PROCESS_SLOTS, updates, handle, on_error, stopping).await
}

/// [`dispatch`] with `process` as the process's room for updates in hand (a test's own, so it can
/// be exhausted without stalling every other test of the binary).
async fn dispatch_within(
    process: &'static Semaphore,
    mut updates: impl Stream<Item = Result<Update, RequestError>> + Unpin,
    handle: Handle,
    mut on_error: impl FnMut(RequestError),
    stopping: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(IN_HAND));
    let waiting: Waiting = Arc::default();
    // The tasks handling updates belong to this future: when a stop that overran its grace
    // aborts the dispatcher, they end with it instead of acting for a bot that is gone.
    let mut tasks = JoinSet::new();
    loop {
        // Finished tasks are reaped as new ones start (a panic was already caught and logged
        // inside; its join error says nothing more).
        while tasks.try_join_next().is_some() {}
        let bot_slot = Arc::clone(&slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let update = match updates.next().await {
            Some(Ok(update)) => Box::new(update),
            Some(Err(error)) => {
                on_error(error);
                continue;
            }
            None => break,
        };
        // Only once there is an update: a bot with none waits in `next`, where its stop is seen
        // at once, not in the process's queue.
        let slot = Slot {
            _bot: bot_slot,
            _process: tokio::select! {
                permit = process.acquire() => permit.expect("the semaphore is never closed"),
                () = stopping.cancelled() => break,
            },
        };
        let Some(key) = member_of(&update) else {
            let handle = Arc::clone(&handle);
            // In the bot's span: what the handler logs names the bot.
            tasks.spawn(
                async move {
                    run(&handle, update).await;
                    drop(slot);
                }
                .in_current_span(),
            );
            continue;
        };
        {
            let mut waiting = lock(&waiting);
            if let Some(queue) = waiting.get_mut(&key) {
                queue.push_back((update, slot));
                continue;
            }
            waiting.insert(key, VecDeque::new());
        }
        tasks.spawn(
            run_member(
                key,
                (update, slot),
                Arc::clone(&waiting),
                Arc::clone(&handle),
            )
            .in_current_span(),
        );
    }
    // Every slot back means every update taken is done with. (Leaving the updates queued behind
    // a member's current one to the next runner made stops quick, but a member's later updates
    // then met a process without what the earlier ones taught it: a join's second update warned
    // again after a restart.)
    let _all = slots
        .acquire_many(IN_HAND as u32)
        .await
        .expect("the semaphore is never closed");
}

/// Handles `first`, then whatever came for `key` meanwhile, until none is waiting.
async fn run_member(key: Key, first: InHand, waiting: Waiting, handle: Handle) {
    let mut next = Some(first);
    while let Some((update, slot)) = next {
        run(&handle, update).await;
        drop(slot);
        let mut map = lock(&waiting);
        next = map.get_mut(&key).and_then(VecDeque::pop_front);
        if next.is_none() {
            map.remove(&key);
        }
    }
}

/// One update; a panic costs only this update, never the member's key (it would stay busy forever).
async fn run(handle: &Handle, update: Box<Update>) {
    let update_id = update.id.0;
    let handling = async move { handle(*update).await };
    if AssertUnwindSafe(handling).catch_unwind().await.is_err() {
        tracing::error!(
            update_id,
            "handling an update panicked outside the handler's guard"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::stream;
    use serde_json::json;
    use tokio::sync::{Notify, mpsc};

    use super::*;

    /// From text, as teloxide reads Telegram's replies (its `Update` does not read from a `Value`).
    fn read(update: serde_json::Value) -> Update {
        serde_json::from_str(&update.to_string()).unwrap()
    }

    fn message(update_id: i64, chat: i64, user: i64) -> Update {
        read(json!({
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 0,
                "chat": { "id": chat, "type": "supergroup", "title": "g" },
                "from": { "id": user, "is_bot": false, "first_name": "u" },
                "text": "hi"
            }
        }))
    }

    /// A listener's stream holding `updates`, open (not stopped) until the sender is dropped.
    fn open_stream(
        updates: Vec<Update>,
    ) -> (
        mpsc::UnboundedSender<Result<Update, RequestError>>,
        impl Stream<Item = Result<Update, RequestError>> + Unpin,
    ) {
        let (feed, receiver) = mpsc::unbounded_channel();
        for update in updates {
            feed.send(Ok(update)).unwrap();
        }
        let stream = Box::pin(stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|update| (update, receiver))
        }));
        (feed, stream)
    }

    /// A handler that records each update's id as it finishes; updates from `slow_user` wait for `gate`.
    fn recording(slow_user: i64, gate: Arc<Notify>) -> (Handle, mpsc::UnboundedReceiver<u32>) {
        let (done, finished) = mpsc::unbounded_channel();
        let handle: Handle = Arc::new(move |update: Update| {
            let done = done.clone();
            let gate = Arc::clone(&gate);
            async move {
                if update.from().is_some_and(|u| u.id.0 as i64 == slow_user) {
                    gate.notified().await;
                }
                // The test stopped listening once it saw what it needed.
                let _ = done.send(update.id.0);
            }
            .boxed()
        });
        (handle, finished)
    }

    #[tokio::test]
    async fn a_waiting_member_holds_up_only_their_own_later_updates() {
        let gate = Arc::new(Notify::new());
        let (handle, mut finished) = recording(1, Arc::clone(&gate));
        // A stream that stays open until the end: a stop would drop what waits.
        let (feed, updates) = open_stream(vec![
            message(1, -100, 1),
            message(2, -100, 2),
            message(3, -100, 1),
            message(4, -200, 3),
        ]);
        let run = tokio::spawn(dispatch(updates, handle, |_| {}, CancellationToken::new()));
        let mut first = vec![
            finished.recv().await.unwrap(),
            finished.recv().await.unwrap(),
        ];
        first.sort();
        assert_eq!(first, [2, 4], "the other member and the other chat went on");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            finished.try_recv().is_err(),
            "member 1's second update waits for their first"
        );
        gate.notify_one();
        assert_eq!(finished.recv().await.unwrap(), 1);
        gate.notify_one();
        assert_eq!(
            finished.recv().await.unwrap(),
            3,
            "in the order Telegram sent them"
        );
        drop(feed);
        run.await.unwrap();
    }

    #[tokio::test]
    async fn it_returns_only_when_every_update_taken_is_done_and_hands_errors_on() {
        let gate = Arc::new(Notify::new());
        let (handle, mut finished) = recording(1, Arc::clone(&gate));
        let updates = vec![
            Ok(message(1, -100, 1)),
            Err(RequestError::Io(std::io::Error::other("cut").into())),
        ];
        let errors = std::sync::atomic::AtomicUsize::new(0);
        let run = dispatch(
            stream::iter(updates),
            handle,
            |_| {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            },
            CancellationToken::new(),
        );
        tokio::pin!(run);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut run)
                .await
                .is_err(),
            "still handling update 1"
        );
        gate.notify_one();
        run.await;
        assert_eq!(finished.recv().await.unwrap(), 1);
        assert_eq!(errors.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn aborting_the_dispatcher_ends_the_handling_it_started() {
        let gate = Arc::new(Notify::new());
        let (handle, mut finished) = recording(1, Arc::clone(&gate));
        let (feed, updates) = open_stream(vec![message(1, -100, 1), message(2, -200, 2)]);
        let run = tokio::spawn(dispatch(updates, handle, |_| {}, CancellationToken::new()));
        // Update 2 is done; update 1 waits at its gate, inside a handling task.
        assert_eq!(finished.recv().await.unwrap(), 2);
        run.abort();
        assert!(run.await.unwrap_err().is_cancelled());
        // Were update 1's task still alive, this would let it finish and report.
        gate.notify_one();
        drop(feed);
        assert_eq!(
            finished.recv().await,
            None,
            "every handler ended with the dispatcher (their senders dropped unsent)"
        );
    }

    #[tokio::test]
    async fn a_panicking_update_leaves_its_member_free_for_the_next() {
        let handle: Handle = Arc::new(|update: Update| {
            async move {
                assert_ne!(update.id.0, 1, "the first update panics");
            }
            .boxed()
        });
        let (done, mut finished) = mpsc::unbounded_channel();
        let recorder: Handle = Arc::new(move |update: Update| {
            let handle = Arc::clone(&handle);
            let done = done.clone();
            async move {
                let id = update.id.0;
                handle(update).await;
                // The test stopped listening once it saw what it needed.
                let _ = done.send(id);
            }
            .boxed()
        });
        let (feed, updates) = open_stream(vec![message(1, -100, 1), message(2, -100, 1)]);
        let run = tokio::spawn(dispatch(
            updates,
            recorder,
            |_| {},
            CancellationToken::new(),
        ));
        assert_eq!(finished.recv().await.unwrap(), 2);
        drop(feed);
        run.await.unwrap();
    }

    #[tokio::test]
    async fn a_stop_leaves_an_update_waiting_for_room_in_the_process_unhandled() {
        // A process with no room: every slot is held by other bots' updates.
        let full: &'static Semaphore = Box::leak(Box::new(Semaphore::new(0)));
        let (done, mut handled) = mpsc::unbounded_channel();
        let handle: Handle = Arc::new(move |update: Update| {
            let done = done.clone();
            async move {
                let _ = done.send(update.id.0);
            }
            .boxed()
        });
        let (_feed, updates) = open_stream(vec![message(1, -100, 1)]);
        let stopping = CancellationToken::new();
        let run = tokio::spawn(dispatch_within(
            full,
            updates,
            handle,
            |_| {},
            stopping.clone(),
        ));
        // The update is read, then waits for room; nothing is handled meanwhile.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(handled.try_recv().is_err(), "handled without room");
        assert!(!run.is_finished(), "the dispatcher waits for room");
        stopping.cancel();
        // The stop ends the dispatcher at once (the stream is still open), the update unhandled:
        // it stays with Telegram for the next runner.
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("the stop is not held up by the full process")
            .unwrap();
        assert!(
            handled.try_recv().is_err(),
            "the waiting update was handled"
        );
        assert_eq!(full.available_permits(), 0, "no room was taken or given");
    }

    #[tokio::test]
    async fn a_members_task_holds_its_updates_boxed() {
        // Every update in hand is one such task: 40,000 at once while 10,000 bots start.
        let handle: Handle = Arc::new(|_: Update| async {}.boxed());
        let slot = Slot {
            _bot: Arc::new(Semaphore::new(1)).acquire_owned().await.unwrap(),
            _process: PROCESS_SLOTS.acquire().await.unwrap(),
        };
        let task = run_member(
            (-100, 1),
            (Box::new(message(1, -100, 1)), slot),
            Waiting::default(),
            handle,
        );
        let (task_bytes, update_bytes) = (size_of_val(&task), size_of::<Update>());
        assert!(
            task_bytes < update_bytes,
            "a member's task is {task_bytes} bytes, an update {update_bytes}"
        );
    }

    #[test]
    fn a_chat_member_change_is_keyed_by_the_member_changed() {
        let change = read(json!({
            "update_id": 9,
            "chat_member": {
                "chat": { "id": -100, "type": "supergroup", "title": "g" },
                "from": { "id": 7, "is_bot": false, "first_name": "admin" },
                "date": 0,
                "old_chat_member": { "status": "left", "user": { "id": 5, "is_bot": false, "first_name": "m" } },
                "new_chat_member": { "status": "member", "user": { "id": 5, "is_bot": false, "first_name": "m" } }
            }
        }));
        assert_eq!(member_of(&change), Some((-100, 5)));
        assert_eq!(member_of(&message(1, -100, 7)), Some((-100, 7)));
    }
}
