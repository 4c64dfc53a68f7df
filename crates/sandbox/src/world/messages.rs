//! Messages: how one is built as the Bot API shows it (sender, sender chat, topic, reply), kept,
//! delivered to the bots that see it, and edited.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{Payload, World};
use crate::api::ApiError;
use crate::model::{ChatKind, StoredMessage};

/// A message about to be stored. `from` is the account shown as the sender (a user, a bot, or one
/// of Telegram's service accounts); `author` is who really wrote it, for edits (the same as
/// `from` unless Telegram hides the author); for a channel post both are the channel.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub chat: i64,
    pub from: i64,
    pub author: i64,
    pub sender_chat: Option<i64>,
    /// The forum topic; `None` is the General topic (or a chat without topics).
    pub thread: Option<i64>,
    pub reply_to: Option<i64>,
    /// The content: `text`, `entities`, `reply_markup`, service fields, forward fields.
    pub fields: Map<String, Value>,
}

impl Draft {
    /// A message `from` writes as themselves.
    pub fn new(chat: i64, from: i64, fields: Value) -> Self {
        Self {
            chat,
            from,
            author: from,
            fields: fields.as_object().cloned().unwrap_or_default(),
            ..Self::default()
        }
    }
}

impl World {
    /// Stores a message and returns its `Message` object. A reply lands in the topic of the
    /// message it answers; a message in a topic implicitly replies to the topic's first message,
    /// as the Bot API server shows it (`Client::get_implicit_reply_to_message_id`).
    pub fn record_message(&mut self, draft: Draft) -> Result<Arc<Value>, ApiError> {
        let now = self.now();
        let chat = self.chat(draft.chat)?;
        let reply = match draft.reply_to {
            Some(id) => Some(
                chat.messages
                    .get(&id)
                    .filter(|m| !m.deleted)
                    .ok_or_else(|| ApiError::bad_request("message to be replied not found"))?
                    .clone(),
            ),
            None => None,
        };
        let thread = if chat.is_forum {
            draft.thread.or(reply.as_ref().and_then(|r| r.thread))
        } else {
            None
        };
        let message_id = chat.next_message_id;
        let implicit_reply = thread
            .filter(|root| *root < message_id)
            .and_then(|root| chat.messages.get(&root))
            .filter(|_| reply.is_none());
        let mut message =
            json!({ "message_id": message_id, "date": now, "chat": chat.to_json(&self.accounts) });
        if chat.kind == ChatKind::Channel {
            message["sender_chat"] = message["chat"].clone();
        } else {
            message["from"] = self.account(draft.from)?.to_json();
            if let Some(sender) = draft.sender_chat {
                message["sender_chat"] = self.chat_json(sender)?;
            }
        }
        if let Some(thread) = thread {
            message["message_thread_id"] = json!(thread);
            message["is_topic_message"] = json!(true);
        }
        if let Some(replied) = reply.as_ref().or(implicit_reply) {
            message["reply_to_message"] = without_reply(&replied.json);
        }
        for (key, value) in draft.fields {
            message[key] = value;
        }
        let message = Arc::new(message);
        let stored = StoredMessage {
            message_id,
            chat_id: draft.chat,
            from: if chat.kind == ChatKind::Channel {
                draft.chat
            } else {
                draft.from
            },
            author: draft.author,
            sender_chat: draft.sender_chat,
            thread,
            date: now,
            text: message["text"].as_str().map(str::to_string),
            reply_markup: message.get("reply_markup").cloned(),
            json: message.clone(),
            deleted: false,
            edited: false,
        };
        let kept = self.messages_kept_per_chat;
        let chat = self.chat_mut(draft.chat)?;
        chat.next_message_id += 1;
        chat.messages.insert(message_id, stored);
        if chat.messages.len() > kept {
            chat.messages.pop_first();
        }
        Ok(message)
    }

    /// Delivers a message to every bot in the chat but its sender.
    pub fn broadcast_message(&mut self, chat: i64, message: &Arc<Value>) {
        let kind = if self.chat(chat).map(|c| c.kind) == Ok(ChatKind::Channel) {
            "channel_post"
        } else {
            "message"
        };
        self.deliver(chat, kind, message);
    }

    fn deliver(&mut self, chat: i64, kind: &'static str, message: &Arc<Value>) {
        let sender = message["from"]["id"].as_i64();
        let bots: Vec<i64> = self
            .bots_in(chat)
            .into_iter()
            .filter(|bot| Some(*bot) != sender)
            .collect();
        if bots.is_empty() {
            return;
        }
        let payload = Payload::shared(message.clone());
        for bot in bots {
            self.push_update(bot, kind, &payload);
        }
    }

    /// Service messages reach the bots in the chat, including a bot that just joined.
    pub fn broadcast_service(&mut self, chat: i64, subject: i64, message: &Arc<Value>) {
        let mut bots = self.bots_in(chat);
        if self.bots.contains_key(&subject) && !bots.contains(&subject) {
            bots.push(subject);
        }
        let payload = Payload::shared(message.clone());
        for bot in bots {
            self.push_update(bot, "message", &payload);
        }
    }

    /// `author` changes the text of their message: the bots in the chat get `edited_message`
    /// (`edited_channel_post` in a channel) with the new text and `edit_date`.
    pub fn edit_message(
        &mut self,
        chat: i64,
        message_id: i64,
        author: i64,
        text: &str,
    ) -> Result<Arc<Value>, ApiError> {
        let now = self.now();
        let kind = self.chat(chat)?.kind;
        // A channel's posts are the channel's: its administrators edit them.
        let author = if kind == ChatKind::Channel && self.status(chat, author).is_admin() {
            chat
        } else {
            author
        };
        let stored = self
            .chat_mut(chat)?
            .messages
            .get_mut(&message_id)
            .filter(|m| !m.deleted)
            .ok_or_else(|| ApiError::bad_request("message to edit not found"))?;
        if stored.text.as_deref() == Some(text) {
            return Err(ApiError::bad_request(
                "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
            ));
        }
        if stored.author != author {
            return Err(ApiError::bad_request("message can't be edited"));
        }
        stored.text = Some(text.to_string());
        stored.edited = true;
        let json = Arc::make_mut(&mut stored.json);
        json["text"] = json!(text);
        json["edit_date"] = json!(now);
        let message = stored.json.clone();
        let update = if kind == ChatKind::Channel {
            "edited_channel_post"
        } else {
            "edited_message"
        };
        self.deliver(chat, update, &message);
        Ok(message)
    }
}

/// A message as it appears inside another one's `reply_to_message`: one level deep only.
fn without_reply(message: &Value) -> Value {
    let mut inner = message.clone();
    if let Some(object) = inner.as_object_mut() {
        object.remove("reply_to_message");
    }
    inner
}
