//! Two services on one PostgreSQL database and one Redis: an event published in one reaches SSE
//! clients of the other, with the same id; through a Redis outage each keeps its own events and
//! catches up from the database when Redis returns.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::ApiWorld;
use super::sse::SseClient;
use crate::support::TestDb;

pub fn redis_url() -> String {
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

/// A TCP proxy in front of Redis that the test can cut and restore, to play an outage.
struct CuttableProxy {
    url: String,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl CuttableProxy {
    async fn start(target: &str) -> Self {
        use std::sync::atomic::Ordering;
        let target = target
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (accepting, cuts) = (open.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accepting.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let target = target.clone();
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            url,
            open,
            generation,
        }
    }

    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_redis_outage_the_other_process_catches_up_from_the_database() {
    let proxy = CuttableProxy::start(&redis_url()).await;
    let env = [("NEZUKO_REDIS__URL", proxy.url.as_str())];
    let first = ApiWorld::start_with(TestDb::postgres().await, &env).await;
    let second = ApiWorld::start_on(&first, &env).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut watcher = SseClient::connect(&second, "?type=settings_changed", None).await;

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    first
        .call(
            Method::PUT,
            "/api/v1/settings/policy",
            Some(json!({ "grace_s": 11 })),
        )
        .await
        .ok();
    // The second process still serves its own events during the outage.
    second
        .call(
            Method::PUT,
            "/api/v1/settings/policy",
            Some(json!({ "grace_s": 12 })),
        )
        .await
        .ok();
    let own = watcher
        .next(Duration::from_secs(5))
        .await
        .expect("local delivery during the outage");
    assert_eq!(own.data["payload"]["scope"], "global");
    let mut ids = vec![own.id.unwrap()];

    proxy.restore();
    let missed = watcher
        .next(Duration::from_secs(15))
        .await
        .expect("the first process's event arrives once Redis is back");
    ids.push(missed.id.unwrap());
    let stored: Vec<i64> = first
        .db
        .store
        .events_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "settings_changed")
        .map(|e| e.id)
        .collect();
    ids.sort();
    assert_eq!(ids, stored, "both events, each once");
    assert!(watcher.next(Duration::from_millis(800)).await.is_none());
    second.detach().await;
    first.finish().await;
}
