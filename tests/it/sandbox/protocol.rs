//! The Bot API protocol: paths, encodings, Telegram's errors, and the specification check.

use serde_json::json;

use super::World;

#[tokio::test]
async fn method_names_match_in_any_case_over_get_and_post() {
    let world = World::new().await;
    let me = world.ok("GetMe", json!({})).await;
    assert_eq!(me["id"], world.bot.id);
    assert_eq!(me["is_bot"], true);
    assert_eq!(me["username"], "guard_bot");
    for field in [
        "can_join_groups",
        "can_read_all_group_messages",
        "supports_inline_queries",
        "has_main_web_app",
    ] {
        assert!(me[field].is_boolean(), "getMe lacks {field}");
    }
    let url = format!("{}/bot{}/getme?", world.running.url(), world.bot.token);
    let body: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(body["result"]["id"], world.bot.id);
    world.assert_no_violations();
}

#[tokio::test]
async fn form_query_and_multipart_bodies_are_read_like_json() {
    let world = World::new().await;
    let base = format!("{}/bot{}", world.running.url(), world.bot.token);
    let client = reqwest::Client::new();
    let form: serde_json::Value = client
        .post(format!("{base}/sendMessage"))
        .form(&[
            ("chat_id", world.group.to_string()),
            ("text", "by form".into()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(form["result"]["text"], "by form", "{form}");
    let query: serde_json::Value = client
        .get(format!(
            "{base}/sendMessage?chat_id=%40readers&text=by+query"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(query["result"]["chat"]["id"], world.group, "{query}");
    let multipart = reqwest::multipart::Form::new()
        .text("chat_id", world.group.to_string())
        .text("text", "by multipart")
        .text(
            "reply_markup",
            json!({ "inline_keyboard": [[{ "text": "Go", "callback_data": "go" }]] }).to_string(),
        );
    let sent: serde_json::Value = client
        .post(format!("{base}/sendMessage"))
        .multipart(multipart)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        sent["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"], "go",
        "{sent}"
    );
    world.assert_no_violations();
}

#[tokio::test]
async fn an_unknown_token_is_unauthorized() {
    let world = World::new().await;
    let (status, body) = world
        .call_as(
            "123:AAnotARealTokenAtAllxxxxxxxxxxxxxxxx",
            "getMe",
            json!({}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({ "ok": false, "error_code": 401, "description": "Unauthorized" })
    );
}

#[tokio::test]
async fn an_unknown_method_is_not_found_and_recorded() {
    let world = World::new().await;
    assert_eq!(
        world.fails("getMee", json!({}), 404).await,
        "Not Found: method not found"
    );
    let violations = world.sandbox.violations();
    assert_eq!(violations.len(), 1);
    assert!(
        violations[0]
            .reason
            .contains("getMee is not a method of Bot API 10.1")
    );
}

#[tokio::test]
async fn a_malformed_request_is_refused_with_the_reason_and_recorded() {
    let world = World::new().await;
    let reason = world
        .fails(
            "sendMessage",
            json!({ "chat_id": world.group, "txt": "typo" }),
            400,
        )
        .await;
    assert!(reason.starts_with("Bad Request: "), "{reason}");
    assert!(
        reason.contains("parameter \"text\" is required"),
        "{reason}"
    );
    assert!(
        reason.contains("\"txt\" is not a parameter of sendMessage"),
        "{reason}"
    );
    // A number in a string is read as a number, as the Bot API server reads every parameter
    // from text; anything else is not one.
    let reason = world
        .fails(
            "getChatMember",
            json!({ "chat_id": world.group, "user_id": "one" }),
            400,
        )
        .await;
    assert!(reason.contains("user_id must be an integer"), "{reason}");
    assert_eq!(world.sandbox.violations().len(), 2);
    assert!(!world.sandbox.calls(None, Some("sendMessage"))[0].ok);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_bad_request() {
    let world = World::new().await;
    let url = format!("{}/bot{}/getMe", world.running.url(), world.bot.token);
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .contains("can't parse JSON body")
    );
}

#[tokio::test]
async fn well_formed_calls_leave_no_violations() {
    let world = World::new().await;
    world.ok("getChat", json!({ "chat_id": "@news" })).await;
    world
        .ok("getChatAdministrators", json!({ "chat_id": world.group }))
        .await;
    world
        .ok(
            "setMyCommands",
            json!({ "commands": [{ "command": "start", "description": "Start" }] }),
        )
        .await;
    assert_eq!(
        world.ok("getMyCommands", json!({})).await[0]["command"],
        "start"
    );
    world.ok("getWebhookInfo", json!({})).await;
    world.ok("getUpdates", json!({ "timeout": 0 })).await;
    world.assert_no_violations();
    assert!(world.sandbox.counters().calls >= 6);
}
