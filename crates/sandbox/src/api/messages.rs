//! Sending, editing and deleting messages, and answering button presses.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{ApiError, Params, chat_param, int, text};
use crate::model::ChatKind;
use crate::world::{Draft, World};

const MAX_TEXT: usize = 4096;

pub fn send_message(world: &mut World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let chat_id = match chat_param(world, params) {
        Ok(chat) => chat,
        // A requester's `user_chat_id`, within its window: the private chat opens.
        Err(_) if join_window(world, bot, params).is_some() => {
            world.private_chat(join_window(world, bot, params).unwrap_or_default())
        }
        Err(error) => return Err(unopened_private_chat(world, bot, params).unwrap_or(error)),
    };
    check_can_send(world, chat_id, bot)?;
    let mut draft = Draft::new(chat_id, bot, content(params)?);
    draft.thread = topic(world, chat_id, params)?;
    draft.reply_to = reply_to(world, chat_id, params)?;
    world.record_message(draft).map(Arc::unwrap_or_clone)
}

/// Why a bot cannot write to a user whose private chat with it was never opened: a user it shares
/// a chat with has not started it (403); a user it never met is an unknown chat (400, the error
/// the caller already has).
fn unopened_private_chat(world: &World, bot: i64, params: &Params) -> Option<ApiError> {
    let user = params
        .get("chat_id")
        .and_then(Value::as_i64)
        .filter(|id| *id > 0)?;
    world.accounts.get(&user)?;
    let met = world.chats.values().any(|chat| {
        chat.kind != ChatKind::Private
            && chat.members.contains_key(&user)
            && world.status(chat.id, bot).is_present()
    });
    met.then(|| ApiError::forbidden("bot can't initiate conversation with a user"))
}

/// The user a message goes to through the `user_chat_id` of their pending join request, while
/// the bot may still write to them that way (`ChatJoinRequest.user_chat_id`: 5 minutes, until the
/// request is processed).
fn join_window(world: &World, bot: i64, params: &Params) -> Option<i64> {
    let user = params
        .get("chat_id")
        .and_then(Value::as_i64)
        .filter(|id| *id > 0)?;
    world.join_window_open(user, bot).then_some(user)
}

/// The forum topic a message is sent to: it must exist; the General topic is addressed by
/// leaving `message_thread_id` out, and naming it fails (`Client::check_message_topic`,
/// telegram-bot-api 10.0). Outside forums the parameter is ignored.
fn topic(world: &World, chat_id: i64, params: &Params) -> Result<Option<i64>, ApiError> {
    let chat = world.chat(chat_id)?;
    match params.get("message_thread_id").and_then(Value::as_i64) {
        Some(thread) if chat.is_forum => {
            if chat.has_topic(thread) {
                Ok(Some(thread))
            } else {
                Err(ApiError::bad_request("message thread not found"))
            }
        }
        _ => Ok(None),
    }
}

/// The message a reply answers (`reply_parameters`): it must exist in the chat unless
/// `allow_sending_without_reply` is set, in which case a missing one is dropped.
fn reply_to(world: &World, chat_id: i64, params: &Params) -> Result<Option<i64>, ApiError> {
    let Some(reply) = params.get("reply_parameters") else {
        return Ok(None);
    };
    let Some(message_id) = reply["message_id"].as_i64() else {
        return Ok(None);
    };
    let exists = world
        .chat(chat_id)?
        .messages
        .get(&message_id)
        .is_some_and(|m| !m.deleted);
    match (exists, reply["allow_sending_without_reply"].as_bool()) {
        (true, _) => Ok(Some(message_id)),
        (false, Some(true)) => Ok(None),
        (false, _) => Err(ApiError::bad_request("message to be replied not found")),
    }
}

