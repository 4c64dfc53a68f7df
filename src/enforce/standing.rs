//! A member's standing in a group as Telegram says it is right now, read fresh before Nezuko
//! restricts or lifts, and compared with Nezuko's own record: Telegram's current state is the
//! truth, and Nezuko undoes only a restriction that it placed and that is still in force as it
//! placed it.

use teloxide::RequestError;
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, ChatMemberKind, ChatPermissions, Restricted, UntilDate, UserId};

use super::context::Turn;
use crate::db::RestrictionRow;

/// What a member is in a group now.
#[derive(Debug, Clone, PartialEq)]
pub enum Standing {
    /// Not in the group: left, removed, or never there.
    Absent,
    Banned,
    /// The creator or an administrator.
    Admin,
    /// May write. `limits` holds what an administrator restricted otherwise (media, polls…), with
    /// its end (Unix seconds, 0 for forever).
    Free {
        limits: Option<(ChatPermissions, i64)>,
    },
    /// May not write: restricted with these permissions until then (Unix seconds, 0 for forever).
    /// `present` is false for a member who left while restricted: Telegram keeps the restriction
    /// for their return.
    Muted {
        permissions: ChatPermissions,
        until: i64,
        present: bool,
    },
}

impl Standing {
    pub fn from_kind(kind: &ChatMemberKind) -> Self {
        match kind {
            ChatMemberKind::Owner(_) | ChatMemberKind::Administrator(_) => Self::Admin,
            ChatMemberKind::Member(_) => Self::Free { limits: None },
            ChatMemberKind::Left => Self::Absent,
            ChatMemberKind::Banned(_) => Self::Banned,
            ChatMemberKind::Restricted(r) if r.can_send_messages && !r.is_member => Self::Absent,
            ChatMemberKind::Restricted(r) if r.can_send_messages => Self::Free {
                limits: Some((permissions_of(r), unix(&r.until_date))),
            },
            ChatMemberKind::Restricted(r) => Self::Muted {
                permissions: permissions_of(r),
                until: unix(&r.until_date),
                present: r.is_member,
            },
        }
    }

    /// Whether what Telegram shows is exactly the restriction Nezuko recorded: nothing allowed,
    /// until the date it sent. Anything else means someone else changed it since.
    pub fn is_ours(&self, record: &RestrictionRow) -> bool {
        match (self, record.restricted_until) {
            (
                Self::Muted {
                    permissions, until, ..
                },
                Some(ours),
            ) => *permissions == ChatPermissions::empty() && *until == ours,
            _ => false,
        }
    }
}

/// Reads a member's standing from Telegram (through the bot's limited, recorded calls).
pub async fn read(turn: &Turn, chat: i64, user: i64) -> Result<Standing, RequestError> {
    let request = turn
        .calls()
        .bot()
        .get_chat_member(ChatId(chat), UserId(user.max(0) as u64));
    let member = turn.calls().run("getChatMember", None, request).await?;
    Ok(Standing::from_kind(&member.kind))
}

/// Unix seconds of an `until_date`, 0 for forever.
pub fn unix(until: &UntilDate) -> i64 {
    match until {
        UntilDate::Date(at) => at.timestamp(),
        UntilDate::Forever => 0,
    }
}

/// The permissions a restricted member has, as `restrictChatMember` takes them.
fn permissions_of(r: &Restricted) -> ChatPermissions {
    let flags = [
        (r.can_send_messages, ChatPermissions::SEND_MESSAGES),
        (r.can_send_audios, ChatPermissions::SEND_AUDIOS),
        (r.can_send_documents, ChatPermissions::SEND_DOCUMENTS),
        (r.can_send_photos, ChatPermissions::SEND_PHOTOS),
        (r.can_send_videos, ChatPermissions::SEND_VIDEOS),
        (r.can_send_video_notes, ChatPermissions::SEND_VIDEO_NOTES),
        (r.can_send_voice_notes, ChatPermissions::SEND_VOICE_NOTES),
        (r.can_send_polls, ChatPermissions::SEND_POLLS),
        (
            r.can_send_other_messages,
            ChatPermissions::SEND_OTHER_MESSAGES,
        ),
        (
            r.can_add_web_page_previews,
            ChatPermissions::ADD_WEB_PAGE_PREVIEWS,
        ),
        (r.can_change_info, ChatPermissions::CHANGE_INFO),
        (r.can_invite_users, ChatPermissions::INVITE_USERS),
        (r.can_pin_messages, ChatPermissions::PIN_MESSAGES),
        (r.can_manage_topics, ChatPermissions::MANAGE_TOPICS),
    ];
    flags
        .into_iter()
        .filter(|(allowed, _)| *allowed)
        .fold(ChatPermissions::empty(), |all, (_, flag)| all | flag)
}

