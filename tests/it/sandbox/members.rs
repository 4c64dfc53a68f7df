//! Members and their rules: the six statuses, rights, `until_date`, bans, messages and deletions.

use std::collections::BTreeMap;

use nezuko_sandbox::control::ControlError;
use nezuko_sandbox::faults::RateLimits;
use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use serde_json::json;

use super::World;

fn muted() -> serde_json::Value {
    json!({ "can_send_messages": false })
}

#[tokio::test]
async fn get_chat_member_reports_all_six_statuses() {
    let world = World::new().await;
    let [admin, member, restricted, left, kicked] =
        ["Ada", "Max", "Rex", "Lea", "Kim"].map(|n| world.user(n));
    world
        .sandbox
        .promote(
            world.group,
            admin.id,
            AdminRights {
                can_delete_messages: true,
                ..Default::default()
            },
        )
        .unwrap();
    world.sandbox.join(world.group, member.id).unwrap();
    world.sandbox.join(world.group, restricted.id).unwrap();
    world
        .ok(
            "restrictChatMember",
            json!({ "chat_id": world.group, "user_id": restricted.id, "permissions": muted() }),
        )
        .await;
    world.sandbox.join(world.group, left.id).unwrap();
    world.sandbox.leave(world.group, left.id).unwrap();
    world.sandbox.join(world.group, kicked.id).unwrap();
    world
        .ok(
            "banChatMember",
            json!({ "chat_id": world.group, "user_id": kicked.id }),
        )
        .await;

    let world = &world;
    let status = |user: i64| async move {
        world
            .ok(
                "getChatMember",
                json!({ "chat_id": world.group, "user_id": user }),
            )
            .await
    };
    assert_eq!(status(world.owner.id).await["status"], "creator");
    let ada = status(admin.id).await;
    assert_eq!(
        (ada["status"].as_str(), ada["can_delete_messages"].as_bool()),
        (Some("administrator"), Some(true))
    );
    assert_eq!(status(member.id).await["status"], "member");
    let rex = status(restricted.id).await;
    assert_eq!(
        (
            rex["status"].as_str(),
            rex["is_member"].as_bool(),
            rex["can_send_messages"].as_bool()
        ),
        (Some("restricted"), Some(true), Some(false))
    );
    assert_eq!(rex["until_date"], 0);
    assert_eq!(status(left.id).await["status"], "left");
    assert_eq!(status(kicked.id).await["status"], "kicked");
    world.assert_no_violations();
}

#[tokio::test]
async fn restricting_needs_the_restrict_right_and_a_supergroup() {
    let world = World::new().await;
    let user = world.user("Una");
    world.sandbox.join(world.group, user.id).unwrap();
    world
        .sandbox
        .promote(
            world.group,
            world.bot.id,
            AdminRights {
                can_delete_messages: true,
                ..Default::default()
            },
        )
        .unwrap();
    let params = json!({ "chat_id": world.group, "user_id": user.id, "permissions": muted() });
    assert_eq!(
        world.fails("restrictChatMember", params.clone(), 400).await,
        "Bad Request: not enough rights to restrict/unrestrict chat member"
    );
    world
        .sandbox
        .set_member(world.group, world.bot.id, Status::Member)
        .unwrap();
    assert_eq!(
        world.fails("restrictChatMember", params, 400).await,
        "Bad Request: not enough rights to restrict/unrestrict chat member"
    );

    let basic = world.sandbox.create_chat(ChatKind::Group, "Basic", None);
    world
        .sandbox
        .set_member(basic, world.owner.id, Status::Creator)
        .unwrap();
    world
        .sandbox
        .promote(basic, world.bot.id, super::guard_rights())
        .unwrap();
    world.sandbox.join(basic, user.id).unwrap();
    let reason = world
        .fails(
            "restrictChatMember",
            json!({ "chat_id": basic, "user_id": user.id, "permissions": muted() }),
            400,
        )
        .await;
    assert_eq!(
        reason,
        "Bad Request: method is available only for supergroups"
    );
}

