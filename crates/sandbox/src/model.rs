//! The things the fake Telegram knows about: accounts, chats, members and messages, and how each is
//! rendered as the Bot API renders it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A user or bot account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub is_bot: bool,
    pub first_name: String,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
}

impl Account {
    pub fn to_json(&self) -> Value {
        let mut user =
            json!({ "id": self.id, "is_bot": self.is_bot, "first_name": self.first_name });
        if let Some(last) = &self.last_name {
            user["last_name"] = json!(last);
        }
        if let Some(username) = &self.username {
            user["username"] = json!(username);
        }
        user
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    Private,
    Group,
    Supergroup,
    Channel,
}

impl ChatKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Group => "group",
            Self::Supergroup => "supergroup",
            Self::Channel => "channel",
        }
    }

    /// The word Telegram uses in errors ("bot was kicked from the supergroup chat").
    pub fn noun(self) -> &'static str {
        match self {
            Self::Channel => "channel chat",
            Self::Supergroup => "supergroup chat",
            Self::Group => "group chat",
            Self::Private => "private chat",
        }
    }
}

/// The administrator rights that matter to a force-subscribe bot, as Telegram names them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(default)]
pub struct AdminRights {
    pub can_manage_chat: bool,
    pub can_delete_messages: bool,
    pub can_restrict_members: bool,
    pub can_invite_users: bool,
    pub can_post_messages: bool,
    pub can_promote_members: bool,
    pub can_change_info: bool,
    pub can_pin_messages: bool,
    pub is_anonymous: bool,
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
            can_manage_chat: true,
            can_delete_messages: true,
            can_restrict_members: true,
            can_invite_users: true,
            can_post_messages: true,
            can_promote_members: true,
            can_change_info: true,
            can_pin_messages: true,
            is_anonymous: false,
        }
    }
}

/// What a restricted member may do. Absent fields mean "not allowed" in stored restrictions.
pub type Permissions = BTreeMap<String, bool>;

/// The permission names of `ChatPermissions` in Bot API 9.1.
pub const PERMISSION_NAMES: [&str; 14] = [
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
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
];

/// A member's status, the six of the Bot API. `until_date` is Unix seconds, 0 for forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
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

    /// The `ChatMember` object for `user`.
    pub fn to_json(&self, user: &Account) -> Value {
        let mut member = json!({ "status": self.word(), "user": user.to_json() });
        match self {
            Self::Creator => {
                member["is_anonymous"] = json!(false);
            }
            Self::Administrator { rights } => {
                let rights = serde_json::to_value(rights).expect("rights serialize");
                for (key, value) in rights.as_object().expect("rights are an object") {
                    member[key] = value.clone();
                }
                member["can_be_edited"] = json!(false);
                member["can_manage_video_chats"] = json!(false);
                member["can_post_stories"] = json!(false);
                member["can_edit_stories"] = json!(false);
                member["can_delete_stories"] = json!(false);
            }
            Self::Restricted {
                permissions,
                until_date,
                is_member,
            } => {
                member["is_member"] = json!(is_member);
                member["until_date"] = json!(until_date);
                for name in PERMISSION_NAMES {
                    member[name] = json!(permissions.get(name).copied().unwrap_or(false));
                }
            }
            Self::Kicked { until_date } => {
                member["until_date"] = json!(until_date);
            }
            Self::Member | Self::Left => {}
        }
        member
    }
}

/// A message as the sandbox remembers it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredMessage {
    pub message_id: i64,
    pub chat_id: i64,
    /// The sender; for a channel post, the channel's id.
    pub from: i64,
    pub date: i64,
    pub text: Option<String>,
    pub reply_markup: Option<Value>,
    /// The whole `Message` object as delivered, for updates and edits.
    #[serde(skip)]
    pub json: Value,
    pub deleted: bool,
    pub edited: bool,
}

/// An invite link of a chat.
#[derive(Debug, Clone, Serialize)]
pub struct InviteLink {
    pub link: String,
    pub creator: i64,
    pub creates_join_request: bool,
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Chat {
    pub id: i64,
    pub kind: ChatKind,
    pub title: Option<String>,
    pub username: Option<String>,
    /// For a private chat, the user on the other side.
    pub peer: Option<i64>,
    pub members: HashMap<i64, Status>,
    pub messages: BTreeMap<i64, StoredMessage>,
    pub next_message_id: i64,
    pub invite_links: Vec<InviteLink>,
    pub join_requests: Vec<i64>,
    /// Messages users tried to send while not allowed to: (user, text).
    pub blocked: Vec<(i64, String)>,
}

impl Chat {
    pub fn new(id: i64, kind: ChatKind, title: Option<String>, username: Option<String>) -> Self {
        Self {
            id,
            kind,
            title,
            username,
            peer: None,
            members: HashMap::new(),
            messages: BTreeMap::new(),
            next_message_id: 1,
            invite_links: Vec::new(),
            join_requests: Vec::new(),
            blocked: Vec::new(),
        }
    }

    /// The short `Chat` object used inside messages and updates.
    pub fn to_json(&self, accounts: &HashMap<i64, Account>) -> Value {
        let mut chat = json!({ "id": self.id, "type": self.kind.as_str() });
        if let Some(title) = &self.title {
            chat["title"] = json!(title);
        }
        if let Some(username) = &self.username {
            chat["username"] = json!(username);
        }
        if let Some(peer) = self.peer.and_then(|id| accounts.get(&id)) {
            chat["first_name"] = json!(peer.first_name);
            if let Some(username) = &peer.username {
                chat["username"] = json!(username);
            }
        }
        chat
    }

    pub fn status_of(&self, user: i64) -> Status {
        self.members.get(&user).cloned().unwrap_or(Status::Left)
    }
}
