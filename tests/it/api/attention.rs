//! Why did my bot restart, and who is told: a bot's restart history and last error after a storm
//! of Telegram 5xx, the "needs attention" list (a revoked token, a bot failing again and again),
//! and alerts in Telegram through the sandbox: sent once, never repeated while the condition
//! lasts, and a recovery message when it clears.

use std::time::Duration;

use nezuko_sandbox::faults::{Fault, FaultKind};
use nezuko_sandbox::model::Status;
use serde_json::{Value, json};

use super::{ApiWorld, api_tests};
use crate::support::TestDb;
use crate::support::wait::{eventually, quiet_period};

api_tests!(
    a_server_error_storm_is_kept_in_the_bot_history_with_its_last_error,
    a_revoked_token_and_a_looping_bot_need_attention_until_they_recover,
    a_degraded_group_and_a_silent_node_need_attention,
);

/// Adds a sandbox bot through the API and waits until it runs; returns (Telegram id, row id).
async fn running_bot(world: &ApiWorld, name: &str, username: &str) -> (i64, i64) {
    let bot = world.sandbox.create_bot(name, username);
    (bot.id, world.add_running_bot(&bot.token).await)
}

async fn attention_keys(world: &ApiWorld) -> Vec<String> {
    world.get("/api/v1/attention").await.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["key"].as_str().unwrap().to_string())
        .collect()
}

async fn a_server_error_storm_is_kept_in_the_bot_history_with_its_last_error(world: &mut ApiWorld) {
    let (telegram_id, id) = running_bot(world, "India", "india_bot").await;
    world.sandbox.inject_fault(Fault {
        bot: Some(telegram_id),
        method: Some("getMe".into()),
        kind: FaultKind::ServerError { status: 502 },
        times: Some(3),
    });
    let restart = world
        .post(&format!("/api/v1/bots/{id}/restart"), json!({}))
        .await;
    assert_eq!(restart.status, 202, "{:?}", restart.body);
    // The restart's start meets three 502s in a row, backs off after each, then runs.
    let detail = world
        .wait_bot(id, "running after the storm", |b| {
            b["run_state"] == "running"
                && b["history"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|step| step["state"] == "backoff")
                    .count()
                    >= 3
        })
        .await;
    let history = detail["history"].as_array().unwrap();
    let failures: Vec<&Value> = history
        .iter()
        .filter(|step| step["state"] == "backoff")
        .collect();
    for failure in &failures {
        let reason = failure["reason"].as_str().unwrap();
        assert!(reason.contains("Bad Gateway"), "{failure}");
        assert!(failure["at"].as_i64().unwrap() > 0, "{failure}");
        assert!(failure["next_attempt_at"].is_i64(), "{failure}");
    }
    // Newest first: attempts 3, 2, 1.
    let attempts: Vec<i64> = failures
        .iter()
        .map(|f| f["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, [3, 2, 1], "{history:?}");
    // The admin's restart shows as such, and counts like the automatic ones.
    assert!(
        history
            .iter()
            .any(|step| step["state"] == "stopping" && step["reason_code"] == "restarting"),
        "{history:?}"
    );
    assert_eq!(history[0]["state"], "running", "{history:?}");
    assert!(
        detail["last_error"]
            .as_str()
            .unwrap()
            .contains("Bad Gateway"),
        "{detail}"
    );
    assert!(detail["restart_count"].as_i64().unwrap() >= 4, "{detail}");
}

async fn a_revoked_token_and_a_looping_bot_need_attention_until_they_recover(world: &mut ApiWorld) {
    let (revoked, revoked_id) = running_bot(world, "Juliett", "juliett_bot").await;
    let (looping, looping_id) = running_bot(world, "Kilo", "kilo_bot").await;
    assert!(attention_keys(world).await.is_empty());

    world.sandbox.revoke_token(revoked).unwrap();
    world.sandbox.inject_fault(Fault {
        bot: Some(looping),
        method: Some("getMe".into()),
        kind: FaultKind::ServerError { status: 500 },
        times: None,
    });
    world
        .post(&format!("/api/v1/bots/{looping_id}/restart"), json!({}))
        .await
        .ok();
    let expected = [
        format!("invalid_token:{revoked_id}"),
        format!("bot_looping:{looping_id}"),
    ];
    eventually(
        "both bots to need attention",
        Duration::from_secs(20),
        async || {
            let keys = attention_keys(world).await;
            if expected.iter().all(|k| keys.contains(k)) {
                Ok(())
            } else {
                Err(keys)
            }
        },
    )
    .await;
    let items = world.get("/api/v1/attention").await.body["items"].clone();
    let revoked_item = items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "invalid_token")
        .unwrap()
        .clone();
    assert_eq!(revoked_item["subject"], "@juliett_bot");
    assert_eq!(revoked_item["path"], format!("/bots/{revoked_id}"));

    // Telegram's weather passes and the owner restores the token: nothing needs attention.
    world.sandbox.clear_faults();
    world.sandbox.restore_token(revoked).unwrap();
    world
        .post(&format!("/api/v1/bots/{revoked_id}/start"), json!({}))
        .await
        .ok();
    eventually("attention to clear", Duration::from_secs(20), async || {
        let keys = attention_keys(world).await;
        if keys.is_empty() { Ok(()) } else { Err(keys) }
    })
    .await;
}

async fn a_degraded_group_and_a_silent_node_need_attention(world: &mut ApiWorld) {
    let (_, bot) = running_bot(world, "Mike", "mike_bot").await;
    let store = &world.db.store;
    let group = store
        .upsert_group(&nezuko::db::NewGroup {
            bot_instance_id: bot,
            chat_id: -1_007_001,
            title: "Mike's group".into(),
            username: None,
        })
        .await
        .unwrap()
        .id;
    // As the permission check records it (`enforce::health`).
    let detail =
        json!({ "summary": "the bot cannot restrict members", "problems": [], "items": [] });
    store
        .set_group_health(group, "degraded", Some(&detail))
        .await
        .unwrap();
    let items = world.get("/api/v1/attention").await.ok()["items"].clone();
    let degraded = &items.as_array().unwrap()[0];
    assert_eq!(
        degraded["key"],
        format!("group_degraded:{group}"),
        "{items}"
    );
    assert_eq!(degraded["subject"], "Mike's group");
    assert_eq!(degraded["detail"], "the bot cannot restrict members");
    assert_eq!(degraded["path"], format!("/groups/{group}"));
    store.set_group_health(group, "ok", None).await.unwrap();
    assert!(attention_keys(world).await.is_empty());

    // This node, seen from a minute on: its heartbeat is three beats late, so it is lost.
    let later = nezuko::db::now_ms() + 60_000;
    let found = store.attention(later).await.unwrap();
    let node = world.get("/api/v1/nodes").await.ok()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        found.iter().map(|f| f.key.clone()).collect::<Vec<_>>(),
        [format!("node_lost:{node}")]
    );
}

