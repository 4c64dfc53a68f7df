//! The activity feed (`GET /api/v1/activity`, cursor-paged from the `events` table) and the live
//! stream (`GET /api/v1/events/stream`, Server-Sent Events).
//!
//! Every streamed event carries `id:` = its row in `events`. A client reconnecting with
//! `Last-Event-ID` (header, or `last_event_id` in the query) first gets what it missed, replayed
//! from the table, then live events. Each client has a bounded buffer: one that falls behind gets a
//! `resync` event naming the last id it received and is disconnected, so it resumes by replay;
//! memory never grows with a slow reader.

use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, mpsc};
use warp::Reply;
use warp::http::{Method, StatusCode};

use crate::db::{EventRow, Store};
use crate::domain::EventKind;
use crate::events::Event;
use crate::http::input;
use crate::http::problem::ApiError;
use crate::http::respond::{self, ApiResult, CursorPage};
use crate::http::router::{Access, Ctx, Route};

/// Events queued for one client before it counts as too slow.
const CLIENT_BUFFER: usize = 256;
const REPLAY_PAGE: i64 = 500;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/v1/activity",
            Access::Admin,
            "The activity feed, newest first",
            |c| Box::pin(activity(c)),
        )
        .query::<ActivityQuery>()
        .returns::<CursorPage<EventView>>(StatusCode::OK),
        Route::new(
            Method::GET,
            "/api/v1/events/stream",
            Access::Admin,
            "Live events (text/event-stream) with replay",
            |c| Box::pin(stream(c)),
        )
        .query::<StreamQuery>()
        .returns_text(StatusCode::OK, "text/event-stream"),
    ]
}

/// One event as stored.
#[derive(Serialize, JsonSchema)]
pub struct EventView {
    /// Its row in `events`: the feed's cursor and the stream's `id:`.
    id: i64,
    #[schemars(with = "EventKind")]
    kind: String,
    bot_instance_id: Option<i64>,
    /// What happened; its members depend on `kind`.
    #[schemars(with = "Map<String, Value>")]
    payload: Value,
    /// Epoch ms.
    created_at: i64,
}

pub fn view(row: &EventRow) -> EventView {
    EventView {
        id: row.id,
        kind: row.kind.clone(),
        bot_instance_id: row.bot_instance_id,
        payload: row.payload.0.clone(),
        created_at: row.created_at,
    }
}

/// Which events the feed pages through.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ActivityQuery {
    /// Comma-separated event kinds (`event_kinds` in `GET /api/v1/vocabulary`); all when absent.
    #[serde(rename = "type")]
    kinds: Option<String>,
    /// Only this bot's events.
    bot: Option<i64>,
    /// Cursor: events with a smaller id.
    before: Option<i64>,
    /// 1..=200, default 50.
    limit: Option<i64>,
}

/// Which events the stream carries, and where it resumes (it is not paged).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    /// Comma-separated event kinds (`event_kinds` in `GET /api/v1/vocabulary`); all when absent.
    #[serde(rename = "type")]
    kinds: Option<String>,
    /// Only this bot's events.
    bot: Option<i64>,
    /// Replay the events after this id first (or send the `Last-Event-ID` header).
    last_event_id: Option<i64>,
}

fn kinds(text: Option<&str>) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for kind in text
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        if EventKind::parse(kind).is_none() {
            return Err(ApiError::invalid(
                "type",
                format!(
                    "`{kind}` is not an event kind; known: {}",
                    EventKind::ALL
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        out.push(kind.to_string());
    }
    Ok(out)
}

async fn activity(ctx: Ctx) -> ApiResult {
    let query: ActivityQuery = ctx.query()?;
    let kinds = kinds(query.kinds.as_deref())?;
    let limit = input::limit(query.limit, 50, 200)?;
    let rows = ctx
        .state
        .store
        .events_page(query.before, &kinds, query.bot, limit)
        .await?;
    let items: Vec<EventView> = rows.iter().map(view).collect();
    respond::cursor_page(items, limit, rows.last().map(|r| r.id))
}

/// What one client asked for.
#[derive(Clone)]
struct Selection {
    kinds: Vec<String>,
    bot: Option<i64>,
}

impl Selection {
    fn wants(&self, kind: &str, bot: Option<i64>) -> bool {
        (self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind))
            && (self.bot.is_none() || self.bot == bot)
    }
}

async fn stream(ctx: Ctx) -> ApiResult {
    let query: StreamQuery = ctx.query()?;
    let header = ctx
        .header("last-event-id")
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let resume = match header {
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            ApiError::bad_request(
                "invalid_header",
                format!("Last-Event-ID `{text}` is not an event id"),
            )
        })?),
        None => query.last_event_id,
    };
    let selection = Selection {
        kinds: kinds(query.kinds.as_deref())?,
        bot: query.bot,
    };
    // Subscribe before replaying, so nothing published during the replay falls between the two.
    let live = ctx.state.fleet.subscribe();
    let (sender, receiver) = mpsc::channel(CLIENT_BUFFER);
    let (store, closing) = (ctx.state.store.clone(), ctx.state.closing.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = feed(store, live, sender, selection, resume) => {}
            _ = server_closing(closing) => {}
        }
    });
    let reply = warp::sse::reply(
        warp::sse::keep_alive()
            .interval(KEEP_ALIVE)
            .stream(ClientStream(receiver)),
    );
    let mut response = reply.into_response();
    response.headers_mut().insert(
        "x-accel-buffering",
        warp::http::HeaderValue::from_static("no"),
    );
    response.headers_mut().insert(
        "cache-control",
        warp::http::HeaderValue::from_static("no-cache"),
    );
    Ok(response)
}

