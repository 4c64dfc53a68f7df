//! People acting as in Telegram's apps, each through the Rust control API and over HTTP: writing
//! as a channel or anonymously, administrators restricting, banning, unbanning and lifting by
//! hand, edits, deleted accounts, users who block the bot, fixtures that stay silent.

use std::collections::BTreeMap;

use nezuko_sandbox::Operation;
use nezuko_sandbox::control::{AdminRestrict, ChatUser, Say};
use nezuko_sandbox::model::{AdminRights, Status};
use serde_json::{Value, json};

use super::{Via, World, both_ways};

both_ways!(
    a_message_written_as_a_channel_shows_the_channel_and_needs_its_admin,
    an_anonymous_administrator_writes_as_the_group,
    an_administrator_restricting_by_hand_reaches_admin_bots_with_their_name,
    an_administrator_bans_unbans_and_lifts_by_hand,
    a_member_cannot_act_as_an_administrator,
    an_edited_message_reaches_the_bot_with_its_edit_date,
    a_deleted_account_shows_as_deleted_and_cannot_be_written_to,
    a_user_who_blocked_the_bot_cannot_be_written_to_until_they_write_again,
    set_member_is_a_silent_fixture_and_promote_is_announced,
);

fn say(chat: i64, user: i64, text: &str) -> Say {
    Say::new(chat, user, text)
}

async fn a_message_written_as_a_channel_shows_the_channel_and_needs_its_admin(via: Via) {
    let world = World::new().await;
    let poster = world.member_of(via, world.group, "Poe").await;
    world.drain().await;
    let refused = world
        .refused(
            via,
            Operation::Send(Say {
                sender_chat: Some(world.channel),
                ..say(world.group, poster.id, "as @news")
            }),
        )
        .await;
    assert!(refused.contains("channel they administer"), "{refused}");

    world
        .done(
            via,
            Operation::Promote {
                chat: world.channel,
                user: poster.id,
                rights: AdminRights::default(),
            },
        )
        .await;
    world
        .done(
            via,
            Operation::Send(Say {
                sender_chat: Some(world.channel),
                ..say(world.group, poster.id, "as @news")
            }),
        )
        .await;
    let messages = world.pending_of("message").await;
    let message = messages.last().unwrap();
    assert_eq!(message["sender_chat"]["id"], world.channel);
    assert_eq!(message["sender_chat"]["type"], "channel");
    assert_eq!(message["from"]["username"], "Channel_Bot");
    assert_eq!(message["from"]["id"], 136_817_688);
    assert!(message.get("is_automatic_forward").is_none());
    world.assert_no_violations();
}

async fn an_anonymous_administrator_writes_as_the_group(via: Via) {
    let world = World::new().await;
    let [open, hidden] = ["Ope", "Hid"].map(|name| world.user(name));
    for (user, anonymous) in [(&open, false), (&hidden, true)] {
        let rights = AdminRights {
            is_anonymous: anonymous,
            ..AdminRights::default()
        };
        world
            .done(
                via,
                Operation::Promote {
                    chat: world.group,
                    user: user.id,
                    rights,
                },
            )
            .await;
    }
    world.drain().await;
    let as_group = |user: i64| {
        Operation::Send(Say {
            sender_chat: Some(world.group),
            ..say(world.group, user, "from the admins")
        })
    };
    let refused = world.refused(via, as_group(open.id)).await;
    assert!(refused.contains("anonymous administrator"), "{refused}");
    world.done(via, as_group(hidden.id)).await;
    let message = world.pending_of("message").await.pop().unwrap();
    assert_eq!(message["sender_chat"]["id"], world.group);
    assert_eq!(message["from"]["username"], "GroupAnonymousBot");
    world.assert_no_violations();
}

async fn an_administrator_restricting_by_hand_reaches_admin_bots_with_their_name(via: Via) {
    let world = World::new().await;
    let admin = world.user("Mod");
    world
        .done(
            via,
            Operation::Promote {
                chat: world.group,
                user: admin.id,
                rights: AdminRights {
                    can_restrict_members: true,
                    ..AdminRights::default()
                },
            },
        )
        .await;
    let member = world.member_of(via, world.group, "Noisy").await;
    world.want_all().await;
    let until = world_now() + 3600;
    let mut permissions = BTreeMap::new();
    permissions.insert("can_send_polls".to_string(), true);
    world
        .done(
            via,
            Operation::AdminRestrict(AdminRestrict {
                chat: world.group,
                admin: admin.id,
                user: member.id,
                permissions,
                until_date: Some(until),
            }),
        )
        .await;
    let change = world.pending_of("chat_member").await.pop().unwrap();
    assert_eq!(change["from"]["id"], admin.id, "from is the administrator");
    assert_eq!(change["old_chat_member"]["status"], "member");
    let new = &change["new_chat_member"];
    assert_eq!(new["status"], "restricted");
    assert_eq!(new["until_date"], until);
    assert_eq!(new["is_member"], true);
    assert_eq!(new["can_send_messages"], false);
    assert_eq!(new["can_send_polls"], true);
    assert_eq!(new["can_edit_tag"], false);
    assert_eq!(new["can_react_to_messages"], false);
    let refused = world
        .refused(via, Operation::Send(say(world.group, member.id, "hello?")))
        .await;
    assert!(refused.contains("not delivered"), "{refused}");
    world.assert_no_violations();
}

