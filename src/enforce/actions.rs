//! What enforcement does to a member: restrict, kick, ban, warn, lift. Each step is one rate-limited
//! call; warnings are coalesced per group, so a raid of hundreds of joins produces a handful of
//! messages (each naming many newcomers) instead of a 429 storm, while every restriction still goes out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use teloxide::payloads::{
    BanChatMemberSetters, RestrictChatMemberSetters, SendMessageSetters, UnbanChatMemberSetters,
};
use teloxide::prelude::Requester;
use teloxide::types::{
    ChatId, ChatPermissions, InlineKeyboardButton, InlineKeyboardMarkup, MessageId, ParseMode,
    UserId,
};

use super::calls::Target;
use super::directory::GroupView;
use super::policy::Action;
use super::texts::{escape, mention};
use super::{BotRuntime, Shared};
use crate::db::{ChannelRow, NewRestriction, NewTimer, now_ms};

/// Names per warning message at most (a longer raid gets several messages).
const NAMES_PER_WARNING: usize = 25;

/// Why a member is being enforced on; picks the warning text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Joined,
    Wrote,
    LeftChannel,
    /// Membership could not be read and the group fails closed.
    Unconfirmed,
}

impl Why {
    fn template(self) -> &'static str {
        match self {
            Self::Joined => "warning_join",
            Self::Wrote => "warning_message",
            Self::LeftChannel => "warning_left",
            Self::Unconfirmed => "warning_unknown",
        }
    }
}

/// A member to act on.
#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: i64,
    pub name: String,
}

/// Applies the group's policy to a member who is not subscribed; returns the outcome word recorded
/// in `verification_log` (`restricted`, `warned`, `kicked`, `banned`, `suppressed`, `failed`).
pub async fn enforce(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    view: &GroupView,
    member: &Member,
    missing: &[ChannelRow],
    why: Why,
    message_id: Option<i32>,
) -> anyhow::Result<&'static str> {
    let chat = view.group.chat_id;
    let bot = runtime.id();
    if let Some(message_id) = message_id {
        delete_message(runtime, chat, message_id).await;
    }
    // Every offence counts towards escalation; a burst of messages gets one warning message.
    let burst_key = (bot, chat, member.user_id);
    // Atomic test-and-set: concurrent messages of one burst agree on which one came first.
    let first = shared
        .recently_warned
        .entry(burst_key)
        .or_insert(())
        .is_fresh();
    let repeat = why == Why::Wrote && !first;
    let planned = view.policy.action;
    let record = shared
        .store
        .record_restriction(&NewRestriction {
            bot_instance_id: bot,
            chat_id: chat,
            user_id: member.user_id,
            reason: if planned == Action::Warn {
                "warned"
            } else {
                "restricted"
            }
            .into(),
            missing_channels: missing.iter().map(|c| c.chat_id).collect(),
        })
        .await?;
    shared.held.insert((bot, member.user_id), ());
    let action = view.policy.action_after(record.warnings);
    let already_restricted = repeat && action == Action::Restrict && planned == Action::Restrict;
    let applied = match action {
        Action::Warn => Ok(()),
        Action::Restrict if already_restricted => Ok(()),
        Action::Restrict => restrict(shared, runtime, view, member.user_id).await,
        Action::Kick | Action::Ban => {
            remove(runtime, chat, member.user_id, action == Action::Kick).await
        }
    };
    if let Err(error) = applied {
        tracing::warn!(bot_instance_id = bot, chat, error = %error, "Telegram refused an enforcement action");
        super::health::action_refused(shared, runtime, view).await;
        return Ok("failed");
    }
    match action {
        Action::Kick | Action::Ban => {
            shared
                .store
                .lift_restriction(bot, chat, member.user_id)
                .await?;
            announce_removal(shared, runtime, view, member, missing).await;
            Ok(if action == Action::Kick {
                "kicked"
            } else {
                "banned"
            })
        }
        Action::Warn | Action::Restrict => {
            if action == Action::Restrict && record.reason != "restricted" {
                // Escalated from warnings: the record now stands for a restriction to lift later.
                shared
                    .store
                    .set_restriction_reason(record.id, "restricted")
                    .await?;
            }
            let word = if action == Action::Restrict {
                "restricted"
            } else {
                "warned"
            };
            // A repeat within the burst window is not warned again, unless it just escalated.
            let escalated_now = action != view.policy.action_after(record.warnings - 1);
            if repeat && !escalated_now {
                return Ok("suppressed");
            }
            shared
                .warnings
                .enqueue(shared, runtime, view, record.id, member, missing, why);
            Ok(word)
        }
    }
}

