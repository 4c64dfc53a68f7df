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
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::db::{NewLog, Store, now_ms};
use crate::events::Publisher;

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

/// The bot a span is about (a BotActor's `bot{bot_instance_id=…}` span), kept in its extensions so
/// records written inside it are filed under the bot.
struct SpanBot(i64);

impl<S: Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for StoreLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut visitor = Fields::default();
        attrs.record(&mut visitor);
        if let Some(bot) = visitor
            .fields
            .get("bot_instance_id")
            .and_then(Value::as_i64)
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(SpanBot(bot));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > self.level || meta.target().starts_with("sqlx") {
            return;
        }
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        let bot_instance_id = visitor
            .fields
            .get("bot_instance_id")
            .and_then(Value::as_i64)
            .or_else(|| {
                ctx.event_scope(event)?
                    .find_map(|span| span.extensions().get::<SpanBot>().map(|bot| bot.0))
            });
        if let (Some(bot), false) = (
            bot_instance_id,
            visitor.fields.contains_key("bot_instance_id"),
        ) {
            visitor.fields.insert("bot_instance_id".into(), bot.into());
        }
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

/// The running writer; [`LogWriter::stop`] ends it.
#[derive(Debug)]
pub struct LogWriter {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<mpsc::Receiver<NewLog>>,
}

impl LogWriter {
    /// Stores what is queued, then ends, handing the queue back so a later [`start`] (another
    /// service in the same process, as in tests) takes over from there. Waits at most `limit`.
    pub async fn stop(self, limit: Duration) {
        // An error means the writer already ended (it never does on its own).
        let _ = self.stop.send(());
        match tokio::time::timeout(limit, self.task).await {
            Ok(Ok(receiver)) => {
                if let Ok(mut slot) = queue().receiver.lock() {
                    *slot = Some(receiver);
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "the log writer failed"),
            Err(_) => tracing::warn!("the log writer did not finish in time"),
        }
    }
}

/// Starts the writer; `None` while another one runs (one per process: the queue is global).
pub fn start(store: Store, publisher: Publisher, retention: Duration) -> Option<LogWriter> {
    let receiver = queue().receiver.lock().ok().and_then(|mut r| r.take())?;
    let (stop, stopping) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(write_loop(store, publisher, receiver, stopping, retention));
    Some(LogWriter { stop, task })
}

/// Stores records in batches until told to stop; then stores what is queued and gives the queue
/// back.
async fn write_loop(
    store: Store,
    publisher: Publisher,
    mut receiver: mpsc::Receiver<NewLog>,
    mut stopping: tokio::sync::oneshot::Receiver<()>,
    retention: Duration,
) -> mpsc::Receiver<NewLog> {
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
                // The queue's sender is a static: it never closes.
                None => return receiver,
            },
            _ = &mut stopping => {
                while let Ok(record) = receiver.try_recv() {
                    pending.push(record);
                }
                write(&store, &publisher, &mut pending).await;
                return receiver;
            }
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
        write(&store, &publisher, &mut pending).await;
    }
}

/// Stores `pending` and publishes it; on failure the batch stays pending and is retried at the
/// next tick, and the bounded queue upstream decides what an outage longer than that costs.
async fn write(store: &Store, publisher: &Publisher, pending: &mut Vec<NewLog>) {
    if pending.is_empty() {
        return;
    }
    match store.insert_logs(pending).await {
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

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn events_at_or_above_the_level_are_queued_with_their_fields_and_their_bot() {
        let subscriber = tracing_subscriber::registry().with(layer(Level::INFO));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(bot_instance_id = 7_i64, attempt = 2_u64, "bot started");
            tracing::debug!("not stored");
            let bot = tracing::info_span!("bot", bot_instance_id = 9_i64);
            bot.in_scope(|| {
                let inner = tracing::info_span!("update");
                inner.in_scope(|| tracing::warn!("inside the bot's span"));
            });
        });
        let mut receiver = queue().receiver.lock().unwrap().take().unwrap();
        let record = receiver.try_recv().unwrap();
        assert_eq!(record.level, "info");
        assert_eq!(record.message, "bot started");
        assert_eq!(record.bot_instance_id, Some(7));
        assert_eq!(record.fields["attempt"], 2);
        let inside = receiver
            .try_recv()
            .expect("debug is below the level, the warning is next");
        assert_eq!(inside.message, "inside the bot's span");
        assert_eq!(
            inside.bot_instance_id,
            Some(9),
            "filed under the bot of the enclosing span"
        );
        assert_eq!(inside.fields["bot_instance_id"], 9);
        assert!(receiver.try_recv().is_err());
    }
}