async fn an_administrator_bans_unbans_and_lifts_by_hand(via: Via) {
    let world = World::new().await;
    let owner = world.owner.id;
    let [banned, muted] = ["Ban", "Mut"].map(|n| n.to_string());
    let banned = world.member_of(via, world.group, &banned).await;
    let muted = world.member_of(via, world.group, &muted).await;
    world.want_all().await;

    world
        .done(
            via,
            Operation::AdminBan {
                chat: world.group,
                admin: owner,
                user: banned.id,
                until_date: None,
            },
        )
        .await;
    let updates = world.ok("getUpdates", json!({})).await;
    let left = find(&updates, "message", |m| m.get("left_chat_member").is_some());
    assert_eq!(left["left_chat_member"]["id"], banned.id);
    assert_eq!(
        left["from"]["id"], owner,
        "the service message names who removed"
    );
    let change = find(&updates, "chat_member", |_| true);
    assert_eq!(change["new_chat_member"]["status"], "kicked");
    assert_eq!(change["new_chat_member"]["until_date"], 0);
    assert_eq!(change["from"]["id"], owner);
    let refused = world
        .refused(
            via,
            Operation::Join(ChatUser {
                chat: world.group,
                user: banned.id,
            }),
        )
        .await;
    assert!(refused.contains("banned"), "{refused}");

    world.drain().await;
    world
        .done(
            via,
            Operation::AdminUnban {
                chat: world.group,
                admin: owner,
                user: banned.id,
            },
        )
        .await;
    let change = world.pending_of("chat_member").await.pop().unwrap();
    assert_eq!(
        (
            change["old_chat_member"]["status"].as_str(),
            change["new_chat_member"]["status"].as_str()
        ),
        (Some("kicked"), Some("left"))
    );
    world
        .done(
            via,
            Operation::Join(ChatUser {
                chat: world.group,
                user: banned.id,
            }),
        )
        .await;

    world
        .done(
            via,
            Operation::AdminRestrict(AdminRestrict {
                chat: world.group,
                admin: owner,
                user: muted.id,
                permissions: BTreeMap::new(),
                until_date: None,
            }),
        )
        .await;
    world.drain().await;
    world
        .done(
            via,
            Operation::AdminLift {
                chat: world.group,
                admin: owner,
                user: muted.id,
            },
        )
        .await;
    let change = world.pending_of("chat_member").await.pop().unwrap();
    assert_eq!(change["old_chat_member"]["status"], "restricted");
    assert_eq!(change["new_chat_member"]["status"], "member");
    assert_eq!(change["from"]["id"], owner);
    assert_eq!(world.sandbox.member(world.group, muted.id), Status::Member);
    world.assert_no_violations();
}

async fn a_member_cannot_act_as_an_administrator(via: Via) {
    let world = World::new().await;
    let [rogue, victim] = ["Rog", "Vic"].map(|n| n.to_string());
    let rogue = world.member_of(via, world.group, &rogue).await;
    let victim = world.member_of(via, world.group, &victim).await;
    let refused = world
        .refused(
            via,
            Operation::AdminBan {
                chat: world.group,
                admin: rogue.id,
                user: victim.id,
                until_date: None,
            },
        )
        .await;
    assert!(refused.contains("right to ban"), "{refused}");
    let refused = world
        .refused(
            via,
            Operation::AdminLift {
                chat: world.group,
                admin: world.owner.id,
                user: world.bot.id,
            },
        )
        .await;
    assert!(refused.contains("is an administrator"), "{refused}");
    assert_eq!(world.sandbox.member(world.group, victim.id), Status::Member);
}

async fn an_edited_message_reaches_the_bot_with_its_edit_date(via: Via) {
    let world = World::new().await;
    let author = world.member_of(via, world.group, "Ed").await;
    let other = world.member_of(via, world.group, "Oth").await;
    let sent = world
        .done(via, Operation::Send(say(world.group, author.id, "helo")))
        .await["message_id"]
        .as_i64()
        .unwrap();
    world.drain().await;
    let edit = |user: i64| Operation::Edit {
        chat: world.group,
        message_id: sent,
        user,
        text: "hello".into(),
    };
    let refused = world.refused(via, edit(other.id)).await;
    assert!(refused.contains("can't be edited"), "{refused}");
    world.done(via, edit(author.id)).await;
    let edited = world.pending_of("edited_message").await.pop().unwrap();
    assert_eq!(edited["message_id"], sent);
    assert_eq!(edited["text"], "hello");
    assert!(edited["edit_date"].as_i64().unwrap() >= edited["date"].as_i64().unwrap());
    assert_eq!(edited["from"]["id"], author.id);
    world.assert_no_violations();
}

