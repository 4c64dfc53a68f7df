//! Protecting a chat: every right the bot needs is checked first and each missing one named; on
//! success the chat requires exactly the channels given. `/protect` in a group and the admin API
//! (`POST /api/v1/groups`) both come here, so a chat is protected the same either way. The API is
//! the only way to protect a channel (a channel sends no commands): a protected channel is guarded
//! at the door, through join requests, because Telegram lets no one mute a channel's reader.

use serde_json::{Value, json};
use teloxide::RequestError;
use teloxide::prelude::Requester;
use teloxide::types::{ChatFullInfo, ChatId, ChatMemberKind, Recipient};

use super::context::Turn;
use super::health::{self, Problem, Protected};
use super::policy::JoinRequests;
use crate::db::{ChannelRow, GroupRow, NewChannel, NewGroup};
use crate::domain::EventKind;

/// A chat to protect, as Telegram describes it.
#[derive(Debug, Clone)]
pub struct Chat {
    pub id: i64,
    pub title: String,
    pub username: Option<String>,
    /// A channel (protected through join requests) rather than a supergroup.
    pub channel: bool,
}

impl Chat {
    /// The chat `getChat` described; `None` for a private chat or a basic group, which cannot be
    /// protected (bots restrict members only in supergroups).
    pub fn from_info(info: &ChatFullInfo) -> Option<Self> {
        (info.is_supergroup() || info.is_channel()).then(|| Self {
            id: info.id.0,
            title: info.title().unwrap_or_default().to_string(),
            username: info.username().map(str::to_string),
            channel: info.is_channel(),
        })
    }
}

/// The result of protecting a chat.
#[derive(Debug)]
pub enum Protection {
    /// The chat is protected and requires exactly these channels.
    Done {
        group: Box<GroupRow>,
        channels: Vec<ChannelRow>,
    },
    /// Nothing changed: the bot lacks these rights, or a channel could not be used.
    Missing(Vec<Problem>),
    /// Nothing changed: another bot (id, username) enforces in this chat.
    Taken {
        bot_instance_id: i64,
        username: String,
    },
}

/// Most channels one chat may require: each is a membership check per member, and a list longer
/// than this is a mistake, not a policy.
pub const MAX_CHANNELS: usize = 20;

/// `@username` or a chat id (`-100…`) as Telegram accepts it in `chat_id`; anything else is not a
/// chat's address.
pub fn recipient(text: &str) -> Option<Recipient> {
    match text.trim().parse::<i64>() {
        // Written as Telegram writes ids: no sign or zeros of its own.
        Ok(id) if id.to_string() == text.trim() => Some(Recipient::Id(ChatId(id))),
        Ok(_) => None,
        Err(_) => {
            let name = text.trim().strip_prefix('@')?;
            let valid =
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            valid.then(|| Recipient::ChannelUsername(format!("@{name}")))
        }
    }
}

/// What Telegram says about the chat at `target`; `None` if it will not say (unknown, or the bot
/// cannot see it); `Err` if Telegram did not answer ([`crate::telegram::is_weather`]).
pub async fn look_up(turn: &Turn, target: Recipient) -> Result<Option<ChatFullInfo>, RequestError> {
    let request = turn.calls().bot().get_chat(target);
    match turn.calls().run("getChat", None, request).await {
        Ok(info) => Ok(Some(info)),
        // Telegram did not answer: nothing is known of the chat, which is not "unseen".
        Err(error) if crate::telegram::is_weather(&error) => Err(error),
        Err(_) => Ok(None),
    }
}