/// The client's queue as the stream warp writes out.
struct ClientStream(mpsc::Receiver<warp::sse::Event>);

impl futures_util::Stream for ClientStream {
    type Item = Result<warp::sse::Event, std::convert::Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|event| event.map(Ok))
    }
}

fn sse(id: i64, kind: &str, data: &Value) -> warp::sse::Event {
    let event = warp::sse::Event::default()
        .event(kind)
        .data(data.to_string());
    if id > 0 {
        event.id(id.to_string())
    } else {
        event
    }
}

fn sse_of(event: &Event) -> warp::sse::Event {
    sse(
        event.id,
        &event.kind,
        &serde_json::to_value(event).unwrap_or_default(),
    )
}

/// Resolves when the server shuts down (never, for a state not served by [`crate::http::serve`]).
async fn server_closing(mut closing: tokio::sync::watch::Receiver<bool>) {
    if closing.wait_for(|closed| *closed).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Replays from the table, then relays live events, until the client goes or falls behind.
async fn feed(
    store: Store,
    mut live: broadcast::Receiver<Arc<Event>>,
    sender: mpsc::Sender<warp::sse::Event>,
    selection: Selection,
    resume: Option<i64>,
) {
    let mut last_sent = resume.unwrap_or(0);
    let mut replayed_up_to = 0;
    if let Some(after) = resume {
        let mut cursor = after;
        loop {
            let rows = match store.events_after(cursor, REPLAY_PAGE).await {
                Ok(rows) => rows,
                Err(error) => {
                    // The client may be gone already; the stream ends either way.
                    let _ = sender
                        .send(resync(last_sent, &format!("replay failed: {error}")))
                        .await;
                    return;
                }
            };
            let complete = (rows.len() as i64) < REPLAY_PAGE;
            for row in rows {
                let id = row.id;
                (cursor, replayed_up_to) = (id, id);
                if selection.wants(&row.kind, row.bot_instance_id) {
                    let event = Event::from_row(row, false);
                    if sender.send(sse_of(&event)).await.is_err() {
                        return;
                    }
                }
                last_sent = id;
            }
            if complete {
                break;
            }
        }
    }
    loop {
        let event = tokio::select! {
            _ = sender.closed() => return,
            event = live.recv() => event,
        };
        match event {
            Ok(event) => {
                // Already replayed from the table.
                if event.id > 0 && event.id <= replayed_up_to {
                    continue;
                }
                if !selection.wants(&event.kind, event.bot_instance_id) {
                    if event.id > 0 {
                        last_sent = last_sent.max(event.id);
                    }
                    continue;
                }
                // The last slot of the buffer is kept for the resync notice.
                if sender.capacity() <= 1 {
                    // The slot kept for it is free unless the client is gone; the stream ends
                    // either way.
                    let _ = sender.try_send(resync(last_sent, "client too slow"));
                    return;
                }
                if sender.try_send(sse_of(&event)).is_err() {
                    return;
                }
                last_sent = last_sent.max(event.id);
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                let reason =
                    format!("{missed} events were published faster than this client read them");
                // The client may be gone already; the stream ends either way.
                let _ = sender.try_send(resync(last_sent, &reason));
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Tells a client to reconnect with `Last-Event-ID: last_event_id` and replay.
fn resync(last_event_id: i64, reason: &str) -> warp::sse::Event {
    sse(
        0,
        "resync",
        &json!({ "last_event_id": last_event_id, "reason": reason }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_filter_by_kind_and_bot() {
        let all = Selection {
            kinds: vec![],
            bot: None,
        };
        assert!(all.wants("audit", None));
        let some = Selection {
            kinds: vec!["bot_status".into()],
            bot: Some(3),
        };
        assert!(some.wants("bot_status", Some(3)));
        assert!(!some.wants("bot_status", Some(4)));
        assert!(!some.wants("verification", Some(3)));
    }

    /// A client that stops reading gets `resync` as its last event and is disconnected; the
    /// relay never queues more than the client's buffer.
    #[tokio::test]
    async fn a_slow_client_is_told_to_resync_and_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::db::scratch_store(dir.path()).await;
        let (live, receiver) = broadcast::channel(64);
        let (sender, mut client) = mpsc::channel(4);
        let selection = Selection {
            kinds: vec![],
            bot: None,
        };
        let task = tokio::spawn(feed(store, receiver, sender, selection, None));
        for id in 1..=20 {
            let event = Event {
                id,
                kind: "audit".into(),
                bot_instance_id: None,
                payload: json!({}),
                created_at: 0,
                relayed: false,
            };
            // Fails once the relay has given up on the client, which is the point.
            let _ = live.send(Arc::new(event));
            tokio::task::yield_now().await;
        }
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        let mut received = Vec::new();
        while let Some(event) = client.recv().await {
            received.push(format!("{event:?}"));
        }
        assert!(
            received.len() <= 5,
            "at most the buffer and the notice: {received:?}"
        );
        let last = received.last().unwrap();
        assert!(last.contains("resync"), "{last}");
        assert!(last.contains("last_event_id"), "{last}");
    }

    #[test]
    fn unknown_kinds_are_refused() {
        assert_eq!(
            kinds(Some("bot_status, audit")).unwrap(),
            vec!["bot_status", "audit"]
        );
        assert!(kinds(Some("bot_status,nope")).is_err());
    }
}