async fn a_deleted_account_shows_as_deleted_and_cannot_be_written_to(via: Via) {
    let world = World::new().await;
    let user = world.member_of(via, world.group, "Gone").await;
    world
        .done(
            via,
            Operation::SendPrivate {
                bot: world.bot.id,
                user: user.id,
                text: "/start".into(),
            },
        )
        .await;
    world
        .done(via, Operation::DeleteAccount { user: user.id })
        .await;
    let member = world
        .ok(
            "getChatMember",
            json!({ "chat_id": world.group, "user_id": user.id }),
        )
        .await;
    assert_eq!(
        member["status"], "member",
        "a deleted account stays a member"
    );
    assert_eq!(member["user"]["first_name"], "Deleted Account");
    assert!(member["user"].get("username").is_none());
    let reason = world
        .fails(
            "sendMessage",
            json!({ "chat_id": user.id, "text": "are you there?" }),
            403,
        )
        .await;
    assert_eq!(reason, "Forbidden: user is deactivated");
    let refused = world
        .refused(via, Operation::Send(say(world.group, user.id, "boo")))
        .await;
    assert!(refused.contains("deleted"), "{refused}");
    world.assert_no_violations();
}

async fn a_user_who_blocked_the_bot_cannot_be_written_to_until_they_write_again(via: Via) {
    let world = World::new().await;
    let user = world.user("Bly");
    let hello = json!({ "chat_id": user.id, "text": "hello" });
    let reason = world.fails("sendMessage", hello.clone(), 400).await;
    assert_eq!(
        reason, "Bad Request: chat not found",
        "a user the bot never met"
    );
    world
        .done(
            via,
            Operation::Join(ChatUser {
                chat: world.group,
                user: user.id,
            }),
        )
        .await;
    let reason = world.fails("sendMessage", hello.clone(), 403).await;
    assert_eq!(
        reason, "Forbidden: bot can't initiate conversation with a user",
        "a bot writes only to users who wrote to it"
    );
    world
        .done(
            via,
            Operation::SendPrivate {
                bot: world.bot.id,
                user: user.id,
                text: "/start".into(),
            },
        )
        .await;
    world.ok("sendMessage", hello.clone()).await;
    world.want_all().await;
    world
        .done(
            via,
            Operation::BlockBot {
                user: user.id,
                bot: world.bot.id,
            },
        )
        .await;
    let change = world.pending_of("my_chat_member").await.pop().unwrap();
    assert_eq!(change["chat"]["type"], "private");
    assert_eq!(change["from"]["id"], user.id);
    assert_eq!(change["new_chat_member"]["status"], "kicked");
    let reason = world.fails("sendMessage", hello.clone(), 403).await;
    assert_eq!(reason, "Forbidden: bot was blocked by the user");
    world.drain().await;
    world
        .done(
            via,
            Operation::UnblockBot {
                user: user.id,
                bot: world.bot.id,
            },
        )
        .await;
    let change = world.pending_of("my_chat_member").await.pop().unwrap();
    assert_eq!(change["new_chat_member"]["status"], "member");
    world.ok("sendMessage", hello).await;
    world.assert_no_violations();
}

async fn set_member_is_a_silent_fixture_and_promote_is_announced(via: Via) {
    let world = World::new().await;
    let user = world.user("Fix");
    world.want_all().await;
    world
        .done(
            via,
            Operation::SetMember {
                chat: world.group,
                user: user.id,
                status: Status::Member,
            },
        )
        .await;
    assert_eq!(world.sandbox.member(world.group, user.id), Status::Member);
    assert_eq!(world.ok("getUpdates", json!({})).await, json!([]));
    world
        .done(
            via,
            Operation::Demote(ChatUser {
                chat: world.group,
                user: world.bot.id,
            }),
        )
        .await;
    let change = world.pending_of("my_chat_member").await.pop().unwrap();
    assert_eq!(change["from"]["id"], world.owner.id, "the creator acted");
    assert_eq!(change["old_chat_member"]["status"], "administrator");
    assert_eq!(change["new_chat_member"]["status"], "member");
    world.assert_no_violations();
}

/// The first update of `kind` whose payload satisfies `keep`.
fn find(updates: &Value, kind: &str, keep: impl Fn(&Value) -> bool) -> Value {
    updates
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u.get(kind))
        .find(|payload| keep(payload))
        .unwrap_or_else(|| panic!("no {kind} update in {updates}"))
        .clone()
}

fn world_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
