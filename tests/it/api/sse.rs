//! A minimal Server-Sent Events reader over reqwest, and the stream's own tests: ids from the
//! `events` table, replay after `Last-Event-ID`, filters, keep-alive.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::{ApiWorld, api_tests};
use crate::support::wait::eventually;

/// One parsed event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<i64>,
    pub event: String,
    pub data: Value,
}

pub struct SseClient {
    response: reqwest::Response,
    buffer: String,
    pub status: u16,
}

impl SseClient {
    /// Opens `/api/v1/events/stream{query}` as the world's owner.
    pub async fn connect(world: &ApiWorld, query: &str, last_event_id: Option<i64>) -> Self {
        Self::open(&world.base, &world.session.cookie, query, last_event_id).await
    }

    /// Opens the stream of the service at `base` with session `cookie`.
    pub async fn open(base: &str, cookie: &str, query: &str, last_event_id: Option<i64>) -> Self {
        let mut request = reqwest::Client::new()
            .get(format!("{base}/api/v1/events/stream{query}"))
            .header("cookie", format!("nezuko_session={cookie}"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        if response.status().is_success() {
            // The body is the stream itself: its status and media type are what can be checked.
            let opened = super::Answer {
                status: response.status(),
                body: Value::Null,
                headers: response.headers().clone(),
            };
            super::contract::check(&Method::GET, "/api/v1/events/stream", &opened);
        }
        Self {
            response,
            buffer: String::new(),
            status,
        }
    }

    /// The next event (comments skipped), or `None` if none comes within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Waits for a `bot_status` event of `bot` in `state`.
    pub async fn wait_state(&mut self, bot: i64, state: &str) -> SseEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(event) = self.next(left).await else {
                panic!("no `{state}` for bot {bot} on the stream; saw {seen:?}");
            };
            if event.event == "bot_status" && event.data["bot_instance_id"] == bot {
                let got = event.data["payload"]["state"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                if got == state {
                    return event;
                }
                seen.push(got);
            }
        }
    }
}

fn parse(block: &str) -> Option<SseEvent> {
    let (mut id, mut event, mut data) = (None, String::from("message"), String::new());
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("id:") {
            id = value.trim().parse().ok();
        } else if let Some(value) = line.strip_prefix("event:") {
            event = value.trim().to_string();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value);
        }
    }
    if data.is_empty() {
        return None;
    }
    Some(SseEvent {
        id,
        event,
        data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
    })
}

api_tests!(
    an_open_stream_does_not_hold_up_shutdown,
    a_reconnecting_client_receives_exactly_what_it_missed,
    the_stream_filters_by_kind_and_bot_and_refuses_bad_parameters,
);

async fn an_open_stream_does_not_hold_up_shutdown(world: &mut ApiWorld) {
    let mut stream = SseClient::connect(world, "", None).await;
    assert_eq!(stream.status, 200);
    assert!(
        world.stop_within(Duration::from_secs(5)).await,
        "the service stops with a dashboard still listening"
    );
    assert!(
        stream.next(Duration::from_secs(2)).await.is_none(),
        "the stream ended"
    );
}

/// A change that publishes one `settings_changed` and one `audit` event.
async fn change_settings(world: &ApiWorld, grace: u64) {
    world
        .call(
            Method::PUT,
            "/api/v1/settings/policy",
            Some(json!({ "grace_s": grace })),
        )
        .await
        .ok();
}

async fn a_reconnecting_client_receives_exactly_what_it_missed(world: &mut ApiWorld) {
    let mut first = SseClient::connect(world, "?type=settings_changed,audit", None).await;
    assert_eq!(first.status, 200);
    change_settings(world, 1).await;
    let mut last = 0;
    for _ in 0..2 {
        let event = first
            .next(Duration::from_secs(10))
            .await
            .expect("live events arrive");
        last = event.id.expect("every event has an id");
    }
    drop(first);
    for grace in 2..=4 {
        change_settings(world, grace).await;
    }
    // The Broadcaster stores them after the changes were answered.
    let missed: Vec<i64> = eventually(
        "the missed events to be stored",
        Duration::from_secs(10),
        async || {
            let missed: Vec<i64> = world
                .db
                .store
                .events_after(last, 100)
                .await
                .unwrap()
                .into_iter()
                .filter(|e| e.kind == "settings_changed" || e.kind == "audit")
                .map(|e| e.id)
                .collect();
            if missed.len() >= 6 {
                Ok(missed)
            } else {
                Err(missed)
            }
        },
    )
    .await;
    assert_eq!(missed.len(), 6, "three changes, two events each");
    let mut second = SseClient::connect(world, "?type=settings_changed,audit", Some(last)).await;
    let mut got = Vec::new();
    while let Some(event) = second.next(Duration::from_millis(1500)).await {
        got.push(event.id.unwrap());
    }
    assert_eq!(
        got, missed,
        "exactly the missed events, in order, no duplicates"
    );
    // The query parameter works like the header, and new events follow the replay.
    let mut third = SseClient::connect(
        world,
        &format!("?type=audit&last_event_id={}", missed[3]),
        None,
    )
    .await;
    let replayed = third.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(replayed.event, "audit");
    assert!(replayed.id.unwrap() > missed[3]);
    change_settings(world, 5).await;
    let live = third.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(live.data["payload"]["action"], "settings.policy");
    assert_eq!(live.data["payload"]["after"]["grace_s"], 5);
}

async fn the_stream_filters_by_kind_and_bot_and_refuses_bad_parameters(world: &mut ApiWorld) {
    let bot = world.sandbox.create_bot("Filter", "filter_bot");
    let mut only_audit = SseClient::connect(world, "?type=audit", None).await;
    let id = world
        .post("/api/v1/bots", json!({ "token": bot.token }))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let mut for_other_bot =
        SseClient::connect(world, &format!("?type=bot_status&bot={}", id + 1), None).await;
    let event = only_audit.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(event.event, "audit");
    world
        .wait_bot(id, "running", |b| b["run_state"] == "running")
        .await;
    while let Some(event) = only_audit.next(Duration::from_millis(500)).await {
        assert_eq!(event.event, "audit", "{event:?}");
    }
    assert!(
        for_other_bot
            .next(Duration::from_millis(500))
            .await
            .is_none(),
        "another bot's events are filtered out"
    );
    let bad = world.get("/api/v1/events/stream?type=nope").await;
    bad.problem(422, "invalid_field");
    let bad_header = world
        .client
        .get(format!("{}/api/v1/events/stream", world.base))
        .header("cookie", format!("nezuko_session={}", world.session.cookie))
        .header("last-event-id", "yesterday")
        .send()
        .await
        .unwrap();
    super::answer(bad_header)
        .await
        .problem(400, "invalid_header");
}
