//! A real teloxide bot, pointed at the sandbox with `set_api_url`, runs a whole force-subscribe story:
//! a newcomer joins, is restricted and warned with a button, joins the channel, presses the button
//! and is unrestricted.

use teloxide::dispatching::{Dispatcher, UpdateFilterExt};
use teloxide::dptree;
use teloxide::prelude::*;
use teloxide::types::{ChatPermissions, InlineKeyboardButton, InlineKeyboardMarkup};

use nezuko_sandbox::model::Status;

use super::{DEADLINE, World};

#[derive(Clone)]
struct Channel(ChatId);

async fn on_message(bot: Bot, message: Message, channel: Channel) -> ResponseResult<()> {
    for user in message.new_chat_members().unwrap_or_default() {
        let member = bot.get_chat_member(channel.0, user.id).await?;
        if member.is_present() {
            continue;
        }
        bot.restrict_chat_member(message.chat.id, user.id, ChatPermissions::empty())
            .await?;
        let keyboard = InlineKeyboardMarkup::new([[
            InlineKeyboardButton::url("Join @news", "https://t.me/news".parse().unwrap()),
            InlineKeyboardButton::callback("I have joined", format!("check:{}", user.id)),
        ]]);
        bot.send_message(
            message.chat.id,
            format!("{}, join the channel first.", user.first_name),
        )
        .reply_markup(keyboard)
        .await?;
    }
    Ok(())
}

async fn on_button(bot: Bot, query: CallbackQuery, channel: Channel) -> ResponseResult<()> {
    let owner = query
        .data
        .as_deref()
        .and_then(|d| d.strip_prefix("check:"))
        .unwrap_or_default();
    if owner != query.from.id.to_string() {
        bot.answer_callback_query(query.id)
            .text("This button is not for you.")
            .show_alert(true)
            .await?;
        return Ok(());
    }
    let Some(message) = query.regular_message().cloned() else {
        return Ok(());
    };
    if bot
        .get_chat_member(channel.0, query.from.id)
        .await?
        .is_present()
    {
        bot.restrict_chat_member(message.chat.id, query.from.id, ChatPermissions::all())
            .await?;
        bot.answer_callback_query(query.id).text("Welcome!").await?;
        bot.delete_message(message.chat.id, message.id).await?;
    } else {
        bot.answer_callback_query(query.id)
            .text("You have not joined yet.")
            .show_alert(true)
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_teloxide_bot_runs_join_restrict_button_unrestrict_end_to_end() {
    let world = World::new().await;
    let bot = Bot::new(&world.bot.token).set_api_url(world.running.url().parse().unwrap());
    let handler = dptree::entry()
        .branch(Update::filter_message().endpoint(on_message))
        .branch(Update::filter_callback_query().endpoint(on_button));
    let mut dispatcher = Dispatcher::builder(bot, handler)
        .dependencies(dptree::deps![Channel(ChatId(world.channel))])
        .build();
    let shutdown = dispatcher.shutdown_token();
    let running = tokio::spawn(async move { dispatcher.dispatch().await });
    let (sandbox, bot_id) = (&world.sandbox, world.bot.id);
    sandbox.wait_polling(bot_id, DEADLINE).await.unwrap();

    let newcomer = world.user("Nia");
    sandbox.join(world.group, newcomer.id).unwrap();
    let warning = sandbox
        .wait_until(DEADLINE, "the warning", |s| {
            s.transcript(world.group)
                .into_iter()
                .find(|m| m.from == bot_id && m.reply_markup.is_some())
        })
        .await
        .unwrap();
    assert!(matches!(
        sandbox.member(world.group, newcomer.id),
        Status::Restricted { .. }
    ));
    assert!(
        sandbox.send(world.group, newcomer.id, "hello?").is_err(),
        "restricted users cannot speak"
    );

    let bystander = world.user("Bo");
    sandbox.join(world.channel, bystander.id).unwrap();
    sandbox.join(world.group, bystander.id).unwrap();
    let data = format!("check:{}", newcomer.id);
    let stolen = sandbox
        .press_button(world.group, warning.message_id, bystander.id, &data)
        .unwrap();
    let answer = sandbox
        .wait_until(DEADLINE, "the bystander's answer", |s| {
            s.callback_answer(&stolen)
        })
        .await
        .unwrap();
    assert_eq!(answer["text"], "This button is not for you.");

    let early = sandbox
        .press_button(world.group, warning.message_id, newcomer.id, &data)
        .unwrap();
    let answer = sandbox
        .wait_until(DEADLINE, "the early answer", |s| s.callback_answer(&early))
        .await
        .unwrap();
    assert_eq!(answer["text"], "You have not joined yet.");

    sandbox.join(world.channel, newcomer.id).unwrap();
    let pressed = sandbox
        .press_button(world.group, warning.message_id, newcomer.id, &data)
        .unwrap();
    let answer = sandbox
        .wait_until(DEADLINE, "the welcome", |s| s.callback_answer(&pressed))
        .await
        .unwrap();
    assert_eq!(answer["text"], "Welcome!");
    sandbox
        .wait_until(DEADLINE, "the warning to be deleted", |s| {
            s.transcript(world.group)
                .iter()
                .any(|m| m.message_id == warning.message_id && m.deleted)
                .then_some(())
        })
        .await
        .unwrap();
    assert_eq!(sandbox.member(world.group, newcomer.id), Status::Member);
    assert!(sandbox.send(world.group, newcomer.id, "hello!").is_ok());

    shutdown
        .shutdown()
        .expect("the dispatcher is running")
        .await;
    running.await.unwrap();
    world.assert_no_violations();
}
