//! Client mistakes get a specific 4xx problem document, never a 500.

use reqwest::Method;
use serde_json::json;

use super::{ApiWorld, answer, api_tests};

api_tests!(
    malformed_oversized_and_mistyped_requests_get_specific_4xx,
    a_nul_character_is_refused_naming_the_field_on_every_backend,
    every_response_carries_the_security_headers,
);

async fn a_nul_character_is_refused_naming_the_field_on_every_backend(world: &mut ApiWorld) {
    let body = json!({ "chat_id": -100123, "title": "News\u{0}", "username": "news" });
    let refused = world.post("/api/v1/channels", body).await;
    refused.problem(422, "invalid_field");
    assert_eq!(refused.body["field"], "title", "{:?}", refused.body);
    let texts = world
        .call(
            Method::PUT,
            "/api/v1/settings/texts/en",
            Some(json!({ "verified": "ok\u{0}" })),
        )
        .await;
    texts.problem(422, "invalid_field");
    assert_eq!(texts.body["field"], "verified");
    let search = world.get("/api/v1/groups?search=a%00b").await;
    search.problem(422, "invalid_field");
    assert_eq!(search.body["field"], "query.search");
    // Nothing was stored, and the API still answers.
    assert_eq!(world.get("/api/v1/channels").await.status, 200);
}

async fn every_response_carries_the_security_headers(world: &mut ApiWorld) {
    for path in ["/api/v1/bots", "/healthz", "/nope", "/", "/bots"] {
        let response = world
            .client
            .get(format!("{}{path}", world.base))
            .send()
            .await
            .unwrap();
        let headers = response.headers();
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let is_html = headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
        if is_html {
            let policy = headers["content-security-policy"].to_str().unwrap();
            assert!(policy.contains("default-src 'self'"), "{path}: {policy}");
        }
    }
}

async fn raw(
    world: &ApiWorld,
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> super::Answer {
    let response = world
        .client
        .request(method.clone(), format!("{}{path}", world.base))
        .header("cookie", format!("nezuko_session={}", world.session.cookie))
        .header("x-csrf-token", &world.session.csrf)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let answer = answer(response).await;
    super::contract::check(&method, path, &answer);
    answer
}

async fn malformed_oversized_and_mistyped_requests_get_specific_4xx(world: &mut ApiWorld) {
    // Serde would fill a struct from an array by position; the API takes objects only.
    for (path, array) in [
        ("/api/v1/admins", json!([777, "Arr", null])),
        ("/api/v1/bots", json!(["1:AAAA", false])),
        (
            "/api/v1/channels",
            json!([-100777, "Arr", "arrchan", null, null]),
        ),
    ] {
        world.post(path, array).await.problem(400, "invalid_body");
    }
    let admins = world.get("/api/v1/admins").await;
    assert_eq!(admins.ok()["items"], json!([]), "nothing was added");
    // A query parameter the operation does not list is refused, not ignored.
    for path in [
        "/api/v1/bots?limit=5",
        "/api/v1/stats?x=1",
        "/api/v1/activity?last_event_id=5",
        "/api/v1/events/stream?before=5",
    ] {
        world.get(path).await.problem(400, "invalid_query");
    }
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
    let wrong_method = world
        .call(Method::PUT, "/api/v1/bots", Some(json!({})))
        .await;
    wrong_method.problem(405, "method_not_allowed");
    assert_eq!(
        wrong_method.headers["allow"], "GET, HEAD, POST",
        "a 405 names what the resource accepts (RFC 9110)"
    );
    // A dashboard file asked for with another method exists: 405, not 404.
    let static_post = world.call(Method::POST, "/js/app.js", None).await;
    static_post.problem(405, "method_not_allowed");
    assert_eq!(static_post.headers["allow"], "GET, HEAD");
    // A page that does not exist is not there for any method.
    let page_post = world.call(Method::POST, "/no-such-page", None).await;
    page_post.problem(404, "no_route");
    // An id has one spelling.
    world
        .get("/api/v1/bots/+1")
        .await
        .problem(400, "invalid_id");
    // A path segment is decoded as a path: `+` stays a plus, `%20` is a space.
    let plus = world.get("/api/v1/charts/a+b%20c").await;
    plus.problem(404, "not_found");
    assert!(
        plus.body["detail"].as_str().unwrap().contains("`a+b c`"),
        "{:?}",
        plus.body
    );
    // None of it left anything behind.
    assert_eq!(world.get("/api/v1/channels").await.body["page"]["total"], 0);
}
