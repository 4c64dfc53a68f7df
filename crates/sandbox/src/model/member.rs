//! A member's standing in a chat (the Bot API's six `ChatMember` statuses), administrator rights
//! and member permissions, rendered as the Bot API server renders them for each kind of chat.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Account, ChatKind};

/// Administrator rights, as `ChatAdministratorRights` names them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AdminRights {
    pub is_anonymous: bool,
    pub can_manage_chat: bool,
    pub can_delete_messages: bool,
    pub can_manage_video_chats: bool,
    pub can_restrict_members: bool,
    pub can_promote_members: bool,
    pub can_change_info: bool,
    pub can_invite_users: bool,
    pub can_post_stories: bool,
    pub can_edit_stories: bool,
    pub can_delete_stories: bool,
    /// Channels only.
    pub can_post_messages: bool,
    /// Channels only.
    pub can_edit_messages: bool,
    /// Groups and supergroups only.
    pub can_pin_messages: bool,
    /// Supergroups only.
    pub can_manage_topics: bool,
    /// Channels only (their direct-messages chat).
    pub can_manage_direct_messages: bool,
    /// Groups and supergroups only.
    pub can_manage_tags: bool,
}

impl AdminRights {
    /// What a force-subscribe bot needs: manage the chat, delete messages, restrict members, invite.
    pub fn force_subscribe() -> Self {
        Self {
            can_manage_chat: true,
            can_delete_messages: true,
            can_restrict_members: true,
            can_invite_users: true,
            ..Self::default()
        }
    }

    /// Every right: what a creator has.
    pub fn all() -> Self {
        Self {
            is_anonymous: false,
            can_manage_chat: true,
            can_delete_messages: true,
            can_manage_video_chats: true,
            can_restrict_members: true,
            can_promote_members: true,
            can_change_info: true,
            can_invite_users: true,
            can_post_stories: true,
            can_edit_stories: true,
            can_delete_stories: true,
            can_post_messages: true,
            can_edit_messages: true,
            can_pin_messages: true,
            can_manage_topics: true,
            can_manage_direct_messages: true,
            can_manage_tags: true,
        }
    }

    /// The rights as the Bot API server writes them for a chat of `kind`: some exist only in
    /// channels, some only in groups (`Client::json_store_administrator_rights`, telegram-bot-api
    /// 10.0, `telegram-bot-api/Client.cpp`).
    pub fn write_json(&self, kind: ChatKind, object: &mut Map<String, Value>) {
        let channel = kind == ChatKind::Channel;
        let group = matches!(kind, ChatKind::Group | ChatKind::Supergroup);
        let mut put = |name: &str, value: bool| {
            object.insert(name.to_string(), Value::Bool(value));
        };
        put("can_manage_chat", self.can_manage_chat);
        put("can_change_info", self.can_change_info);
        if channel {
            put("can_post_messages", self.can_post_messages);
            put("can_edit_messages", self.can_edit_messages);
        }
        put("can_delete_messages", self.can_delete_messages);
        put("can_invite_users", self.can_invite_users);
        put("can_restrict_members", self.can_restrict_members);
        if group {
            put("can_pin_messages", self.can_pin_messages);
        }
        if kind == ChatKind::Supergroup {
            put("can_manage_topics", self.can_manage_topics);
        }
        put("can_promote_members", self.can_promote_members);
        put("can_manage_video_chats", self.can_manage_video_chats);
        put("can_post_stories", self.can_post_stories);
        put("can_edit_stories", self.can_edit_stories);
        put("can_delete_stories", self.can_delete_stories);
        if channel {
            put(
                "can_manage_direct_messages",
                self.can_manage_direct_messages,
            );
        }
        if group {
            put("can_manage_tags", self.can_manage_tags);
        }
        put("is_anonymous", self.is_anonymous);
    }
}

/// What a restricted member may do, by `ChatPermissions` name; always holds every name.
pub type Permissions = BTreeMap<String, bool>;

