//! Every chat kind Telegram has: basic groups (refused, and followed through their upgrade), forum
//! supergroups (answers in the member's topic), and members writing as a channel.

use nezuko::db::NewGroup;
use nezuko_sandbox::control::Say;
use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use serde_json::json;

use super::{Guarded, enforce_tests};

enforce_tests!(
    protect_in_a_basic_group_is_refused_with_the_way_out,
    a_protected_group_follows_its_upgrade_to_a_supergroup,
    warnings_and_command_replies_go_to_the_members_topic,
    a_message_sent_as_another_channel_is_deleted_and_the_group_told_once,
    channel_senders_may_be_allowed_and_the_linked_channel_always_is,
);

async fn protect_in_a_basic_group_is_refused_with_the_way_out(world: Guarded) {
    let basic = world.chat(ChatKind::Group, "Basic", None);
    world.settle().await;
    let sent = world
        .sandbox
        .send(basic, world.owner.id, "/protect @news")
        .unwrap();
    let reply = world
        .wait_bot_text(basic, sent, "the refusal", |_| true)
        .await;
    let text = reply.text.unwrap();
    assert!(text.contains("basic group"), "{text}");
    assert!(text.contains("supergroup"), "{text}");
    assert!(!text.contains("Protected"), "{text}");
    assert!(
        world
            .db
            .store
            .group_by_chat(world.row.id, basic)
            .await
            .unwrap()
            .is_none(),
        "nothing is stored for a group that cannot be protected"
    );
    world.finish().await;
}