/// Alerts on both backends, with passes every 100 ms and no settling, so a test sees them at once.
async fn alert_world(db: TestDb) -> ApiWorld {
    ApiWorld::start_with(
        db,
        &[
            ("NEZUKO_ALERTS__CHECK_MS", "100"),
            ("NEZUKO_ALERTS__SETTLE_S", "0"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_on_sqlite_are_sent_once_and_cleared() {
    let mut world = alert_world(TestDb::sqlite().await).await;
    alerts_are_sent_once_and_cleared(&mut world).await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_on_postgres_are_sent_once_and_cleared() {
    let mut world = alert_world(TestDb::postgres().await).await;
    alerts_are_sent_once_and_cleared(&mut world).await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_waiting_together_go_as_one_digest() {
    let world = alert_world(TestDb::sqlite().await).await;
    let (first, first_id) = running_bot(&world, "November", "november_bot").await;
    let (second, second_id) = running_bot(&world, "Oscar", "oscar_bot").await;
    // Alerts are off: both conditions are recorded, nothing is told.
    world.sandbox.revoke_token(first).unwrap();
    world.sandbox.revoke_token(second).unwrap();
    let expected = [
        format!("invalid_token:{first_id}"),
        format!("invalid_token:{second_id}"),
    ];
    eventually(
        "both revocations to need attention",
        Duration::from_secs(20),
        async || {
            let keys = attention_keys(&world).await;
            if expected.iter().all(|k| keys.contains(k)) {
                Ok(())
            } else {
                Err(keys)
            }
        },
    )
    .await;
    // A chat chosen now hears what is open in one message, not one per condition.
    let chat = world.operators_chat(true);
    world
        .call(
            reqwest::Method::PUT,
            "/api/v1/settings/alerts",
            Some(json!({ "chat_id": chat, "sender": "login" })),
        )
        .await
        .ok();
    let digest = eventually("the digest", Duration::from_secs(20), async || {
        let texts = said(&world, chat);
        match texts.iter().find(|t| t.starts_with("Nezuko: 2 changes")) {
            Some(text) => Ok(text.clone()),
            None => Err(texts),
        }
    })
    .await;
    assert!(
        digest.contains("@november_bot has an invalid token"),
        "{digest}"
    );
    assert!(
        digest.contains("@oscar_bot has an invalid token"),
        "{digest}"
    );
    quiet_period(Duration::from_secs(1), "a condition told again").await;
    assert_eq!(said(&world, chat).len(), 1, "{:?}", said(&world, chat));
    world.finish().await;
}

/// The texts the chat received, oldest first.
fn said(world: &ApiWorld, chat: i64) -> Vec<String> {
    world
        .sandbox
        .transcript(chat)
        .into_iter()
        .filter_map(|m| m.text)
        .collect()
}

async fn alerts_are_sent_once_and_cleared(world: &mut ApiWorld) {
    let chat = world.operators_chat(false);
    let before = world.get("/api/v1/settings/alerts").await;
    assert_eq!(before.ok()["source"], "configuration");
    assert_eq!(before.body["chat_id"], Value::Null);

    // A sender that is not one of Nezuko's bots is refused at its field.
    let refused = world
        .call(
            reqwest::Method::PUT,
            "/api/v1/settings/alerts",
            Some(json!({ "chat_id": chat, "sender": "@nobody_bot" })),
        )
        .await;
    refused.problem(422, "invalid_field");
    assert_eq!(refused.body["field"], "sender");

    let saved = world
        .call(
            reqwest::Method::PUT,
            "/api/v1/settings/alerts",
            Some(json!({ "chat_id": chat, "sender": "login" })),
        )
        .await;
    assert_eq!(saved.ok()["source"], "dashboard");
    assert!(
        world
            .audit_actions("settings")
            .await
            .contains(&"settings.alerts".to_string())
    );

    // Telegram refuses a bot that is not in the chat; the test button says so, at the field
    // that can fix it, in Telegram's words.
    let test = world.post("/api/v1/settings/alerts/test", json!({})).await;
    test.problem(502, "telegram_refused");
    assert_eq!(test.body["field"], "sender");
    assert_eq!(
        test.body["detail"],
        format!(
            "Telegram refused the login bot's message to chat {chat}: Forbidden: bot is not a member of the supergroup chat"
        )
    );
    // Values not saved yet are tested as given.
    let unknown = world
        .post(
            "/api/v1/settings/alerts/test",
            json!({ "chat_id": -100_999 }),
        )
        .await;
    unknown.problem(502, "telegram_refused");
    assert_eq!(unknown.body["field"], "chat_id", "{:?}", unknown.body);
    let rounded = world
        .call(
            reqwest::Method::PUT,
            "/api/v1/settings/alerts",
            Some(json!({ "chat_id": 9_007_199_254_740_993_i64, "sender": "login" })),
        )
        .await;
    rounded.problem(422, "invalid_field");
    assert_eq!(rounded.body["field"], "chat_id");
    world
        .sandbox
        .set_member(chat, world.login_bot_id(), Status::Member)
        .unwrap();
    let test = world.post("/api/v1/settings/alerts/test", json!({})).await;
    assert_eq!(test.ok()["chat_id"], chat);
    assert!(
        said(world, chat)
            .iter()
            .any(|t| t.contains("alerts reach this chat"))
    );

    let (telegram_id, id) = running_bot(world, "Lima", "lima_bot").await;
    world.sandbox.revoke_token(telegram_id).unwrap();
    let raised = |text: &String| text.starts_with("⚠️ @lima_bot has an invalid token");
    eventually("the alert", Duration::from_secs(20), async || {
        let texts = said(world, chat);
        if texts.iter().any(raised) {
            Ok(())
        } else {
            Err(texts)
        }
    })
    .await;
    let alert = said(world, chat).into_iter().find(|t| raised(t)).unwrap();
    assert!(alert.ends_with(&format!("/bots/{id}")), "{alert}");
    // Many passes later, still the one message.
    quiet_period(Duration::from_secs(1), "an alert repeated").await;
    assert_eq!(said(world, chat).iter().filter(|t| raised(t)).count(), 1);

    world.sandbox.restore_token(telegram_id).unwrap();
    world
        .post(&format!("/api/v1/bots/{id}/start"), json!({}))
        .await
        .ok();
    let cleared = |text: &String| text.starts_with("✅ Resolved: @lima_bot has an invalid token");
    eventually(
        "the recovery message",
        Duration::from_secs(20),
        async || {
            let texts = said(world, chat);
            if texts.iter().any(cleared) {
                Ok(())
            } else {
                Err(texts)
            }
        },
    )
    .await;
    quiet_period(Duration::from_secs(1), "a recovery repeated").await;
    let texts = said(world, chat);
    assert_eq!(texts.iter().filter(|t| cleared(t)).count(), 1, "{texts:?}");
    assert_eq!(texts.iter().filter(|t| raised(t)).count(), 1, "{texts:?}");
    assert!(
        texts
            .iter()
            .all(|t| !t.contains("invalid token: invalid token")),
        "{texts:?}"
    );

    // The sender is removed from the chat: alerts cannot go out, and that needs attention itself
    // until they can again.
    world
        .sandbox
        .set_member(chat, world.login_bot_id(), Status::Left)
        .unwrap();
    world.sandbox.revoke_token(telegram_id).unwrap();
    eventually(
        "undelivered alerts to need attention",
        Duration::from_secs(20),
        async || {
            let keys = attention_keys(world).await;
            if keys.contains(&"alerts_undelivered".to_string()) {
                Ok(())
            } else {
                Err(keys)
            }
        },
    )
    .await;
    let settings = world.get("/api/v1/settings/alerts").await;
    assert!(
        settings.ok()["undelivered"]
            .as_str()
            .unwrap()
            .contains("not a member"),
        "{:?}",
        settings.body
    );
    world
        .sandbox
        .set_member(chat, world.login_bot_id(), Status::Member)
        .unwrap();
    eventually(
        "the held alert to go out",
        Duration::from_secs(20),
        async || {
            let texts = said(world, chat);
            if texts.iter().filter(|t| raised(t)).count() == 2 {
                Ok(())
            } else {
                Err(texts)
            }
        },
    )
    .await;
    assert!(
        !attention_keys(world)
            .await
            .contains(&"alerts_undelivered".to_string())
    );
}