async fn restrict(
    shared: &Shared,
    runtime: &BotRuntime,
    view: &GroupView,
    user: i64,
) -> Result<(), teloxide::RequestError> {
    let chat = view.group.chat_id;
    let mut request = runtime.calls.bot().restrict_chat_member(
        ChatId(chat),
        user_id(user),
        ChatPermissions::empty(),
    );
    let mute_for = view.policy.mute_for_s;
    if mute_for > 0 {
        // Validation keeps mute_for_s at 30 s or more: Telegram reads anything shorter as forever.
        let until = chrono_at(now_ms() / 1000 + mute_for as i64);
        request = request.until_date(until);
        let timer = NewTimer {
            bot_instance_id: runtime.id(),
            kind: "restriction_expired".into(),
            chat_id: chat,
            user_id: Some(user),
            message_id: None,
            payload: json!({}),
            due_at: now_ms() + mute_for as i64 * 1000,
        };
        if let Err(error) = shared.store.schedule(&timer).await {
            tracing::warn!(%error, "cannot schedule the end of a temporary restriction");
        }
    }
    runtime
        .calls
        .run("restrictChatMember", None, request)
        .await
        .map(|_| ())
}

/// Kick (ban, then unban only if banned, so the member may come back) or ban for good.
async fn remove(
    runtime: &BotRuntime,
    chat: i64,
    user: i64,
    kick: bool,
) -> Result<(), teloxide::RequestError> {
    let bot = runtime.calls.bot();
    runtime
        .calls
        .run(
            "banChatMember",
            None,
            bot.ban_chat_member(ChatId(chat), user_id(user))
                .revoke_messages(false),
        )
        .await?;
    if kick {
        let unban = bot
            .unban_chat_member(ChatId(chat), user_id(user))
            .only_if_banned(true);
        runtime.calls.run("unbanChatMember", None, unban).await?;
    }
    Ok(())
}

/// Lifts what Nezuko did to a member in a group, if anything; returns whether it did.
/// A restriction Nezuko did not apply (an admin's mute) has no record and is never touched.
/// `pressed` is the warning whose button was pressed: a member quick enough may press before the
/// warning's id is stored on their record.
pub async fn lift(
    shared: &Shared,
    runtime: &BotRuntime,
    chat: i64,
    user: i64,
    pressed: Option<i32>,
) -> anyhow::Result<bool> {
    let Some(record) = shared
        .store
        .lift_restriction(runtime.id(), chat, user)
        .await?
    else {
        return Ok(false);
    };
    shared
        .recently_warned
        .invalidate(&(runtime.id(), chat, user));
    shared
        .store
        .cancel_timers(runtime.id(), "restriction_expired", chat, user)
        .await?;
    if record.reason == "restricted" {
        let request = runtime.calls.bot().restrict_chat_member(
            ChatId(chat),
            user_id(user),
            ChatPermissions::all(),
        );
        runtime
            .calls
            .run("restrictChatMember", None, request)
            .await?;
    }
    if let Some(warning) = record.warning_message_id.or(pressed.map(i64::from))
        && !shared
            .store
            .warning_in_use(runtime.id(), chat, warning)
            .await?
    {
        delete_message(runtime, chat, warning as i32).await;
    }
    Ok(true)
}

