//! Pending join requests on a group's page (issue 20): listed as they arrive, approved and declined
//! by an administrator (each confirmed), carried out at Telegram, and read back from the audit page.

use std::time::Duration;

use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use reqwest::Method;
use serde_json::json;

use super::{accessible, assert_audited, protected_group, signed_in};
use crate::api::ApiWorld;
use crate::support::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_approves_and_declines_pending_join_requests_from_the_group_page() {
    let world = ApiWorld::start(TestDb::sqlite().await).await;
    let guarded = protected_group(&world, "door_bot", "Book Club", "bookshelf").await;
    world
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{}/policy", guarded.group_id),
            Some(json!({ "join_requests": "approve_subscribers" })),
        )
        .await
        .ok();
    let sandbox = &world.sandbox;
    let [ann, ben] = ["Ann", "Ben"].map(|name| sandbox.create_user(name, None).id);
    for user in [ann, ben] {
        sandbox.request_join(guarded.group_chat, user).unwrap();
        // Told what to join (the bot wrote to them), so the request is Nezuko's to list.
        sandbox
            .wait_until(Duration::from_secs(15), "the requester is told", |s| {
                (!s.transcript(user).is_empty()).then_some(())
            })
            .await
            .unwrap();
    }
    let pending = world
        .get(&format!(
            "/api/v1/groups/{}/join-requests",
            guarded.group_id
        ))
        .await;
    let items = pending.ok()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2, "{items:?}");
    let id_of = |user: i64| {
        items.iter().find(|r| r["user_id"] == user).unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (ann_request, ben_request) = (id_of(ann), id_of(ben));

    let chromium = signed_in(&world).await;
    chromium
        .open(&format!("/groups/{}", guarded.group_id))
        .await;
    chromium
        .wait_for(
            "the pending requests",
            "document.querySelectorAll('tr[data-join-request]').length === 2",
        )
        .await;
    accessible(&chromium, "group page with join requests").await;
    chromium.screenshot("group-join-requests").await;

    chromium
        .click(&format!(
            "tr[data-join-request='{ann_request}'] button.primary"
        ))
        .await;
    chromium.confirm().await;
    chromium
        .wait_for(
            "Ann's request gone from the list",
            &format!("!document.querySelector('tr[data-join-request=\"{ann_request}\"]')"),
        )
        .await;
    // In: as any newcomer who has not subscribed, she is then held to the group's check.
    assert!(sandbox.member(guarded.group_chat, ann).is_present());

    chromium
        .click(&format!(
            "tr[data-join-request='{ben_request}'] button.danger"
        ))
        .await;
    chromium.confirm().await;
    chromium
        .wait_for(
            "no request left",
            "!document.querySelector('tr[data-join-request]')",
        )
        .await;
    assert_eq!(sandbox.member(guarded.group_chat, ben), Status::Left);
    assert!(
        sandbox
            .join_requests(guarded.group_chat)
            .unwrap()
            .is_empty()
    );

    // Decided once: a second decision is a conflict, not a second call to Telegram.
    world
        .post(
            &format!("/api/v1/join-requests/{ann_request}/decline"),
            json!({}),
        )
        .await
        .problem(409, "conflict");
    assert_audited(
        &world,
        &chromium,
        "join_request",
        ann_request,
        &["join_request.approve"],
    )
    .await;
    assert_audited(
        &world,
        &chromium,
        "join_request",
        ben_request,
        &["join_request.decline"],
    )
    .await;
    chromium.finish().await;
    world.finish().await;
}

/// A channel cannot send `/protect`: the groups page protects it, the bot's rights are checked
/// first (a missing one is named in the form), and the new channel opens on its own page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_protects_a_channel_from_the_groups_page() {
    let world = ApiWorld::start(TestDb::sqlite().await).await;
    let guarded = protected_group(&world, "door_bot", "Book Club", "bookshelf").await;
    let sandbox = &world.sandbox;
    let premium = sandbox.create_chat(ChatKind::Channel, "Premium", Some("premium"));
    let owner = sandbox.create_user("Owner", Some("premium_owner")).id;
    sandbox.set_member(premium, owner, Status::Creator).unwrap();
    let posting_only = AdminRights {
        can_manage_chat: true,
        can_post_messages: true,
        ..AdminRights::default()
    };
    sandbox
        .promote(premium, guarded.bot_telegram_id, posting_only)
        .unwrap();

    let chromium = signed_in(&world).await;
    chromium.open("/groups").await;
    chromium
        .wait_for(
            "the protect form",
            "document.querySelector('form[aria-label=\"Protect a chat\"]')",
        )
        .await;
    accessible(&chromium, "groups page with the protect form").await;
    chromium
        .choose("#protect-bot", &guarded.bot_id.to_string())
        .await;
    chromium.fill("#protect-chat", "@premium").await;
    chromium.fill("#protect-channels", "@bookshelf").await;
    chromium.submit("Protect a chat").await;
    chromium
        .wait_for(
            "the missing right named",
            "document.getElementById('protect-error').innerText.includes('Invite users')",
        )
        .await;
    chromium.screenshot("protect-channel-refused").await;
    let refused = chromium.take_failed_requests().await;
    assert!(
        refused.len() == 1
            && refused[0].starts_with("422 ")
            && refused[0].ends_with("/api/v1/groups"),
        "only the refused protection failed: {refused:?}"
    );

    sandbox
        .promote(
            premium,
            guarded.bot_telegram_id,
            AdminRights::force_subscribe(),
        )
        .unwrap();
    chromium.submit("Protect a chat").await;
    chromium
        .wait_for(
            "the channel's page",
            "location.pathname.startsWith('/groups/') && document.querySelector('h1 .badge.channel')",
        )
        .await;
    chromium.toast_says("Protected Premium").await;
    chromium.screenshot("protected-channel").await;
    let group = world
        .db
        .store
        .group_by_chat(guarded.bot_id, premium)
        .await
        .unwrap()
        .expect("the channel is stored");
    assert_eq!(group.chat_type, "channel");
    assert_audited(&world, &chromium, "group", group.id, &["group.protect"]).await;
    chromium.finish().await;
    world.finish().await;
}