/// Protects `chat` with the channels at `targets` (bot `turn`), or says what is missing.
/// `join_requests`: whether the group's policy has Nezuko decide join requests (then the bot needs
/// `can_invite_users` too); a channel always has, and its policy is set so.
pub async fn protect(
    turn: &Turn,
    chat: &Chat,
    join_requests: bool,
    targets: Vec<Recipient>,
) -> anyhow::Result<Protection> {
    let protected = Protected {
        chat: chat.id,
        name: health::chat_name(chat.username.as_deref(), &chat.title),
        channel: chat.channel,
        join_requests: join_requests || chat.channel,
    };
    let store = &turn.shared.store;
    let _one_at_a_time = turn.shared.protecting.lock().await;
    if let Some((bot_instance_id, username)) = store.other_enforcer(chat.id, turn.bot()).await? {
        return Ok(Protection::Taken {
            bot_instance_id,
            username,
        });
    }
    let mut problems = health::chat_problems(turn, &protected).await?;
    let mut channels: Vec<(ChatFullInfo, Option<String>)> = Vec::new();
    let mut asked = Vec::new();
    for target in targets {
        let label = match &target {
            Recipient::Id(id) => id.0.to_string(),
            Recipient::ChannelUsername(name) => name.to_lowercase(),
        };
        // The same channel named twice (or by id and by name) is required once.
        if asked.contains(&label) {
            continue;
        }
        asked.push(label.clone());
        let Some(info) = look_up(turn, target).await? else {
            problems.push(Problem::ChannelUnseen(label));
            continue;
        };
        if channels.iter().any(|(c, _)| c.id == info.id) {
            continue;
        }
        if !info.is_channel() {
            problems.push(Problem::NotChannel(label));
            continue;
        }
        let name = health::chat_name(info.username(), info.title().unwrap_or_default());
        // A channel cannot be its own requirement: no requester is ever its reader.
        if info.id.0 == chat.id {
            problems.push(Problem::OwnChannel(name));
            continue;
        }
        if !matches!(
            health::rights(turn, info.id.0).await?,
            Some(ChatMemberKind::Administrator(_))
        ) {
            problems.push(Problem::ChannelAdmin(name));
            continue;
        }
        // A private channel is joined only through a link: without one a requester could
        // never qualify.
        let mut invite_link = info.invite_link().map(str::to_string);
        if info.username().is_none() && invite_link.is_none() {
            let request = turn.calls().bot().create_chat_invite_link(info.id);
            invite_link = turn
                .calls()
                .run("createChatInviteLink", None, request)
                .await
                .ok()
                .map(|l| l.invite_link);
            if invite_link.is_none() {
                problems.push(Problem::ChannelLink(name));
                continue;
            }
        }
        channels.push((info, invite_link));
    }
    if !problems.is_empty() {
        return Ok(Protection::Missing(problems));
    }
    let new = NewGroup {
        bot_instance_id: turn.bot(),
        chat_id: chat.id,
        title: chat.title.clone(),
        username: chat.username.clone(),
    };
    let chat_type = if chat.channel {
        "channel"
    } else {
        "supergroup"
    };
    let mut group = store.upsert_chat(&new, chat_type).await?;
    if chat.channel {
        // A channel is guarded only at the door: its requests are what Nezuko decides.
        let mut policy = match &group.policy.0 {
            Value::Object(map) => map.clone(),
            _ => Default::default(),
        };
        policy.insert(
            "join_requests".into(),
            json!(JoinRequests::ApproveSubscribers),
        );
        group = store
            .set_group_policy(group.id, &Value::Object(policy))
            .await?;
    }
    let mut links = Vec::new();
    let mut rows = Vec::new();
    for (info, invite_link) in &channels {
        let row = store
            .upsert_channel(&NewChannel {
                chat_id: info.id.0,
                title: info.title().unwrap_or_default().to_string(),
                username: info.username().map(str::to_string),
                invite_link: invite_link.clone(),
                is_private: info.username().is_none(),
            })
            .await?;
        links.push((row.id, json!({ "administrator": true })));
        rows.push(row);
    }
    store.replace_channel_links(group.id, &links).await?;
    store.set_group_enabled(group.id, true).await?;
    store.set_group_health(group.id, "ok", None).await?;
    turn.shared.directory.invalidate(turn.bot(), chat.id);
    turn.publish(
        EventKind::Activity,
        json!({ "action": "group_protected", "group_id": group.id, "chat_id": chat.id, "chat_type": chat_type, "channels": rows.iter().map(|c| c.chat_id).collect::<Vec<_>>() }),
    );
    let group = Box::new(store.group(group.id).await?);
    Ok(Protection::Done {
        group,
        channels: rows,
    })
}

