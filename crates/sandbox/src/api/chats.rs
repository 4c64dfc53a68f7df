//! Chat and bot information, commands, invite links and join requests.

use serde_json::{Value, json};

use super::{ApiError, Params, chat_param, flag, readable_chat_param, text, user_param};
use crate::model::{Chat, ChatKind, InviteLink, Status};
use crate::world::{QueryResult, World};

pub fn get_me(world: &World, bot: i64) -> Result<Value, ApiError> {
    let account = world
        .accounts
        .get(&bot)
        .ok_or_else(ApiError::unauthorized)?;
    let mut me = account.to_json();
    // teloxide's dispatcher stops before handling anything when these are missing.
    me["can_join_groups"] = json!(true);
    me["can_read_all_group_messages"] = json!(true);
    me["supports_inline_queries"] = json!(false);
    me["can_connect_to_business"] = json!(false);
    me["has_main_web_app"] = json!(false);
    Ok(me)
}

/// The `ChatFullInfo` of a chat, with what the Bot API server writes for its kind
/// (`Client::JsonChat` with `is_full`, telegram-bot-api 10.0).
pub fn get_chat(world: &World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let chat_id = readable_chat_param(world, params)?;
    visible_to(world, chat_id, bot)?;
    let chat = world.chat(chat_id)?;
    let mut info = chat.to_json(&world.accounts);
    info["accent_color_id"] = json!(0);
    info["max_reaction_count"] = json!(11);
    info["accepted_gift_types"] = json!({
        "unlimited_gifts": false, "limited_gifts": false, "unique_gifts": false,
        "premium_subscription": false, "gifts_from_channels": false,
    });
    if let Some(username) = &chat.username {
        info["active_usernames"] = json!([username]);
    }
    if chat.kind.is_group() {
        info["permissions"] = json!(Chat::default_permissions());
    }
    if chat.kind == ChatKind::Supergroup && chat.username.is_some() {
        info["has_visible_history"] = json!(true);
    }
    if let Some(linked) = chat.linked_chat {
        info["linked_chat_id"] = json!(linked);
    }
    if let Some(link) = chat
        .invite_links
        .first()
        .filter(|_| world.status(chat_id, bot).is_admin())
    {
        info["invite_link"] = json!(link.link);
    }
    Ok(info)
}

pub fn get_chat_member(world: &World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let chat_id = chat_param(world, params)?;
    let user = user_param(world, params)?;
    readable_members(world, chat_id, bot)?;
    world.member_json(chat_id, user)
}

/// The chat's administrators, creator first. Other bots are listed only with `return_bots`
/// (`Client::JsonChatMembers`, telegram-bot-api 10.0).
pub fn get_chat_administrators(
    world: &World,
    bot: i64,
    params: &Params,
) -> Result<Value, ApiError> {
    let chat_id = chat_param(world, params)?;
    if world.chat(chat_id)?.kind == ChatKind::Private {
        return Err(ApiError::bad_request(
            "there are no administrators in the private chat",
        ));
    }
    readable_members(world, chat_id, bot)?;
    let with_bots = flag(params, "return_bots");
    let chat = world.chat(chat_id)?;
    let mut admins: Vec<(i64, Status)> = chat
        .members
        .keys()
        .map(|user| (*user, world.status(chat_id, *user)))
        .filter(|(user, status)| {
            status.is_admin() && (with_bots || *user == bot || !world.bots.contains_key(user))
        })
        .collect();
    admins.sort_by_key(|(user, status)| (!matches!(status, Status::Creator), *user));
    Ok(Value::Array(
        admins
            .iter()
            .map(|(user, status)| status.to_json(&world.accounts[user], chat.kind))
            .collect(),
    ))
}

pub fn get_chat_member_count(world: &World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let chat_id = chat_param(world, params)?;
    visible_to(world, chat_id, bot)?;
    let chat = world.chat(chat_id)?;
    let count = chat
        .members
        .keys()
        .filter(|user| world.status(chat_id, **user).is_present())
        .count();
    Ok(json!(count))
}

pub fn leave_chat(world: &mut World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let chat_id = chat_param(world, params)?;
    visible_to(world, chat_id, bot)?;
    world.set_status(chat_id, bot, Status::Left, bot)?;
    Ok(json!(true))
}

fn scope_key(params: &Params) -> String {
    let scope = params
        .get("scope")
        .map(Value::to_string)
        .unwrap_or_else(|| "{\"type\":\"default\"}".into());
    format!("{scope}|{}", text(params, "language_code").unwrap_or(""))
}