/// Deletes a message; one that is already gone is not an error.
pub async fn delete_message(runtime: &BotRuntime, chat: i64, message_id: i32) {
    let request = runtime
        .calls
        .bot()
        .delete_message(ChatId(chat), MessageId(message_id));
    if let Err(error) = runtime.calls.run("deleteMessage", None, request).await {
        tracing::debug!(chat, message_id, %error, "a message could not be deleted");
    }
}

/// Sends an HTML message into a group and schedules its deletion after `ttl_s` (0: keep).
pub async fn say(
    shared: &Shared,
    runtime: &BotRuntime,
    chat: i64,
    text: String,
    keyboard: Option<InlineKeyboardMarkup>,
    ttl_s: u64,
) -> anyhow::Result<i32> {
    let mut request = runtime
        .calls
        .bot()
        .send_message(ChatId(chat), text)
        .parse_mode(ParseMode::Html);
    if let Some(keyboard) = keyboard {
        request = request.reply_markup(keyboard);
    }
    let sent = runtime
        .calls
        .run("sendMessage", Target::chat(chat), request)
        .await?;
    if ttl_s > 0 {
        delete_later(shared, runtime.id(), chat, sent.id.0, ttl_s).await;
    }
    Ok(sent.id.0)
}

/// A durable timer that deletes a message.
pub async fn delete_later(shared: &Shared, bot: i64, chat: i64, message_id: i32, after_s: u64) {
    let timer = NewTimer {
        bot_instance_id: bot,
        kind: "delete_message".into(),
        chat_id: chat,
        user_id: None,
        message_id: Some(i64::from(message_id)),
        payload: json!({}),
        due_at: now_ms() + after_s as i64 * 1000,
    };
    if let Err(error) = shared.store.schedule(&timer).await {
        tracing::warn!(%error, chat, "cannot schedule a message deletion");
    }
}

async fn announce_removal(
    shared: &Shared,
    runtime: &BotRuntime,
    view: &GroupView,
    member: &Member,
    missing: &[ChannelRow],
) {
    let text = view.texts.render(
        view.policy.language,
        "removed",
        &[
            ("users", &mention(member.user_id, &member.name)),
            ("group", &escape(&view.group.title)),
            ("channels", &channel_list(missing)),
        ],
    );
    let ttl = view.policy.warning_ttl_s.max(60);
    if let Err(error) = say(shared, runtime, view.group.chat_id, text, None, ttl).await {
        tracing::debug!(%error, "the removal notice was not sent");
    }
}

