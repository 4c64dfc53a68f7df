//! The world the sandbox simulates: accounts, bots, chats and members, and the updates that changes
//! to them produce, generated as Telegram generates them.
//!
//! One `World` lives behind one mutex per sandbox. Every operation is a short synchronous step; the
//! waiting parts (long polling, webhook delivery) happen outside the lock (see `updates.rs`).
//! [`messages`] builds and delivers messages, [`members`] changes members' standing, [`chats`]
//! does what changes a chat itself (topics, linked channels, the upgrade of a basic group).

mod chats;
mod join_requests;
mod members;
mod messages;

use std::collections::VecDeque;

use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::{Value, json};
use tokio::sync::watch;

pub use self::join_requests::{
    QUERY_DEADLINE_MS, QueryResult, USER_CHAT_WINDOW_S, WEB_APP_WINDOW_MS,
};
pub use self::messages::Draft;
use super::api::ApiError;
use super::model::{Account, AdminRights, Chat, ChatKind, Status};

/// Update types a bot receives when it never said which it wants (Telegram's default).
const DEFAULT_EXCLUDED: [&str; 3] = ["chat_member", "message_reaction", "message_reaction_count"];

/// What an update carries (a `Message`, a `ChatMemberUpdated`, …), serialized once and shared
/// by every bot it goes to.
#[derive(Debug)]
pub struct Payload {
    pub value: Arc<Value>,
    raw: String,
    /// Whether the reply check has seen it (it is checked once, on its first hand-over).
    pub checked: AtomicBool,
}

impl Payload {
    pub fn new(value: Value) -> Arc<Self> {
        Self::shared(Arc::new(value))
    }

    /// A payload that shares its JSON with what the world keeps (a stored message).
    pub fn shared(value: Arc<Value>) -> Arc<Self> {
        let raw = value.to_string();
        Arc::new(Self {
            value,
            raw,
            checked: AtomicBool::new(false),
        })
    }
}

/// One update waiting for its bot: its `Update` object already serialized, so handing over a
/// batch copies no JSON tree.
#[derive(Debug, Clone)]
pub struct QueuedUpdate {
    pub update_id: i64,
    pub kind: &'static str,
    pub payload: Arc<Payload>,
    pub raw: Arc<str>,
}

impl QueuedUpdate {
    /// The `Update` object.
    pub fn json(&self) -> Value {
        json!({ "update_id": self.update_id, self.kind: *self.payload.value })
    }

