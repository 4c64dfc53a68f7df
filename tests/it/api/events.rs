//! The activity feed: the `events` table, newest first, cursor-paged and filtered.

use serde_json::json;

use super::{ApiWorld, api_tests};

api_tests!(the_activity_feed_pages_back_through_stored_events);

async fn the_activity_feed_pages_back_through_stored_events(world: &mut ApiWorld) {
    for i in 0..5 {
        world
            .db
            .store
            .append_event("member_join", Some(3), &json!({ "n": i }))
            .await
            .unwrap();
    }
    world
        .db
        .store
        .append_event("health", Some(4), &json!({}))
        .await
        .unwrap();
    let first = world.get("/api/v1/activity?type=member_join&limit=2").await;
    let items = first.ok()["items"].as_array().unwrap().clone();
    assert_eq!(
        (
            items[0]["payload"]["n"].as_i64(),
            items[1]["payload"]["n"].as_i64()
        ),
        (Some(4), Some(3))
    );
    let cursor = first.body["next_cursor"].as_i64().unwrap();
    let second = world
        .get(&format!(
            "/api/v1/activity?type=member_join&limit=2&before={cursor}"
        ))
        .await;
    assert_eq!(second.ok()["items"][0]["payload"]["n"], 2);
    let last = world
        .get(&format!(
            "/api/v1/activity?type=member_join&limit=2&before={}",
            second.body["next_cursor"]
        ))
        .await;
    assert_eq!(last.ok()["items"].as_array().unwrap().len(), 1);
    assert_eq!(last.body["next_cursor"], serde_json::Value::Null);
    let by_bot = world.get("/api/v1/activity?bot=4").await;
    assert_eq!(by_bot.ok()["items"][0]["kind"], "health");
}
