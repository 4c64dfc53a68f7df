//! Bots through the API: add (token checked with getMe, stored encrypted, never shown), start, stop
//! and restart with the fleet really following in the sandbox, rotate, delete, and bad input.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::sse::SseClient;
use super::{ApiWorld, api_tests};
use crate::support::wait::quiet_period;

api_tests!(
    a_bot_added_through_the_api_runs_and_follows_stop_start_restart,
    bad_tokens_are_refused_with_the_reason,
    rotating_and_deleting_a_bot,
);

async fn a_bot_added_through_the_api_runs_and_follows_stop_start_restart(world: &mut ApiWorld) {
    let mut stream = SseClient::connect(world, "?type=bot_status", None).await;
    let bot = world.sandbox.create_bot("Guard", "guard_bot");
    let added = world
        .post("/api/v1/bots", json!({ "token": bot.token }))
        .await;
    assert_eq!(added.status, 201, "{:?}", added.body);
    let text = added.body.to_string();
    assert!(
        !text.contains(&bot.token) && !text.contains("ciphertext"),
        "{text}"
    );
    let id = added.body["id"].as_i64().unwrap();
    assert_eq!(added.body["username"], "guard_bot");
    let stored = world.db.store.bot(id).await.unwrap();
    assert!(
        !stored.token_ciphertext.contains(&bot.token),
        "stored encrypted"
    );

    stream.wait_state(id, "running").await;
    world
        .wait_bot(id, "running", |b| {
            b["run_state"] == "running" && b["uptime_s"].is_number()
        })
        .await;
    let introduced = world.sandbox.calls(Some(bot.id), Some("getMe")).len();
    assert!(
        introduced > 0,
        "a running bot introduced itself to the sandbox"
    );

    let stop = world
        .post(&format!("/api/v1/bots/{id}/stop"), json!({}))
        .await;
    assert_eq!(stop.status, 202);
    assert!(stop.body["will"].as_str().unwrap().contains("stopped"));
    stream.wait_state(id, "stopped").await;
    // `stopped` is published once the bot's runner has ended, its last calls answered; its long
    // poll ends with it.
    let telegram_id = bot.id;
    world
        .sandbox
        .wait_until(Duration::from_secs(10), "the long poll to end", |s| {
            (!s.is_polling(telegram_id)).then_some(())
        })
        .await
        .unwrap();
    nothing_to_do(world, id, "stop", "already stopped").await;
    let calls_at_stop = world.sandbox.calls(Some(bot.id), None).len();
    quiet_period(
        Duration::from_millis(600),
        "a bot still running, or started again, calls Telegram",
    )
    .await;
    assert_eq!(
        world.sandbox.calls(Some(bot.id), None).len(),
        calls_at_stop,
        "a stopped bot makes no more calls"
    );
    world
        .post(&format!("/api/v1/bots/{id}/restart"), json!({}))
        .await
        .problem(409, "conflict");

    assert_eq!(
        world
            .post(&format!("/api/v1/bots/{id}/start"), json!({}))
            .await
            .status,
        202
    );
    stream.wait_state(id, "running").await;
    world
        .wait_bot(id, "running", |b| b["run_state"] == "running")
        .await;
    // Starting a bot that runs is not a restart: the answer says so and the runner carries on.
    let started = world.sandbox.calls(Some(bot.id), Some("getMe")).len();
    nothing_to_do(world, id, "start", "already running").await;
    nothing_to_do(world, id, "enable", "already running").await;
    quiet_period(
        Duration::from_millis(1500),
        "a running bot that was started again restarts",
    )
    .await;
    assert_eq!(
        world.sandbox.calls(Some(bot.id), Some("getMe")).len(),
        started,
        "no new runner introduced itself"
    );
    let restarts_before = world.get(&format!("/api/v1/bots/{id}")).await.body["restart_count"]
        .as_i64()
        .unwrap();
    assert_eq!(
        world
            .post(&format!("/api/v1/bots/{id}/restart"), json!({}))
            .await
            .status,
        202
    );
    stream.wait_state(id, "stopping").await;
    stream.wait_state(id, "running").await;
    let detail = world
        .wait_bot(id, "running again", |b| b["run_state"] == "running")
        .await;
    assert!(
        world.sandbox.calls(Some(bot.id), Some("getMe")).len() >= introduced + 2,
        "started twice more, each time against the sandbox"
    );
    assert!(detail["restart_count"].as_i64().unwrap() >= restarts_before);
    assert!(
        detail["recent_events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "bot_status")
    );

    // Every action is audited with before and after.
    let actions = world.audit_actions("bot").await;
    for action in ["bot.add", "bot.stop", "bot.start", "bot.restart"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
    let audit = world.get("/api/v1/audit?target_type=bot").await;
    let stop_entry = audit.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "bot.stop")
        .unwrap();
    assert_eq!(stop_entry["before"]["desired_state"], "enabled");
    assert_eq!(stop_entry["after"]["desired_state"], "disabled");
    assert_eq!(stop_entry["actor_id"], super::OWNER);
    assert_eq!(stop_entry["ip"], "127.0.0.1");
}

async fn bad_tokens_are_refused_with_the_reason(world: &mut ApiWorld) {
    let answer = world
        .post("/api/v1/bots", json!({ "token": "not a token" }))
        .await;
    answer.problem(422, "invalid_field");
    assert_eq!(answer.body["field"], "token");
    let unknown = world
        .post(
            "/api/v1/bots",
            json!({ "token": "12345:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }),
        )
        .await;
    unknown.problem(422, "invalid_field");
    assert!(
        unknown.body["detail"].as_str().unwrap().contains("refused"),
        "{:?}",
        unknown.body
    );
    let bot = world.sandbox.create_bot("Twice", "twice_bot");
    assert_eq!(
        world
            .post(
                "/api/v1/bots",
                json!({ "token": bot.token, "enabled": false })
            )
            .await
            .status,
        201
    );
    world
        .post("/api/v1/bots", json!({ "token": bot.token }))
        .await
        .problem(409, "conflict");
    world
        .post("/api/v1/bots", json!({ "token": 5 }))
        .await
        .problem(400, "invalid_body");
    world
        .post("/api/v1/bots", json!({ "token": bot.token, "extra": 1 }))
        .await
        .problem(400, "invalid_body");
    let listed = world.get("/api/v1/bots").await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    // Added disabled, it stays stopped until enabled; disabling stops it again.
    let id = listed.body["items"][0]["id"].as_i64().unwrap();
    assert_eq!(listed.body["items"][0]["desired_state"], "disabled");
    assert_eq!(
        world
            .post(&format!("/api/v1/bots/{id}/enable"), json!({}))
            .await
            .status,
        202
    );
    world
        .wait_bot(id, "running", |b| b["run_state"] == "running")
        .await;
    assert_eq!(
        world
            .post(&format!("/api/v1/bots/{id}/disable"), json!({}))
            .await
            .status,
        202
    );
    world
        .wait_bot(id, "stopped", |b| {
            b["run_state"] == "stopped" && b["desired_state"] == "disabled"
        })
        .await;
}

async fn rotating_and_deleting_a_bot(world: &mut ApiWorld) {
    let bot = world.sandbox.create_bot("Rota", "rota_bot");
    let other = world.sandbox.create_bot("Other", "other_bot");
    let id = world
        .post("/api/v1/bots", json!({ "token": bot.token }))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    world
        .wait_bot(id, "running", |b| b["run_state"] == "running")
        .await;
    let wrong = world
        .post(
            &format!("/api/v1/bots/{id}/token"),
            json!({ "token": other.token }),
        )
        .await;
    wrong.problem(422, "invalid_field");
    let fresh = world.sandbox.rotate_token(bot.id).unwrap();
    let version = world.db.store.bot(id).await.unwrap().config_version;
    let rotated = world
        .post(
            &format!("/api/v1/bots/{id}/token"),
            json!({ "token": fresh }),
        )
        .await;
    assert_eq!(rotated.ok()["id"], id);
    assert!(!rotated.body.to_string().contains(&fresh));
    assert!(world.db.store.bot(id).await.unwrap().config_version > version);
    world
        .wait_bot(id, "running on the new token", |b| {
            b["run_state"] == "running"
        })
        .await;

    let group = world
        .db
        .store
        .upsert_group(&nezuko::db::NewGroup {
            bot_instance_id: id,
            chat_id: -100_555,
            title: "Doomed".into(),
            username: None,
        })
        .await
        .unwrap();
    let deleted = world
        .call(Method::DELETE, &format!("/api/v1/bots/{id}"), None)
        .await;
    assert_eq!(deleted.ok()["groups_removed"], 1);
    assert_eq!(deleted.body["stopped_first"], true);
    world
        .get(&format!("/api/v1/bots/{id}"))
        .await
        .problem(404, "not_found");
    world
        .get(&format!("/api/v1/groups/{}", group.id))
        .await
        .problem(404, "not_found");
    world
        .get("/api/v1/bots/abc")
        .await
        .problem(400, "invalid_id");
}

/// `POST /api/v1/bots/{id}/{verb}` of a bot already in that state: 200, and `will` says so.
async fn nothing_to_do(world: &ApiWorld, id: i64, verb: &str, says: &str) {
    let again = world
        .post(&format!("/api/v1/bots/{id}/{verb}"), json!({}))
        .await;
    assert_eq!(again.status, 200, "nothing to carry out");
    let will = again.body["will"].as_str().unwrap_or_default();
    assert!(will.contains(says), "{:?}", again.body);
}
