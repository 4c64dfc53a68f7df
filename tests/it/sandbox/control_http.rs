//! The control API over HTTP (`/_sandbox/…`), as the demo, benchmarks and other tools use it.

use serde_json::{Value, json};

use nezuko_sandbox::{Sandbox, SandboxConfig};

async fn control(client: &reqwest::Client, base: &str, op: &str, body: Value) -> (u16, Value) {
    let response = client
        .post(format!("{base}/_sandbox/{op}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn ok(client: &reqwest::Client, base: &str, op: &str, body: Value) -> Value {
    let (status, reply) = control(client, base, op, body).await;
    assert_eq!(status, 200, "{op}: {reply}");
    reply["result"].clone()
}

#[tokio::test]
async fn a_world_is_built_played_and_read_back_over_http() {
    let sandbox = Sandbox::new(SandboxConfig::default());
    let running = sandbox.spawn_local().await.unwrap();
    let (client, base) = (reqwest::Client::new(), running.url());

    let bot = ok(
        &client,
        &base,
        "create_bot",
        json!({ "first_name": "Guard", "username": "guard_bot" }),
    )
    .await;
    let user = ok(
        &client,
        &base,
        "create_user",
        json!({ "first_name": "Ann", "username": "ann" }),
    )
    .await;
    let group = ok(
        &client,
        &base,
        "create_chat",
        json!({ "kind": "supergroup", "title": "Readers" }),
    )
    .await["id"]
        .clone();
    ok(
        &client,
        &base,
        "promote",
        json!({ "chat": group, "user": bot["id"], "rights": { "can_restrict_members": true } }),
    )
    .await;
    ok(
        &client,
        &base,
        "join",
        json!({ "chat": group, "user": user["id"] }),
    )
    .await;
    let sent = ok(
        &client,
        &base,
        "send",
        json!({ "chat": group, "user": user["id"], "text": "hi" }),
    )
    .await;
    assert!(sent["message_id"].as_i64().unwrap() > 0);

    let token = bot["token"].as_str().unwrap();
    let updates: Value = client
        .post(format!("{base}/bot{token}/getUpdates"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        updates["result"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["message"]["text"] == "hi")
    );
    let restrict = json!({ "chat_id": group, "user_id": user["id"], "permissions": { "can_send_messages": false } });
    client
        .post(format!("{base}/bot{token}/restrictChatMember"))
        .json(&restrict)
        .send()
        .await
        .unwrap();

    let member = ok(
        &client,
        &base,
        "member",
        json!({ "chat": group, "user": user["id"] }),
    )
    .await;
    assert_eq!(member["status"], "restricted");
    let (status, refused) = control(
        &client,
        &base,
        "send",
        json!({ "chat": group, "user": user["id"], "text": "again" }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(refused["error"].as_str().unwrap().contains("not delivered"));
    assert_eq!(
        ok(&client, &base, "blocked", json!({ "chat": group })).await,
        json!([[user["id"], "again"]])
    );
    let transcript = ok(&client, &base, "transcript", json!({ "chat": group })).await;
    assert_eq!(transcript.as_array().unwrap().last().unwrap()["text"], "hi");
    let calls = ok(
        &client,
        &base,
        "calls",
        json!({ "method": "restrictChatMember" }),
    )
    .await;
    assert_eq!(calls[0]["ok"], true);
    assert_eq!(calls[0]["params"]["user_id"], user["id"]);

    ok(
        &client,
        &base,
        "inject_fault",
        json!({ "method": "getMe", "kind": { "type": "server_error", "status": 503 }, "times": 1 }),
    )
    .await;
    let failed = client
        .post(format!("{base}/bot{token}/getMe"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 503);
    assert_eq!(ok(&client, &base, "violations", json!({})).await, json!([]));
    assert!(
        ok(&client, &base, "counters", json!({})).await["calls"]
            .as_u64()
            .unwrap()
            >= 3
    );

    let (status, unknown) = control(&client, &base, "teleport", json!({})).await;
    assert_eq!(status, 400);
    assert!(
        unknown["error"]
            .as_str()
            .unwrap()
            .contains("unknown control operation")
    );
    let (status, bad) = control(&client, &base, "join", json!({ "chat": "x" })).await;
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("bad arguments"));
}