pub fn set_my_commands(world: &mut World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let commands = params.get("commands").cloned().unwrap_or_else(|| json!([]));
    for command in commands.as_array().into_iter().flatten() {
        let name = command["command"].as_str().unwrap_or_default();
        let valid = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(ApiError::bad_request("BOT_COMMAND_INVALID"));
        }
    }
    let key = scope_key(params);
    commands_of(world, bot)?.insert(key, commands);
    Ok(json!(true))
}

pub fn get_my_commands(world: &World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let state = world.bots.get(&bot).ok_or_else(ApiError::unauthorized)?;
    Ok(state
        .commands
        .get(&scope_key(params))
        .cloned()
        .unwrap_or_else(|| json!([])))
}

pub fn delete_my_commands(world: &mut World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let key = scope_key(params);
    commands_of(world, bot)?.remove(&key);
    Ok(json!(true))
}

/// A bot's command lists, keyed by scope and language.
fn commands_of(
    world: &mut World,
    bot: i64,
) -> Result<&mut rustc_hash::FxHashMap<String, Value>, ApiError> {
    Ok(&mut world
        .bots
        .get_mut(&bot)
        .ok_or_else(ApiError::unauthorized)?
        .commands)
}

pub fn create_chat_invite_link(
    world: &mut World,
    bot: i64,
    params: &Params,
) -> Result<Value, ApiError> {
    let chat_id = chat_param(world, params)?;
    if flag(params, "creates_join_request") && params.contains_key("member_limit") {
        // "If True, member_limit can't be specified" (Bot API, createChatInviteLink).
        return Err(ApiError::bad_request(
            "member_limit can't be specified for links requiring administrator approval",
        ));
    }
    if !world.bot_rights(chat_id, bot)?.can_invite_users {
        return Err(ApiError::bad_request(
            "not enough rights to manage chat invite link",
        ));
    }
    let chat = world.chat_mut(chat_id)?;
    let link = InviteLink {
        link: format!(
            "https://t.me/+sandbox{}x{}",
            -chat_id,
            chat.invite_links.len() + 1
        ),
        creator: bot,
        creates_join_request: flag(params, "creates_join_request"),
        name: text(params, "name").map(str::to_string),
    };
    chat.invite_links.push(link.clone());
    Ok(invite_link_json(world, &link))
}

pub fn invite_link_json(world: &World, link: &InviteLink) -> Value {
    let mut json = json!({
        "invite_link": link.link,
        "creator": world.accounts[&link.creator].to_json(),
        "creates_join_request": link.creates_join_request,
        "is_primary": false,
        "is_revoked": false,
    });
    if let Some(name) = &link.name {
        json["name"] = json!(name);
    }
    json
}

pub fn answer_join_request(
    world: &mut World,
    bot: i64,
    params: &Params,
    approve: bool,
) -> Result<Value, ApiError> {
    let chat_id = chat_param(world, params)?;
    let user = user_param(world, params)?;
    if !world.bot_rights(chat_id, bot)?.can_invite_users {
        return Err(ApiError::bad_request(
            "not enough rights to manage join requests",
        ));
    }
    world.resolve_join_request(chat_id, user, approve, bot)?;
    Ok(json!(true))
}

/// `answerChatJoinRequestQuery` (Bot API 10.1): a guard bot decides on the request it was asked
/// about, or leaves it to the chat's administrators (`queue`).
pub fn answer_join_query(world: &mut World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let id = text(params, "chat_join_request_query_id").unwrap_or_default();
    let result = text(params, "result")
        .and_then(QueryResult::parse)
        .ok_or_else(|| ApiError::bad_request("result must be one of approve, decline, queue"))?;
    world.answer_join_query(bot, id, result)?;
    Ok(json!(true))
}

/// `sendChatJoinRequestWebApp` (Bot API 10.1): a guard bot shows the user a Mini App first.
pub fn send_join_web_app(world: &mut World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let id = text(params, "chat_join_request_query_id").unwrap_or_default();
    let url = text(params, "web_app_url").unwrap_or_default();
    world.show_join_web_app(bot, id, url)?;
    Ok(json!(true))
}

/// Private chats are visible to their bot; other chats to bots that are (or were made) members.
fn visible_to(world: &World, chat_id: i64, bot: i64) -> Result<(), ApiError> {
    if world.chat(chat_id)?.kind == ChatKind::Private {
        return Ok(());
    }
    world.bot_rights(chat_id, bot).map(|_| ())
}

/// Member lists of channels are readable only by their administrators.
fn readable_members(world: &World, chat_id: i64, bot: i64) -> Result<(), ApiError> {
    let kind = world.chat(chat_id)?.kind;
    if kind == ChatKind::Channel && !world.status(chat_id, bot).is_admin() {
        return Err(ApiError::bad_request("member list is inaccessible"));
    }
    visible_to(world, chat_id, bot)
}