    /// The Bot API type of what it carries, for the reply check.
    pub fn payload_type(&self) -> &'static str {
        match self.kind {
            "callback_query" => "CallbackQuery",
            "chat_member" | "my_chat_member" => "ChatMemberUpdated",
            "chat_join_request" => "ChatJoinRequest",
            _ => "Message",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Webhook {
    pub url: String,
    pub secret_token: Option<String>,
    pub last_error_date: Option<i64>,
    pub last_error_message: Option<String>,
    pub max_connections: i64,
}

/// A bot account's server-side state.
#[derive(Debug)]
pub struct BotState {
    pub id: i64,
    pub token: String,
    pub revoked: bool,
    pub queue: VecDeque<QueuedUpdate>,
    pub next_update_id: i64,
    pub allowed_updates: Option<Vec<String>>,
    pub webhook: Option<Webhook>,
    /// Bumped by every `getUpdates`; a waiting poll whose generation is no longer current was
    /// terminated by a newer one (and answers 409, as Telegram does).
    pub poll_generation: u64,
    pub polling: bool,
    /// Wakes waiting pollers and the webhook sender: bumped on new updates and new polls.
    pub wake: watch::Sender<u64>,
    pub commands: FxHashMap<String, Value>,
}

impl BotState {
    pub fn wants(&self, kind: &str) -> bool {
        match &self.allowed_updates {
            Some(allowed) if !allowed.is_empty() => allowed.iter().any(|a| a == kind),
            _ => !DEFAULT_EXCLUDED.contains(&kind),
        }
    }
}

/// The simulated Telegram.
#[derive(Debug)]
pub struct World {
    pub accounts: FxHashMap<i64, Account>,
    pub bots: FxHashMap<i64, BotState>,
    pub tokens: FxHashMap<String, i64>,
    pub chats: FxHashMap<i64, Chat>,
    pub usernames: FxHashMap<String, i64>,
    /// Every username in use, of chats and accounts alike (lowercase): Telegram's are one namespace.
    pub taken_usernames: std::collections::HashSet<String>,
    pub callback_answers: FxHashMap<String, Value>,
    /// Callback query id → the user allowed to answer for it (for checks) and its bot.
    pub callbacks: FxHashMap<String, (i64, i64)>,
    /// Guard bots' open queries about join requests, by query id.
    pub join_queries: FxHashMap<String, super::model::JoinQuery>,
    next_user_id: i64,
    next_chat_id: i64,
    next_callback_id: u64,
    /// Added to the wall clock, so tests can let restrictions expire without waiting.
    pub clock_offset_s: i64,
    /// Each chat forgets its oldest messages beyond this many.
    pub messages_kept_per_chat: usize,
}

impl Default for World {
    fn default() -> Self {
        let accounts = Account::service_accounts()
            .into_iter()
            .map(|account| (account.id, account))
            .collect();
        Self {
            accounts,
            bots: FxHashMap::default(),
            tokens: FxHashMap::default(),
            chats: FxHashMap::default(),
            usernames: FxHashMap::default(),
            taken_usernames: Account::service_accounts()
                .iter()
                .filter_map(|a| a.username.as_ref().map(|u| u.to_ascii_lowercase()))
                .collect(),
            callback_answers: FxHashMap::default(),
            callbacks: FxHashMap::default(),
            join_queries: FxHashMap::default(),
            next_user_id: 100_000,
            next_chat_id: 1_000_000,
            next_callback_id: 1,
            clock_offset_s: 0,
            messages_kept_per_chat: usize::MAX,
        }
    }
}

impl World {
    /// Unix seconds on the sandbox's clock.
    pub fn now(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        wall + self.clock_offset_s
    }

    /// Unix milliseconds on the sandbox's clock.
    pub fn now_ms(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        wall + self.clock_offset_s * 1000
    }

    pub fn add_account(
        &mut self,
        first_name: &str,
        username: Option<&str>,
        is_bot: bool,
    ) -> Account {
        self.next_user_id += 1;
        if let Some(name) = username {
            self.taken_usernames.insert(name.to_ascii_lowercase());
        }
        let account = Account {
            id: self.next_user_id,
            is_bot,
            first_name: first_name.to_string(),
            last_name: None,
            username: username.map(str::to_string),
            deleted: false,
        };
        self.accounts.insert(account.id, account.clone());
        account
    }

    /// A fresh token for bot `id`, in Telegram's shape.
    pub fn new_token(&self, id: i64) -> String {
        let secret: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(33)
            .map(char::from)
            .collect();
        format!("{id}:AA{secret}")
    }

    /// A new bot account with a token of Telegram's shape.
    pub fn add_bot(&mut self, first_name: &str, username: &str) -> (Account, String) {
        let account = self.add_account(first_name, Some(username), true);
        let token = self.new_token(account.id);
        let (wake, _) = watch::channel(0);
        let bot = BotState {
            id: account.id,
            token: token.clone(),
            revoked: false,
            queue: VecDeque::new(),
            next_update_id: 1 + (account.id % 1000) * 1000,
            allowed_updates: None,
            webhook: None,
            poll_generation: 0,
            polling: false,
            wake,
            commands: FxHashMap::default(),
        };
        self.bots.insert(account.id, bot);
        self.tokens.insert(token.clone(), account.id);
        (account, token)
    }

    /// Basic groups get small negative ids; supergroups and channels `-100…` ids, as in Telegram.
    pub fn add_chat(&mut self, kind: ChatKind, title: &str, username: Option<&str>) -> i64 {
        self.next_chat_id += 1;
        let id = match kind {
            ChatKind::Group => -self.next_chat_id,
            _ => -(1_000_000_000_000 + self.next_chat_id),
        };
        let title = Some(title.to_string());
        self.chats
            .insert(id, Chat::new(id, kind, title, username.map(str::to_string)));
        if let Some(username) = username {
            self.usernames.insert(username.to_ascii_lowercase(), id);
            self.taken_usernames.insert(username.to_ascii_lowercase());
        }
        id
    }

    /// A username no chat or account has yet.
    pub fn check_username(&self, name: &str) -> Result<(), ApiError> {
        if self.taken_usernames.contains(&name.to_ascii_lowercase()) {
            Err(ApiError::bad_request(&format!(
                "the username @{name} is already taken"
            )))
        } else {
            Ok(())
        }
    }

    /// A free username for a bot created without one (`bot<n>_bot`).
    pub fn free_bot_username(&self) -> String {
        (self.next_user_id + 1..)
            .map(|n| format!("bot{n}_bot"))
            .find(|name| self.check_username(name).is_ok())
            .unwrap_or_default()
    }

    /// The private chat between `user` and a bot (its id is the user's id, as in Telegram).
    pub fn private_chat(&mut self, user: i64) -> i64 {
        self.chats.entry(user).or_insert_with(|| {
            let mut chat = Chat::new(user, ChatKind::Private, None, None);
            chat.peer = Some(user);
            chat
        });
        user
    }

    pub fn next_callback_id(&mut self) -> String {
        self.next_callback_id += 1;
        format!("{}", 4_000_000_000_000u64 + self.next_callback_id)
    }

    /// Resolves a `chat_id` parameter: an id or `@username`.
    pub fn resolve_chat(&self, value: &Value) -> Result<i64, ApiError> {
        let id = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => match s.strip_prefix('@') {
                Some(name) => self.usernames.get(&name.to_ascii_lowercase()).copied(),
                None => s.parse().ok(),
            },
            _ => None,
        };
        id.filter(|id| self.chats.contains_key(id))
            .ok_or_else(ApiError::chat_not_found)
    }

    pub fn chat(&self, id: i64) -> Result<&Chat, ApiError> {
        self.chats.get(&id).ok_or_else(ApiError::chat_not_found)
    }

    pub fn chat_mut(&mut self, id: i64) -> Result<&mut Chat, ApiError> {
        self.chats.get_mut(&id).ok_or_else(ApiError::chat_not_found)
    }

    /// The short `Chat` object of `id`.
    pub fn chat_json(&self, id: i64) -> Result<Value, ApiError> {
        Ok(self.chat(id)?.to_json(&self.accounts))
    }

    pub fn account(&self, id: i64) -> Result<&Account, ApiError> {
        self.accounts
            .get(&id)
            .ok_or_else(|| ApiError::bad_request("PARTICIPANT_ID_INVALID"))
    }

    /// A member's status now, with expired restrictions and bans lifted as Telegram lifts them.
    pub fn status(&self, chat: i64, user: i64) -> Status {
        let now = self.now();
        match self.chats.get(&chat).map(|c| c.status_of(user)) {
            Some(Status::Restricted {
                until_date,
                is_member,
                ..
            }) if until_date != 0 && until_date <= now => {
                if is_member {
                    Status::Member
                } else {
                    Status::Left
                }
            }
            Some(Status::Kicked { until_date }) if until_date != 0 && until_date <= now => {
                Status::Left
            }
            Some(status) => status,
            None => Status::Left,
        }
    }

    /// The `ChatMember` object of `user` in `chat`.
    pub fn member_json(&self, chat: i64, user: i64) -> Result<Value, ApiError> {
        let kind = self.chat(chat)?.kind;
        Ok(self.status(chat, user).to_json(self.account(user)?, kind))
    }

    /// Queues an update for `bot` if it asked for this kind, and wakes its poller or webhook.
    pub fn push_update(&mut self, bot: i64, kind: &'static str, payload: &Arc<Payload>) {
        let Some(state) = self.bots.get_mut(&bot) else {
            return;
        };
        if !state.wants(kind) {
            return;
        }
        let update_id = state.next_update_id;
        state.next_update_id += 1;
        let raw = format!("{{\"update_id\":{update_id},\"{kind}\":{}}}", payload.raw);
        state.queue.push_back(QueuedUpdate {
            update_id,
            kind,
            payload: payload.clone(),
            raw: raw.into(),
        });
        state.wake.send_modify(|n| *n += 1);
    }

    /// Bots present in a chat (the ones that see its messages).
    pub fn bots_in(&self, chat: i64) -> Vec<i64> {
        let Some(chat) = self.chats.get(&chat) else {
            return Vec::new();
        };
        let mut bots: Vec<i64> = chat
            .members
            .keys()
            .copied()
            .filter(|id| self.bots.contains_key(id) && self.status(chat.id, *id).is_present())
            .collect();
        bots.sort_unstable();
        bots
    }

    /// Bots that are administrators of a chat (the ones `chat_member` updates go to).
    pub fn admin_bots(&self, chat: i64) -> Vec<i64> {
        self.bots_in(chat)
            .into_iter()
            .filter(|bot| self.status(chat, *bot).is_admin())
            .collect()
    }

    /// The bot's rights in a chat, or the error Telegram gives when it has none there.
    pub fn bot_rights(&self, chat: i64, bot: i64) -> Result<AdminRights, ApiError> {
        let kind = self.chat(chat)?.kind;
        match self.status(chat, bot) {
            Status::Kicked { .. } => Err(ApiError::forbidden(&format!(
                "bot was kicked from the {}",
                kind.noun()
            ))),
            Status::Left if kind == ChatKind::Channel => {
                Err(ApiError::bad_request("chat not found"))
            }
            Status::Left => Err(ApiError::forbidden(&format!(
                "bot is not a member of the {}",
                kind.noun()
            ))),
            status => Ok(status.rights()),
        }
    }

    /// The chat's creator, who acts when a test fixture needs someone to act.
    pub fn creator_of(&self, chat: i64) -> Option<i64> {
        self.chats
            .get(&chat)?
            .members
            .iter()
            .find(|(_, s)| matches!(s, Status::Creator))
            .map(|(id, _)| *id)
    }
}
