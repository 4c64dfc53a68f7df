//! Users acting as people do in Telegram's apps: joining, leaving, asking to join, writing (as
//! themselves, as a channel, anonymously, in a topic, as a reply), forwarding, editing, pressing
//! buttons, blocking a bot, deleting their account. Whatever the app would refuse is refused.

use serde_json::{Map, Value, json};

use super::world::check_ids;
use super::{ControlError, Forward, Say};
use crate::Sandbox;
use crate::model::{CHANNEL_BOT_ID, ChatKind, GROUP_ANONYMOUS_BOT_ID, Status};
use crate::world::{Draft, Payload, World};

impl Sandbox {
    /// The user joins (by link or username). Banned users cannot; a restriction still applies.
    pub fn join(&self, chat: i64, user: i64) -> Result<(), ControlError> {
        let mut world = self.world();
        acting(&world, chat, user)?;
        match world.status_on_joining(chat, user) {
            Err(_) => Err(ControlError::Banned { chat, user }),
            Ok(None) => Ok(()),
            Ok(Some(status)) => Ok(world.set_status(chat, user, status, user)?),
        }
    }

    /// The user leaves; a restricted member stays restricted but is no longer a member.
    pub fn leave(&self, chat: i64, user: i64) -> Result<(), ControlError> {
        let mut world = self.world();
        acting(&world, chat, user)?;
        let new = world.status(chat, user).after_leaving();
        Ok(world.set_status(chat, user, new, user)?)
    }

    /// The user writes `text` in a group as themselves. See [`Sandbox::say`].
    pub fn send(&self, chat: i64, user: i64, text: &str) -> Result<i64, ControlError> {
        self.say(&Say::new(chat, user, text))
    }

    /// The user writes a message: as themselves, as a channel they administer, or as the group
    /// (an anonymous administrator); in a forum topic; as a reply. A member who may not send is
    /// refused, as Telegram's app refuses, and the attempt is recorded as blocked. A leading
    /// `/command` carries a `bot_command` entity, as the apps send it.
    pub fn say(&self, say: &Say) -> Result<i64, ControlError> {
        let mut world = self.world();
        acting(&world, say.chat, say.user)?;
        let status = world.status(say.chat, say.user);
        if !status.can_send_messages() {
            world
                .chat_mut(say.chat)?
                .blocked
                .push((say.user, say.text.clone()));
            return Err(ControlError::Blocked(format!(
                "user {} is {} in chat {}",
                say.user,
                status.word(),
                say.chat
            )));
        }
        let mut draft = Draft::new(say.chat, say.user, Value::Object(text_fields(&say.text)));
        if let Some(sender) = say.sender_chat {
            draft.from = identity(&world, say.chat, say.user, sender)?;
            draft.sender_chat = Some(sender);
        }
        draft.thread = thread(&world, say.chat, say.thread)?;
        draft.reply_to = say.reply_to;
        let message = world.record_message(draft)?;
        world.broadcast_message(say.chat, &message);
        Ok(message["message_id"].as_i64().unwrap_or_default())
    }

    /// The user forwards a message into a chat: from a channel it carries a `channel` origin,
    /// from anywhere else the original sender's `user` origin.
    pub fn forward(&self, forward: &Forward) -> Result<i64, ControlError> {
        let mut world = self.world();
        acting(&world, forward.chat, forward.user)?;
        let source = world
            .chat(forward.from_chat)?
            .messages
            .get(&forward.message_id)
            .filter(|m| !m.deleted)
            .cloned()
            .ok_or(ControlError::NoSuchMessage {
                chat: forward.from_chat,
                message: forward.message_id,
            })?;
        if !world.status(forward.chat, forward.user).can_send_messages() {
            return Err(ControlError::Blocked(format!(
                "user {} may not write in chat {}",
                forward.user, forward.chat
            )));
        }
        let origin = if world.chat(forward.from_chat)?.kind == ChatKind::Channel {
            json!({ "type": "channel", "chat": world.chat_json(forward.from_chat)?,
                    "message_id": source.message_id, "date": source.date })
        } else {
            json!({ "type": "user", "sender_user": world.account(source.from)?.to_json(),
                    "date": source.date })
        };
        let Some(text) = source.text.as_deref() else {
            return Err(ControlError::Telegram(
                "service messages can't be forwarded".into(),
            ));
        };
        let mut fields = text_fields(text);
        fields.insert("forward_origin".into(), origin);
        let mut draft = Draft::new(forward.chat, forward.user, Value::Object(fields));
        draft.thread = thread(&world, forward.chat, forward.thread)?;
        let message = world.record_message(draft)?;
        world.broadcast_message(forward.chat, &message);
        Ok(message["message_id"].as_i64().unwrap_or_default())
    }

    /// A post in a channel; with a discussion group it is forwarded there automatically.
    pub fn post(&self, channel: i64, text: &str) -> Result<i64, ControlError> {
        Ok(self.world().post(channel, text)?)
    }

