//! The control API: build a world, play its users, inject faults and read back what the bots did.
//! [`crate::http`] exposes the same operations as JSON under `/_sandbox/`.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::api::ApiError;
use super::faults::Fault;
use super::journal::{CallRecord, Counters, Violation};
use super::model::{Account, AdminRights, ChatKind, Status};
use super::{Sandbox, lock};

/// Why a control operation could not be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    #[error("no chat {0}")]
    UnknownChat(i64),
    #[error("no account {0}")]
    UnknownAccount(i64),
    #[error("user {user} is banned from chat {chat}")]
    Banned { chat: i64, user: i64 },
    #[error("the message was not delivered: {0}")]
    Blocked(String),
    #[error("no message {message} in chat {chat}")]
    NoSuchMessage { chat: i64, message: i64 },
    #[error("message {message} has no button with callback data {data:?}")]
    NoSuchButton { message: i64, data: String },
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    #[error("{0}")]
    Telegram(String),
}

impl From<ApiError> for ControlError {
    fn from(error: ApiError) -> Self {
        Self::Telegram(error.description)
    }
}

/// A bot account created in the sandbox.
#[derive(Debug, Clone, Serialize)]
pub struct SandboxBot {
    pub id: i64,
    pub token: String,
    pub username: String,
}

/// One message of a chat's history as the sandbox keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TranscriptEntry {
    pub message_id: i64,
    pub from: i64,
    pub text: Option<String>,
    pub reply_markup: Option<Value>,
    pub deleted: bool,
    pub edited: bool,
}

impl Sandbox {
    pub fn create_bot(&self, first_name: &str, username: &str) -> SandboxBot {
        let (account, token) = self.world().add_bot(first_name, username);
        SandboxBot {
            id: account.id,
            token,
            username: username.to_string(),
        }
    }

    pub fn create_user(&self, first_name: &str, username: Option<&str>) -> Account {
        self.world().add_account(first_name, username, false)
    }

    /// A group, supergroup or channel. A public one has a `username` (`@username` resolves to it).
    pub fn create_chat(&self, kind: ChatKind, title: &str, username: Option<&str>) -> i64 {
        self.world().add_chat(kind, title, username)
    }

    /// Sets a member's status directly, producing the updates Telegram would.
    pub fn set_member(&self, chat: i64, user: i64, status: Status) -> Result<(), ControlError> {
        let mut world = self.world();
        Self::check_ids(&world, chat, user)?;
        let actor = creator_of(&world, chat).unwrap_or(user);
        Ok(world.set_status(chat, user, status, actor)?)
    }

    /// Makes `user` (typically a bot) an administrator with `rights`.
    pub fn promote(&self, chat: i64, user: i64, rights: AdminRights) -> Result<(), ControlError> {
        self.set_member(chat, user, Status::Administrator { rights })
    }

    /// The user joins (by link or username). Banned users cannot.
    pub fn join(&self, chat: i64, user: i64) -> Result<(), ControlError> {
        let mut world = self.world();
        Self::check_ids(&world, chat, user)?;
        match world.status(chat, user) {
            Status::Kicked { .. } => Err(ControlError::Banned { chat, user }),
            status if status.is_present() => Ok(()),
            _ => Ok(world.set_status(chat, user, Status::Member, user)?),
        }
    }

    /// The user leaves; a restricted member stays restricted but is no longer a member.
    pub fn leave(&self, chat: i64, user: i64) -> Result<(), ControlError> {
        let mut world = self.world();
        Self::check_ids(&world, chat, user)?;
        let new = match world.status(chat, user) {
            Status::Restricted {
                permissions,
                until_date,
                ..
            } => Status::Restricted {
                permissions,
                until_date,
                is_member: false,
            },
            Status::Kicked { until_date } => Status::Kicked { until_date },
            _ => Status::Left,
        };
        Ok(world.set_status(chat, user, new, user)?)
    }

    /// The user asks to join; administrators with `can_invite_users` get a `chat_join_request`.
    pub fn request_join(&self, chat: i64, user: i64) -> Result<(), ControlError> {
        let mut world = self.world();
        Self::check_ids(&world, chat, user)?;
        let now = world.now();
        let request = json!({
            "chat": world.chat(chat)?.to_json(&world.accounts),
            "from": world.accounts[&user].to_json(),
            "user_chat_id": user,
            "date": now,
        });
        world.chat_mut(chat)?.join_requests.push(user);
        for bot in world.admin_bots(chat) {
            if world.status(chat, bot).rights().can_invite_users {
                world.push_update(bot, "chat_join_request", request.clone());
            }
        }
        Ok(())
    }

    /// The user writes in a group. A member who may not send messages is refused, as Telegram's
    /// client would refuse, and the attempt is recorded as blocked.
    pub fn send(&self, chat: i64, user: i64, text: &str) -> Result<i64, ControlError> {
        self.send_with(chat, user, text, json!({}))
    }

