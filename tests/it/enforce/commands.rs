//! Commands: private /start and /help with their menu; /protect, /unprotect, /status, /settings.

use nezuko_sandbox::control::{Forward, Say};
use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use serde_json::json;

use super::{DEADLINE, Guarded, buttons, enforce_tests};

enforce_tests!(
    start_in_private_shows_the_menu_and_its_pages,
    protect_takes_several_channels_and_status_lists_them,
    protect_names_exactly_what_is_missing,
    a_private_channel_is_protected_by_replying_to_a_forwarded_post,
    a_private_channel_is_protected_by_its_id,
    unprotect_really_stops_and_protect_works_again,
    members_who_are_not_admins_cannot_use_group_commands,
    the_settings_menu_changes_the_policy_for_admins_only,
    replies_to_commands_are_deleted_after_a_delay,
);

async fn start_in_private_shows_the_menu_and_its_pages(world: Guarded) {
    let user = world.user("Pat");
    world
        .sandbox
        .send_private(world.bot.id, user, "/start")
        .unwrap();
    let bot = world.bot.id;
    let menu = world
        .sandbox
        .wait_until(DEADLINE, "the menu", |s| {
            s.transcript(user)
                .into_iter()
                .find(|m| m.from == bot && m.reply_markup.is_some())
        })
        .await
        .unwrap();
    assert!(menu.text.clone().unwrap().contains("/protect @yourchannel"));
    let markup = menu.reply_markup.clone().unwrap();
    let add = &markup["inline_keyboard"][1][0]["url"];
    assert_eq!(add, "https://t.me/guard_bot?startgroup=true");
    let id = world
        .sandbox
        .press_button(user, menu.message_id, user, "nz:h:setup:en")
        .unwrap();
    world
        .sandbox
        .wait_until(DEADLINE, "answered", |s| s.callback_answer(&id))
        .await
        .unwrap();
    let page = world
        .sandbox
        .transcript(user)
        .into_iter()
        .find(|m| m.message_id == menu.message_id)
        .unwrap();
    assert!(page.edited && page.text.unwrap().contains("Setup"));
    world
        .sandbox
        .send_private(world.bot.id, user, "/help")
        .unwrap();
    world
        .sandbox
        .wait_until(DEADLINE, "the help", |s| {
            (s.transcript(user).iter().filter(|m| m.from == bot).count() == 2).then_some(())
        })
        .await
        .unwrap();
    world.finish().await;
}

async fn protect_takes_several_channels_and_status_lists_them(world: Guarded) {
    world.channel("Sports", Some("sports"));
    let reply = world.protect("/protect @news @sports").await;
    assert!(reply.text.unwrap().contains("@news, @sports"));
    let status = world.protect("/status").await;
    let text = status.text.unwrap();
    assert!(
        text.contains("@news") && text.contains("@sports") && text.contains("restrict"),
        "{text}"
    );
    // Both are required now.
    let user = world.user("Two");
    world.sandbox.join(world.channel, user).unwrap();
    world.sandbox.join(world.group, user).unwrap();
    let before = world.bot_messages(world.group).len();
    world.wait_restricted(user).await;
    let warning = world
        .wait_bot_message(world.group, before, "the warning")
        .await;
    assert!(warning.text.unwrap().contains("@sports"));
    world.finish().await;
}

async fn protect_names_exactly_what_is_missing(world: Guarded) {
    let rights = AdminRights {
        can_delete_messages: false,
        ..AdminRights::force_subscribe()
    };
    world
        .sandbox
        .promote(world.group, world.bot.id, rights)
        .unwrap();
    let second = world
        .sandbox
        .create_chat(ChatKind::Channel, "Sports", Some("sports"));
    world
        .sandbox
        .set_member(second, world.owner.id, Status::Creator)
        .unwrap();
    world
        .sandbox
        .set_member(second, world.bot.id, Status::Member)
        .unwrap();
    let reply = world.protect("/protect @news @sports").await;
    let text = reply.text.unwrap();
    assert!(text.contains("I cannot protect"), "{text}");
    assert!(text.contains("delete messages"), "{text}");
    assert!(!text.contains("restrict members"), "{text}");
    assert!(text.contains("administrator of @sports"), "{text}");
    assert!(!text.contains("@news"), "{text}");
    world.finish().await;
}

