//! Two services on one PostgreSQL database and one Redis: an event published in one reaches SSE
//! clients of the other, with the same id; through a Redis outage (also one at start-up) each keeps
//! its own events and catches up from the database when Redis returns, without replaying history.

use std::time::Duration;

use nezuko::db::Store;
use reqwest::Method;
use serde_json::json;

use super::ApiWorld;
use super::sse::SseClient;
use crate::support::TestDb;
use crate::support::wait::eventually;

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Waits until exactly `subscribers` clients listen on the Redis channel of the events of the
/// processes on `store`'s database (`PUBSUB NUMSUB`, asked of Redis directly): each process's
/// relay subscribes in the background, and a cut connection ends its subscription.
pub async fn wait_for_relays(store: &Store, subscribers: i64) {
    // The channel as the service names it: its namespace comes from the database's location.
    let channel = format!(
        "nezuko:{}:events",
        &nezuko::http::auth::hash_secret(store.location())[..12]
    );
    let client = redis::Client::open(redis_url()).expect("TEST_REDIS_URL is a Redis URL");
    let mut connection = redis::aio::ConnectionManager::new(client)
        .await
        .expect("Redis is reachable at TEST_REDIS_URL");
    eventually(
        &format!("{subscribers} subscribers of {channel}"),
        Duration::from_secs(15),
        async || {
            let answer = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channel)
                .query_async::<(String, i64)>(&mut connection)
                .await;
            match answer {
                Ok((_, count)) if count == subscribers => Ok(()),
                Ok((_, count)) => Err(format!("{count} subscribers")),
                Err(error) => Err(format!("Redis answered {error}")),
            }
        },
    )
    .await;
}

/// A global settings change at `world`: one `settings_changed` event stored by that process.
async fn change_grace(world: &ApiWorld, grace_s: u32) {
    world
        .call(
            Method::PUT,
            "/api/v1/settings/policy",
            Some(json!({ "grace_s": grace_s })),
        )
        .await
        .ok();
}

/// The stored `settings_changed` events' ids, oldest first.
async fn settings_changed_ids(world: &ApiWorld) -> Vec<i64> {
    let events = world.db.store.events_after(0, 100).await.unwrap();
    events
        .into_iter()
        .filter(|e| e.kind == "settings_changed")
        .map(|e| e.id)
        .collect()
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
    // No pause for the relays to subscribe: one that comes up late replays what it missed.
    let mut watcher = SseClient::connect(&second, "?type=settings_changed", None).await;
    change_grace(&first, 7).await;
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
    // And the other way round, exactly once. The first process's own audit of the change to 7 may
    // still be on its way to this new client (the Broadcaster fans out after storing, which can
    // end after the PUT answered): only the change to 8 counts.
    let mut first_watcher = SseClient::connect(&first, "?type=audit", None).await;
    change_grace(&second, 8).await;
    let to_eight = |event: &super::sse::SseEvent| event.data["payload"]["after"]["grace_s"] == 8;
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.iter().any(to_eight) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let event = first_watcher.next(left).await;
        seen.push(event.expect("the other process's audit arrives"));
    }
    while let Some(event) = first_watcher.next(Duration::from_millis(800)).await {
        seen.push(event);
    }
    assert_eq!(
        seen.iter().filter(|e| to_eight(e)).count(),
        1,
        "delivered once: {:?}",
        seen.iter().map(|e| (&e.id, &e.data)).collect::<Vec<_>>()
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
    change_grace(&first, 9).await;
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
    // Both relays subscribe (through the proxy) in the background: the outage below cuts
    // subscriptions that were up.
    wait_for_relays(&first.db.store, 2).await;
    let mut watcher = SseClient::connect(&second, "?type=settings_changed", None).await;

    proxy.cut();
    // Redis has seen both subscriptions end before the events are made.
    wait_for_relays(&first.db.store, 0).await;
    change_grace(&first, 11).await;
    // The second process still serves its own events during the outage.
    change_grace(&second, 12).await;
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
    let stored = settings_changed_ids(&first).await;
    ids.sort();
    assert_eq!(ids, stored, "both events, each once");
    assert!(watcher.next(Duration::from_millis(800)).await.is_none());
    second.detach().await;
    first.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_starts_during_an_outage_gets_what_was_missed_and_no_history() {
    let redis = redis_url();
    let first = ApiWorld::start_with(
        TestDb::postgres().await,
        &[("NEZUKO_REDIS__URL", redis.as_str())],
    )
    .await;
    // History: stored before the second process existed, so never news to it.
    change_grace(&first, 21).await;
    let proxy = CuttableProxy::start(&redis).await;
    proxy.cut();
    let second = ApiWorld::start_on(&first, &[("NEZUKO_REDIS__URL", proxy.url.as_str())]).await;
    let mut watcher = SseClient::connect(&second, "?type=settings_changed", None).await;
    change_grace(&first, 22).await;
    change_grace(&second, 23).await;
    let own = watcher
        .next(Duration::from_secs(5))
        .await
        .expect("local delivery without Redis");

    proxy.restore();
    let missed = watcher
        .next(Duration::from_secs(15))
        .await
        .expect("the first process's event arrives once Redis is reachable");
    assert!(
        watcher.next(Duration::from_millis(800)).await.is_none(),
        "no history and no second copy of its own event"
    );
    // Stored in the order the three changes were made: history, the first's, the second's.
    let stored = settings_changed_ids(&first).await;
    assert_eq!(stored.len(), 3);
    assert_eq!((own.id, missed.id), (Some(stored[2]), Some(stored[1])));
    second.detach().await;
    first.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_its_process_could_not_publish_still_reaches_the_others() {
    let redis = redis_url();
    let proxy = CuttableProxy::start(&redis).await;
    // The first process reaches Redis through the proxy, the second directly.
    let first = ApiWorld::start_with(
        TestDb::postgres().await,
        &[("NEZUKO_REDIS__URL", proxy.url.as_str())],
    )
    .await;
    let second = ApiWorld::start_on(&first, &[("NEZUKO_REDIS__URL", redis.as_str())]).await;
    let mut watcher = SseClient::connect(&second, "?type=settings_changed", None).await;
    proxy.cut();
    change_grace(&first, 31).await;
    let late = watcher
        .next(Duration::from_secs(15))
        .await
        .expect("the second process replays it from the table");
    assert_eq!(late.id, settings_changed_ids(&first).await.first().copied());
    assert!(watcher.next(Duration::from_millis(800)).await.is_none());
    second.detach().await;
    first.finish().await;
}
