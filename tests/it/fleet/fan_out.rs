//! The Broadcaster's fan-out is bounded: a slow subscriber is told it lagged and resyncs from the
//! events table, where nothing was lost.

use std::sync::Arc;

use nezuko::actors::broadcaster::{Broadcaster, BroadcasterArgs, BroadcasterMsg};
use nezuko::domain::EventKind;
use nezuko::events::{Event, Publisher};
use ractor::Actor;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::support::TestDb;

#[tokio::test]
async fn a_lagging_subscriber_is_told_and_can_resync_from_the_table() {
    let db = TestDb::sqlite().await;
    let (sender, mut slow) = broadcast::channel::<Arc<Event>>(4);
    let (publisher, outbox) = Publisher::channel();
    let (broadcaster, _) = Actor::spawn(
        None,
        Broadcaster,
        BroadcasterArgs {
            store: db.store.clone(),
            sender,
            outbox,
        },
    )
    .await
    .unwrap();
    for n in 0..10 {
        publisher.publish(EventKind::Activity, None, json!({ "n": n }));
    }
    ractor::call!(broadcaster, BroadcasterMsg::Drain).unwrap();

    let lagged = slow.recv().await;
    assert!(matches!(lagged, Err(RecvError::Lagged(6))), "{lagged:?}");
    let kept: Vec<i64> = std::iter::from_fn(|| slow.try_recv().ok())
        .map(|e| e.payload["n"].as_i64().unwrap())
        .collect();
    assert_eq!(kept, [6, 7, 8, 9], "only the newest events are buffered");
    let stored = db.store.events_after(0, 100).await.unwrap();
    assert_eq!(
        stored.len(),
        10,
        "a resync from the table finds every event"
    );
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));
    broadcaster.stop(None);
    db.finish().await;
}