    /// Like [`Sandbox::send`], with extra message fields: `sender_chat` (an anonymous admin or a
    /// channel identity), `reply_to_message`, `forward_origin`, entities.
    pub fn send_with(
        &self,
        chat: i64,
        user: i64,
        text: &str,
        extra: Value,
    ) -> Result<i64, ControlError> {
        let mut world = self.world();
        Self::check_ids(&world, chat, user)?;
        let status = world.status(chat, user);
        if !status.can_send_messages() {
            world.chat_mut(chat)?.blocked.push((user, text.to_string()));
            return Err(ControlError::Blocked(format!(
                "user {user} is {} in chat {chat}",
                status.word()
            )));
        }
        let mut fields = json!({ "text": text });
        for (key, value) in extra.as_object().cloned().unwrap_or_default() {
            fields[key] = value;
        }
        let message = world.record_message(chat, user, fields)?;
        world.broadcast_message(chat, &message);
        Ok(message["message_id"].as_i64().unwrap_or_default())
    }

    /// A chat as it appears inside messages (for building `sender_chat` or `forward_origin`).
    pub fn chat_json(&self, chat: i64) -> Result<Value, ControlError> {
        let world = self.world();
        Ok(world.chat(chat)?.to_json(&world.accounts))
    }

    /// A post in a channel (`sender_chat` is the channel), delivered to the channel's bots.
    pub fn post(&self, channel: i64, text: &str) -> Result<i64, ControlError> {
        let mut world = self.world();
        let message = world.record_message(channel, channel, json!({ "text": text }))?;
        world.broadcast_message(channel, &message);
        Ok(message["message_id"].as_i64().unwrap_or_default())
    }

    /// The user writes to the bot in private (`/start` opens the chat).
    pub fn send_private(&self, bot: i64, user: i64, text: &str) -> Result<i64, ControlError> {
        let mut world = self.world();
        if !world.bots.contains_key(&bot) {
            return Err(ControlError::UnknownAccount(bot));
        }
        let chat = world.private_chat(user);
        let mut extra = json!({ "text": text });
        if let Some(command) = text
            .split_whitespace()
            .next()
            .filter(|w| w.starts_with('/'))
        {
            extra["entities"] = json!([{ "type": "bot_command", "offset": 0, "length": command.encode_utf16().count() }]);
        }
        let message = world.record_message(chat, user, extra)?;
        world.push_update(bot, "message", message.clone());
        Ok(message["message_id"].as_i64().unwrap_or_default())
    }

    /// The user presses an inline button carrying `callback_data` on a bot's message.
    /// Returns the callback query id, whose answer [`Sandbox::callback_answer`] reads.
    pub fn press_button(
        &self,
        chat: i64,
        message_id: i64,
        user: i64,
        data: &str,
    ) -> Result<String, ControlError> {
        let mut world = self.world();
        Self::check_ids(&world, chat, user)?;
        let message = world
            .chat(chat)?
            .messages
            .get(&message_id)
            .filter(|m| !m.deleted)
            .cloned()
            .ok_or(ControlError::NoSuchMessage {
                chat,
                message: message_id,
            })?;
        let has_button = message
            .reply_markup
            .iter()
            .flat_map(|m| m["inline_keyboard"].as_array())
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .any(|button| button["callback_data"].as_str() == Some(data));
        if !has_button {
            return Err(ControlError::NoSuchButton {
                message: message_id,
                data: data.to_string(),
            });
        }
        let id = world.next_callback_id();
        world.callbacks.insert(id.clone(), (user, message.from));
        let query = json!({
            "id": id,
            "from": world.accounts[&user].to_json(),
            "message": message.json,
            "chat_instance": format!("{}", chat.unsigned_abs()),
            "data": data,
        });
        world.push_update(message.from, "callback_query", query);
        Ok(id)
    }

    /// The newest live bot message in `chat` with a callback button: its id, the button's data, and
    /// the user it addresses when the data ends in a user id (as `check:<user>` does).
    pub fn latest_button(&self, chat: i64) -> Option<(i64, String, Option<i64>)> {
        let world = self.world();
        let chat = world.chats.get(&chat)?;
        chat.messages
            .values()
            .rev()
            .take(200)
            .filter(|m| !m.deleted && world.bots.contains_key(&m.from))
            .find_map(|m| {
                let buttons = m.reply_markup.as_ref()?["inline_keyboard"]
                    .as_array()?
                    .iter()
                    .flat_map(|row| row.as_array().cloned().unwrap_or_default());
                let data = buttons
                    .filter_map(|b| b["callback_data"].as_str().map(str::to_string))
                    .next()?;
                let addressed = data
                    .rsplit(':')
                    .next()
                    .and_then(|id| id.parse().ok())
                    .filter(|id| world.accounts.contains_key(id));
                Some((m.message_id, data, addressed))
            })
    }

    pub fn callback_answer(&self, callback_id: &str) -> Option<Value> {
        self.world().callback_answers.get(callback_id).cloned()
    }

