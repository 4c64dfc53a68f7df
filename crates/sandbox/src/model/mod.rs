//! The things the fake Telegram knows about: accounts, chats, members and messages, and how each is
//! rendered as the Bot API renders it.

mod member;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use member::{AdminRights, PERMISSION_NAMES, Permissions, Status, uniform_permissions};

/// Telegram's own service account: the sender of automatic forwards from a linked channel.
pub const TELEGRAM_ID: i64 = 777_000;
/// `@GroupAnonymousBot`: the sender Telegram shows for an anonymous group administrator.
pub const GROUP_ANONYMOUS_BOT_ID: i64 = 1_087_968_824;
/// `@Channel_Bot`: the sender Telegram shows for a message written as a channel.
pub const CHANNEL_BOT_ID: i64 = 136_817_688;

/// The first name Telegram shows for an account that was deleted.
pub const DELETED_ACCOUNT_NAME: &str = "Deleted Account";

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
    /// A deleted account: "Deleted Account", no username, can do nothing.
    #[serde(default)]
    pub deleted: bool,
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

    /// The three accounts Telegram itself sends as (see the constants above).
    pub fn service_accounts() -> [Account; 3] {
        let account = |id, is_bot, first_name: &str, username: Option<&str>| Account {
            id,
            is_bot,
            first_name: first_name.to_string(),
            last_name: None,
            username: username.map(str::to_string),
            deleted: false,
        };
        [
            account(TELEGRAM_ID, false, "Telegram", None),
            account(
                GROUP_ANONYMOUS_BOT_ID,
                true,
                "Group",
                Some("GroupAnonymousBot"),
            ),
            account(CHANNEL_BOT_ID, true, "Channel", Some("Channel_Bot")),
        ]
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    Private,
    /// A basic group: no restrictions, no topics; Telegram upgrades it to a supergroup.
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

    pub fn is_group(self) -> bool {
        matches!(self, Self::Group | Self::Supergroup)
    }
}

/// A message as the sandbox remembers it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredMessage {
    pub message_id: i64,
    pub chat_id: i64,
    /// The sender shown: a user, a bot or a service account; for a channel post, the channel.
    pub from: i64,
    /// Who really wrote it (the user behind an anonymous or channel identity), for edits.
    pub author: i64,
    /// The chat it was written as (a channel, or the group for an anonymous administrator).
    pub sender_chat: Option<i64>,
    /// The forum topic it belongs to.
    pub thread: Option<i64>,
    pub date: i64,
    pub text: Option<String>,
    pub reply_markup: Option<Value>,
    /// The whole `Message` object as delivered, shared with the updates that carry it.
    #[serde(skip)]
    pub json: Arc<Value>,
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

/// A user's pending request to join a chat.
#[derive(Debug, Clone, Serialize)]
pub struct JoinRequest {
    pub user: i64,
    /// When it was sent (Unix seconds, the sandbox's clock).
    pub date: i64,
    /// The guard bot's query about it, while one is open.
    pub query: Option<String>,
}

/// A guard bot's open query about a join request (`chat_join_request.query_id`).
#[derive(Debug, Clone, Serialize)]
pub struct JoinQuery {
    pub id: String,
    pub chat: i64,
    pub user: i64,
    pub bot: i64,
    /// Until when (Unix milliseconds, the sandbox's clock) the bot may answer.
    pub deadline_ms: i64,
    /// The Mini App the bot showed the user (`sendChatJoinRequestWebApp`), if it did.
    pub web_app_url: Option<String>,
}

/// A forum topic; its id is the id of the service message that created it.
#[derive(Debug, Clone, Serialize)]
pub struct Topic {
    pub name: String,
    pub deleted: bool,
}

#[derive(Debug, Clone)]
pub struct Chat {
    pub id: i64,
    pub kind: ChatKind,
    pub title: Option<String>,
    pub username: Option<String>,
    /// For a private chat, the user on the other side.
    pub peer: Option<i64>,
    /// A supergroup with topics.
    pub is_forum: bool,
    pub topics: BTreeMap<i64, Topic>,
    /// A channel's discussion group, or the channel a group discusses.
    pub linked_chat: Option<i64>,
    /// A basic group upgraded to this supergroup.
    pub migrated_to: Option<i64>,
    pub members: FxHashMap<i64, Status>,
    pub messages: BTreeMap<i64, StoredMessage>,
    pub next_message_id: i64,
    pub invite_links: Vec<InviteLink>,
    /// Pending join requests, oldest first.
    pub join_requests: Vec<JoinRequest>,
    /// The bot the chat's owner assigned to process join requests (a guard bot, Bot API 10.1): its
    /// `chat_join_request` updates carry a `query_id` it must answer within 10 s.
    pub join_guard: Option<i64>,
    /// Messages users tried to send while not allowed to: (user, text).
    pub blocked: Vec<(i64, String)>,
    /// Bots the user wrote to, which may write back (private chats only).
    pub started_bots: HashSet<i64>,
    /// Bots this user blocked (private chats only).
    pub blocked_bots: HashSet<i64>,
}

impl Chat {
    pub fn new(id: i64, kind: ChatKind, title: Option<String>, username: Option<String>) -> Self {
        Self {
            id,
            kind,
            title,
            username,
            peer: None,
            is_forum: false,
            topics: BTreeMap::new(),
            linked_chat: None,
            migrated_to: None,
            members: FxHashMap::default(),
            messages: BTreeMap::new(),
            next_message_id: 1,
            invite_links: Vec::new(),
            join_requests: Vec::new(),
            join_guard: None,
            blocked: Vec::new(),
            started_bots: HashSet::new(),
            blocked_bots: HashSet::new(),
        }
    }

    /// The short `Chat` object used inside messages and updates.
    pub fn to_json(&self, accounts: &FxHashMap<i64, Account>) -> Value {
        let mut chat = json!({ "id": self.id, "type": self.kind.as_str() });
        if let Some(title) = &self.title {
            chat["title"] = json!(title);
        }
        if let Some(username) = &self.username {
            chat["username"] = json!(username);
        }
        if let Some(peer) = self.peer.and_then(|id| accounts.get(&id)) {
            chat["first_name"] = json!(peer.first_name);
            if let Some(last) = &peer.last_name {
                chat["last_name"] = json!(last);
            }
            if let Some(username) = &peer.username {
                chat["username"] = json!(username);
            }
        }
        if self.is_forum {
            chat["is_forum"] = json!(true);
        }
        chat
    }

    pub fn status_of(&self, user: i64) -> Status {
        self.members.get(&user).cloned().unwrap_or(Status::Left)
    }

    /// A topic that exists and was not deleted.
    pub fn has_topic(&self, thread: i64) -> bool {
        self.topics.get(&thread).is_some_and(|t| !t.deleted)
    }

    /// The default permissions of members (`getChat`'s `permissions`): everything but changing
    /// the chat's information and pinning, as a new supergroup starts.
    pub fn default_permissions() -> Permissions {
        let mut permissions = uniform_permissions(true);
        for name in ["can_change_info", "can_pin_messages", "can_manage_topics"] {
            permissions.insert(name.to_string(), false);
        }
        permissions
    }
}
