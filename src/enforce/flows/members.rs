//! `chat_member` updates: in a channel they feed the membership cache and may revoke or restore;
//! in a group they are joins, leaves, and administrators acting by hand. An administrator's
//! decision about a member (a ban, a restriction, letting them speak) ends Nezuko's record of that
//! member at once and is never overwritten; the member is checked afresh on their next message.

use teloxide::types::ChatMemberUpdated;

use super::super::actions;
use super::super::context::Turn;
use super::super::standing::Standing;
use super::{channel, on_join};
use crate::db::now_ms;
use crate::domain::{EndReason, EventKind};

/// A `chat_member` update.
pub async fn on_member_change(turn: &Turn, change: &ChatMemberUpdated) -> anyhow::Result<()> {
    let user = &change.new_chat_member.user;
    let user_id = user.id.0 as i64;
    let chat = change.chat.id.0;
    let was = change.old_chat_member.kind.is_present();
    let is = change.new_chat_member.kind.is_present();
    if change.chat.is_channel() {
        turn.shared.checker.cache.put(chat, user_id, is).await;
        if was && !is {
            return channel::left(turn, chat, user).await;
        }
        if !was && is {
            channel::rejoined(turn, chat, user_id).await?;
            return super::super::join_requests::subscribed(turn, user_id).await;
        }
        return Ok(());
    }
    if change.old_chat_member.kind.is_privileged() != change.new_chat_member.kind.is_privileged() {
        turn.shared.admins.invalidate(&(turn.bot(), chat));
    }
    if !was && is {
        return on_join(turn, &change.chat, user).await;
    }
    let actor = change.from.id.0 as i64;
    let by_us = actor == turn.runtime.me.user_id;
    let by_member = actor == user_id;
    if was && !is {
        // Whoever comes back is a new join, checked again.
        let key = (turn.bot(), chat, user_id);
        turn.shared.recent_joins.invalidate(&key);
        let left_at = turn.dated.unwrap_or_else(|| now_ms() / 1000);
        turn.shared.departed.insert(key, left_at);
        publish_leave(turn, chat, user_id).await?;
    }
    // Nezuko's own actions come back as updates too; they change nothing here.
    if by_us {
        return Ok(());
    }
    let now = Standing::from_kind(&change.new_chat_member.kind);
    match now {
        // The member left (or an administrator removed them): Telegram keeps a restriction for
        // their return, so Nezuko's record stays, but the warning stops naming them.
        Standing::Absent | Standing::Muted { present: false, .. } if by_member => {
            actions::left_group(turn, chat, user_id).await
        }
        _ if by_member => Ok(()),
        Standing::Banned => actions::end(turn, chat, user_id, EndReason::Banned).await,
        Standing::Free { .. } => actions::end(turn, chat, user_id, EndReason::AdminLifted).await,
        Standing::Muted { .. } => {
            actions::end(turn, chat, user_id, EndReason::AdminRestricted).await
        }
        Standing::Absent | Standing::Admin => {
            actions::end(turn, chat, user_id, EndReason::Moot).await
        }
    }
}

async fn publish_leave(turn: &Turn, chat: i64, user: i64) -> anyhow::Result<()> {
    if let Some(view) = turn.shared.directory.group(turn.bot(), chat).await? {
        turn.publish(
            EventKind::MemberLeave,
            serde_json::json!({ "group_id": view.group.id, "chat_id": chat, "user_id": user }),
        );
    }
    Ok(())
}
