//! What changes a chat itself: forum topics, a channel's discussion group and its automatic
//! forwards, the upgrade of a basic group to a supergroup, and accounts that block a bot or are
//! deleted.

use serde_json::json;

use super::{Draft, Payload, World};
use crate::api::ApiError;
use crate::model::{ChatKind, DELETED_ACCOUNT_NAME, Status, TELEGRAM_ID, Topic};

/// The colour Telegram gives a new topic when none is chosen (`0x6FB9F0`).
const TOPIC_ICON_COLOR: i64 = 7_322_096;

impl World {
    /// `by` opens a topic in a forum supergroup: a `forum_topic_created` service message whose id
    /// is the topic's `message_thread_id`.
    pub fn create_topic(&mut self, chat: i64, by: i64, name: &str) -> Result<i64, ApiError> {
        let target = self.chat(chat)?;
        if !target.is_forum {
            return Err(ApiError::bad_request("the chat is not a forum"));
        }
        match name.trim().chars().count() {
            0 => return Err(ApiError::bad_request("TOPIC_TITLE_EMPTY")),
            1..=128 => {}
            _ => {
                return Err(ApiError::bad_request(
                    "topic name must be at most 128 characters",
                ));
            }
        }
        let thread = target.next_message_id;
        self.chat_mut(chat)?.topics.insert(
            thread,
            Topic {
                name: name.to_string(),
                deleted: false,
            },
        );
        let mut draft = Draft::new(
            chat,
            by,
            json!({ "forum_topic_created": { "name": name, "icon_color": TOPIC_ICON_COLOR } }),
        );
        draft.thread = Some(thread);
        let message = self.record_message(draft)?;
        self.broadcast_service(chat, by, &message);
        Ok(thread)
    }

    /// The topic is deleted with its messages; writing to it fails from now on.
    pub fn delete_topic(&mut self, chat: i64, thread: i64) -> Result<(), ApiError> {
        let chat = self.chat_mut(chat)?;
        let topic = chat
            .topics
            .get_mut(&thread)
            .filter(|t| !t.deleted)
            .ok_or_else(|| ApiError::bad_request("message thread not found"))?;
        topic.deleted = true;
        for message in chat.messages.values_mut() {
            if message.thread == Some(thread) {
                message.deleted = true;
            }
        }
        Ok(())
    }

    /// Makes `group` the discussion group of `channel` (each one's `linked_chat_id`).
    pub fn link_discussion(&mut self, channel: i64, group: i64) -> Result<(), ApiError> {
        if self.chat(channel)?.kind != ChatKind::Channel
            || self.chat(group)?.kind != ChatKind::Supergroup
        {
            return Err(ApiError::bad_request(
                "a discussion group links a channel to a supergroup",
            ));
        }
        // A channel has one discussion group and a group discusses one channel: earlier links go.
        for earlier in [
            self.chat(channel)?.linked_chat,
            self.chat(group)?.linked_chat,
        ]
        .into_iter()
        .flatten()
        {
            if let Some(chat) = self.chats.get_mut(&earlier) {
                chat.linked_chat = None;
            }
        }
        self.chat_mut(channel)?.linked_chat = Some(group);
        self.chat_mut(group)?.linked_chat = Some(channel);
        Ok(())
    }

    /// A post in a channel reaches the channel's bots as `channel_post` and, when the channel has
    /// a discussion group, arrives there as Telegram's automatic forward (sent by Telegram's
    /// service account, `sender_chat` the channel, `is_automatic_forward`). Returns the post's id.
    pub fn post(&mut self, channel: i64, text: &str) -> Result<i64, ApiError> {
        let posted = self.record_message(Draft::new(channel, channel, json!({ "text": text })))?;
        self.broadcast_message(channel, &posted);
        let post_id = posted["message_id"].as_i64().unwrap_or_default();
        if let Some(group) = self.chat(channel)?.linked_chat {
            let mut forward = Draft::new(
                group,
                TELEGRAM_ID,
                json!({
                    "text": text,
                    "is_automatic_forward": true,
                    "forward_origin": {
                        "type": "channel",
                        "chat": posted["chat"],
                        "message_id": post_id,
                        "date": posted["date"],
                    },
                }),
            );
            forward.sender_chat = Some(channel);
            let message = self.record_message(forward)?;
            self.broadcast_message(group, &message);
        }
        Ok(post_id)
    }

