//! What the API checks before it stores: a channel linked to a group is checked against the bot's
//! rights as `/protect` checks it (the group turns `degraded` with the exact fix, or `unknown`
//! when its bot is not running; unlinking checks again), and a text override may use only its
//! template's placeholders and HTML Telegram accepts.

use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use reqwest::Method;
use serde_json::json;

use super::{ApiWorld, api_tests};

api_tests!(
    a_channel_linked_where_the_bot_is_no_administrator_degrades_the_group_with_the_fix,
    a_channel_linked_to_a_group_whose_bot_is_stopped_leaves_health_unknown,
    a_text_with_a_placeholder_its_template_lacks_is_refused_naming_the_allowed_ones,
    unlinking_the_channel_at_fault_makes_the_group_healthy_at_once,
    a_text_telegram_would_refuse_as_html_is_refused_saying_where,
);

/// A running bot protecting a supergroup with @news (both chats administered); returns
/// (bot instance id, group id in the store).
async fn protected(world: &ApiWorld) -> (i64, i64) {
    let sandbox = &world.sandbox;
    let bot = sandbox.create_bot("Guard", "guard_bot");
    let owner = sandbox.create_user("Owner", Some("owner"));
    let group = sandbox.create_chat(ChatKind::Supergroup, "Readers", None);
    let news = sandbox.create_chat(ChatKind::Channel, "News", Some("news"));
    for chat in [group, news] {
        sandbox.set_member(chat, owner.id, Status::Creator).unwrap();
        sandbox
            .promote(chat, bot.id, AdminRights::force_subscribe())
            .unwrap();
    }
    let added = world
        .post("/api/v1/bots", json!({ "token": bot.token }))
        .await;
    let id = added.body["id"].as_i64().unwrap();
    world
        .wait_bot(id, "running", |b| b["run_state"] == "running")
        .await;
    let sent = sandbox.send(group, owner.id, "/protect @news").unwrap();
    sandbox
        .wait_until(crate::enforce::DEADLINE, "the group is protected", |s| {
            s.transcript(group).into_iter().find(|m| {
                m.message_id > sent && m.text.as_deref().is_some_and(|t| t.contains("Protected"))
            })
        })
        .await
        .unwrap();
    let row = world
        .db
        .store
        .group_by_chat(id, group)
        .await
        .unwrap()
        .expect("the group is stored");
    (id, row.id)
}

/// Links @sports, where the bot is no administrator, to the protected group; returns the store's
/// id of the channel and the API's answer.
async fn link_sports(world: &ApiWorld, group: i64) -> (i64, serde_json::Value) {
    let sports = world
        .sandbox
        .create_chat(ChatKind::Channel, "Sports", Some("sports"));
    let channel = world
        .post(
            "/api/v1/channels",
            json!({ "chat_id": sports, "title": "Sports", "username": "sports" }),
        )
        .await;
    let channel_id = channel.ok()["id"].as_i64().unwrap();
    let linked = world
        .post(
            &format!("/api/v1/groups/{group}/channels"),
            json!({ "channel_id": channel_id }),
        )
        .await;
    (channel_id, linked.ok().clone())
}

async fn a_channel_linked_where_the_bot_is_no_administrator_degrades_the_group_with_the_fix(
    world: &mut ApiWorld,
) {
    let (_, group) = protected(world).await;
    let (_, body) = link_sports(world, group).await;
    assert_eq!(body["health"], "degraded", "{body}");
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .contains("make the bot an administrator of @sports"),
        "{body}"
    );
    let detail = world.get(&format!("/api/v1/groups/{group}")).await;
    assert_eq!(
        detail.ok()["health"],
        "degraded",
        "the group page says so too"
    );
}

async fn a_channel_linked_to_a_group_whose_bot_is_stopped_leaves_health_unknown(
    world: &mut ApiWorld,
) {
    let (bot, group) = protected(world).await;
    world
        .post(&format!("/api/v1/bots/{bot}/stop"), json!({}))
        .await;
    world
        .wait_bot(bot, "stopped", |b| b["run_state"] == "stopped")
        .await;
    let sports = world
        .post(
            "/api/v1/channels",
            json!({ "chat_id": -1_009_999, "title": "Sports", "username": "sports" }),
        )
        .await;
    let linked = world
        .post(
            &format!("/api/v1/groups/{group}/channels"),
            json!({ "channel_id": sports.ok()["id"] }),
        )
        .await;
    let body = linked.ok();
    assert_eq!(body["health"], "unknown", "never an optimistic ok: {body}");
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .contains("start the group's bot")
    );
}

async fn a_text_with_a_placeholder_its_template_lacks_is_refused_naming_the_allowed_ones(
    world: &mut ApiWorld,
) {
    let refused = world
        .call(
            Method::PUT,
            "/api/v1/settings/texts/en",
            Some(json!({ "welcome": "Hi {user}, welcome to {group}" })),
        )
        .await;
    refused.problem(422, "invalid_field");
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(detail.contains("`{user}`"), "{detail}");
    assert!(detail.contains("{group}, {users}"), "{detail}");
    assert_eq!(refused.body["field"], "welcome");
    let accepted = world
        .call(
            Method::PUT,
            "/api/v1/settings/texts/en",
            Some(json!({ "welcome": "Hi {users}, welcome to {group}" })),
        )
        .await;
    assert_eq!(accepted.status, 200, "{:?}", accepted.body);
}

async fn unlinking_the_channel_at_fault_makes_the_group_healthy_at_once(world: &mut ApiWorld) {
    let (_, group) = protected(world).await;
    let (channel, linked) = link_sports(world, group).await;
    assert_eq!(linked["health"], "degraded", "{linked}");
    let unlinked = world
        .call(
            Method::DELETE,
            &format!("/api/v1/groups/{group}/channels/{channel}"),
            None,
        )
        .await;
    let body = unlinked.ok();
    assert_eq!(
        body["health"], "ok",
        "checked again, not left stale: {body}"
    );
    assert_eq!(body["problems"], json!([]));
    let detail = world.get(&format!("/api/v1/groups/{group}")).await;
    assert_eq!(detail.ok()["health"], "ok");
}

async fn a_text_telegram_would_refuse_as_html_is_refused_saying_where(world: &mut ApiWorld) {
    for (text, says) in [
        (
            "<b>Hi {users}, welcome to {group}",
            "Can't find end tag corresponding to start tag \"b\"",
        ),
        (
            "Hi {users} <3 welcome to {group}",
            "Unsupported start tag \"3\" at byte offset 11",
        ),
        (
            "<div>Hi {users}</div>",
            "Unsupported start tag \"div\" at byte offset 0",
        ),
    ] {
        let refused = world
            .call(
                Method::PUT,
                "/api/v1/settings/texts/en",
                Some(json!({ "welcome": text })),
            )
            .await;
        refused.problem(422, "invalid_field");
        let detail = refused.body["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{text}: {detail}");
    }
    // Button labels are plain text: `<` is just a character there; and Telegram keeps an `&`
    // that begins no entity as written.
    for (name, text) in [
        ("button_verify", "Done <3"),
        ("welcome", "Hi {users} & welcome to {group}"),
    ] {
        let accepted = world
            .call(
                Method::PUT,
                "/api/v1/settings/texts/en",
                Some(json!({ name: text })),
            )
            .await;
        assert_eq!(accepted.status, 200, "{text}: {:?}", accepted.body);
    }
}