/// The permission names of `ChatPermissions` in Bot API 10.1, in the server's order.
pub const PERMISSION_NAMES: [&str; 16] = [
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_react_to_messages",
    "can_edit_tag",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
];

/// Permissions with every name set to `allowed`.
pub fn uniform_permissions(allowed: bool) -> Permissions {
    PERMISSION_NAMES
        .iter()
        .map(|name| (name.to_string(), allowed))
        .collect()
}

/// A member's status, the six of the Bot API. `until_date` is Unix seconds, 0 for forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase", deny_unknown_fields)]
pub enum Status {
    Creator,
    Administrator {
        #[serde(default)]
        rights: AdminRights,
    },
    Member,
    Restricted {
        permissions: Permissions,
        until_date: i64,
        is_member: bool,
    },
    Left,
    Kicked {
        until_date: i64,
    },
}

impl Status {
    pub fn word(&self) -> &'static str {
        match self {
            Self::Creator => "creator",
            Self::Administrator { .. } => "administrator",
            Self::Member => "member",
            Self::Restricted { .. } => "restricted",
            Self::Left => "left",
            Self::Kicked { .. } => "kicked",
        }
    }

    /// In the chat right now (what `is_present()` means in teloxide).
    pub fn is_present(&self) -> bool {
        match self {
            Self::Creator | Self::Administrator { .. } | Self::Member => true,
            Self::Restricted { is_member, .. } => *is_member,
            Self::Left | Self::Kicked { .. } => false,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Self::Creator | Self::Administrator { .. })
    }

    pub fn rights(&self) -> AdminRights {
        match self {
            Self::Creator => AdminRights::all(),
            Self::Administrator { rights } => *rights,
            _ => AdminRights::default(),
        }
    }

    pub fn can_send_messages(&self) -> bool {
        match self {
            Self::Restricted {
                permissions,
                is_member,
                ..
            } => {
                *is_member
                    && permissions
                        .get("can_send_messages")
                        .copied()
                        .unwrap_or(false)
            }
            other => other.is_present(),
        }
    }

    /// The same standing after the member left: a restriction or ban outlives membership.
    pub fn after_leaving(&self) -> Status {
        match self {
            Self::Restricted {
                permissions,
                until_date,
                ..
            } => Self::Restricted {
                permissions: permissions.clone(),
                until_date: *until_date,
                is_member: false,
            },
            Self::Kicked { until_date } => Self::Kicked {
                until_date: *until_date,
            },
            _ => Self::Left,
        }
    }

    /// The `ChatMember` object for `user` in a chat of `kind`, field for field as the Bot API
    /// server writes it (`Client::JsonChatMember`, telegram-bot-api 10.0). Fields the server still
    /// writes but the specification no longer documents (`can_manage_voice_chats`,
    /// `can_send_media_messages`) are left out, so every reply checks against the specification.
    pub fn to_json(&self, user: &Account, kind: ChatKind) -> Value {
        let mut member = Map::new();
        member.insert("user".into(), user.to_json());
        member.insert("status".into(), json!(self.word()));
        match self {
            Self::Creator => {
                member.insert("is_anonymous".into(), json!(false));
            }
            Self::Administrator { rights } => {
                member.insert("can_be_edited".into(), json!(false));
                rights.write_json(kind, &mut member);
            }
            Self::Restricted {
                permissions,
                until_date,
                is_member,
            } => {
                member.insert("until_date".into(), json!(until_date));
                for name in PERMISSION_NAMES {
                    let allowed = permissions.get(name).copied().unwrap_or(false);
                    member.insert(name.into(), json!(allowed));
                }
                member.insert("is_member".into(), json!(is_member));
            }
            Self::Kicked { until_date } => {
                member.insert("until_date".into(), json!(until_date));
            }
            Self::Member | Self::Left => {}
        }
        Value::Object(member)
    }
}