async fn a_private_channel_is_protected_by_replying_to_a_forwarded_post(world: Guarded) {
    let private = world.channel("Secret club", None);
    let post = world.sandbox.post(private, "members only").unwrap();
    let forwarded = world
        .sandbox
        .forward(&Forward {
            chat: world.group,
            user: world.owner.id,
            from_chat: private,
            message_id: post,
            thread: None,
        })
        .unwrap();
    let before = world.bot_messages(world.group).len();
    world
        .sandbox
        .say(&Say {
            reply_to: Some(forwarded),
            ..Say::new(world.group, world.owner.id, "/protect")
        })
        .unwrap();
    let reply = world
        .wait_bot_message(world.group, before, "the reply")
        .await;
    assert!(reply.text.unwrap().contains("Secret club"));
    let user = world.member("Pia", false);
    world.wait_restricted(user).await;
    let warning = world
        .wait_bot_message(world.group, before + 1, "the warning")
        .await;
    assert!(warning.text.clone().unwrap().contains("Secret club"));
    let urls = buttons(&warning).1;
    assert_eq!(urls.len(), 1);
    assert!(
        urls[0].starts_with("https://t.me/+"),
        "an invite link: {urls:?}"
    );
    world.finish().await;
}

async fn a_private_channel_is_protected_by_its_id(world: Guarded) {
    let private = world.channel("Backstage", None);
    let reply = world.protect(&format!("/protect {private}")).await;
    assert!(reply.text.unwrap().contains("Backstage"));
    let channels = world
        .db
        .store
        .channels_of_group(world.group_row().await.id)
        .await
        .unwrap();
    assert_eq!(channels.len(), 1);
    assert!(channels[0].is_private && channels[0].invite_link.is_some());
    world.finish().await;
}

async fn unprotect_really_stops_and_protect_works_again(world: Guarded) {
    let muted = world.member("Mia", false);
    world.wait_restricted(muted).await;
    let reply = world.protect("/unprotect").await;
    assert!(reply.text.unwrap().contains("Protection is off"));
    world.wait_free(muted).await;
    let user = world.member("Free", false);
    world
        .sandbox
        .send(world.group, user, "no rules now")
        .unwrap();
    world.settle().await;
    assert!(!world.acted_on(user));
    let reply = world.protect("/protect @news").await;
    assert!(reply.text.unwrap().contains("Protected"));
    world.sandbox.send(world.group, user, "and now?").unwrap();
    world.wait_restricted(user).await;
    world.finish().await;
}

async fn members_who_are_not_admins_cannot_use_group_commands(world: Guarded) {
    let user = world.member("Nob", true);
    world.settle().await;
    let sent = world.sandbox.send(world.group, user, "/unprotect").unwrap();
    let reply = world
        .wait_bot_text(world.group, sent, "the refusal", |_| true)
        .await;
    assert!(reply.text.unwrap().contains("Only group administrators"));
    assert!(world.group_row().await.enabled, "still protected");
    world.finish().await;
}

async fn the_settings_menu_changes_the_policy_for_admins_only(world: Guarded) {
    let menu = world.protect("/settings").await;
    let markup = menu.reply_markup.clone().unwrap();
    assert_eq!(markup["inline_keyboard"][0][0]["text"], "Action: restrict");
    let member = world.member("Mel", true);
    world.settle().await;
    let refused = world.press(menu.message_id, member, "nz:s:action").await;
    assert_eq!(refused["show_alert"], true);
    assert_eq!(world.group_row().await.policy.0, json!({}));
    world
        .press(menu.message_id, world.owner.id, "nz:s:action")
        .await;
    assert_eq!(world.group_row().await.policy.0["action"], "kick");
    let edited = world
        .sandbox
        .transcript(world.group)
        .into_iter()
        .find(|m| m.message_id == menu.message_id)
        .unwrap();
    assert_eq!(
        edited.reply_markup.unwrap()["inline_keyboard"][0][0]["text"],
        "Action: kick"
    );
    let user = world.member("Kay", false);
    world
        .wait_status(world.group, user, "kicked under the new policy", |s| {
            *s == Status::Left
        })
        .await;
    world.finish().await;
}

async fn replies_to_commands_are_deleted_after_a_delay(world: Guarded) {
    world.set_policy(json!({ "reply_ttl_s": 1 })).await;
    let reply = world.protect("/status").await;
    let group = world.group;
    world
        .wait_deleted(group, reply.message_id, "the reply is deleted")
        .await;
    let owner = world.owner.id;
    world
        .sandbox
        .wait_until(DEADLINE, "the command is deleted too", |s| {
            s.transcript(group)
                .into_iter()
                .find(|m| m.from == owner && m.text.as_deref() == Some("/status") && m.deleted)
        })
        .await
        .unwrap();
    world.finish().await;
}
