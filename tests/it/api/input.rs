//! Client mistakes get a specific 4xx problem document, never a 500.

use reqwest::Method;
use serde_json::json;

use super::{ApiWorld, answer, api_tests};

api_tests!(malformed_oversized_and_mistyped_requests_get_specific_4xx);

async fn raw(
    world: &ApiWorld,
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> super::Answer {
    let response = world
        .client
        .request(method, format!("{}{path}", world.base))
        .header("cookie", format!("nezuko_session={}", world.session.cookie))
        .header("x-csrf-token", &world.session.csrf)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    answer(response).await
}

async fn malformed_oversized_and_mistyped_requests_get_specific_4xx(world: &mut ApiWorld) {
    let broken = raw(
        world,
        Method::POST,
        "/api/v1/channels",
        "application/json",
        b"{\"chat_id\": ".to_vec(),
    )
    .await;
    broken.problem(400, "malformed_json");
    assert!(
        broken.body["detail"].as_str().unwrap().contains("line 1"),
        "{:?}",
        broken.body
    );
    raw(
        world,
        Method::POST,
        "/api/v1/channels",
        "text/plain",
        b"{}".to_vec(),
    )
    .await
    .problem(415, "unsupported_media_type");
    raw(
        world,
        Method::POST,
        "/api/v1/channels",
        "application/json",
        b"{\"chat_id\": \"x\"}".to_vec(),
    )
    .await
    .problem(400, "invalid_body");
    let huge = vec![b' '; 70 * 1024];
    raw(
        world,
        Method::POST,
        "/api/v1/channels",
        "application/json",
        huge,
    )
    .await
    .problem(413, "body_too_large");
    world
        .get("/api/v1/channels/0")
        .await
        .problem(400, "invalid_id");
    world
        .get("/api/v1/channels/99999")
        .await
        .problem(404, "not_found");
    world
        .get("/api/v1/audit?limit=100000")
        .await
        .problem(422, "invalid_field");
    world
        .get("/api/v1/logs?min_level=loud")
        .await
        .problem(422, "invalid_field");
    world
        .get("/api/v1/logs?from=10&to=5")
        .await
        .problem(422, "invalid_field");
    world
        .get("/api/v1/charts/pie")
        .await
        .problem(404, "not_found");
    world
        .get("/api/v1/charts/overview?period=1y")
        .await
        .problem(422, "invalid_field");
    world
        .get("/api/v1/activity?before=abc")
        .await
        .problem(400, "invalid_query");
    world
        .call(Method::PUT, "/api/v1/bots", Some(json!({})))
        .await
        .problem(405, "method_not_allowed");
    // None of it left anything behind.
    assert_eq!(world.get("/api/v1/channels").await.body["page"]["total"], 0);
}
