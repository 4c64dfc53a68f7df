//! A channel protected by join requests (issue 20): a channel whose readers must also follow
//! another channel. Channels send no commands, so it is protected through the API's path
//! (`Enforcer::protect_chat`); the bot then needs only `can_invite_users` there, decides every
//! join request to it as it does in a group, and never tries to restrict a reader.

use nezuko::enforce::protect::{ProtectError, Protection};
use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use serde_json::json;

use super::{Guarded, enforce_tests};

enforce_tests!(
    a_protected_channel_approves_subscribers_and_asks_everyone_else,
    a_guard_query_for_a_protected_channel_is_answered,
    protecting_a_channel_names_the_missing_right_and_changes_nothing,
    only_supergroups_and_channels_can_be_protected,
);

/// The rights a channel's administrator bot needs to decide join requests, and no more.
fn invite_only() -> AdminRights {
    AdminRights {
        can_manage_chat: true,
        can_invite_users: true,
        ..AdminRights::default()
    }
}

/// @premium, a channel whose bot holds only `can_invite_users`, protected to require @news.
async fn premium(world: &Guarded) -> (i64, nezuko::db::GroupRow) {
    let premium = world
        .sandbox
        .create_chat(ChatKind::Channel, "Premium", Some("premium"));
    world
        .sandbox
        .set_member(premium, world.owner.id, Status::Creator)
        .unwrap();
    world
        .sandbox
        .promote(premium, world.bot.id, invite_only())
        .unwrap();
    let protection = world
        .enforcer()
        .protect_chat(world.row.id, "@premium", &["@news".into()])
        .await
        .unwrap();
    let Protection::Done { group, channels } = protection else {
        panic!("not protected: {protection:?}");
    };
    assert_eq!(group.chat_type, "channel");
    assert_eq!(group.chat_id, premium);
    assert!(group.enabled);
    assert_eq!(group.policy.0["join_requests"], "approve_subscribers");
    assert_eq!(channels.len(), 1);
    assert_eq!(channels[0].chat_id, world.channel);
    (premium, *group)
}

/// Waits until `user`'s join request to the protected channel `group` is recorded as `outcome`.
async fn wait_outcome(world: &Guarded, group: i64, user: i64, outcome: &str) {
    world.wait_verifications_in(group, user, outcome, 1).await;
}

async fn wait_reader(world: &Guarded, chat: i64, user: i64) {
    world
        .wait_status(chat, user, "a reader", |s| *s == Status::Member)
        .await;
}

async fn a_protected_channel_approves_subscribers_and_asks_everyone_else(world: Guarded) {
    let (premium, group) = premium(&world).await;
    // Its health asks only for what a channel needs: no restricting, no deleting.
    let checked = world.enforcer().check_group_now(group.id).await.unwrap();
    assert_eq!(checked.health, "ok", "{:?}", checked.problems);

    let subscriber = world.user("Sub");
    world.sandbox.join(world.channel, subscriber).unwrap();
    world.sandbox.request_join(premium, subscriber).unwrap();
    wait_reader(&world, premium, subscriber).await;
    wait_outcome(&world, group.id, subscriber, "join_approved").await;

    let other = world.user("Ned");
    world.sandbox.request_join(premium, other).unwrap();
    let message = world
        .wait_bot_message(other, 0, "the message to the requester")
        .await;
    let text = message.text.clone().unwrap_or_default();
    assert!(text.contains("Premium") && text.contains("@news"), "{text}");
    wait_outcome(&world, group.id, other, "join_asked").await;
    assert_eq!(world.sandbox.join_requests(premium).unwrap().len(), 1);
    let data = message.reply_markup.clone().unwrap()["inline_keyboard"][1][0]["callback_data"]
        .as_str()
        .unwrap()
        .to_string();
    world.sandbox.join(world.channel, other).unwrap();
    world
        .sandbox
        .press_button(other, message.message_id, other, &data)
        .unwrap();
    wait_reader(&world, premium, other).await;
    wait_outcome(&world, group.id, other, "join_approved").await;

    // Readers are never restricted (Telegram has no such thing in a channel), nor is anything
    // posted to the channel.
    assert!(
        world
            .calls("restrictChatMember")
            .iter()
            .all(|c| c.params["chat_id"] != json!(premium))
    );
    assert!(world.bot_messages(premium).is_empty());
    world.finish().await;
}

