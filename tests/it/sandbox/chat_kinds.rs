//! Every kind of chat Telegram has, each through the Rust control API and over HTTP: forums with
//! topics, a channel's discussion group and its automatic forwards, forwarded posts, basic groups
//! and their upgrade to a supergroup.

use nezuko_sandbox::control::{ChatUser, Forward, NewChat, Say};
use nezuko_sandbox::faults::RateLimits;
use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use nezuko_sandbox::{Operation, SandboxConfig};
use serde_json::json;

use super::{Via, World, both_ways, guard_rights};

both_ways!(
    a_forum_keeps_messages_service_messages_and_replies_in_their_topics,
    a_missing_or_deleted_topic_refuses_messages_as_telegram_does,
    a_channel_post_arrives_in_its_discussion_group_as_an_automatic_forward,
    a_forwarded_channel_post_carries_its_origin,
    a_basic_group_cannot_restrict_or_unban,
    an_upgraded_group_moves_and_the_old_id_answers_where_it_went,
);

async fn forum(world: &World, via: Via) -> i64 {
    let forum = world
        .done(
            via,
            Operation::CreateChat(NewChat {
                kind: ChatKind::Supergroup,
                title: "Forum".into(),
                username: None,
                is_forum: true,
            }),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    world
        .done(
            via,
            Operation::SetMember {
                chat: forum,
                user: world.owner.id,
                status: Status::Creator,
            },
        )
        .await;
    world
        .done(
            via,
            Operation::Promote {
                chat: forum,
                user: world.bot.id,
                rights: guard_rights(),
            },
        )
        .await;
    forum
}

async fn topic(world: &World, via: Via, chat: i64, name: &str) -> i64 {
    world
        .done(
            via,
            Operation::CreateTopic {
                chat,
                user: world.owner.id,
                name: name.into(),
            },
        )
        .await["message_thread_id"]
        .as_i64()
        .unwrap()
}

async fn a_forum_keeps_messages_service_messages_and_replies_in_their_topics(via: Via) {
    let world = World::new().await;
    let forum = forum(&world, via).await;
    world.drain().await;
    let thread = topic(&world, via, forum, "Rules").await;
    let created = world.pending_of("message").await.pop().unwrap();
    assert_eq!(created["forum_topic_created"]["name"], "Rules");
    assert_eq!(created["message_thread_id"], thread);
    assert_eq!(created["message_id"], thread);
    assert_eq!(created["chat"]["is_forum"], true);
    world.drain().await;

    let user = world.member_of(via, forum, "Top").await;
    let joined = world.pending_of("message").await.pop().unwrap();
    assert!(joined.get("new_chat_members").is_some());
    assert!(
        joined.get("message_thread_id").is_none(),
        "service messages go to General"
    );
    world.drain().await;
    world
        .done(
            via,
            Operation::Send(Say {
                thread: Some(thread),
                ..Say::new(forum, user.id, "in the topic")
            }),
        )
        .await;
    let message = world.pending_of("message").await.pop().unwrap();
    assert_eq!(message["message_thread_id"], thread);
    assert_eq!(message["is_topic_message"], true);
    assert_eq!(
        message["reply_to_message"]["message_id"], thread,
        "a topic's messages implicitly answer its first message"
    );

    let reply = world
        .ok(
            "sendMessage",
            json!({ "chat_id": forum, "text": "noted", "message_thread_id": thread }),
        )
        .await;
    assert_eq!(reply["message_thread_id"], thread);
    let answer = world
        .ok(
            "sendMessage",
            json!({ "chat_id": forum, "text": "also noted",
                    "reply_parameters": { "message_id": message["message_id"] } }),
        )
        .await;
    assert_eq!(
        answer["message_thread_id"], thread,
        "a reply lands in the topic of the message it answers"
    );
    let general = world
        .ok(
            "sendMessage",
            json!({ "chat_id": forum, "text": "general" }),
        )
        .await;
    assert!(general.get("message_thread_id").is_none());
    let transcript = world.sandbox.transcript(forum);
    let threads: Vec<Option<i64>> = transcript.iter().map(|m| m.thread).collect();
    let (bot_joined, user_joined) = (None, None);
    assert_eq!(
        threads,
        [
            bot_joined,
            Some(thread),
            user_joined,
            Some(thread),
            Some(thread),
            Some(thread),
            None
        ]
    );
    world.assert_no_violations();
}

async fn a_missing_or_deleted_topic_refuses_messages_as_telegram_does(via: Via) {
    // Several messages to one chat within a second: without flood limits, to see each answer.
    let world = World::with_config(SandboxConfig {
        rate_limits: RateLimits {
            enabled: false,
            ..RateLimits::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let forum = forum(&world, via).await;
    let thread = topic(&world, via, forum, "Temporary").await;
    let send = |thread| json!({ "chat_id": forum, "text": "hi", "message_thread_id": thread });
    world.ok("sendMessage", send(thread)).await;
    for missing in [thread + 100, 1] {
        assert_eq!(
            world.fails("sendMessage", send(missing), 400).await,
            "Bad Request: message thread not found",
            "topic {missing}"
        );
    }
    world
        .done(
            via,
            Operation::DeleteTopic {
                chat: forum,
                thread,
            },
        )
        .await;
    assert_eq!(
        world.fails("sendMessage", send(thread), 400).await,
        "Bad Request: message thread not found"
    );
    let user = world.member_of(via, forum, "Late").await;
    let refused = world
        .refused(
            via,
            Operation::Send(Say {
                thread: Some(thread),
                ..Say::new(forum, user.id, "anyone?")
            }),
        )
        .await;
    assert!(refused.contains("message thread not found"), "{refused}");
    let outside = world
        .refused(
            via,
            Operation::Send(Say {
                thread: Some(thread),
                ..Say::new(world.group, world.owner.id, "not a forum")
            }),
        )
        .await;
    assert!(outside.contains("no topics"), "{outside}");
    world.assert_no_violations();
}

async fn a_channel_post_arrives_in_its_discussion_group_as_an_automatic_forward(via: Via) {
    let world = World::new().await;
    world
        .done(
            via,
            Operation::LinkDiscussion {
                channel: world.channel,
                group: world.group,
            },
        )
        .await;
    let info = world.ok("getChat", json!({ "chat_id": world.group })).await;
    assert_eq!(info["linked_chat_id"], world.channel);
    world.drain().await;
    let post = world
        .done(
            via,
            Operation::Post {
                chat: world.channel,
                text: "New issue out".into(),
            },
        )
        .await["message_id"]
        .as_i64()
        .unwrap();
    let posted = world.pending_of("channel_post").await.pop().unwrap();
    assert_eq!(posted["sender_chat"]["id"], world.channel);
    assert!(posted.get("from").is_none());
    let forward = world.pending_of("message").await.pop().unwrap();
    assert_eq!(forward["chat"]["id"], world.group);
    assert_eq!(forward["is_automatic_forward"], true);
    assert_eq!(forward["from"]["id"], 777_000, "Telegram's service account");
    assert_eq!(forward["sender_chat"]["id"], world.channel);
    assert_eq!(forward["forward_origin"]["type"], "channel");
    assert_eq!(forward["forward_origin"]["chat"]["id"], world.channel);
    assert_eq!(forward["forward_origin"]["message_id"], post);
    assert_eq!(forward["text"], "New issue out");
    world.assert_no_violations();
}

async fn a_forwarded_channel_post_carries_its_origin(via: Via) {
    let world = World::new().await;
    let post = world.sandbox.post(world.channel, "worth sharing").unwrap();
    let user = world.member_of(via, world.group, "Fwd").await;
    world.drain().await;
    world
        .done(
            via,
            Operation::Forward(Forward {
                chat: world.group,
                user: user.id,
                from_chat: world.channel,
                message_id: post,
                thread: None,
            }),
        )
        .await;
    let message = world.pending_of("message").await.pop().unwrap();
    assert_eq!(message["from"]["id"], user.id);
    assert_eq!(message["forward_origin"]["type"], "channel");
    assert_eq!(message["forward_origin"]["message_id"], post);
    assert!(message.get("is_automatic_forward").is_none());
    assert_eq!(message["text"], "worth sharing");
    world.assert_no_violations();
}

async fn a_basic_group_cannot_restrict_or_unban(via: Via) {
    let world = World::new().await;
    let basic = basic_group(&world, via).await;
    let user = world.member_of(via, basic, "Bas").await;
    let muted = json!({ "chat_id": basic, "user_id": user.id, "permissions": { "can_send_messages": false } });
    assert_eq!(
        world.fails("restrictChatMember", muted, 400).await,
        "Bad Request: method is available only for supergroups"
    );
    let refused = world
        .refused(
            via,
            Operation::AdminRestrict(nezuko_sandbox::control::AdminRestrict {
                chat: basic,
                admin: world.owner.id,
                user: user.id,
                permissions: Default::default(),
                until_date: None,
            }),
        )
        .await;
    assert!(refused.contains("only for supergroups"), "{refused}");
    world
        .ok(
            "banChatMember",
            json!({ "chat_id": basic, "user_id": user.id }),
        )
        .await;
    assert_eq!(
        world
            .fails(
                "unbanChatMember",
                json!({ "chat_id": basic, "user_id": user.id }),
                400
            )
            .await,
        "Bad Request: method is available for supergroup and channel chats only"
    );
    let member = world
        .ok(
            "getChatMember",
            json!({ "chat_id": basic, "user_id": world.bot.id }),
        )
        .await;
    assert_eq!(member["status"], "administrator");
    assert!(member.get("can_manage_topics").is_none(), "{member}");
    assert!(member.get("can_post_messages").is_none(), "{member}");
    assert_eq!(member["can_manage_tags"], false);
    assert_eq!(
        world.ok("getChat", json!({ "chat_id": basic })).await["type"],
        "group"
    );
    world.assert_no_violations();
}

async fn an_upgraded_group_moves_and_the_old_id_answers_where_it_went(via: Via) {
    let world = World::new().await;
    let basic = basic_group(&world, via).await;
    let user = world.member_of(via, basic, "Upg").await;
    world.drain().await;
    let upgraded = world
        .done(
            via,
            Operation::UpgradeGroup(ChatUser {
                chat: basic,
                user: world.owner.id,
            }),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    assert!(upgraded < -1_000_000_000_000, "a supergroup id: {upgraded}");
    let messages = world.pending_of("message").await;
    let farewell = messages.iter().find(|m| m["chat"]["id"] == basic).unwrap();
    assert_eq!(farewell["migrate_to_chat_id"], upgraded);
    let welcome = messages
        .iter()
        .find(|m| m["chat"]["id"] == upgraded)
        .unwrap();
    assert_eq!(welcome["migrate_from_chat_id"], basic);
    assert_eq!(welcome["chat"]["type"], "supergroup");

    let (status, body) = world
        .call(
            "sendMessage",
            json!({ "chat_id": basic, "text": "still here?" }),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["description"],
        "Bad Request: group chat was upgraded to a supergroup chat"
    );
    assert_eq!(body["parameters"]["migrate_to_chat_id"], upgraded);
    assert_eq!(
        world.ok("getChat", json!({ "chat_id": basic })).await["type"],
        "group",
        "the old chat can still be read"
    );
    assert_eq!(world.sandbox.member(upgraded, user.id), Status::Member);
    assert!(world.sandbox.member(upgraded, world.bot.id).is_admin());
    world
        .ok(
            "restrictChatMember",
            json!({ "chat_id": upgraded, "user_id": user.id, "permissions": { "can_send_messages": false } }),
        )
        .await;
    let refused = world
        .refused(via, Operation::Send(Say::new(basic, user.id, "hello?")))
        .await;
    assert!(refused.contains("upgraded"), "{refused}");
    world.assert_no_violations();
}

/// A basic group with the owner as creator and the bot as an administrator.
async fn basic_group(world: &World, via: Via) -> i64 {
    let basic = world
        .done(
            via,
            Operation::CreateChat(NewChat {
                kind: ChatKind::Group,
                title: "Basic".into(),
                username: None,
                is_forum: false,
            }),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    assert!(basic > -1_000_000_000, "a basic group's id: {basic}");
    world
        .done(
            via,
            Operation::SetMember {
                chat: basic,
                user: world.owner.id,
                status: Status::Creator,
            },
        )
        .await;
    world
        .done(
            via,
            Operation::Promote {
                chat: basic,
                user: world.bot.id,
                rights: AdminRights::force_subscribe(),
            },
        )
        .await;
    basic
}
