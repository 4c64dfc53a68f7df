//! Saying things in a chat and taking them back: messages in the group's topic, durable deletions,
//! the warning's keyboard and channel list.

use serde_json::json;
use teloxide::payloads::{AnswerCallbackQuerySetters, SendMessageSetters};
use teloxide::prelude::Requester;
use teloxide::types::{
    CallbackQuery, ChatId, InlineKeyboardButton, InlineKeyboardMarkup, MessageId, ParseMode,
    ThreadId,
};

use super::calls::Target;
use super::context::{GroupTurn, Turn};
use super::directory::GroupView;
use super::texts::escape;
use crate::db::{ChannelRow, NewTimer, now_ms};
use crate::domain::TimerKind;

/// Deletes a message; one that is already gone is not an error. Returns whether Telegram
/// deleted it.
pub async fn delete_message(turn: &Turn, chat: i64, message_id: i32) -> bool {
    match try_delete(turn, chat, message_id).await {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(chat, message_id, %error, "a message could not be deleted");
            false
        }
    }
}

/// Deletes a message, telling why not: Telegram's refusal (already gone, too old) or its weather
/// ([`crate::telegram::is_weather`]: no answer, worth asking again later).
pub async fn try_delete(
    turn: &Turn,
    chat: i64,
    message_id: i32,
) -> Result<(), teloxide::RequestError> {
    let request = turn
        .calls()
        .bot()
        .delete_message(ChatId(chat), MessageId(message_id));
    turn.calls()
        .run("deleteMessage", None, request)
        .await
        .map(|_| ())
}

/// Seconds before a deletion Telegram did not answer is asked again (by a durable timer).
pub const DELETE_AGAIN_AFTER_S: u64 = 5;

/// Sends an HTML message into a chat (into forum topic `thread` if given) and schedules its
/// deletion after `ttl_s` (0: keep). Returns its id.
pub async fn say_in(
    turn: &Turn,
    chat: i64,
    thread: Option<i32>,
    text: String,
    keyboard: Option<InlineKeyboardMarkup>,
    ttl_s: u64,
) -> anyhow::Result<i32> {
    let mut request = turn
        .calls()
        .bot()
        .send_message(ChatId(chat), text)
        .parse_mode(ParseMode::Html);
    if let Some(thread) = thread {
        request = request.message_thread_id(ThreadId(MessageId(thread)));
    }
    if let Some(keyboard) = keyboard {
        request = request.reply_markup(keyboard);
    }
    let sent = turn
        .calls()
        .run("sendMessage", Target::chat(chat), request)
        .await?;
    if ttl_s > 0 {
        delete_later(turn, chat, sent.id.0, ttl_s).await;
    }
    Ok(sent.id.0)
}

/// Says something in the group, in the topic the turn came from.
pub async fn say(
    group: &GroupTurn,
    text: String,
    keyboard: Option<InlineKeyboardMarkup>,
    ttl_s: u64,
) -> anyhow::Result<i32> {
    say_in(group, group.chat(), group.thread, text, keyboard, ttl_s).await
}

/// A durable timer that deletes a message.
pub async fn delete_later(turn: &Turn, chat: i64, message_id: i32, after_s: u64) {
    let timer = NewTimer {
        bot_instance_id: turn.bot(),
        kind: TimerKind::DeleteMessage,
        chat_id: chat,
        user_id: None,
        message_id: Some(i64::from(message_id)),
        payload: json!({}),
        due_at: now_ms() + after_s as i64 * 1000,
    };
    if let Err(error) = turn.shared.store.schedule(&timer).await {
        tracing::warn!(%error, chat, "cannot schedule a message deletion");
    }
}

/// `@a, @b` (or titles for private channels), escaped.
pub fn channel_list(channels: &[ChannelRow]) -> String {
    channels
        .iter()
        .map(|c| match &c.username {
            Some(username) => format!("@{}", escape(username)),
            None => format!("<b>{}</b>", escape(&c.title)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A join button per channel (its public link or invite link) and the "I have joined" button.
pub fn warning_keyboard(
    view: &GroupView,
    missing: &[ChannelRow],
    data: String,
) -> InlineKeyboardMarkup {
    keyboard(view, missing, "button_verify", data)
}

/// A join button per channel (its public link or invite link) and a last button labelled by
/// template `button` that sends `data`.
pub fn keyboard(
    view: &GroupView,
    missing: &[ChannelRow],
    button: &str,
    data: String,
) -> InlineKeyboardMarkup {
    let mut rows: Vec<Vec<InlineKeyboardButton>> = missing
        .iter()
        .filter_map(|channel| {
            let link = match &channel.username {
                Some(username) => format!("https://t.me/{username}"),
                None => channel.invite_link.clone()?,
            };
            let url = link.parse().ok()?;
            let label = view.texts.render(
                view.policy.language,
                "button_join",
                &[("channel", &channel.title)],
            );
            Some(vec![InlineKeyboardButton::url(label, url)])
        })
        .collect();
    rows.push(vec![InlineKeyboardButton::callback(
        view.texts.render(view.policy.language, button, &[]),
        data,
    )]);
    InlineKeyboardMarkup::new(rows)
}

/// Answers a button press (`answerCallbackQuery`), with an optional text (an alert box when
/// `alert`), so the client's spinner stops.
pub async fn answer_callback_query(
    turn: &Turn,
    query: &CallbackQuery,
    text: Option<String>,
    alert: bool,
) -> anyhow::Result<()> {
    let mut request = turn.calls().bot().answer_callback_query(query.id.clone());
    if let Some(text) = text {
        request = request.text(text).show_alert(alert);
    }
    turn.calls()
        .run("answerCallbackQuery", None, request)
        .await?;
    Ok(())
}