async fn a_protected_group_follows_its_upgrade_to_a_supergroup(world: Guarded) {
    let basic = world.chat(ChatKind::Group, "Basic", None);
    // A record of the basic group (the original platform protected such groups): its policy and
    // channel must follow the upgrade.
    let store = &world.db.store;
    let group = store
        .upsert_group(&NewGroup {
            bot_instance_id: world.row.id,
            chat_id: basic,
            title: "Basic".into(),
            username: None,
        })
        .await
        .unwrap();
    let news = world.group_row().await;
    let channel_id = store.channels_of_group(news.id).await.unwrap()[0].id;
    store.link_channel(group.id, channel_id).await.unwrap();
    store
        .set_group_policy(group.id, &json!({ "welcome": true }))
        .await
        .unwrap();
    world.settle().await;
    let before = world.enforcer().check_group_now(group.id).await.unwrap();
    assert_eq!(before.health, "degraded", "{before:?}");
    assert!(before.problems[0].contains("basic group"), "{before:?}");
    let supergroup = world.sandbox.upgrade_group(basic, world.owner.id).unwrap();
    let deadline = tokio::time::Instant::now() + super::DEADLINE;
    let moved = loop {
        if let Some(moved) = store.group_by_chat(world.row.id, supergroup).await.unwrap() {
            break moved;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the record did not move to the supergroup"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(moved.id, group.id, "the same record, not a new one");
    // The supergroup's rights are checked afresh: "a basic group" no longer applies.
    let deadline = tokio::time::Instant::now() + super::DEADLINE;
    while store.group(group.id).await.unwrap().health != "ok" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "health still {:?}",
            store.group(group.id).await.unwrap().health_detail
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(moved.policy.0, json!({ "welcome": true }));
    assert_eq!(store.channels_of_group(moved.id).await.unwrap().len(), 1);
    assert!(
        store
            .group_by_chat(world.row.id, basic)
            .await
            .unwrap()
            .is_none()
    );
    let user = world.user("Newt");
    world.sandbox.join(supergroup, user).unwrap();
    world
        .wait_status(supergroup, user, "the newcomer is restricted", |s| {
            matches!(s, Status::Restricted { .. })
        })
        .await;
    world.finish().await;
}

async fn warnings_and_command_replies_go_to_the_members_topic(world: Guarded) {
    let forum = world.sandbox.create_forum("Forum", None);
    world
        .sandbox
        .set_member(forum, world.owner.id, Status::Creator)
        .unwrap();
    world
        .sandbox
        .promote(forum, world.bot.id, AdminRights::force_subscribe())
        .unwrap();
    let topic = world
        .sandbox
        .create_topic(forum, world.owner.id, "Chat")
        .unwrap();
    world.settle().await;
    let command = world
        .sandbox
        .say(&Say {
            thread: Some(topic),
            ..Say::new(forum, world.owner.id, "/protect @news")
        })
        .unwrap();
    let reply = world
        .wait_bot_text(forum, command, "the reply", |t| t.contains("Protected"))
        .await;
    assert_eq!(
        reply.thread,
        Some(topic),
        "the reply is in the command's topic"
    );
    let user = world.sandbox.create_user("Tiamat", None).id;
    world.sandbox.join(forum, user).unwrap();
    world
        .wait_status(forum, user, "the newcomer is restricted", |s| {
            matches!(s, Status::Restricted { .. })
        })
        .await;
    let join_warning = warning_naming(&world, forum, "Tiamat").await;
    assert_eq!(join_warning.thread, None, "joins are warned in General");
    let writer = world.sandbox.create_user("Wesley", None).id;
    world
        .sandbox
        .set_member(forum, writer, Status::Member)
        .unwrap();
    world
        .sandbox
        .say(&Say {
            thread: Some(topic),
            ..Say::new(forum, writer, "hello")
        })
        .unwrap();
    let warning = warning_naming(&world, forum, "Wesley").await;
    assert_eq!(warning.thread, Some(topic), "warned where they wrote");
    world.finish().await;
}

/// The bot's warning naming a member.
async fn warning_naming(
    world: &Guarded,
    chat: i64,
    name: &str,
) -> nezuko_sandbox::control::TranscriptEntry {
    let bot = world.bot.id;
    world
        .sandbox
        .wait_until(super::DEADLINE, "the warning", |s| {
            s.transcript(chat)
                .into_iter()
                .find(|m| m.from == bot && m.text.as_deref().is_some_and(|t| t.contains(name)))
        })
        .await
        .unwrap()
}

async fn a_message_sent_as_another_channel_is_deleted_and_the_group_told_once(world: Guarded) {
    let member = world.member("Cas", true);
    let own = world.channel("Cas's channel", Some("cas_channel"));
    world
        .sandbox
        .promote(own, member, AdminRights::default())
        .unwrap();
    world.settle().await;
    let as_channel = |text: &str| Say {
        sender_chat: Some(own),
        ..Say::new(world.group, member, text)
    };
    let first = world.sandbox.say(&as_channel("a way around")).unwrap();
    world
        .wait_deleted(world.group, first, "the message sent as a channel")
        .await;
    let notice = world
        .wait_bot_text(world.group, first, "the notice", |t| {
            t.contains("as a channel")
        })
        .await;
    assert!(notice.text.unwrap().contains("@cas_channel"));
    let second = world.sandbox.say(&as_channel("again")).unwrap();
    world
        .wait_deleted(world.group, second, "the second one")
        .await;
    world.settle().await;
    let notices = world
        .bot_messages(world.group)
        .iter()
        .filter(|m| {
            m.text
                .as_deref()
                .is_some_and(|t| t.contains("as a channel"))
        })
        .count();
    assert_eq!(notices, 1, "the group is told once");
    world.finish().await;
}

async fn channel_senders_may_be_allowed_and_the_linked_channel_always_is(world: Guarded) {
    world
        .sandbox
        .link_discussion(world.channel, world.group)
        .unwrap();
    world.settle().await;
    // The channel's own admin comments as the channel in its discussion group: never checked.
    let from_linked = world
        .sandbox
        .say(&Say {
            sender_chat: Some(world.channel),
            ..Say::new(world.group, world.owner.id, "from the channel itself")
        })
        .unwrap();
    world
        .set_policy(json!({ "channel_senders": "allow" }))
        .await;
    let member = world.member("Ali", true);
    let own = world.channel("Ali's", None);
    world
        .sandbox
        .promote(own, member, AdminRights::default())
        .unwrap();
    let allowed = world
        .sandbox
        .say(&Say {
            sender_chat: Some(own),
            ..Say::new(world.group, member, "allowed here")
        })
        .unwrap();
    world.settle().await;
    let deleted: Vec<i64> = world
        .sandbox
        .transcript(world.group)
        .into_iter()
        .filter(|m| m.deleted)
        .map(|m| m.message_id)
        .collect();
    assert!(
        !deleted.contains(&from_linked),
        "the linked channel's own message: {deleted:?}"
    );
    assert!(
        !deleted.contains(&allowed),
        "allowed by the policy: {deleted:?}"
    );
    world.finish().await;
}
