//! Restricting, banning and unbanning members, with Telegram's rights checks and `until_date` rules.

use serde_json::{Value, json};

use super::{ApiError, Params, chat_param, flag, opt_int, permissions, user_param};
use crate::model::{ChatKind, Permissions, Status};
use crate::world::World;

/// Telegram treats an `until_date` closer than this, or further than [`MAX_UNTIL_S`], as forever
/// (`fix_until_date`, tdlib `td/telegram/DialogParticipant.cpp`).
const MIN_UNTIL_S: i64 = 30;
const MAX_UNTIL_S: i64 = 366 * 24 * 3600;

/// The stored `until_date`: 0 (forever) unless the requested date is within Telegram's window.
pub fn effective_until(now: i64, requested: Option<i64>) -> i64 {
    match requested {
        Some(date) if date - now >= MIN_UNTIL_S && date - now <= MAX_UNTIL_S => date,
        _ => 0,
    }
}

pub fn restrict(world: &mut World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let chat_id = chat_param(world, params)?;
    let user = user_param(world, params)?;
    world.require_supergroup(chat_id)?;
    check_can_restrict(world, chat_id, bot, user)?;
    let requested = params
        .get("permissions")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let permissions =
        permissions::from_request(&requested, flag(params, "use_independent_chat_permissions"))?;
    let until = effective_until(world.now(), opt_int(params, "until_date"));
    let new = restricted(world.status(chat_id, user).is_present(), permissions, until);
    world.set_status(chat_id, user, new, bot)?;
    Ok(json!(true))
}

/// A restriction as Telegram stores it: with every permission it is no restriction at all, and
/// the member is a plain member (or not in the chat) again
/// (`DialogParticipantStatus::Restricted`, tdlib `td/telegram/DialogParticipant.cpp`).
pub fn restricted(is_member: bool, permissions: Permissions, until_date: i64) -> Status {
    if permissions.values().all(|allowed| *allowed) {
        return if is_member {
            Status::Member
        } else {
            Status::Left
        };
    }
    Status::Restricted {
        permissions,
        until_date,
        is_member,
    }
}

pub fn ban(world: &mut World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let chat_id = chat_param(world, params)?;
    let user = user_param(world, params)?;
    check_can_restrict(world, chat_id, bot, user)?;
    let until_date = effective_until(world.now(), opt_int(params, "until_date"));
    world.set_status(chat_id, user, Status::Kicked { until_date }, bot)?;
    Ok(json!(true))
}

/// With `only_if_banned`, only a banned user becomes `left`; without it, whoever is not an
/// administrator ends up `left`: removed if present, unrestricted if restricted. Basic groups
/// have no unban (`Client::process_unban_chat_member_query`, telegram-bot-api 10.0).
pub fn unban(world: &mut World, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let chat_id = chat_param(world, params)?;
    let user = user_param(world, params)?;
    if !matches!(
        world.chat(chat_id)?.kind,
        ChatKind::Supergroup | ChatKind::Channel
    ) {
        return Err(ApiError::bad_request(
            "method is available for supergroup and channel chats only",
        ));
    }
    check_can_restrict(world, chat_id, bot, user)?;
    let status = world.status(chat_id, user);
    let banned = matches!(status, Status::Kicked { .. });
    if banned || !flag(params, "only_if_banned") {
        world.set_status(chat_id, user, Status::Left, bot)?;
    }
    Ok(json!(true))
}

fn check_can_restrict(world: &World, chat_id: i64, bot: i64, user: i64) -> Result<(), ApiError> {
    if user == bot {
        return Err(ApiError::bad_request("can't restrict self"));
    }
    if !world.bot_rights(chat_id, bot)?.can_restrict_members {
        return Err(ApiError::not_enough_rights_to_restrict());
    }
    match world.status(chat_id, user) {
        Status::Creator => Err(ApiError::bad_request("can't remove chat owner")),
        Status::Administrator { .. } => Err(ApiError::bad_request(
            "user is an administrator of the chat",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_dates_outside_telegrams_window_mean_forever() {
        let now = 1_000_000;
        assert_eq!(effective_until(now, None), 0);
        assert_eq!(effective_until(now, Some(0)), 0);
        assert_eq!(effective_until(now, Some(now + 29)), 0);
        assert_eq!(effective_until(now, Some(now + 30)), now + 30);
        assert_eq!(
            effective_until(now, Some(now + MAX_UNTIL_S)),
            now + MAX_UNTIL_S
        );
        assert_eq!(effective_until(now, Some(now + MAX_UNTIL_S + 1)), 0);
    }
}