/// `@a, @b` (or titles for private channels), escaped.
pub fn channel_list(channels: &[ChannelRow]) -> String {
    channels
        .iter()
        .map(|c| match &c.username {
            Some(username) => format!("@{}", escape(username)),
            None => format!("<b>{}</b>", escape(&c.title)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A join button per channel (its public link or invite link) and the "I have joined" button.
pub fn warning_keyboard(
    view: &GroupView,
    missing: &[ChannelRow],
    data: String,
) -> InlineKeyboardMarkup {
    let mut rows: Vec<Vec<InlineKeyboardButton>> = missing
        .iter()
        .filter_map(|channel| {
            let link = match &channel.username {
                Some(username) => format!("https://t.me/{username}"),
                None => channel.invite_link.clone()?,
            };
            let url = link.parse().ok()?;
            let label = view.texts.render(
                view.policy.language,
                "button_join",
                &[("channel", &channel.title)],
            );
            Some(vec![InlineKeyboardButton::url(label, url)])
        })
        .collect();
    rows.push(vec![InlineKeyboardButton::callback(
        view.texts
            .render(view.policy.language, "button_verify", &[]),
        data,
    )]);
    InlineKeyboardMarkup::new(rows)
}

fn user_id(user: i64) -> UserId {
    UserId(user.max(0) as u64)
}

fn chrono_at(unix_s: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(unix_s, 0).unwrap_or_default()
}

type BatchKey = (i64, i64, &'static str, Vec<i64>);

struct Batch {
    runtime_id: i64,
    view: Arc<GroupView>,
    missing: Vec<ChannelRow>,
    why: Why,
    members: Vec<(i64, Member)>,
}

/// Warnings waiting for a send slot, per (bot, group, text, missing channels). While one waits,
/// newcomers join it, so the number of messages follows the group's send limit, not the raid.
#[derive(Default)]
pub struct WarningQueue {
    pending: Mutex<HashMap<BatchKey, Batch>>,
}

impl WarningQueue {
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue(
        &self,
        shared: &Arc<Shared>,
        runtime: &BotRuntime,
        view: &GroupView,
        restriction_id: i64,
        member: &Member,
        missing: &[ChannelRow],
        why: Why,
    ) {
        let key: BatchKey = (
            runtime.id(),
            view.group.chat_id,
            why.template(),
            missing.iter().map(|c| c.chat_id).collect(),
        );
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(batch) = pending.get_mut(&key) {
            batch.members.push((restriction_id, member.clone()));
            return;
        }
        pending.insert(
            key.clone(),
            Batch {
                runtime_id: runtime.id(),
                view: Arc::new(view.clone()),
                missing: missing.to_vec(),
                why,
                members: vec![(restriction_id, member.clone())],
            },
        );
        drop(pending);
        let shared = shared.clone();
        tokio::spawn(async move { send_batches(shared, key).await });
    }
}

async fn send_batches(shared: Arc<Shared>, key: BatchKey) {
    loop {
        let Some(runtime) = shared.runtime(key.0) else {
            shared
                .warnings
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            return;
        };
        // Wait for a send slot before taking the batch: joiners arriving meanwhile ride along.
        let scopes = runtime.calls.scopes(
            "sendMessage",
            Some(Target {
                chat_id: key.1,
                is_group: true,
            }),
        );
        let wait = runtime.calls.limiter().delay(&scopes);
        if wait > Duration::ZERO {
            tokio::time::sleep(wait).await;
        }
        let batch = {
            let mut pending = shared
                .warnings
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let Some(batch) = pending.get_mut(&key) else {
                return;
            };
            let take = batch.members.len().min(NAMES_PER_WARNING);
            let members: Vec<(i64, Member)> = batch.members.drain(..take).collect();
            let view = batch.view.clone();
            let missing = batch.missing.clone();
            let why = batch.why;
            let runtime_id = batch.runtime_id;
            if batch.members.is_empty() {
                pending.remove(&key);
            }
            (runtime_id, view, missing, why, members)
        };
        let (_, view, missing, why, members) = batch;
        if let Err(error) = send_warning(&shared, &runtime, &view, &missing, why, &members).await {
            tracing::warn!(chat = key.1, %error, "a warning could not be sent");
        }
        let more = shared
            .warnings
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&key);
        if !more {
            return;
        }
    }
}

async fn send_warning(
    shared: &Shared,
    runtime: &BotRuntime,
    view: &GroupView,
    missing: &[ChannelRow],
    why: Why,
    members: &[(i64, Member)],
) -> anyhow::Result<()> {
    let users = members
        .iter()
        .map(|(_, m)| mention(m.user_id, &m.name))
        .collect::<Vec<_>>()
        .join(", ");
    let text = view.texts.render(
        view.policy.language,
        why.template(),
        &[
            ("users", &users),
            ("group", &escape(&view.group.title)),
            ("channels", &channel_list(missing)),
        ],
    );
    // One member: the button names them, so a bystander is answered without a database read.
    let data = match members {
        [(_, only)] => format!("nz:v:{}", only.user_id),
        _ => "nz:v".to_string(),
    };
    let keyboard = warning_keyboard(view, missing, data);
    let message_id = say(
        shared,
        runtime,
        view.group.chat_id,
        text,
        Some(keyboard),
        view.policy.warning_ttl_s,
    )
    .await?;
    let ids: Vec<i64> = members.iter().map(|(id, _)| *id).collect();
    shared
        .store
        .set_warning_message(&ids, i64::from(message_id))
        .await?;
    Ok(())
}
