//! Reading back: members, chats, transcripts, blocked attempts, buttons, the calls bots made, spec
//! violations and counters, and waiting for a call.

use std::time::Duration;

use serde_json::Value;

use super::{ControlError, TranscriptEntry};
use crate::Sandbox;
use crate::journal::{CallRecord, Counters, Violation};
use crate::model::Status;

impl Sandbox {
    /// A member's standing now (expired restrictions and bans already lifted).
    pub fn member(&self, chat: i64, user: i64) -> Status {
        self.world().status(chat, user)
    }

    /// A chat as it appears inside messages (`sender_chat`, `forward_origin`).
    pub fn chat_json(&self, chat: i64) -> Result<Value, ControlError> {
        self.world()
            .chat_json(chat)
            .map_err(|_| ControlError::UnknownChat(chat))
    }

    /// Every message of a chat, oldest first, deleted ones marked.
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
                sender_chat: m.sender_chat,
                thread: m.thread,
                text: m.text.clone(),
                reply_markup: m.reply_markup.clone(),
                reply_to: m.json["reply_to_message"]["message_id"].as_i64(),
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

    /// How the bot answered a button press (`answerCallbackQuery`), once it has.
    pub fn callback_answer(&self, callback_id: &str) -> Option<Value> {
        self.world().callback_answers.get(callback_id).cloned()
    }

    /// Recorded calls, oldest first, of one bot and/or method (any letter case).
    pub fn calls(&self, bot: Option<i64>, method: Option<&str>) -> Vec<CallRecord> {
        self.journal().calls(|call| {
            bot.is_none_or(|b| call.bot == b)
                && method.is_none_or(|m| call.method.eq_ignore_ascii_case(m))
        })
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.expire_join_queries();
        self.journal().violations.clone()
    }

    pub fn counters(&self) -> Counters {
        self.journal().counters.clone()
    }

    /// Updates queued for a bot and not yet confirmed.
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

    /// Waits until `bot` has a long poll waiting, for at most `timeout`.
    pub async fn wait_polling(&self, bot: i64, timeout: Duration) -> Result<(), ControlError> {
        self.wait_until(timeout, &format!("bot {bot} to poll"), |s| {
            s.is_polling(bot).then_some(())
        })
        .await
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
}