pub fn edit_message_text(world: &mut World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    if params.contains_key("inline_message_id") {
        return Err(ApiError::bad_request(
            "inline messages are not simulated by the Nezuko sandbox",
        ));
    }
    let chat_id = chat_param(world, params)?;
    let message_id = int(params, "message_id")?;
    let content = content(params)?;
    let now = world.now();
    let chat = world.chat_mut(chat_id)?;
    let stored = chat
        .messages
        .get_mut(&message_id)
        .filter(|m| !m.deleted)
        .ok_or_else(|| ApiError::bad_request("message to edit not found"))?;
    if stored.from != bot {
        return Err(ApiError::bad_request("message can't be edited"));
    }
    let markup = content.get("reply_markup").cloned();
    if stored.text.as_deref() == content["text"].as_str() && stored.reply_markup == markup {
        return Err(ApiError::bad_request(
            "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        ));
    }
    stored.text = content["text"].as_str().map(str::to_string);
    stored.reply_markup = markup.clone();
    stored.edited = true;
    let json = Arc::make_mut(&mut stored.json);
    json["text"] = content["text"].clone();
    json["edit_date"] = json!(now);
    match markup {
        Some(markup) => json["reply_markup"] = markup,
        None => {
            json.as_object_mut().map(|m| m.remove("reply_markup"));
        }
    }
    Ok(json.clone())
}

pub fn delete_message(world: &mut World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let chat_id = chat_param(world, params)?;
    let message_id = int(params, "message_id")?;
    if !deletable(world, chat_id, bot, message_id)? {
        if world
            .chats
            .get(&chat_id)
            .and_then(|c| c.messages.get(&message_id))
            .is_some_and(|m| m.deleted)
        {
            // Telegram answers the same; said here because a bot deleting a message twice has
            // usually handled one update twice.
            tracing::warn!(
                bot,
                chat_id,
                message_id,
                "deleteMessage of a message already deleted"
            );
        }
        return Err(ApiError::bad_request("message to delete not found"));
    }
    mark_deleted(world, chat_id, message_id);
    Ok(json!(true))
}

/// Missing messages are skipped, as Telegram skips them; a message the bot may not delete fails the call.
pub fn delete_messages(world: &mut World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let chat_id = chat_param(world, params)?;
    let ids: Vec<i64> = params
        .get("message_ids")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default();
    if ids.is_empty() || ids.len() > 100 {
        return Err(ApiError::bad_request(
            "message identifiers must be a list of 1-100 identifiers",
        ));
    }
    let mut found = Vec::new();
    for id in ids {
        if deletable(world, chat_id, bot, id)? {
            found.push(id);
        }
    }
    for id in found {
        mark_deleted(world, chat_id, id);
    }
    Ok(json!(true))
}

pub fn answer_callback_query(
    world: &mut World,
    bot: i64,
    params: &Params,
) -> Result<Value, ApiError> {
    let id = text(params, "callback_query_id")
        .unwrap_or_default()
        .to_string();
    let invalid = || {
        ApiError::bad_request(
            "query is too old and response timeout expired or query ID is invalid",
        )
    };
    match world.callbacks.get(&id) {
        Some((_, owner)) if *owner == bot && !world.callback_answers.contains_key(&id) => {}
        _ => return Err(invalid()),
    }
    let answer = json!({
        "text": params.get("text").cloned().unwrap_or(Value::Null),
        "show_alert": params.get("show_alert").and_then(Value::as_bool).unwrap_or(false),
        "url": params.get("url").cloned().unwrap_or(Value::Null),
    });
    world.callback_answers.insert(id, answer);
    Ok(json!(true))
}

/// Whether the message exists (not yet deleted) and the bot may delete it. Errors when it exists
/// and the bot lacks the right.
fn deletable(world: &World, chat_id: i64, bot: i64, message_id: i64) -> Result<bool, ApiError> {
    let chat = world.chat(chat_id)?;
    let Some(message) = chat.messages.get(&message_id).filter(|m| !m.deleted) else {
        return Ok(false);
    };
    if message.from == bot || chat.kind == ChatKind::Private {
        return Ok(true);
    }
    if world.bot_rights(chat_id, bot)?.can_delete_messages {
        Ok(true)
    } else {
        Err(ApiError::bad_request("message can't be deleted"))
    }
}

fn mark_deleted(world: &mut World, chat_id: i64, message_id: i64) {
    if let Some(message) = world
        .chats
        .get_mut(&chat_id)
        .and_then(|c| c.messages.get_mut(&message_id))
    {
        message.deleted = true;
    }
}

/// Whether the bot may write here. In a private chat the user must have written to the bot first
/// and not blocked it, and must still exist.
fn check_can_send(world: &World, chat_id: i64, bot: i64) -> Result<(), ApiError> {
    let chat = world.chat(chat_id)?;
    match chat.kind {
        ChatKind::Private => {
            if world.accounts.get(&chat_id).is_some_and(|a| a.deleted) {
                Err(ApiError::forbidden("user is deactivated"))
            } else if chat.blocked_bots.contains(&bot) {
                Err(ApiError::forbidden("bot was blocked by the user"))
            } else if !chat.started_bots.contains(&bot) && !world.join_window_open(chat_id, bot) {
                Err(ApiError::forbidden(
                    "bot can't initiate conversation with a user",
                ))
            } else {
                Ok(())
            }
        }
        ChatKind::Channel if !world.bot_rights(chat_id, bot)?.can_post_messages => Err(
            ApiError::bad_request("need administrator rights in the channel chat"),
        ),
        _ => world.bot_rights(chat_id, bot).map(|_| ()),
    }
}

/// The text and keyboard of a message, checked as Telegram checks them.
fn content(params: &Params) -> Result<Value, ApiError> {
    let raw = text(params, "text").unwrap_or_default();
    let visible = match text(params, "parse_mode") {
        Some("HTML") => super::html::parse(raw)
            .map_err(|reason| ApiError::bad_request(&format!("can't parse entities: {reason}")))?,
        Some("MarkdownV2" | "Markdown") | None => raw.to_string(),
        Some(other) => {
            return Err(ApiError::bad_request(&format!(
                "unsupported parse_mode \"{other}\""
            )));
        }
    };
    if visible.trim().is_empty() {
        return Err(ApiError::bad_request("message text is empty"));
    }
    if visible.chars().count() > MAX_TEXT {
        return Err(ApiError::bad_request("message is too long"));
    }
    let mut content = json!({ "text": visible });
    if let Some(markup) = params.get("reply_markup") {
        check_keyboard(markup)?;
        if markup.get("inline_keyboard").is_some() {
            content["reply_markup"] = markup.clone();
        }
    }
    Ok(content)
}

fn check_keyboard(markup: &Value) -> Result<(), ApiError> {
    let buttons = markup["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten();
    for button in buttons {
        let actions = [
            "url",
            "callback_data",
            "web_app",
            "login_url",
            "switch_inline_query",
            "switch_inline_query_current_chat",
            "switch_inline_query_chosen_chat",
            "copy_text",
            "callback_game",
            "pay",
        ];
        if !actions.iter().any(|a| button.get(*a).is_some()) {
            return Err(ApiError::bad_request(
                "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
            ));
        }
        if let Some(url) = button["url"].as_str() {
            let scheme_ok = ["https://", "http://", "tg://"]
                .iter()
                .any(|s| url.starts_with(s));
            if !scheme_ok || url.len() <= 8 {
                return Err(ApiError::bad_request("BUTTON_URL_INVALID"));
            }
        }
        if let Some(data) = button["callback_data"].as_str()
            && (data.is_empty() || data.len() > 64)
        {
            return Err(ApiError::bad_request("BUTTON_DATA_INVALID"));
        }
    }
    Ok(())
}
