//! Who is never checked: admins, anonymous admins, linked-channel posts, Telegram's service
//! account, bots, and a per-group allowlist.

use nezuko_sandbox::control::Say;
use nezuko_sandbox::model::AdminRights;
use serde_json::json;

use super::{Guarded, enforce_tests};

enforce_tests!(
    admins_and_anonymous_admins_are_never_checked,
    channel_posts_the_service_account_and_bots_are_never_checked,
    the_allowlist_is_never_checked,
);

async fn admins_and_anonymous_admins_are_never_checked(world: Guarded) {
    let admin = world.user("Ada");
    world.sandbox.join(world.group, admin).unwrap();
    world
        .sandbox
        .promote(world.group, admin, AdminRights::default())
        .unwrap();
    world
        .sandbox
        .send(world.group, admin, "as an admin")
        .unwrap();
    world
        .sandbox
        .send(world.group, world.owner.id, "as the creator")
        .unwrap();
    world
        .sandbox
        .say(&Say {
            sender_chat: Some(world.group),
            ..Say::new(world.group, world.owner.id, "as the group")
        })
        .unwrap();
    world.settle().await;
    assert!(!world.acted_on(admin) && !world.acted_on(world.owner.id));
    assert!(
        world
            .calls("getChatMember")
            .iter()
            .all(|c| c.params["user_id"].as_i64() != Some(admin))
    );
    world.finish().await;
}

async fn channel_posts_the_service_account_and_bots_are_never_checked(world: Guarded) {
    // The group discusses @news: each post arrives as Telegram's automatic forward, sent by the
    // service account as the channel.
    world
        .sandbox
        .link_discussion(world.channel, world.group)
        .unwrap();
    world.settle().await;
    let calls_before = world.sandbox.calls(Some(world.bot.id), None).len();
    world
        .sandbox
        .post(world.channel, "a post from the linked channel")
        .unwrap();
    let other_bot = world.sandbox.create_bot("Helper", "helper_bot");
    world.sandbox.join(world.group, other_bot.id).unwrap();
    world.settle().await;
    let acted: Vec<String> = world.sandbox.calls(Some(world.bot.id), None)[calls_before..]
        .iter()
        .map(|c| c.method.clone())
        .filter(|m| m != "getUpdates")
        .collect();
    assert!(
        acted.is_empty(),
        "no call for a channel post or a bot: {acted:?}"
    );
    world.finish().await;
}

async fn the_allowlist_is_never_checked(world: Guarded) {
    let friend = world.user("Fay");
    world.set_policy(json!({ "allowlist": [friend] })).await;
    world.sandbox.join(world.group, friend).unwrap();
    world.sandbox.send(world.group, friend, "hi").unwrap();
    world.settle().await;
    assert!(!world.acted_on(friend));
    world.finish().await;
}
