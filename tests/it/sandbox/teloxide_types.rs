//! Every reply the sandbox gives deserializes into teloxide's types: each method called through a
//! teloxide `Bot`, and every member status read back as a `ChatMember`.

use teloxide::prelude::*;
use teloxide::types::{
    BotCommand, ChatMemberKind, ChatPermissions, InlineKeyboardButton, InlineKeyboardMarkup,
    MessageId, UserId,
};

use nezuko_sandbox::model::{AdminRights, Status};

use super::World;

fn teloxide_bot(world: &World) -> Bot {
    Bot::new(&world.bot.token).set_api_url(world.running.url().parse().unwrap())
}

#[tokio::test]
async fn every_simulated_method_answers_in_teloxides_types() {
    let world = World::new().await;
    let bot = teloxide_bot(&world);
    let (group, channel) = (ChatId(world.group), ChatId(world.channel));
    let user = world.user("Tia");
    world.sandbox.join(world.group, user.id).unwrap();
    let uid = UserId(user.id as u64);

    let me = bot.get_me().await.unwrap();
    assert_eq!(me.id.0 as i64, world.bot.id);
    assert!(bot.get_webhook_info().await.unwrap().url.is_none());
    bot.delete_webhook().await.unwrap();
    assert!(!bot.get_updates().await.unwrap().is_empty());

    let chat = bot.get_chat(channel).await.unwrap();
    assert_eq!(chat.id, channel);
    assert_eq!(bot.get_chat_member_count(group).await.unwrap(), 3);
    assert_eq!(bot.get_chat_administrators(group).await.unwrap().len(), 2);

    let keyboard =
        InlineKeyboardMarkup::new([[InlineKeyboardButton::callback("I have joined", "check")]]);
    let sent = bot
        .send_message(group, "<b>Join</b> first")
        .parse_mode(teloxide::types::ParseMode::Html)
        .reply_markup(keyboard)
        .await
        .unwrap();
    assert_eq!(sent.text(), Some("Join first"));
    let edited = bot
        .edit_message_text(group, sent.id, "Join first, please")
        .await
        .unwrap();
    assert_eq!(edited.text(), Some("Join first, please"));
    let callback = world
        .sandbox
        .press_button(world.group, sent.id.0 as i64, user.id, "check");
    assert!(
        callback.is_err(),
        "editing without a markup removed the keyboard"
    );
    bot.delete_message(group, sent.id).await.unwrap();
    let other = bot.send_message(group, "temporary").await.unwrap();
    bot.delete_messages(group, vec![other.id, MessageId(99_999)])
        .await
        .unwrap();

    bot.restrict_chat_member(group, uid, ChatPermissions::empty())
        .await
        .unwrap();
    bot.restrict_chat_member(group, uid, ChatPermissions::all())
        .await
        .unwrap();
    bot.ban_chat_member(group, uid).await.unwrap();
    bot.unban_chat_member(group, uid)
        .only_if_banned(true)
        .await
        .unwrap();

    let link = bot
        .create_chat_invite_link(channel)
        .creates_join_request(true)
        .await
        .unwrap();
    assert!(link.creates_join_request);
    world.sandbox.request_join(world.channel, user.id).unwrap();
    bot.approve_chat_join_request(channel, uid).await.unwrap();
    world.sandbox.leave(world.channel, user.id).unwrap();
    world.sandbox.request_join(world.channel, user.id).unwrap();
    bot.decline_chat_join_request(channel, uid).await.unwrap();

    bot.set_my_commands([BotCommand::new("start", "How this bot works")])
        .await
        .unwrap();
    assert_eq!(bot.get_my_commands().await.unwrap()[0].command, "start");

    world
        .sandbox
        .send_private(world.bot.id, user.id, "/start")
        .unwrap();
    let updates = bot.get_updates().await.unwrap();
    let button_message = bot
        .send_message(ChatId(user.id), "Menu")
        .reply_markup(InlineKeyboardMarkup::new([[
            InlineKeyboardButton::callback("Help", "help"),
        ]]))
        .await
        .unwrap();
    let query = world
        .sandbox
        .press_button(user.id, button_message.id.0 as i64, user.id, "help")
        .unwrap();
    bot.answer_callback_query(teloxide::types::CallbackQueryId(query))
        .text("Here it is")
        .await
        .unwrap();
    assert!(!updates.is_empty());

    bot.leave_chat(group).await.unwrap();
    world.assert_no_violations();
}

#[tokio::test]
async fn all_six_statuses_deserialize_as_chat_members() {
    let world = World::new().await;
    let bot = teloxide_bot(&world);
    let [admin, member, restricted, left, kicked] =
        ["A", "M", "R", "L", "K"].map(|n| world.user(n));
    let sandbox = &world.sandbox;
    sandbox
        .promote(
            world.group,
            admin.id,
            AdminRights {
                can_invite_users: true,
                ..Default::default()
            },
        )
        .unwrap();
    sandbox.join(world.group, member.id).unwrap();
    sandbox.join(world.group, restricted.id).unwrap();
    bot.restrict_chat_member(
        ChatId(world.group),
        UserId(restricted.id as u64),
        ChatPermissions::empty(),
    )
    .await
    .unwrap();
    sandbox
        .set_member(world.group, left.id, Status::Left)
        .unwrap();
    sandbox.join(world.group, kicked.id).unwrap();
    bot.ban_chat_member(ChatId(world.group), UserId(kicked.id as u64))
        .await
        .unwrap();

    let kind = |user: i64| {
        let bot = bot.clone();
        async move {
            bot.get_chat_member(ChatId(world.group), UserId(user as u64))
                .await
                .unwrap()
                .kind
        }
    };
    assert!(matches!(
        kind(world.owner.id).await,
        ChatMemberKind::Owner(_)
    ));
    assert!(matches!(kind(admin.id).await, ChatMemberKind::Administrator(a) if a.can_invite_users));
    assert!(matches!(kind(member.id).await, ChatMemberKind::Member(_)));
    assert!(
        matches!(kind(restricted.id).await, ChatMemberKind::Restricted(r) if r.is_member && !r.can_send_messages)
    );
    assert!(matches!(kind(left.id).await, ChatMemberKind::Left));
    assert!(matches!(kind(kicked.id).await, ChatMemberKind::Banned(_)));
    world.assert_no_violations();
}
