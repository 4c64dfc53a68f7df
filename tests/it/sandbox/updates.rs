//! Updates as Telegram generates them, long polling with offsets, 409 for two pollers, webhooks.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nezuko_sandbox::model::AdminRights;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use warp::Filter;

use super::{DEADLINE, World};

fn kinds(updates: &[Value]) -> Vec<String> {
    updates
        .iter()
        .map(|u| {
            u.as_object()
                .unwrap()
                .keys()
                .find(|k| *k != "update_id")
                .unwrap()
                .clone()
        })
        .collect()
}

#[tokio::test]
async fn joins_messages_and_leaves_reach_the_bot_in_order() {
    let world = World::new().await;
    world.drain().await;
    let user = world.user("Jo");
    world.sandbox.join(world.group, user.id).unwrap();
    world.sandbox.send(world.group, user.id, "hello").unwrap();
    world.sandbox.leave(world.group, user.id).unwrap();
    let updates = world.pending().await;
    assert_eq!(kinds(&updates), ["message", "message", "message"]);
    assert_eq!(updates[0]["message"]["new_chat_members"][0]["id"], user.id);
    assert_eq!(updates[1]["message"]["text"], "hello");
    assert_eq!(updates[1]["message"]["from"]["id"], user.id);
    assert_eq!(updates[2]["message"]["left_chat_member"]["id"], user.id);
    let ids: Vec<i64> = updates
        .iter()
        .map(|u| u["update_id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    world.assert_no_violations();
}

#[tokio::test]
async fn chat_member_updates_need_admin_rights_and_asking_for_them() {
    let world = World::new().await;
    let user = world.user("Cy");
    world.drain().await;
    world.sandbox.join(world.channel, user.id).unwrap();
    assert!(
        world.pending().await.is_empty(),
        "chat_member is not sent unless asked for"
    );

    world
        .ok(
            "getUpdates",
            json!({ "allowed_updates": ["message", "chat_member", "my_chat_member"] }),
        )
        .await;
    world.sandbox.leave(world.channel, user.id).unwrap();
    let updates = world.ok("getUpdates", json!({})).await;
    let update = &updates[0]["chat_member"];
    assert_eq!(
        (
            update["old_chat_member"]["status"].as_str(),
            update["new_chat_member"]["status"].as_str()
        ),
        (Some("member"), Some("left"))
    );
    let offset = updates[0]["update_id"].as_i64().unwrap() + 1;

    world.sandbox.demote(world.channel, world.bot.id).unwrap();
    world.sandbox.join(world.channel, user.id).unwrap();
    let updates = world.ok("getUpdates", json!({ "offset": offset })).await;
    assert_eq!(
        kinds(updates.as_array().unwrap()),
        ["my_chat_member"],
        "no chat_member once demoted"
    );
    assert_eq!(
        updates[0]["my_chat_member"]["new_chat_member"]["status"],
        "member"
    );
}

#[tokio::test]
async fn offsets_confirm_limit_caps_and_a_negative_offset_keeps_the_tail() {
    let world = World::new().await;
    world.drain().await;
    let user = world.user("Ola");
    world.sandbox.join(world.group, user.id).unwrap();
    for n in 0..5 {
        world
            .sandbox
            .send(world.group, user.id, &format!("m{n}"))
            .unwrap();
    }
    let first_two = world.ok("getUpdates", json!({ "limit": 2 })).await;
    assert_eq!(first_two.as_array().unwrap().len(), 2);
    let again = world.ok("getUpdates", json!({ "limit": 2 })).await;
    assert_eq!(again, first_two, "unconfirmed updates are delivered again");
    let next = first_two[1]["update_id"].as_i64().unwrap() + 1;
    let rest = world.ok("getUpdates", json!({ "offset": next })).await;
    assert_eq!(rest.as_array().unwrap().len(), 4);
    let tail = world.ok("getUpdates", json!({ "offset": -1 })).await;
    assert_eq!(tail[0]["message"]["text"], "m4");
    assert_eq!(world.sandbox.pending_updates(world.bot.id), 1);
}

#[tokio::test]
async fn a_long_poll_wakes_when_an_update_arrives() {
    let world = Arc::new(World::new().await);
    world.drain().await;
    let user = world.user("Lu");
    world.sandbox.join(world.group, user.id).unwrap();
    let offset = world.ok("getUpdates", json!({})).await[0]["update_id"]
        .as_i64()
        .unwrap()
        + 1;
    let poller = {
        let world = world.clone();
        tokio::spawn(async move {
            world
                .ok("getUpdates", json!({ "offset": offset, "timeout": 30 }))
                .await
        })
    };
    let bot = world.bot.id;
    world.sandbox.wait_polling(bot, DEADLINE).await.unwrap();
    world.sandbox.send(world.group, user.id, "wake up").unwrap();
    let updates = tokio::time::timeout(Duration::from_secs(5), poller)
        .await
        .expect("the poll answers at once")
        .unwrap();
    assert_eq!(updates[0]["message"]["text"], "wake up");
}

#[tokio::test]
async fn a_second_poller_terminates_the_first_with_409() {
    let world = Arc::new(World::new().await);
    world.drain().await;
    let first = {
        let world = world.clone();
        tokio::spawn(async move { world.call("getUpdates", json!({ "timeout": 20 })).await })
    };
    let bot = world.bot.id;
    world.sandbox.wait_polling(bot, DEADLINE).await.unwrap();
    let second = world.call("getUpdates", json!({ "timeout": 0 })).await;
    assert_eq!(second.0, 200);
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 409);
    assert_eq!(
        body["description"],
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
    );
}

/// What a webhook receiver got: the secret-token header and the update.
type Deliveries = Arc<Mutex<Vec<(Option<String>, Value)>>>;

struct Receiver {
    url: String,
    received: Deliveries,
    fail_first: Arc<Mutex<u32>>,
}

async fn webhook_receiver(fail_first: u32) -> Receiver {
    let received = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(fail_first));
    let (r, f) = (received.clone(), failures.clone());
    let route = warp::post()
        .and(warp::header::optional::<String>(
            "x-telegram-bot-api-secret-token",
        ))
        .and(warp::body::json())
        .map(move |secret: Option<String>, update: Value| {
            let mut left = f.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return warp::http::StatusCode::INTERNAL_SERVER_ERROR;
            }
            r.lock().unwrap().push((secret, update));
            warp::http::StatusCode::OK
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    Receiver {
        url,
        received,
        fail_first: failures,
    }
}

#[tokio::test]
async fn webhooks_deliver_with_the_secret_and_retry_failures() {
    let world = World::new().await;
    let receiver = webhook_receiver(1).await;
    let hook = json!({ "url": receiver.url, "secret_token": "s3cr3t_token-1", "drop_pending_updates": true });
    world.ok("setWebhook", hook).await;
    let conflict = world.fails("getUpdates", json!({}), 409).await;
    assert!(
        conflict.contains("can't use getUpdates method while webhook is active"),
        "{conflict}"
    );

    let user = world.user("Web");
    world.sandbox.join(world.group, user.id).unwrap();
    world
        .sandbox
        .send(world.group, user.id, "via webhook")
        .unwrap();
    let received = receiver.received.clone();
    let got = world
        .sandbox
        .wait_until(DEADLINE, "two webhook deliveries", |_| {
            let got = received.lock().unwrap().clone();
            (got.len() == 2).then_some(got)
        })
        .await
        .unwrap();
    assert_eq!(got[0].0.as_deref(), Some("s3cr3t_token-1"));
    assert!(
        got[0].1["message"]["new_chat_members"].is_array(),
        "in order, after a retry"
    );
    assert_eq!(got[1].1["message"]["text"], "via webhook");
    assert_eq!(*receiver.fail_first.lock().unwrap(), 0);
    let info = world.ok("getWebhookInfo", json!({})).await;
    assert_eq!(info["url"], receiver.url);
    assert_eq!(info["pending_update_count"], 0);
    assert!(
        info["last_error_message"].as_str().unwrap().contains("500"),
        "{info}"
    );

    let bad = world
        .fails(
            "setWebhook",
            json!({ "url": receiver.url, "secret_token": "no spaces" }),
            400,
        )
        .await;
    assert_eq!(
        bad,
        "Bad Request: secret token contains unallowed characters"
    );
    world
        .ok("deleteWebhook", json!({ "drop_pending_updates": true }))
        .await;
    assert_eq!(world.ok("getWebhookInfo", json!({})).await["url"], "");
    world.ok("getUpdates", json!({})).await;
    world.assert_no_violations();
}

#[tokio::test]
async fn buttons_and_join_requests_become_updates() {
    let world = World::new().await;
    world.drain().await;
    let user = world.user("Bea");
    let keyboard =
        json!({ "inline_keyboard": [[{ "text": "I have joined", "callback_data": "check" }]] });
    let sent = world
        .ok(
            "sendMessage",
            json!({ "chat_id": world.group, "text": "Join first", "reply_markup": keyboard }),
        )
        .await;
    let message_id = sent["message_id"].as_i64().unwrap();
    world.sandbox.join(world.group, user.id).unwrap();
    world.drain().await;
    assert!(
        world
            .sandbox
            .press_button(world.group, message_id, user.id, "nope")
            .is_err()
    );
    let callback = world
        .sandbox
        .press_button(world.group, message_id, user.id, "check")
        .unwrap();
    world
        .sandbox
        .promote(
            world.channel,
            world.bot.id,
            AdminRights {
                can_invite_users: true,
                ..Default::default()
            },
        )
        .unwrap();
    world.sandbox.request_join(world.channel, user.id).unwrap();
    let updates = world.pending().await;
    let names = kinds(&updates);
    assert_eq!(names[0], "callback_query");
    assert!(
        names.contains(&"chat_join_request".to_string()),
        "{names:?}"
    );
    assert_eq!(updates[0]["callback_query"]["data"], "check");
    assert_eq!(
        updates[0]["callback_query"]["message"]["message_id"],
        message_id
    );
    world
        .ok(
            "answerCallbackQuery",
            json!({ "callback_query_id": callback, "text": "Thanks", "show_alert": true }),
        )
        .await;
    assert_eq!(
        world.sandbox.callback_answer(&callback).unwrap()["text"],
        "Thanks"
    );
    let twice = world
        .fails(
            "answerCallbackQuery",
            json!({ "callback_query_id": callback }),
            400,
        )
        .await;
    assert!(twice.contains("query is too old"), "{twice}");
    world.assert_no_violations();
}