/// Whether `user` is an administrator or the creator of `chat`, asked of Telegram (not the cache):
/// rights matter more than speed here.
pub async fn is_admin(turn: &Turn, chat: i64, user: i64) -> bool {
    let request = turn
        .calls()
        .bot()
        .get_chat_member(ChatId(chat), UserId(user.max(0) as u64));
    matches!(turn.calls().run("getChatMember", None, request).await, Ok(m) if m.kind.is_privileged())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use teloxide::types::ChatMember;

    use super::*;

    fn standing(member: serde_json::Value) -> Standing {
        let mut member = member;
        member["user"] = json!({ "id": 7, "is_bot": false, "first_name": "M" });
        Standing::from_kind(&serde_json::from_value::<ChatMember>(member).unwrap().kind)
    }

    fn restricted(send: bool, is_member: bool, until: i64) -> serde_json::Value {
        json!({
            "status": "restricted", "is_member": is_member, "until_date": until,
            "can_send_messages": send, "can_send_audios": false, "can_send_documents": false,
            "can_send_photos": false, "can_send_videos": false, "can_send_video_notes": false,
            "can_send_voice_notes": false, "can_send_polls": send, "can_send_other_messages": false,
            "can_add_web_page_previews": false, "can_change_info": false, "can_invite_users": false,
            "can_pin_messages": false, "can_manage_topics": false,
            "can_react_to_messages": false, "can_edit_tag": false,
        })
    }

    #[test]
    fn a_restriction_reads_as_muted_free_or_absent() {
        assert_eq!(
            standing(restricted(false, true, 0)),
            Standing::Muted {
                permissions: ChatPermissions::empty(),
                until: 0,
                present: true,
            }
        );
        assert!(matches!(
            standing(restricted(true, true, 1_900_000_000)),
            Standing::Free {
                limits: Some((_, 1_900_000_000))
            }
        ));
        assert!(matches!(
            standing(restricted(false, false, 0)),
            Standing::Muted { present: false, .. }
        ));
        assert_eq!(standing(restricted(true, false, 0)), Standing::Absent);
        assert_eq!(
            standing(json!({ "status": "kicked", "until_date": 0 })),
            Standing::Banned
        );
        assert_eq!(standing(json!({ "status": "left" })), Standing::Absent);
    }

    #[test]
    fn only_the_restriction_nezuko_sent_is_nezukos() {
        let record = RestrictionRow {
            id: 1,
            bot_instance_id: 1,
            chat_id: -1,
            user_id: 7,
            reason: "restricted".into(),
            missing_channels: sqlx::types::Json(vec![]),
            warning_message_id: None,
            warnings: 1,
            created_at: 0,
            updated_at: 0,
            lifted_at: None,
            restricted_until: Some(1_900_000_000),
            prior_permissions: None,
            prior_until: None,
            member_name: None,
            warning_template: None,
            warning_thread_id: None,
            end_reason: None,
        };
        assert!(standing(restricted(false, true, 1_900_000_000)).is_ours(&record));
        assert!(
            !standing(restricted(false, true, 0)).is_ours(&record),
            "restricted again, forever, by someone else"
        );
        assert!(!standing(restricted(true, true, 1_900_000_000)).is_ours(&record));
        assert!(!standing(json!({ "status": "member" })).is_ours(&record));
    }
}