#[tokio::test]
async fn owners_and_administrators_cannot_be_restricted() {
    let world = World::new().await;
    let admin = world.user("Ada");
    world
        .sandbox
        .promote(world.group, admin.id, AdminRights::default())
        .unwrap();
    let owner =
        json!({ "chat_id": world.group, "user_id": world.owner.id, "permissions": muted() });
    assert_eq!(
        world.fails("restrictChatMember", owner, 400).await,
        "Bad Request: can't remove chat owner"
    );
    let ada = json!({ "chat_id": world.group, "user_id": admin.id });
    assert_eq!(
        world.fails("banChatMember", ada, 400).await,
        "Bad Request: user is an administrator of the chat"
    );
}

#[tokio::test]
async fn until_date_under_thirty_seconds_or_over_a_year_means_forever() {
    let world = World::new().await;
    let user = world.user("Tim");
    world.sandbox.join(world.group, user.id).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for (requested, stored) in [
        (now + 10, 0),
        (now + 400 * 86_400, 0),
        (now + 120, now + 120),
    ] {
        world.ok("restrictChatMember", json!({ "chat_id": world.group, "user_id": user.id, "permissions": muted(), "until_date": requested })).await;
        let member = world
            .ok(
                "getChatMember",
                json!({ "chat_id": world.group, "user_id": user.id }),
            )
            .await;
        assert_eq!(
            member["until_date"].as_i64().unwrap(),
            stored,
            "requested {requested}"
        );
    }
    world.sandbox.advance_clock(121);
    assert_eq!(
        world.sandbox.member(world.group, user.id),
        Status::Member,
        "the restriction expired"
    );
}

#[tokio::test]
async fn a_restricted_users_message_is_refused_and_recorded() {
    let world = World::new().await;
    let user = world.user("Mia");
    world.sandbox.join(world.group, user.id).unwrap();
    world
        .ok(
            "restrictChatMember",
            json!({ "chat_id": world.group, "user_id": user.id, "permissions": muted() }),
        )
        .await;
    let refused = world.sandbox.send(world.group, user.id, "let me speak");
    assert!(
        matches!(refused, Err(ControlError::Blocked(_))),
        "{refused:?}"
    );
    assert_eq!(
        world.sandbox.blocked(world.group),
        vec![(user.id, "let me speak".to_string())]
    );
    assert!(
        world
            .sandbox
            .transcript(world.group)
            .iter()
            .all(|m| m.text.as_deref() != Some("let me speak"))
    );

    let all: BTreeMap<&str, bool> = nezuko_sandbox::model::PERMISSION_NAMES
        .iter()
        .map(|n| (*n, true))
        .collect();
    world
        .ok(
            "restrictChatMember",
            json!({ "chat_id": world.group, "user_id": user.id, "permissions": all }),
        )
        .await;
    assert_eq!(
        world.sandbox.member(world.group, user.id),
        Status::Member,
        "all permissions lift the restriction"
    );
    assert!(world.sandbox.send(world.group, user.id, "thanks").is_ok());
}

#[tokio::test]
async fn a_ban_removes_and_unban_follows_only_if_banned() {
    let world = World::new().await;
    let [banned, present, guarded] = ["Ben", "Pat", "Gus"].map(|n| world.user(n));
    for user in [&banned, &present, &guarded] {
        world.sandbox.join(world.group, user.id).unwrap();
    }
    world
        .ok(
            "banChatMember",
            json!({ "chat_id": world.group, "user_id": banned.id }),
        )
        .await;
    assert!(matches!(
        world.sandbox.member(world.group, banned.id),
        Status::Kicked { until_date: 0 }
    ));
    assert!(matches!(
        world.sandbox.join(world.group, banned.id),
        Err(ControlError::Banned { .. })
    ));
    world
        .ok(
            "unbanChatMember",
            json!({ "chat_id": world.group, "user_id": banned.id, "only_if_banned": true }),
        )
        .await;
    assert_eq!(world.sandbox.member(world.group, banned.id), Status::Left);

    world
        .ok(
            "unbanChatMember",
            json!({ "chat_id": world.group, "user_id": guarded.id, "only_if_banned": true }),
        )
        .await;
    assert_eq!(
        world.sandbox.member(world.group, guarded.id),
        Status::Member,
        "only_if_banned leaves a member alone"
    );
    world
        .ok(
            "unbanChatMember",
            json!({ "chat_id": world.group, "user_id": present.id }),
        )
        .await;
    assert_eq!(
        world.sandbox.member(world.group, present.id),
        Status::Left,
        "a plain unban removes a present member"
    );
}

