//! Log records into the database: a tracing [`Layer`](tracing_subscriber::Layer) that queues each
//! record at `log.store_level` or above, and a writer that stores them in batches in `logs`,
//! publishes them as `log` events, and deletes records past `log.retention_days`.
//!
//! The queue is bounded and never blocks the code that logs: when it is full (a database outage
//! longer than the queue), records are counted as dropped, not buffered without limit. Records from
//! this module and from the Broadcaster are stored but not published, so a failing event store
//! cannot feed on its own warnings.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

use crate::actors::Publisher;
use crate::db::{NewLog, Store, now_ms};

const QUEUE: usize = 10_000;
const BATCH: usize = 500;
const FLUSH_EVERY: Duration = Duration::from_millis(500);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Targets stored but not published as events (they report on the event path itself).
const NOT_PUBLISHED: [&str; 2] = ["nezuko::logstore", "nezuko::actors::broadcaster"];

static DROPPED: AtomicU64 = AtomicU64::new(0);

struct Queue {
    sender: mpsc::Sender<NewLog>,
    receiver: Mutex<Option<mpsc::Receiver<NewLog>>>,
}

static QUEUE_CELL: OnceLock<Queue> = OnceLock::new();

fn queue() -> &'static Queue {
    QUEUE_CELL.get_or_init(|| {
        let (sender, receiver) = mpsc::channel(QUEUE);
        Queue {
            sender,
            receiver: Mutex::new(Some(receiver)),
        }
    })
}

/// The layer to add to the subscriber; records queue until [`start`] connects the store.
pub struct StoreLayer {
    level: Level,
}

pub fn layer(level: Level) -> StoreLayer {
    StoreLayer { level }
}

/// Records lost because the queue was full.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for StoreLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > self.level || meta.target().starts_with("sqlx") {
            return;
        }
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        let bot_instance_id = visitor
            .fields
            .get("bot_instance_id")
            .and_then(Value::as_i64);
        let record = NewLog {
            level: meta.level().as_str().to_ascii_lowercase(),
            target: meta.target().to_string(),
            message: visitor.message,
            fields: Value::Object(visitor.fields),
            bot_instance_id,
            created_at: now_ms(),
        };
        if queue().sender.try_send(record).is_err() {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Map<String, Value>,
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.insert(field.name().into(), value.into());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.insert(field.name().into(), text.into());
        }
    }
}

/// Starts the writer (once per process; later calls return `false`).
pub fn start(store: Store, publisher: Publisher, retention: Duration) -> bool {
    let Some(receiver) = queue().receiver.lock().ok().and_then(|mut r| r.take()) else {
        return false;
    };
    tokio::spawn(write_loop(store, publisher, receiver, retention));
    true
}

async fn write_loop(
    store: Store,
    publisher: Publisher,
    mut receiver: mpsc::Receiver<NewLog>,
    retention: Duration,
) {
    let mut pending: Vec<NewLog> = Vec::new();
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            record = receiver.recv() => match record {
                Some(record) => {
                    pending.push(record);
                    if pending.len() < BATCH {
                        continue;
                    }
                }
                None => return,
            },
            _ = flush.tick() => {}
            _ = prune.tick() => {
                match store.prune_logs(now_ms() - retention.as_millis() as i64).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "deleted log records past retention"),
                    Err(error) => tracing::warn!(%error, "could not delete old log records"),
                }
                continue;
            }
        }
        if pending.is_empty() {
            continue;
        }
        // On failure the batch stays pending and is retried at the next tick; the bounded queue
        // upstream decides what an outage longer than that costs.
        match store.insert_logs(&pending).await {
            Ok(()) => {
                for record in pending.drain(..) {
                    if !NOT_PUBLISHED.iter().any(|t| record.target.starts_with(t)) {
                        publisher.publish(crate::domain::EventKind::Log, record.bot_instance_id, json!({
                            "level": record.level, "target": record.target, "message": record.message,
                            "fields": record.fields, "created_at": record.created_at,
                        }));
                    }
                }
            }
            Err(error) if pending.len() > QUEUE => {
                DROPPED.fetch_add(pending.len() as u64, Ordering::Relaxed);
                pending.clear();
                tracing::warn!(%error, "dropped log records the database would not take");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn events_at_or_above_the_level_are_queued_with_their_fields() {
        let subscriber = tracing_subscriber::registry().with(layer(Level::INFO));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(bot_instance_id = 7_i64, attempt = 2_u64, "bot started");
            tracing::debug!("not stored");
        });
        let mut receiver = queue().receiver.lock().unwrap().take().unwrap();
        let record = receiver.try_recv().unwrap();
        assert_eq!(record.level, "info");
        assert_eq!(record.message, "bot started");
        assert_eq!(record.bot_instance_id, Some(7));
        assert_eq!(record.fields["attempt"], 2);
        assert!(receiver.try_recv().is_err(), "debug is below the level");
    }
}
