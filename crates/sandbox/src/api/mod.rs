//! The Bot API methods the sandbox implements, each a synchronous step on the [`World`].
//!
//! `getUpdates` and the webhook methods need to wait or talk to the network and live in
//! `sandbox::updates`; everything else is dispatched here by its canonical (camelCase) name.

mod chats;
mod error;
pub mod html;
mod members;
mod messages;
mod permissions;

use serde_json::{Map, Value};

pub use error::ApiError;
pub use members::{effective_until, restricted};

use super::world::World;

/// Parameters of one call, already checked against the specification.
pub type Params = Map<String, Value>;

/// Runs `method` for `bot`. Methods the specification has but the sandbox does not simulate
/// answer 400 with a description that says so.
pub fn call(world: &mut World, bot: i64, method: &str, params: &Params) -> Result<Value, ApiError> {
    match method {
        "getMe" => chats::get_me(world, bot),
        "getChat" => chats::get_chat(world, bot, params),
        "getChatMember" => chats::get_chat_member(world, bot, params),
        "getChatAdministrators" => chats::get_chat_administrators(world, bot, params),
        "getChatMemberCount" => chats::get_chat_member_count(world, bot, params),
        "leaveChat" => chats::leave_chat(world, bot, params),
        "setMyCommands" => chats::set_my_commands(world, bot, params),
        "getMyCommands" => chats::get_my_commands(world, bot, params),
        "deleteMyCommands" => chats::delete_my_commands(world, bot, params),
        "createChatInviteLink" => chats::create_chat_invite_link(world, bot, params),
        "approveChatJoinRequest" => chats::answer_join_request(world, bot, params, true),
        "declineChatJoinRequest" => chats::answer_join_request(world, bot, params, false),
        "answerChatJoinRequestQuery" => chats::answer_join_query(world, bot, params),
        "sendChatJoinRequestWebApp" => chats::send_join_web_app(world, bot, params),
        "restrictChatMember" => members::restrict(world, bot, params),
        "banChatMember" => members::ban(world, bot, params),
        "unbanChatMember" => members::unban(world, bot, params),
        "sendMessage" => messages::send_message(world, bot, params),
        "editMessageText" => messages::edit_message_text(world, bot, params),
        "deleteMessage" => messages::delete_message(world, bot, params),
        "deleteMessages" => messages::delete_messages(world, bot, params),
        "answerCallbackQuery" => messages::answer_callback_query(world, bot, params),
        other => Err(ApiError::bad_request(&format!(
            "method {other} is not simulated by the Nezuko sandbox"
        ))),
    }
}

/// Methods that send a message, which Telegram's flood limits apply to.
pub fn is_send_method(method: &str) -> bool {
    matches!(method, "sendMessage" | "editMessageText")
}

/// The chat a call is about, for per-chat rate limits.
pub fn target_chat(world: &World, params: &Params) -> Option<i64> {
    params
        .get("chat_id")
        .and_then(|v| world.resolve_chat(v).ok())
}

fn int(params: &Params, name: &str) -> Result<i64, ApiError> {
    params
        .get(name)
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::bad_request(&format!("{name} is required")))
}

fn opt_int(params: &Params, name: &str) -> Option<i64> {
    params.get(name).and_then(Value::as_i64)
}

fn flag(params: &Params, name: &str) -> bool {
    params.get(name).and_then(Value::as_bool).unwrap_or(false)
}

fn text<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.get(name).and_then(Value::as_str)
}

/// The chat a call acts on. A basic group that was upgraded answers with where it went, for
/// every method but `getChat`, which reads (`Client::check_chat_access`, telegram-bot-api 10.0).
fn chat_param(world: &World, params: &Params) -> Result<i64, ApiError> {
    let chat = readable_chat_param(world, params)?;
    match world.chat(chat)?.migrated_to {
        Some(to) => Err(ApiError::upgraded(to)),
        None => Ok(chat),
    }
}

/// The chat a call only reads, which may be an upgraded basic group.
fn readable_chat_param(world: &World, params: &Params) -> Result<i64, ApiError> {
    world.resolve_chat(params.get("chat_id").unwrap_or(&Value::Null))
}

/// The user a call names, which must exist.
fn user_param(world: &World, params: &Params) -> Result<i64, ApiError> {
    let user = int(params, "user_id")?;
    // A user id is positive (`Client::get_user_id`, telegram-bot-api 10.0).
    if user <= 0 {
        return Err(ApiError::bad_request("Invalid user_id specified"));
    }
    if world.accounts.contains_key(&user) {
        Ok(user)
    } else {
        Err(ApiError::bad_request("PARTICIPANT_ID_INVALID"))
    }
}