#[tokio::test]
async fn a_channels_member_list_is_readable_only_by_its_admins() {
    let world = World::new().await;
    let reader = world.user("Rea");
    world.sandbox.join(world.channel, reader.id).unwrap();
    assert_eq!(
        world
            .ok(
                "getChatMember",
                json!({ "chat_id": "@news", "user_id": reader.id })
            )
            .await["status"],
        "member"
    );
    world
        .sandbox
        .set_member(world.channel, world.bot.id, Status::Member)
        .unwrap();
    let reason = world
        .fails(
            "getChatMember",
            json!({ "chat_id": "@news", "user_id": reader.id }),
            400,
        )
        .await;
    assert_eq!(reason, "Bad Request: member list is inaccessible");
    let unknown = world
        .fails(
            "getChatMember",
            json!({ "chat_id": world.group, "user_id": 999 }),
            400,
        )
        .await;
    assert_eq!(unknown, "Bad Request: PARTICIPANT_ID_INVALID");
    assert_eq!(
        world
            .fails("getChat", json!({ "chat_id": "@nowhere" }), 400)
            .await,
        "Bad Request: chat not found"
    );
}

#[tokio::test]
async fn deleting_others_messages_needs_the_right_and_missing_ones_are_skipped() {
    let world = World::new().await;
    let user = world.user("Dee");
    world.sandbox.join(world.group, user.id).unwrap();
    let first = world.sandbox.send(world.group, user.id, "one").unwrap();
    let second = world.sandbox.send(world.group, user.id, "two").unwrap();
    world
        .ok(
            "deleteMessage",
            json!({ "chat_id": world.group, "message_id": first }),
        )
        .await;
    let again = world
        .fails(
            "deleteMessage",
            json!({ "chat_id": world.group, "message_id": first }),
            400,
        )
        .await;
    assert_eq!(again, "Bad Request: message to delete not found");
    world
        .ok(
            "deleteMessages",
            json!({ "chat_id": world.group, "message_ids": [first, second, 9999] }),
        )
        .await;
    let written = world
        .sandbox
        .transcript(world.group)
        .into_iter()
        .filter(|m| m.text.is_some() && m.from == user.id);
    assert!(written.into_iter().all(|m| m.deleted));

    let third = world.sandbox.send(world.group, user.id, "three").unwrap();
    world
        .sandbox
        .promote(
            world.group,
            world.bot.id,
            AdminRights {
                can_restrict_members: true,
                ..Default::default()
            },
        )
        .unwrap();
    let reason = world
        .fails(
            "deleteMessage",
            json!({ "chat_id": world.group, "message_id": third }),
            400,
        )
        .await;
    assert_eq!(reason, "Bad Request: message can't be deleted");
    let own = world
        .ok(
            "sendMessage",
            json!({ "chat_id": world.group, "text": "mine" }),
        )
        .await;
    world
        .ok(
            "deleteMessage",
            json!({ "chat_id": world.group, "message_id": own["message_id"] }),
        )
        .await;
}

