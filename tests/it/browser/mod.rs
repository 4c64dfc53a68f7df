//! The dashboard in a real headless Chromium (Debian's `chromium`): every page with real data from
//! a running service and the sandbox, each action checked in the page, through the API and in the
//! audit log. Every test fails on a console error, an uncaught exception or a failed request;
//! screenshots of each page go to `target/browser-artifacts/`.

mod attention;
mod bots;
mod chromium;
mod demo;
mod groups;
mod join_requests;
mod truth;

use serde_json::json;

use nezuko::db::{NewChannel, NewGroup};
use nezuko_sandbox::model::{AdminRights, ChatKind, Status};

use self::chromium::Chromium;
use crate::api::{ApiWorld, OWNER};

/// A browser signed in as the owner through a one-time link, showing the overview.
async fn signed_in(world: &ApiWorld) -> Chromium {
    signed_in_at(world, Chromium::launch(&world.base).await).await
}

/// `chromium` (just launched: sized, or set to a time zone) signed in as the owner through a
/// one-time link, showing the overview.
async fn signed_in_at(world: &ApiWorld, chromium: Chromium) -> Chromium {
    let token = world.login_link(OWNER).await;
    chromium.open(&format!("/login#token={token}")).await;
    chromium.wait_signed_in().await;
    assert!(
        !chromium.text("location.href").await.contains(&token),
        "the token leaves the address bar"
    );
    chromium
}

/// A running bot protecting a real sandbox group that requires one channel.
struct Protected {
    bot_id: i64,
    bot_telegram_id: i64,
    channel_chat: i64,
    group_id: i64,
    channel_id: i64,
    group_chat: i64,
}

/// Adds bot `username` through the API, makes it an administrator of a new group and channel in the
/// sandbox and stores the group as `/protect @<channel>` would; returns once the bot runs.
async fn protected_group(
    world: &ApiWorld,
    username: &str,
    title: &str,
    channel: &str,
) -> Protected {
    let sandbox = &world.sandbox;
    let bot = sandbox.create_bot(title, username);
    let owner = sandbox.create_user("Owner", Some("owner"));
    let channel_chat = sandbox.create_chat(ChatKind::Channel, channel, Some(channel));
    let group_chat = sandbox.create_chat(ChatKind::Supergroup, title, None);
    for chat in [channel_chat, group_chat] {
        sandbox.set_member(chat, owner.id, Status::Creator).unwrap();
        sandbox
            .promote(chat, bot.id, AdminRights::force_subscribe())
            .unwrap();
    }
    let store = &world.db.store;
    let channel_row = store
        .upsert_channel(&NewChannel {
            chat_id: channel_chat,
            title: channel.to_string(),
            username: Some(channel.to_string()),
            invite_link: None,
            is_private: false,
        })
        .await
        .unwrap();
    // Added stopped and started once its group is stored, as it would be after `/protect`: a bot
    // reading the group before its channels are linked would treat it as unprotected for a while.
    let added = world
        .post(
            "/api/v1/bots",
            json!({ "token": bot.token, "enabled": false }),
        )
        .await;
    let bot_id = added.ok()["id"].as_i64().unwrap();
    let group = store
        .upsert_group(&NewGroup {
            bot_instance_id: bot_id,
            chat_id: group_chat,
            title: title.to_string(),
            username: None,
        })
        .await
        .unwrap();
    store
        .replace_channel_links(
            group.id,
            &[(channel_row.id, json!({ "administrator": true }))],
        )
        .await
        .unwrap();
    store.set_group_health(group.id, "ok", None).await.unwrap();
    world
        .post(&format!("/api/v1/bots/{bot_id}/start"), json!({}))
        .await
        .ok();
    world
        .wait_bot(bot_id, "running", |b| b["run_state"] == "running")
        .await;
    Protected {
        bot_id,
        bot_telegram_id: bot.id,
        channel_chat,
        group_id: group.id,
        channel_id: channel_row.id,
        group_chat,
    }
}

/// Fails on any serious or critical violation axe-core finds on the page, in the light theme and
/// in the dark one; `name` says which page in the failure.
async fn accessible(chromium: &Chromium, name: &str) {
    let mut found = Vec::new();
    for theme in ["light", "dark"] {
        chromium
            .run(&format!(
                "document.documentElement.dataset.theme = '{theme}'"
            ))
            .await;
        for violation in chromium.accessibility_violations().await {
            found.push(format!("{name} ({theme}): {violation}"));
        }
    }
    chromium
        .run("document.documentElement.dataset.theme = localStorage.getItem('nezuko.theme') || 'light'")
        .await;
    assert!(found.is_empty(), "accessibility:\n{}", found.join("\n"));
}

/// Each of `expected` was recorded for `target_type` `id`: through the API, and on the audit page
/// (reached from the navigation, filtered to that kind of target).
async fn assert_audited(
    world: &ApiWorld,
    chromium: &Chromium,
    target_type: &str,
    id: i64,
    expected: &[&str],
) {
    let entries = world
        .get(&format!(
            "/api/v1/audit?target_type={target_type}&limit=500"
        ))
        .await;
    let actions: Vec<&str> = entries.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target_id"].as_str().and_then(|t| t.parse().ok()) == Some(id))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in expected {
        assert!(actions.contains(action), "{action} audited: {actions:?}");
    }
    chromium.click("nav a[href='/audit']").await;
    chromium
        .wait_for("audit page", "document.querySelector('tr[data-action]')")
        .await;
    chromium.choose("#audit-target", target_type).await;
    for action in expected {
        chromium
            .wait_for(
                action,
                &format!("document.querySelector('tr[data-action=\"{action}\"]')"),
            )
            .await;
    }
}