async fn a_guard_query_for_a_protected_channel_is_answered(world: Guarded) {
    let (premium, group) = premium(&world).await;
    world
        .sandbox
        .set_join_guard(premium, Some(world.bot.id))
        .unwrap();
    let user = world.user("Gia");
    world.sandbox.join(world.channel, user).unwrap();
    let query = world.sandbox.request_join(premium, user).unwrap();
    assert!(query.is_some());
    let answer = world.wait_call("answerChatJoinRequestQuery", 0).await;
    assert_eq!(answer.params["result"], "approve");
    assert_eq!(answer.params["chat_join_request_query_id"], json!(query));
    wait_reader(&world, premium, user).await;
    wait_outcome(&world, group.id, user, "join_approved").await;
    world.finish().await;
}

async fn protecting_a_channel_names_the_missing_right_and_changes_nothing(world: Guarded) {
    let vip = world
        .sandbox
        .create_chat(ChatKind::Channel, "VIP", Some("vip"));
    world
        .sandbox
        .set_member(vip, world.owner.id, Status::Creator)
        .unwrap();
    let no_invite = AdminRights {
        can_manage_chat: true,
        can_post_messages: true,
        ..AdminRights::default()
    };
    world.sandbox.promote(vip, world.bot.id, no_invite).unwrap();
    let missing = world
        .enforcer()
        .protect_chat(world.row.id, "@vip", &["@news".into(), "@nowhere".into()])
        .await
        .unwrap();
    let Protection::Missing(problems) = missing else {
        panic!("protected without the right: {missing:?}");
    };
    let fixes: Vec<String> = problems.iter().map(|p| p.english()).collect();
    assert_eq!(fixes.len(), 2, "{fixes:?}");
    assert!(
        fixes[0].contains("Invite users") && fixes[0].contains("@vip"),
        "{fixes:?}"
    );
    assert!(fixes[1].contains("@nowhere"), "{fixes:?}");
    let stored = world
        .db
        .store
        .group_by_chat(world.row.id, vip)
        .await
        .unwrap();
    assert!(stored.is_none(), "nothing stored: {stored:?}");

    // A private channel the bot can make no invite link for would leave requesters no way in.
    let secret = world.sandbox.create_chat(ChatKind::Channel, "Secret", None);
    world
        .sandbox
        .set_member(secret, world.owner.id, Status::Creator)
        .unwrap();
    world
        .sandbox
        .promote(secret, world.bot.id, no_invite)
        .unwrap();
    world
        .sandbox
        .promote(vip, world.bot.id, invite_only())
        .unwrap();
    let linkless = world
        .enforcer()
        .protect_chat(world.row.id, "@vip", &[secret.to_string()])
        .await
        .unwrap();
    let Protection::Missing(problems) = linkless else {
        panic!("protected with a channel no one can join: {linkless:?}");
    };
    let fixes: Vec<String> = problems.iter().map(|p| p.english()).collect();
    assert!(
        fixes.len() == 1 && fixes[0].contains("invite link") && fixes[0].contains("Secret"),
        "{fixes:?}"
    );

    // A channel cannot be its own requirement.
    world
        .sandbox
        .promote(vip, world.bot.id, invite_only())
        .unwrap();
    let itself = world
        .enforcer()
        .protect_chat(world.row.id, &vip.to_string(), &["@vip".into()])
        .await
        .unwrap();
    assert!(matches!(itself, Protection::Missing(_)), "{itself:?}");
    world.finish().await;
}

async fn only_supergroups_and_channels_can_be_protected(world: Guarded) {
    let basic = world.chat(ChatKind::Group, "Basic", None);
    let refused = |chat: String, channels: Vec<String>| {
        let world = &world;
        async move {
            world
                .enforcer()
                .protect_chat(world.row.id, &chat, &channels)
                .await
        }
    };
    let news = vec!["@news".to_string()];
    assert!(matches!(
        refused(basic.to_string(), news.clone()).await,
        Err(ProtectError::NotProtectable(_))
    ));
    assert!(matches!(
        refused("@nobody_here".into(), news.clone()).await,
        Err(ProtectError::Unseen(_))
    ));
    assert!(matches!(
        refused("news channel".into(), news.clone()).await,
        Err(ProtectError::BadAddress(_))
    ));
    assert!(matches!(
        refused("@news".into(), vec!["@a b".into()]).await,
        Err(ProtectError::BadChannel(_))
    ));
    assert!(matches!(
        refused("@readers".into(), Vec::new()).await,
        Err(ProtectError::NoChannels)
    ));
    // A stopped bot cannot ask Telegram anything.
    assert!(matches!(
        world
            .enforcer()
            .protect_chat(world.row.id + 1000, "@readers", &news)
            .await,
        Err(ProtectError::NotHere)
    ));
    world.finish().await;
}