#[tokio::test]
async fn messages_are_checked_as_telegram_checks_them() {
    let world = World::new().await;
    world.sandbox.set_rate_limits(RateLimits {
        enabled: false,
        ..RateLimits::default()
    });
    let html = world
        .fails(
            "sendMessage",
            json!({ "chat_id": world.group, "text": "Hi <Bob>", "parse_mode": "HTML" }),
            400,
        )
        .await;
    assert!(
        html.starts_with("Bad Request: can't parse entities: Unsupported start tag"),
        "{html}"
    );
    let fine = world.ok("sendMessage", json!({ "chat_id": world.group, "text": "Hi &lt;Bob&gt; <b>!</b>", "parse_mode": "HTML" })).await;
    assert_eq!(fine["text"], "Hi <Bob> !");
    let button = json!({ "inline_keyboard": [[{ "text": "x", "url": "javascript:alert(1)" }]] });
    let reason = world
        .fails(
            "sendMessage",
            json!({ "chat_id": world.group, "text": "x", "reply_markup": button }),
            400,
        )
        .await;
    assert_eq!(reason, "Bad Request: BUTTON_URL_INVALID");
    assert_eq!(
        world
            .fails(
                "sendMessage",
                json!({ "chat_id": world.group, "text": " " }),
                400
            )
            .await,
        "Bad Request: message text is empty"
    );

    let id = fine["message_id"].clone();
    let edited = world
        .ok(
            "editMessageText",
            json!({ "chat_id": world.group, "message_id": id, "text": "changed" }),
        )
        .await;
    assert_eq!(edited["text"], "changed");
    let same = world
        .fails(
            "editMessageText",
            json!({ "chat_id": world.group, "message_id": id, "text": "changed" }),
            400,
        )
        .await;
    assert!(
        same.starts_with("Bad Request: message is not modified"),
        "{same}"
    );

    let outsider = world
        .sandbox
        .create_chat(ChatKind::Supergroup, "Elsewhere", None);
    let reason = world
        .fails(
            "sendMessage",
            json!({ "chat_id": outsider, "text": "hi" }),
            403,
        )
        .await;
    assert_eq!(
        reason,
        "Forbidden: bot is not a member of the supergroup chat"
    );
}

#[tokio::test]
async fn invite_links_join_requests_and_chat_information() {
    let world = World::new().await;
    let link = world
        .ok(
            "createChatInviteLink",
            json!({ "chat_id": world.channel, "creates_join_request": true }),
        )
        .await;
    assert!(
        link["invite_link"]
            .as_str()
            .unwrap()
            .starts_with("https://t.me/+")
    );
    assert_eq!(link["creator"]["id"], world.bot.id);

    let [approved, declined] = ["Amy", "Dan"].map(|n| world.user(n));
    world
        .sandbox
        .request_join(world.channel, approved.id)
        .unwrap();
    world
        .sandbox
        .request_join(world.channel, declined.id)
        .unwrap();
    world
        .ok(
            "approveChatJoinRequest",
            json!({ "chat_id": world.channel, "user_id": approved.id }),
        )
        .await;
    world
        .ok(
            "declineChatJoinRequest",
            json!({ "chat_id": world.channel, "user_id": declined.id }),
        )
        .await;
    assert_eq!(
        world.sandbox.member(world.channel, approved.id),
        Status::Member
    );
    assert_eq!(
        world.sandbox.member(world.channel, declined.id),
        Status::Left
    );
    let missing = world
        .fails(
            "approveChatJoinRequest",
            json!({ "chat_id": world.channel, "user_id": declined.id }),
            400,
        )
        .await;
    assert_eq!(missing, "Bad Request: HIDE_REQUESTER_MISSING");

    let admins = world
        .ok("getChatAdministrators", json!({ "chat_id": world.channel }))
        .await;
    assert_eq!(admins[0]["status"], "creator");
    assert_eq!(
        world
            .ok("getChatMemberCount", json!({ "chat_id": world.channel }))
            .await,
        3
    );
    let chat = world
        .ok("getChat", json!({ "chat_id": world.channel }))
        .await;
    assert_eq!(
        (chat["type"].as_str(), chat["username"].as_str()),
        (Some("channel"), Some("news"))
    );

    world
        .sandbox
        .promote(world.channel, world.bot.id, AdminRights::default())
        .unwrap();
    let reason = world
        .fails(
            "createChatInviteLink",
            json!({ "chat_id": world.channel }),
            400,
        )
        .await;
    assert_eq!(
        reason,
        "Bad Request: not enough rights to manage chat invite link"
    );
    world
        .ok("leaveChat", json!({ "chat_id": world.group }))
        .await;
    assert_eq!(
        world.sandbox.member(world.group, world.bot.id),
        Status::Left
    );
    world.assert_no_violations();
}