    /// The user writes to the bot in private (`/start` opens the chat), which lets the bot write
    /// back; writing to a bot the user had blocked unblocks it first, as the apps do.
    pub fn send_private(&self, bot: i64, user: i64, text: &str) -> Result<i64, ControlError> {
        let mut world = self.world();
        if !world.bots.contains_key(&bot) {
            return Err(ControlError::UnknownAccount(bot));
        }
        let chat = world.private_chat(user);
        acting(&world, chat, user)?;
        world.set_bot_blocked(user, bot, false)?;
        world.chat_mut(chat)?.started_bots.insert(bot);
        let message =
            world.record_message(Draft::new(chat, user, Value::Object(text_fields(text))))?;
        let id = message["message_id"].as_i64().unwrap_or_default();
        world.push_update(bot, "message", &Payload::shared(message));
        Ok(id)
    }

    /// The user edits their message; the chat's bots get `edited_message`.
    pub fn edit(
        &self,
        chat: i64,
        message_id: i64,
        user: i64,
        text: &str,
    ) -> Result<(), ControlError> {
        let mut world = self.world();
        acting(&world, chat, user)?;
        world.edit_message(chat, message_id, user, text)?;
        Ok(())
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
        acting(&world, chat, user)?;
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
            "message": *message.json,
            "chat_instance": format!("{}", chat.unsigned_abs()),
            "data": data,
        });
        world.push_update(message.from, "callback_query", &Payload::new(query));
        Ok(id)
    }

    /// The user blocks the bot: it gets `my_chat_member` (`kicked`), and messages to the user
    /// fail with 403 until the user writes to it again.
    pub fn block_bot(&self, user: i64, bot: i64) -> Result<(), ControlError> {
        self.set_blocked(user, bot, true)
    }

    /// The user unblocks the bot ("Restart"): `my_chat_member` back to `member`.
    pub fn unblock_bot(&self, user: i64, bot: i64) -> Result<(), ControlError> {
        self.set_blocked(user, bot, false)
    }

    fn set_blocked(&self, user: i64, bot: i64, blocked: bool) -> Result<(), ControlError> {
        let mut world = self.world();
        if !world.bots.contains_key(&bot) {
            return Err(ControlError::UnknownAccount(bot));
        }
        let chat = world.private_chat(user);
        acting(&world, chat, user)?;
        Ok(world.set_bot_blocked(user, bot, blocked)?)
    }

    /// The user deletes their account: it shows as "Deleted Account" wherever it still is a
    /// member, can do nothing more, and bots' messages to it fail with 403.
    pub fn delete_account(&self, user: i64) -> Result<(), ControlError> {
        let mut world = self.world();
        if !world.accounts.contains_key(&user) {
            return Err(ControlError::UnknownAccount(user));
        }
        Ok(world.delete_account(user)?)
    }
}

/// The chat and the user exist, the user can still act, and the chat was not upgraded away.
pub(super) fn acting(world: &World, chat: i64, user: i64) -> Result<(), ControlError> {
    check_ids(world, chat, user)?;
    if world.accounts[&user].deleted {
        return Err(ControlError::Deleted(user));
    }
    match world.chats[&chat].migrated_to {
        Some(to) => Err(ControlError::Upgraded { chat, to }),
        None => Ok(()),
    }
}

/// `text`, with a `bot_command` entity when it starts with a command.
fn text_fields(text: &str) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("text".into(), json!(text));
    if let Some(command) = text
        .split_whitespace()
        .next()
        .filter(|w| w.starts_with('/') && w.len() > 1)
    {
        fields.insert(
            "entities".into(),
            json!([{ "type": "bot_command", "offset": 0, "length": command.encode_utf16().count() }]),
        );
    }
    fields
}

/// The sender Telegram shows for a user writing as `sender`: the group itself needs an anonymous
/// administrator (or the creator); a channel needs the user to administer it.
fn identity(world: &World, chat: i64, user: i64, sender: i64) -> Result<i64, ControlError> {
    let not_allowed = |reason: &str| ControlError::NotAllowed {
        chat,
        user,
        reason: reason.to_string(),
    };
    if sender == chat {
        return match world.status(chat, user) {
            Status::Creator => Ok(GROUP_ANONYMOUS_BOT_ID),
            Status::Administrator { rights } if rights.is_anonymous => Ok(GROUP_ANONYMOUS_BOT_ID),
            _ => Err(not_allowed(
                "only an anonymous administrator writes as the group",
            )),
        };
    }
    if world.chat(sender)?.kind != ChatKind::Channel {
        return Err(not_allowed("a user writes as the group or as a channel"));
    }
    if !world.status(sender, user).is_admin() {
        return Err(not_allowed(
            "a user writes only as a channel they administer",
        ));
    }
    Ok(CHANNEL_BOT_ID)
}

/// The forum topic a user writes in, which must exist; outside forums there is none.
fn thread(world: &World, chat: i64, thread: Option<i64>) -> Result<Option<i64>, ControlError> {
    let target = world.chat(chat)?;
    match thread {
        None => Ok(None),
        Some(_) if !target.is_forum => {
            Err(ControlError::Telegram(format!("chat {chat} has no topics")))
        }
        Some(id) if target.has_topic(id) => Ok(Some(id)),
        Some(_) => Err(ControlError::Telegram("message thread not found".into())),
    }
}
