//! Events across processes: with `REDIS_URL` set, every event this process's Broadcaster publishes
//! is also published on a Redis channel, and events other processes publish there are injected into
//! this process's event stream, so an SSE client of any process sees every process's events.
//!
//! Redis is never required. While it is unreachable each process keeps delivering its own events.
//! Whenever the subscription is (re)established, including the first time after the process
//! starts, the relay replays from the `events` table what other processes stored since it last
//! listened (rows carry their process's `origin`; recently seen ids are remembered, so nothing is
//! delivered twice), so a subscription that comes up late loses nothing either. While subscribed it
//! also replays every few seconds, for events another process stored but could not publish.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::db::Store;
use crate::events::Event;

const CHANNEL_SUFFIX: &str = "events";
/// Event ids remembered to suppress duplicates between live relay and catch-up replay.
const REMEMBERED: usize = 20_000;
/// How far below the highest id seen a catch-up looks (ids from several processes commit out of order).
const CATCH_UP_MARGIN: i64 = 1_000;
const CATCH_UP_PAGE: i64 = 1_000;
/// How often a subscribed relay also replays from the table: an event whose process could not
/// publish it (Redis unreachable from there, but not from here) arrives this late instead of never.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    event: Event,
}

#[derive(Default)]
struct Seen {
    ids: HashSet<i64>,
    order: VecDeque<i64>,
    highest: i64,
}

impl Seen {
    /// Remembers `id`; `false` if it was already seen.
    fn note(&mut self, id: i64) -> bool {
        if id <= 0 || !self.ids.insert(id) {
            return id <= 0;
        }
        self.order.push_back(id);
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        self.highest = self.highest.max(id);
        true
    }
}

/// Starts relaying between `sender` (this process's event stream) and Redis at `url`.
/// `namespace` separates installations sharing one Redis: the app derives it from the database,
/// since the processes that share a database are exactly the ones whose events belong together.
/// Returns once the relay knows where history ends (the newest stored event), so every event
/// another process stores after this returns reaches `sender`, whenever the subscription comes up.
pub async fn start(
    url: &str,
    namespace: &str,
    store: Store,
    sender: broadcast::Sender<Arc<Event>>,
) -> anyhow::Result<()> {
    let client = redis::Client::open(url)
        .map_err(|e| anyhow::anyhow!("REDIS_URL is not a Redis URL: {e}"))?;
    // Read here, not in the subscribing task: a task scheduled late (a busy start) would read a
    // floor above events stored meanwhile, and skip them.
    let floor = newest_event_id(&store).await;
    let channel = format!("{namespace}:{CHANNEL_SUFFIX}");
    let origin = store.origin().to_string();
    let seen = Arc::new(Mutex::new(Seen::default()));
    tokio::spawn(publish_loop(
        client.clone(),
        channel.clone(),
        origin.clone(),
        sender.subscribe(),
        seen.clone(),
    ));
    tokio::spawn(subscribe_loop(
        client, channel, origin, store, sender, seen, floor,
    ));
    Ok(())
}

/// How often [`tail`] reads the events other processes stored.
const TAIL_EVERY: Duration = Duration::from_secs(1);

