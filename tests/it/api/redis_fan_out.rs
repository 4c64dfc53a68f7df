//! Two services on one PostgreSQL database and one Redis: an event published in one reaches SSE
//! clients of the other, with the same id; through a Redis outage each keeps its own events and
//! catches up from the database when Redis returns.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::ApiWorld;
use super::sse::SseClient;
use crate::support::TestDb;

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_in_one_process_reaches_sse_clients_of_another() {
    let redis = redis_url();
    let first = ApiWorld::start_with(
        TestDb::postgres().await,
        &[("NEZUKO_REDIS__URL", redis.as_str())],
    )
    .await;
    let second = ApiWorld::start_on(&first, &[("NEZUKO_REDIS__URL", redis.as_str())]).await;
    // Both relays subscribe in the background; give them a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut watcher = SseClient::connect(&second, "?type=settings_changed", None).await;
    first
        .call(
            Method::PUT,
            "/api/v1/settings/policy",
            Some(json!({ "grace_s": 7 })),
        )
        .await
        .ok();
    let event = watcher
        .next(Duration::from_secs(10))
        .await
        .expect("the other process's event arrives");
    assert_eq!(event.data["payload"]["scope"], "global");
    let stored = first.db.store.events_after(0, 100).await.unwrap();
    let row = stored
        .iter()
        .find(|e| e.kind == "settings_changed")
        .unwrap();
    assert_eq!(event.id, Some(row.id), "same id in both processes");
    // And the other way round, exactly once.
    let mut first_watcher = SseClient::connect(&first, "?type=audit", None).await;
    second
        .call(
            Method::PUT,
            "/api/v1/settings/policy",
            Some(json!({ "grace_s": 8 })),
        )
        .await
        .ok();
    let audit = first_watcher.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(audit.data["payload"]["after"]["grace_s"], 8);
    assert!(
        first_watcher
            .next(Duration::from_millis(800))
            .await
            .is_none(),
        "delivered once"
    );
    second.detach().await;
    first.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_process_still_serves_its_own_events() {
    // An unreachable Redis: nothing listens on port 1.
    let first = ApiWorld::start_with(
        TestDb::postgres().await,
        &[("NEZUKO_REDIS__URL", "redis://127.0.0.1:1")],
    )
    .await;
    let mut watcher = SseClient::connect(&first, "?type=settings_changed", None).await;
    first
        .call(
            Method::PUT,
            "/api/v1/settings/policy",
            Some(json!({ "grace_s": 9 })),
        )
        .await
        .ok();
    let event = watcher
        .next(Duration::from_secs(10))
        .await
        .expect("local delivery does not need Redis");
    assert!(event.id.unwrap() > 0);
    first.finish().await;
}