/// Enables protected chat `group_id` unless another bot enforces there (`Err` with that bot's id
/// and username). Serialized with [`protect`] in this process, and the store's update is itself
/// conditional, so a check and a write cannot interleave with another's.
pub async fn enable(
    shared: &super::Shared,
    group_id: i64,
) -> Result<Result<GroupRow, (i64, String)>, crate::db::StoreError> {
    let _one_at_a_time = shared.protecting.lock().await;
    let row = shared.store.group(group_id).await?;
    if let Some(other) = shared
        .store
        .other_enforcer(row.chat_id, row.bot_instance_id)
        .await?
    {
        return Ok(Err(other));
    }
    match shared.store.enable_group_alone(group_id).await? {
        Some(row) => Ok(Ok(row)),
        // Another process enabled another bot's row in between.
        None => Ok(Err(shared
            .store
            .other_enforcer(row.chat_id, row.bot_instance_id)
            .await?
            .unwrap_or((0, String::from("another bot"))))),
    }
}

/// Why a chat could not be protected through the API (what is missing comes back as
/// [`Protection::Missing`] instead: nothing is wrong with the request itself).
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    #[error("the bot is not running here (it is stopped, or runs on another node)")]
    NotHere,
    #[error("{0:?} is not a chat's address: give an @username or a chat id such as -1001234567890")]
    BadAddress(String),
    #[error(
        "channel {0:?} is not a chat's address: give an @username or a chat id such as -1001234567890"
    )]
    BadChannel(String),
    #[error("give at most {MAX_CHANNELS} channels")]
    TooManyChannels,
    #[error("the bot cannot see {0}: add the bot to it as an administrator first")]
    Unseen(String),
    #[error(
        "{0} is a private chat or a basic group: only supergroups and channels can be protected"
    )]
    NotProtectable(String),
    #[error("give at least one channel to require")]
    NoChannels,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Protects the chat at `chat` (`@username` or chat id, a supergroup or a channel) through bot
/// `bot` with the channels at `channels` (each `@username` or chat id), as `/protect` does in a
/// group.
pub async fn by_admin(
    shared: &std::sync::Arc<super::Shared>,
    bot: i64,
    chat: &str,
    channels: &[String],
) -> Result<Protection, ProtectError> {
    let runtime = shared.runtime(bot).ok_or(ProtectError::NotHere)?;
    let turn = Turn::new(shared.clone(), runtime, None);
    let address = recipient(chat).ok_or_else(|| ProtectError::BadAddress(chat.to_string()))?;
    let targets = channels
        .iter()
        .map(|c| recipient(c).ok_or_else(|| ProtectError::BadChannel(c.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    if targets.is_empty() {
        return Err(ProtectError::NoChannels);
    }
    if targets.len() > MAX_CHANNELS {
        return Err(ProtectError::TooManyChannels);
    }
    let info = look_up(&turn, address)
        .await
        .map_err(anyhow::Error::from)?
        .ok_or_else(|| ProtectError::Unseen(chat.trim().to_string()))?;
    let chat = Chat::from_info(&info)
        .ok_or_else(|| ProtectError::NotProtectable(chat.trim().to_string()))?;
    let view = shared
        .directory
        .group(bot, chat.id)
        .await
        .map_err(anyhow::Error::from)?;
    let policy = match view {
        Some(view) => view.policy.clone(),
        None => {
            shared
                .directory
                .defaults()
                .await
                .map_err(anyhow::Error::from)?
                .0
        }
    };
    let join_requests = policy.join_requests != JoinRequests::Off;
    Ok(protect(&turn, &chat, join_requests, targets).await?)
}

#[cfg(test)]
mod tests {
    use teloxide::types::{ChatId, Recipient};

    use super::recipient;

    #[test]
    fn addresses_are_usernames_or_chat_ids() {
        assert_eq!(
            recipient(" @news "),
            Some(Recipient::ChannelUsername("@news".into()))
        );
        assert_eq!(
            recipient("-1001234567890"),
            Some(Recipient::Id(ChatId(-1_001_234_567_890)))
        );
        for bad in [
            "news",
            "@",
            "@a b",
            "@news!",
            "",
            "t.me/news",
            "-01001",
            "+5",
        ] {
            assert_eq!(recipient(bad), None, "{bad:?}");
        }
    }
}