    pub fn member(&self, chat: i64, user: i64) -> Status {
        self.world().status(chat, user)
    }

    pub fn transcript(&self, chat: i64) -> Vec<TranscriptEntry> {
        let world = self.world();
        let Some(chat) = world.chats.get(&chat) else {
            return Vec::new();
        };
        chat.messages
            .values()
            .map(|m| TranscriptEntry {
                message_id: m.message_id,
                from: m.from,
                text: m.text.clone(),
                reply_markup: m.reply_markup.clone(),
                deleted: m.deleted,
                edited: m.edited,
            })
            .collect()
    }

    /// Messages users tried to send while not allowed to: (user, text).
    pub fn blocked(&self, chat: i64) -> Vec<(i64, String)> {
        self.world()
            .chats
            .get(&chat)
            .map(|c| c.blocked.clone())
            .unwrap_or_default()
    }

    /// Recorded calls, oldest first, of one bot and/or method (any letter case).
    pub fn calls(&self, bot: Option<i64>, method: Option<&str>) -> Vec<CallRecord> {
        self.journal().calls(|call| {
            bot.is_none_or(|b| call.bot == b)
                && method.is_none_or(|m| call.method.eq_ignore_ascii_case(m))
        })
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.journal().violations.clone()
    }

    pub fn counters(&self) -> Counters {
        self.journal().counters.clone()
    }

    pub fn pending_updates(&self, bot: i64) -> usize {
        self.world()
            .bots
            .get(&bot)
            .map(|b| b.queue.len())
            .unwrap_or(0)
    }

    /// Whether a `getUpdates` of this bot is waiting right now.
    pub fn is_polling(&self, bot: i64) -> bool {
        self.world().bots.get(&bot).is_some_and(|b| b.polling)
    }

    pub fn inject_fault(&self, fault: Fault) {
        lock(&self.inner.faults).add(fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// Every later call with this bot's token is answered 401, as after a revocation in BotFather.
    pub fn revoke_token(&self, bot: i64) {
        if let Some(state) = self.world().bots.get_mut(&bot) {
            state.revoked = true;
            // A waiting poll answers 401 at once, as the next request would.
            state.wake.send_modify(|n| *n += 1);
        }
    }

    /// BotFather's "revoke current token": the bot gets a new token and the old one stops working
    /// (401 from the next request on). `None` for an unknown bot.
    pub fn rotate_token(&self, bot: i64) -> Option<String> {
        let mut world = self.world();
        let token = world.new_token(bot);
        let old = {
            let state = world.bots.get_mut(&bot)?;
            state.wake.send_modify(|n| *n += 1);
            std::mem::replace(&mut state.token, token.clone())
        };
        world.tokens.remove(&old);
        world.tokens.insert(token.clone(), bot);
        Some(token)
    }

    pub fn restore_token(&self, bot: i64) {
        if let Some(state) = self.world().bots.get_mut(&bot) {
            state.revoked = false;
        }
    }

    /// Moves the sandbox's clock forward, so timed restrictions and bans expire.
    pub fn advance_clock(&self, seconds: i64) {
        self.world().clock_offset_s += seconds;
    }

    /// Waits until `condition` holds, re-checking after every call a bot makes, for at most `timeout`.
    pub async fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut condition: impl FnMut(&Sandbox) -> Option<T>,
    ) -> Result<T, ControlError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changed = self.journal().changed.subscribe();
        loop {
            if let Some(value) = condition(self) {
                return Ok(value);
            }
            // Control operations do not bump the journal, so re-check at least every 50 ms.
            let step = (tokio::time::Instant::now() + Duration::from_millis(50)).min(deadline);
            let _ = tokio::time::timeout_at(step, changed.changed()).await;
            if tokio::time::Instant::now() >= deadline {
                return condition(self)
                    .ok_or_else(|| ControlError::Timeout(timeout, what.to_string()));
            }
        }
    }

    /// Waits for a call of `method` by `bot` after the first `after` such calls (0: the first one).
    pub async fn wait_for_call(
        &self,
        bot: i64,
        method: &str,
        after: usize,
        timeout: Duration,
    ) -> Result<CallRecord, ControlError> {
        let what = format!("call {} of {method} by bot {bot}", after + 1);
        self.wait_until(timeout, &what, |s| {
            s.calls(Some(bot), Some(method)).into_iter().nth(after)
        })
        .await
    }

    fn check_ids(world: &super::world::World, chat: i64, user: i64) -> Result<(), ControlError> {
        if !world.chats.contains_key(&chat) {
            return Err(ControlError::UnknownChat(chat));
        }
        if !world.accounts.contains_key(&user) {
            return Err(ControlError::UnknownAccount(user));
        }
        Ok(())
    }
}

fn creator_of(world: &super::world::World, chat: i64) -> Option<i64> {
    world
        .chats
        .get(&chat)?
        .members
        .iter()
        .find(|(_, s)| matches!(s, Status::Creator))
        .map(|(id, _)| *id)
}