    /// `by` upgrades a basic group to a supergroup, as Telegram does when an administrator
    /// changes certain settings: members and rights carry over, the old chat says
    /// `migrate_to_chat_id` and the new one `migrate_from_chat_id`, and from then on the Bot API
    /// answers calls naming the old chat with 400 and `parameters.migrate_to_chat_id`
    /// (`Client::check_chat_access`, telegram-bot-api 10.0). Returns the new chat's id.
    pub fn upgrade_group(&mut self, chat: i64, by: i64) -> Result<i64, ApiError> {
        let old = self.chat(chat)?;
        if old.kind != ChatKind::Group || old.migrated_to.is_some() {
            return Err(ApiError::bad_request("the chat is not a basic group"));
        }
        // Only the creator upgrades (tdlib `upgradeBasicGroupChatToSupergroupChat`).
        if !matches!(self.status(chat, by), Status::Creator) {
            return Err(ApiError::bad_request("CHAT_ADMIN_REQUIRED"));
        }
        let title = old.title.clone().unwrap_or_default();
        let members: Vec<(i64, Status)> = old
            .members
            .keys()
            .map(|user| (*user, self.status(chat, *user)))
            .filter(|(_, status)| !matches!(status, Status::Left))
            .collect();
        let new = self.add_chat(ChatKind::Supergroup, &title, None);
        self.chat_mut(new)?.members.extend(members);
        let farewell =
            self.record_message(Draft::new(chat, by, json!({ "migrate_to_chat_id": new })))?;
        self.broadcast_service(chat, by, &farewell);
        self.chat_mut(chat)?.migrated_to = Some(new);
        let welcome =
            self.record_message(Draft::new(new, by, json!({ "migrate_from_chat_id": chat })))?;
        self.broadcast_service(new, by, &welcome);
        Ok(new)
    }

    /// The user blocks (or unblocks) a bot: the bot gets `my_chat_member` in the private chat
    /// (`kicked` or `member`), and its messages to the user fail while blocked.
    pub fn set_bot_blocked(&mut self, user: i64, bot: i64, blocked: bool) -> Result<(), ApiError> {
        let chat = self.private_chat(user);
        let was = self.chat(chat)?.blocked_bots.contains(&bot);
        if was == blocked {
            return Ok(());
        }
        let private = self.chat_mut(chat)?;
        if blocked {
            private.blocked_bots.insert(bot);
        } else {
            private.blocked_bots.remove(&bot);
        }
        let (old, new) = if blocked {
            (Status::Member, Status::Kicked { until_date: 0 })
        } else {
            (Status::Kicked { until_date: 0 }, Status::Member)
        };
        let bot_account = self.account(bot)?.clone();
        let change = json!({
            "chat": self.chat_json(chat)?,
            "from": self.account(user)?.to_json(),
            "date": self.now(),
            "old_chat_member": old.to_json(&bot_account, ChatKind::Private),
            "new_chat_member": new.to_json(&bot_account, ChatKind::Private),
        });
        self.push_update(bot, "my_chat_member", &Payload::new(change));
        Ok(())
    }

    /// The user deletes their account: "Deleted Account", no other name, no username; it stays
    /// a member where it was, can no longer act, and messages to it fail.
    pub fn delete_account(&mut self, user: i64) -> Result<(), ApiError> {
        let account = self
            .accounts
            .get_mut(&user)
            .filter(|a| !a.is_bot)
            .ok_or_else(|| ApiError::bad_request("PARTICIPANT_ID_INVALID"))?;
        account.username = None;
        account.first_name = DELETED_ACCOUNT_NAME.to_string();
        account.last_name = None;
        account.deleted = true;
        Ok(())
    }
}
