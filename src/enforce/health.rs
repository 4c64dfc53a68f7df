//! Permission health: the rights a bot needs (restrict and delete in a supergroup, administrator in
//! each channel, `can_invite_users` where it decides join requests, which is all it needs in a
//! protected channel) are checked at `/protect`, when channels are linked through the API, periodically,
//! as soon as Telegram refuses an action or a membership check ("member list is inaccessible"),
//! and when a `my_chat_member` update says the bot's own status changed. A change is stored on the
//! group (English, for the dashboard), published as a `health` event, and a loss is announced once
//! in the group, in the group's language. The bot never leaves a chat by itself.

use std::sync::Arc;

use serde_json::json;
use teloxide::RequestError;
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, ChatMemberKind, ChatMemberUpdated, UserId};

use super::Shared;
use super::context::{GroupTurn, Turn};
use super::directory::GroupView;
use super::policy::{JoinRequests, Language};
use super::say;
use super::texts::{Texts, escape};
use crate::domain::EventKind;

/// Something the bot lacks, with the fix an administrator makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Not an administrator of the group.
    GroupAdmin,
    GroupRestrict,
    GroupDelete,
    /// Removed from the group.
    GroupRemoved,
    /// A basic group: Telegram restricts only in supergroups.
    BasicGroup,
    /// Not an administrator of this channel (named).
    ChannelAdmin(String),
    /// The channel cannot be seen at all.
    ChannelUnseen(String),
    /// Not a channel.
    NotChannel(String),
    /// The group's bot does not run in this process, so nothing could be asked.
    BotStopped,
    /// A chat named as its own required channel.
    OwnChannel(String),
    /// A private channel (named) for which the bot can make no invite link: requesters would get
    /// no way in.
    ChannelLink(String),
    /// The bot decides join requests in this chat (named) but lacks `can_invite_users`, which
    /// `approveChatJoinRequest` and `declineChatJoinRequest` need (Bot API).
    InviteUsers(String),
}