/// Without Redis: delivers the events other processes store in the shared database into `sender`,
/// read from the `events` table every [`TAIL_EVERY`], so the dashboard of any process sees the
/// bots another runs (`serve --role api` beside `--role bots`), at most a second late. Cheap
/// when nobody else writes: one indexed query a second that finds nothing.
///
/// Returns once it knows where history ends, as [`start`] does.
pub async fn tail(store: Store, sender: broadcast::Sender<Arc<Event>>) {
    let mut floor = newest_event_id(&store).await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut local = sender.subscribe();
    let noted = seen.clone();
    // Own events raise the highest id seen, which keeps each read near the newest rows.
    tokio::spawn(async move {
        loop {
            match local.recv().await {
                Ok(event) => {
                    if let Ok(mut seen) = noted.lock() {
                        seen.note(event.id);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    // Held weakly: the tail ends with the tree that owns the stream.
    let sender = sender.downgrade();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TAIL_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(sender) = sender.upgrade() else {
                return;
            };
            match floor {
                Some(floor) => catch_up(&store, floor, &sender, &seen).await,
                None => floor = newest_event_id(&store).await,
            }
        }
    });
}

/// Publishes this process's own events.
async fn publish_loop(
    client: redis::Client,
    channel: String,
    origin: String,
    mut local: broadcast::Receiver<Arc<Event>>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut connection: Option<ConnectionManager> = None;
    let mut warned = false;
    loop {
        let event = match local.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Ok(mut seen) = seen.lock() {
            seen.note(event.id);
        }
        if event.relayed || event.id <= 0 {
            continue;
        }
        if connection.is_none() {
            connection = ConnectionManager::new(client.clone()).await.ok();
        }
        let Some(manager) = connection.as_mut() else {
            continue;
        };
        let envelope = Envelope {
            origin: origin.clone(),
            event: (*event).clone(),
        };
        let payload = serde_json::to_string(&envelope).unwrap_or_default();
        match manager.publish::<_, _, i64>(&channel, payload).await {
            Ok(_) => warned = false,
            Err(error) if !warned => {
                warned = true;
                tracing::warn!(%error, "cannot publish events to Redis; other processes will replay them from the database");
            }
            Err(_) => {}
        }
    }
}

/// Injects other processes' events; reconnects with backoff and catches up from the table each
/// time the subscription is established.
async fn subscribe_loop(
    client: redis::Client,
    channel: String,
    origin: String,
    store: Store,
    sender: broadcast::Sender<Arc<Event>>,
    seen: Arc<Mutex<Seen>>,
    // Everything stored before this process listened is history, not news: catch-ups never reach
    // below it. Read before the first subscription, so what arrives in between is replayed.
    mut floor: Option<i64>,
) {
    let mut delay = Duration::from_millis(250);
    let mut interrupted = false;
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        }
        .await;
        let mut pubsub = match subscribed {
            Ok(pubsub) => pubsub,
            Err(error) => {
                if !interrupted {
                    tracing::warn!(%error, "Redis unreachable: events stay in this process until it is back");
                }
                interrupted = true;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        delay = Duration::from_millis(250);
        if interrupted {
            tracing::info!("Redis is back: relaying events between processes again");
        }
        // Messages published from here on wait in the subscription while the table is read.
        match floor {
            Some(floor) => catch_up(&store, floor, &sender, &seen).await,
            // The database was unreachable when the process started; start from now instead.
            None => floor = newest_event_id(&store).await,
        }
        let mut messages = pubsub.on_message();
        let mut sweep =
            tokio::time::interval_at(tokio::time::Instant::now() + SWEEP_EVERY, SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let message = tokio::select! {
                message = messages.next() => message,
                _ = sweep.tick() => {
                    if let Some(floor) = floor {
                        catch_up(&store, floor, &sender, &seen).await;
                    }
                    continue;
                }
            };
            let Some(message) = message else {
                break;
            };
            let Ok(text) = message.get_payload::<String>() else {
                continue;
            };
            let Ok(envelope) = serde_json::from_str::<Envelope>(&text) else {
                continue;
            };
            if envelope.origin == origin {
                continue;
            }
            deliver(&sender, &seen, envelope.event);
        }
        tracing::warn!("the Redis event subscription ended; reconnecting");
        interrupted = true;
    }
}

async fn newest_event_id(store: &Store) -> Option<i64> {
    match store.newest_event_id().await {
        Ok(id) => Some(id),
        Err(error) => {
            tracing::warn!(%error, "cannot read the newest event id; events other processes store before the relay is up are not replayed");
            None
        }
    }
}

/// Injects another process's event unless it was already delivered here.
fn deliver(sender: &broadcast::Sender<Arc<Event>>, seen: &Mutex<Seen>, event: Event) {
    let fresh = seen.lock().map(|mut s| s.note(event.id)).unwrap_or(true);
    if fresh {
        // No subscribers is not an error.
        let _ = sender.send(Arc::new(Event {
            relayed: true,
            ..event
        }));
    }
}

/// Delivers stored events of other processes this one has not seen, above `floor` (ids from
/// several processes commit out of order, so it looks a margin below the highest id seen).
async fn catch_up(
    store: &Store,
    floor: i64,
    sender: &broadcast::Sender<Arc<Event>>,
    seen: &Mutex<Seen>,
) {
    let highest = seen.lock().map(|s| s.highest).unwrap_or(0);
    let mut cursor = highest.saturating_sub(CATCH_UP_MARGIN).max(floor);
    loop {
        let rows = match store.others_events_after(cursor, CATCH_UP_PAGE).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "could not replay events other processes stored while this one was not listening");
                return;
            }
        };
        let complete = (rows.len() as i64) < CATCH_UP_PAGE;
        for row in rows {
            cursor = row.id;
            deliver(sender, seen, Event::from_row(row, true));
        }
        if complete {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Seen;

    #[test]
    fn ids_are_delivered_once_and_unstored_events_always() {
        let mut seen = Seen::default();
        assert!(seen.note(5));
        assert!(!seen.note(5));
        assert!(seen.note(3));
        assert_eq!(seen.highest, 5);
        assert!(
            seen.note(0),
            "an event without an id cannot be deduplicated"
        );
    }
}
