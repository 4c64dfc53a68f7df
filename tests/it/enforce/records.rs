//! What enforcement leaves behind: verification rows, API call rows, events.

use super::{Guarded, enforce_tests};

enforce_tests!(decisions_calls_and_events_are_recorded);

async fn decisions_calls_and_events_are_recorded(mut world: Guarded) {
    let user = world.member("Rec", false);
    world
        .wait_event("member_join", |p| p["user_id"] == user)
        .await;
    let event = world
        .wait_event("verification", |p| p["user_id"] == user)
        .await;
    assert_eq!(event.payload["outcome"], "restricted");
    assert!(event.id > 0, "stored before it is published");
    world.sandbox.join(world.channel, user).unwrap();
    world.wait_free(user).await;
    world.sandbox.leave(world.channel, user).unwrap();
    world
        .wait_event("member_leave", |p| p["user_id"] == user)
        .await;
    world.wait_restricted(user).await;
    world
        .wait_event("verification", |p| {
            p["user_id"] == user && p["outcome"] == "restricted"
        })
        .await;
    let rows = world.verifications().await;
    let outcomes: Vec<&str> = rows
        .iter()
        .filter(|v| v.user_id == user)
        .map(|v| v.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["restricted", "restored", "restricted"]);
    assert!(rows.iter().all(|v| v.channel_ids.0 == vec![world.channel]));
    let since = nezuko::db::now_ms() - 60_000;
    let calls = world
        .db
        .store
        .api_calls_by_method(since, nezuko::db::now_ms() + 1000)
        .await
        .unwrap();
    let restricts = calls
        .iter()
        .find(|c| c.key == "restrictChatMember")
        .map(|c| c.count);
    assert_eq!(restricts, Some(3), "{calls:?}");
    world.finish().await;
}