impl Problem {
    /// The problem's code: its template's name, stored with the channel it names so the group's
    /// own language can render it later (`/status`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::GroupAdmin => "problem_group_admin",
            Self::GroupRestrict => "problem_group_restrict",
            Self::GroupDelete => "problem_group_delete",
            Self::GroupRemoved => "problem_group_removed",
            Self::BasicGroup => "problem_basic_group",
            Self::ChannelAdmin(_) => "problem_channel_admin",
            Self::ChannelUnseen(_) => "problem_channel_unseen",
            Self::NotChannel(_) => "problem_not_channel",
            Self::BotStopped => "problem_bot_stopped",
            Self::InviteUsers(_) => "problem_invite_users",
            Self::OwnChannel(_) => "problem_own_channel",
            Self::ChannelLink(_) => "problem_channel_link",
        }
    }

    /// The channel the problem names, if any.
    fn channel(&self) -> Option<&str> {
        match self {
            Self::ChannelAdmin(name)
            | Self::ChannelUnseen(name)
            | Self::NotChannel(name)
            | Self::InviteUsers(name)
            | Self::OwnChannel(name)
            | Self::ChannelLink(name) => Some(name),
            _ => None,
        }
    }

    /// The problem stored as `{"code": …, "channel": …}` (see [`Problem::code`]); `None` for a
    /// code this version does not know.
    pub fn from_stored(item: &serde_json::Value) -> Option<Self> {
        let channel = || item["channel"].as_str().unwrap_or_default().to_string();
        Some(match item["code"].as_str()? {
            "problem_group_admin" => Self::GroupAdmin,
            "problem_group_restrict" => Self::GroupRestrict,
            "problem_group_delete" => Self::GroupDelete,
            "problem_group_removed" => Self::GroupRemoved,
            "problem_basic_group" => Self::BasicGroup,
            "problem_channel_admin" => Self::ChannelAdmin(channel()),
            "problem_channel_unseen" => Self::ChannelUnseen(channel()),
            "problem_not_channel" => Self::NotChannel(channel()),
            "problem_bot_stopped" => Self::BotStopped,
            "problem_invite_users" => Self::InviteUsers(channel()),
            "problem_own_channel" => Self::OwnChannel(channel()),
            "problem_channel_link" => Self::ChannelLink(channel()),
            _ => return None,
        })
    }

    /// The fix in `language` (HTML-escaped).
    pub fn render(&self, texts: &Texts, language: Language) -> String {
        let channel = self.channel().map(escape).unwrap_or_default();
        texts.render(language, self.code(), &[("channel", &channel)])
    }

    /// Fixes as a message's lines, one bullet each, in `language` (HTML).
    pub fn bullets(problems: &[Self], texts: &Texts, language: Language) -> String {
        problems
            .iter()
            .map(|p| format!("• {}", p.render(texts, language)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The fix in English, as stored for the dashboard and the API.
    pub fn english(&self) -> String {
        // Stored text is plain, not HTML: undo the escaping of names.
        self.render(&Texts::default(), Language::En)
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
    }
}

/// `groups.health_detail` for `problems` (none: no detail): each fix in English for the dashboard
/// and the API (`problems`, `summary`), and each as code and channel (`items`) for the group's own
/// language.
fn detail(problems: &[Problem]) -> Option<serde_json::Value> {
    let english: Vec<String> = problems.iter().map(Problem::english).collect();
    let items: Vec<serde_json::Value> = problems
        .iter()
        .map(|p| json!({ "code": p.code(), "channel": p.channel() }))
        .collect();
    (!problems.is_empty())
        .then(|| json!({ "problems": english, "summary": english.join("; "), "items": items }))
}

/// The problems stored in a group's `health_detail` (those this version knows).
pub fn stored(detail: Option<&serde_json::Value>) -> Vec<Problem> {
    detail
        .and_then(|d| d["items"].as_array())
        .map(|items| items.iter().filter_map(Problem::from_stored).collect())
        .unwrap_or_default()
}

/// A check's result as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// `ok`, `degraded` or `unknown`.
    pub health: &'static str,
    /// Each fix, in English.
    pub problems: Vec<String>,
}

/// Re-checks every group of the bot every `health_interval`.
pub async fn periodic(shared: Arc<Shared>, bot: i64) {
    loop {
        tokio::time::sleep(shared.options.health_interval).await;
        let Some(runtime) = shared.runtime(bot) else {
            return;
        };
        // Boxed: the check's future lives only while it runs, so the 10,000 tasks of a large fleet
        // rest as a sleep, not as a sleep beside a check's worth of space each.
        let turn = Turn::new(shared.clone(), runtime, None);
        if let Err(error) = Box::pin(check_bot(&turn)).await {
            tracing::warn!(bot_instance_id = bot, %error, "the periodic permission check failed");
        }
    }
}

pub async fn check_bot(turn: &Turn) -> anyhow::Result<()> {
    for group in turn.shared.store.groups_of_bot(turn.bot()).await? {
        if !group.enabled {
            continue;
        }
        let view = Arc::new(turn.shared.directory.view(group).await?);
        check_group(&turn.in_group(view, None)).await?;
    }
    Ok(())
}

/// Checks one group by id through its bot, if that bot runs in this process; otherwise the group's
/// health becomes `unknown` (never assumed fine).
pub async fn check_by_id(shared: &Arc<Shared>, group_id: i64) -> anyhow::Result<Checked> {
    let row = shared.store.group(group_id).await?;
    let bot = row.bot_instance_id;
    let Some(runtime) = shared.runtime(bot) else {
        let found = [Problem::BotStopped];
        shared
            .store
            .set_group_health(group_id, "unknown", detail(&found).as_ref())
            .await?;
        shared.directory.invalidate(bot, row.chat_id);
        return Ok(Checked {
            health: "unknown",
            problems: found.iter().map(Problem::english).collect(),
        });
    };
    let view = Arc::new(shared.directory.view(row).await?);
    let group = Turn::new(shared.clone(), runtime, None).in_group(view, None);
    let found = problems(&group).await?;
    store(&group, &found, true).await
}

/// Telegram refused an action in this group, or a check could not read a channel: find out why
/// now (at most once per half minute per group).
pub async fn action_refused(group: &GroupTurn) {
    let key = (group.bot(), group.chat());
    if !group
        .shared
        .health_checked
        .entry(key)
        .or_insert(())
        .is_fresh()
    {
        return;
    }
    if let Err(error) = check_group(group).await {
        tracing::warn!(chat = group.chat(), %error, "the permission check after a refusal failed");
    }
}

/// What the bot lacks in the group (or protected channel) and its channels, each with the exact fix.
/// `Err` when Telegram did not answer (see [`rights`]): nothing is found then, and the stored
/// health stays as it was.
pub async fn problems(group: &GroupTurn) -> Result<Vec<Problem>, RequestError> {
    let row = &group.view.group;
    let protected = Protected {
        chat: row.chat_id,
        name: chat_name(row.username.as_deref(), &row.title),
        channel: row.is_channel(),
        join_requests: group.view.policy.join_requests != JoinRequests::Off,
    };
    let mut problems = chat_problems(group, &protected).await?;
    for channel in &group.view.channels {
        let name = chat_name(channel.username.as_deref(), &channel.title);
        if !matches!(
            rights(group, channel.chat_id).await?,
            Some(ChatMemberKind::Administrator(_))
        ) {
            problems.push(Problem::ChannelAdmin(name));
        }
    }
    Ok(problems)
}

/// `@username`, or the title of a chat without one: how fixes name a chat.
pub fn chat_name(username: Option<&str>, title: &str) -> String {
    username
        .map(|u| format!("@{u}"))
        .unwrap_or_else(|| title.to_string())
}

/// A chat Nezuko protects (or is asked to), as its rights are checked.
pub struct Protected {
    pub chat: i64,
    /// As fixes name it (see [`chat_name`]).
    pub name: String,
    /// A channel, protected through join requests only.
    pub channel: bool,
    /// Nezuko decides its join requests (policy `join_requests`).
    pub join_requests: bool,
}

/// What the bot lacks in a protected chat itself: in a group, restricting and deleting (and
/// inviting when it decides join requests); in a channel, administrator with `can_invite_users`
/// (Telegram sends `chat_join_request` only to administrators with that right). `Err` as
/// [`rights`].
pub async fn chat_problems(turn: &Turn, chat: &Protected) -> Result<Vec<Problem>, RequestError> {
    let status = rights(turn, chat.chat).await?;
    if chat.channel {
        return Ok(match status {
            Some(ChatMemberKind::Owner(_)) => Vec::new(),
            Some(ChatMemberKind::Administrator(admin)) if admin.can_invite_users => Vec::new(),
            Some(ChatMemberKind::Administrator(_)) => {
                vec![Problem::InviteUsers(chat.name.clone())]
            }
            _ => vec![Problem::ChannelAdmin(chat.name.clone())],
        });
    }
    let basic = chat.chat > -1_000_000_000_000;
    let mut problems = Vec::new();
    if basic {
        problems.push(Problem::BasicGroup);
    }
    match status {
        Some(ChatMemberKind::Administrator(admin)) => {
            // Basic groups' administrators have every right there; only supergroups name them.
            if !admin.can_restrict_members && !basic {
                problems.push(Problem::GroupRestrict);
            }
            if !admin.can_delete_messages && !basic {
                problems.push(Problem::GroupDelete);
            }
            if !admin.can_invite_users && !basic && chat.join_requests {
                problems.push(Problem::InviteUsers(chat.name.clone()));
            }
        }
        Some(ChatMemberKind::Owner(_)) => {}
        Some(ChatMemberKind::Left | ChatMemberKind::Banned(_)) => {
            problems.push(Problem::GroupRemoved)
        }
        _ => problems.push(Problem::GroupAdmin),
    }
    Ok(problems)
}

/// The bot's own status in a chat, or `None` if Telegram refused to say (the chat is not found or
/// not visible to the bot: it is not there). `Err` when Telegram did not answer at all (weather,
/// [`crate::telegram::is_weather`]: unreachable, a 429 or 5xx outlasting the retries, the token
/// refused), which says nothing about the bot's rights: a network outage or a revoked token must
/// not be stored as "not an administrator" with fixes an administrator cannot make.
pub async fn rights(turn: &Turn, chat: i64) -> Result<Option<ChatMemberKind>, RequestError> {
    let me = UserId(turn.runtime.me.user_id.max(0) as u64);
    let request = turn.calls().bot().get_chat_member(ChatId(chat), me);
    match turn.calls().run("getChatMember", None, request).await {
        Ok(member) => Ok(Some(member.kind)),
        Err(error) if crate::telegram::is_weather(&error) => Err(error),
        Err(_) => Ok(None),
    }
}

/// Checks one group and records the result; a change is published, a loss announced once.
/// Telegram not answering is an error, and the stored health stays as it was.
pub async fn check_group(group: &GroupTurn) -> anyhow::Result<()> {
    let found = problems(group).await?;
    store(group, &found, true).await.map(|_| ())
}

async fn store(group: &GroupTurn, found: &[Problem], announce: bool) -> anyhow::Result<Checked> {
    let view: &GroupView = &group.view;
    let shared = &group.shared;
    let previous = shared.store.group(view.group.id).await?.health;
    let health = if found.is_empty() { "ok" } else { "degraded" };
    let english: Vec<String> = found.iter().map(Problem::english).collect();
    shared
        .store
        .set_group_health(view.group.id, health, detail(found).as_ref())
        .await?;
    shared.directory.invalidate(group.bot(), view.group.chat_id);
    let checked = Checked {
        health,
        problems: english.clone(),
    };
    if previous == health {
        return Ok(checked);
    }
    group.publish(
        EventKind::Health,
        json!({ "group_id": view.group.id, "chat_id": view.group.chat_id, "title": view.group.title, "health": health, "problems": english }),
    );
    // A channel's readers are not told: a post there would reach every one of them.
    if health == "degraded" && announce && !view.group.is_channel() {
        let problems = Problem::bullets(found, &view.texts, view.policy.language);
        let text = view.texts.render(
            view.policy.language,
            "health_lost",
            &[("problems", &problems)],
        );
        if let Err(error) = say::say_in(group, view.group.chat_id, None, text, None, 0).await {
            tracing::info!(chat = view.group.chat_id, %error, "the permission warning could not be posted");
        }
    }
    Ok(checked)
}

/// The bot's own membership changed in a group or channel.
pub async fn on_my_member(turn: &Turn, change: &ChatMemberUpdated) -> anyhow::Result<()> {
    let chat = change.chat.id.0;
    let present = change.new_chat_member.kind.is_present();
    turn.publish(
        EventKind::Activity,
        json!({
            "action": if present { "bot_membership_changed" } else { "bot_removed" },
            "chat_id": chat,
            "title": change.chat.title(),
            "status": format!("{:?}", change.new_chat_member.kind.status()).to_lowercase(),
        }),
    );
    if change.chat.is_channel() {
        for group in turn.shared.store.groups_requiring_channel(chat).await? {
            if group.bot_instance_id == turn.bot() && group.enabled {
                let view = Arc::new(turn.shared.directory.view(group).await?);
                check_group(&turn.in_group(view, None)).await?;
            }
        }
    }
    // The chat itself may be protected (a group, or a channel guarded by join requests).
    let Some(view) = turn.shared.directory.group(turn.bot(), chat).await? else {
        return Ok(());
    };
    let group = turn.in_group(view, None);
    if !present {
        // Removed: nothing can be asked or said there; record it as the reason.
        let row = &group.view.group;
        let removed = if row.is_channel() {
            Problem::ChannelAdmin(chat_name(row.username.as_deref(), &row.title))
        } else {
            Problem::GroupRemoved
        };
        return store(&group, &[removed], false).await.map(|_| ());
    }
    check_group(&group).await
}
