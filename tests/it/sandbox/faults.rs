//! Injected faults and Telegram's flood limits.

use std::time::{Duration, Instant};

use nezuko_sandbox::faults::{Fault, FaultKind, RateLimits};
use serde_json::json;

use super::World;

fn fault(world: &World, method: &str, kind: FaultKind, times: Option<u32>) -> Fault {
    Fault {
        bot: Some(world.bot.id),
        method: Some(method.into()),
        kind,
        times,
    }
}

#[tokio::test]
async fn retry_after_is_answered_as_telegram_answers_it() {
    let world = World::new().await;
    world.sandbox.inject_fault(fault(
        &world,
        "getChatMember",
        FaultKind::RetryAfter { seconds: 7 },
        Some(1),
    ));
    let (status, body) = world
        .call(
            "getChatMember",
            json!({ "chat_id": world.group, "user_id": world.owner.id }),
        )
        .await;
    assert_eq!(status, 429);
    assert_eq!(
        body,
        json!({ "ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": { "retry_after": 7 } })
    );
    world
        .ok(
            "getChatMember",
            json!({ "chat_id": world.group, "user_id": world.owner.id }),
        )
        .await;
    assert_eq!(world.sandbox.counters().too_many_requests, 1);
}

#[tokio::test]
async fn server_errors_delays_and_dropped_connections_are_injected() {
    let world = World::new().await;
    world.sandbox.inject_fault(fault(
        &world,
        "getMe",
        FaultKind::ServerError { status: 502 },
        Some(2),
    ));
    assert_eq!(world.fails("getMe", json!({}), 502).await, "Bad Gateway");
    assert_eq!(world.fails("GETME", json!({}), 502).await, "Bad Gateway");
    world.ok("getMe", json!({})).await;

    world.sandbox.inject_fault(fault(
        &world,
        "getMe",
        FaultKind::Delay { ms: 300 },
        Some(1),
    ));
    let started = Instant::now();
    world.ok("getMe", json!({})).await;
    assert!(started.elapsed() >= Duration::from_millis(300));

    world
        .sandbox
        .inject_fault(fault(&world, "getMe", FaultKind::DropConnection, None));
    let url = format!("{}/bot{}/getMe", world.running.url(), world.bot.token);
    let dropped = async {
        reqwest::Client::new()
            .post(&url)
            .json(&json!({}))
            .send()
            .await?
            .text()
            .await
    };
    assert!(
        dropped.await.is_err(),
        "the connection is dropped without an answer"
    );
    world.sandbox.clear_faults();
    world.ok("getMe", json!({})).await;
}

#[tokio::test]
async fn a_revoked_token_is_unauthorized_for_every_method() {
    let world = World::new().await;
    world.sandbox.revoke_token(world.bot.id).unwrap();
    assert_eq!(world.fails("getMe", json!({}), 401).await, "Unauthorized");
    assert_eq!(
        world.fails("getUpdates", json!({}), 401).await,
        "Unauthorized"
    );
    world.sandbox.restore_token(world.bot.id).unwrap();
    world.ok("getMe", json!({})).await;
}

#[tokio::test]
async fn faults_can_target_every_bot_or_every_method() {
    let world = World::new().await;
    world.sandbox.inject_fault(Fault {
        bot: None,
        method: None,
        kind: FaultKind::ServerError { status: 500 },
        times: Some(1),
    });
    assert_eq!(
        world
            .fails("getChat", json!({ "chat_id": world.group }), 500)
            .await,
        "Internal Server Error"
    );
    world.ok("getChat", json!({ "chat_id": world.group })).await;
}

#[tokio::test]
async fn one_chat_gets_about_a_message_a_second() {
    let world = World::new().await;
    let send = || {
        world.call(
            "sendMessage",
            json!({ "chat_id": world.group, "text": "hi" }),
        )
    };
    for _ in 0..3 {
        assert_eq!(send().await.0, 200, "a short burst is allowed");
    }
    let (status, body) = send().await;
    assert_eq!(status, 429);
    assert!(body["parameters"]["retry_after"].as_u64().unwrap() >= 1);
    assert!(
        body["description"]
            .as_str()
            .unwrap()
            .starts_with("Too Many Requests: retry after ")
    );
    // Reading is not flood-limited.
    world
        .ok(
            "getChatMember",
            json!({ "chat_id": world.group, "user_id": world.owner.id }),
        )
        .await;
}

#[tokio::test]
async fn a_group_gets_twenty_messages_a_minute_and_a_bot_thirty_a_second() {
    let world = World::new().await;
    world.sandbox.set_rate_limits(RateLimits {
        per_chat_per_s: 1000.0,
        per_chat_burst: 1000.0,
        ..RateLimits::default()
    });
    for _ in 0..20 {
        world
            .ok(
                "sendMessage",
                json!({ "chat_id": world.group, "text": "x" }),
            )
            .await;
    }
    let (status, body) = world
        .call(
            "sendMessage",
            json!({ "chat_id": world.group, "text": "x" }),
        )
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(body["parameters"]["retry_after"].as_u64().unwrap() >= 2);

    let users: Vec<_> = (0..12).map(|n| world.user(&format!("P{n}"))).collect();
    let mut served = 0;
    let mut limited = 0;
    for user in &users {
        world
            .sandbox
            .send_private(world.bot.id, user.id, "/start")
            .unwrap();
        for _ in 0..3 {
            match world
                .call("sendMessage", json!({ "chat_id": user.id, "text": "x" }))
                .await
                .0
            {
                200 => served += 1,
                429 => limited += 1,
                other => panic!("unexpected {other}"),
            }
        }
    }
    assert!(
        (10..=15).contains(&served),
        "the bot-wide budget of 30 was shared with the group: {served}"
    );
    assert!(limited > 0);
}
