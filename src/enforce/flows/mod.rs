//! The verification flows: a member joins or writes ([`check_and_act`]), a group member's standing
//! changes ([`members`]: administrators acting by hand, leaves), a member leaves or rejoins a
//! linked channel ([`channel`]), a basic group is upgraded ([`on_migration`]). Each decision writes
//! a `verification_log` row; those that change something publish an event.

mod channel;
mod members;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::json;
use teloxide::prelude::Requester;
use teloxide::types::{Chat, ChatId, Message, User};

pub use self::members::on_member_change;
use super::actions::{self, Member, Why};
use super::context::{GroupTurn, Turn};
use super::directory::GroupView;
use super::membership::CheckOutcome;
use super::policy::{ChannelSenders, FailMode, Require};
use super::say;
use super::standing::{self, Standing};
use super::texts::{escape, mention};
use crate::db::{NewTimer, now_ms};
use crate::domain::{EventKind, Outcome, TimerKind};

/// Telegram's service account (posts forwarded from a linked channel, service notices).
const TELEGRAM_SERVICE_ACCOUNT: i64 = 777_000;

/// What a check means under a group's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed { assumed: bool },
    Denied { unconfirmed: bool },
}

/// Applies `require` (all / any) and `fail_mode` to a check.
pub fn verdict(view: &GroupView, outcome: &CheckOutcome) -> Verdict {
    let fail_open = view.policy.fail_mode == FailMode::Open;
    let unknown = !outcome.unknown.is_empty();
    match view.policy.require {
        Require::All if outcome.missing.is_empty() && !unknown => {
            Verdict::Allowed { assumed: false }
        }
        Require::All if outcome.missing.is_empty() && fail_open => {
            Verdict::Allowed { assumed: true }
        }
        Require::All if outcome.missing.is_empty() => Verdict::Denied { unconfirmed: true },
        Require::All => Verdict::Denied { unconfirmed: false },
        Require::Any if !outcome.subscribed.is_empty() => Verdict::Allowed { assumed: false },
        Require::Any if unknown && fail_open => Verdict::Allowed { assumed: true },
        Require::Any if unknown => Verdict::Denied { unconfirmed: true },
        Require::Any => Verdict::Denied { unconfirmed: false },
    }
}

/// The channels to name in a warning: those missing, plus unreadable ones when failing closed.
fn to_name(outcome: &CheckOutcome) -> Vec<crate::db::ChannelRow> {
    let mut channels = outcome.missing.clone();
    channels.extend(outcome.unknown.iter().map(|(c, _)| c.clone()));
    channels
}

/// How long a cached pass of one member in one group stays the same decision.
const PASS_FOLD: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether a member's pass in a group is worth a record (none within [`PASS_FOLD`]); also marks
/// the member as known in the group.
fn pass_is_news(group: &GroupTurn, user: i64) -> bool {
    let key = (group.bot(), group.chat(), user);
    let now = Instant::now();
    match group.shared.known_members.get(&key) {
        Some(last) if now.duration_since(last) < PASS_FOLD => false,
        _ => {
            group.shared.known_members.insert(key, now);
            true
        }
    }
}

/// Administrators (and the creator) of a group, cached for `admin_ttl`.
pub async fn admins(turn: &Turn, chat: i64) -> Arc<HashSet<i64>> {
    let key = (turn.bot(), chat);
    if let Some(known) = turn.shared.admins.get(&key) {
        return known;
    }
    let request = turn.calls().bot().get_chat_administrators(ChatId(chat));
    match turn
        .calls()
        .run("getChatAdministrators", None, request)
        .await
    {
        Ok(list) => {
            let set: Arc<HashSet<i64>> =
                Arc::new(list.iter().map(|m| m.user.id.0 as i64).collect());
            turn.shared.admins.insert(key, set.clone());
            set
        }
        // Not cached: the next update asks again. Meanwhile nobody counts as admin, and admins
        // are still protected by Telegram refusing to restrict them.
        Err(error) => {
            tracing::debug!(chat, %error, "cannot read the administrators");
            Arc::new(HashSet::new())
        }
    }
}

/// Members never checked: admins, the allowlist, bots, Telegram's service account.
async fn exempt(group: &GroupTurn, user: &User) -> bool {
    let id = user.id.0 as i64;
    user.is_bot
        || id == TELEGRAM_SERVICE_ACCOUNT
        || group.view.policy.allowlist.contains(&id)
        || admins(group, group.chat()).await.contains(&id)
}

/// The group a turn is about, if this bot protects it and enforcement is on.
async fn enforcing(
    turn: &Turn,
    chat: i64,
    thread: Option<i32>,
) -> anyhow::Result<Option<GroupTurn>> {
    Ok(turn
        .shared
        .directory
        .group(turn.bot(), chat)
        .await?
        .filter(|view| view.enforcing())
        .map(|view| turn.in_group(view, thread)))
}

/// Where one join stands (see [`on_join`]), kept from its first delivery until the member leaves.
#[derive(Debug, Default)]
pub(super) struct JoinMark {
    /// Its last handling failed: the next delivery handles it again.
    retry: AtomicBool,
    /// `member_join` was published: a join handled again is not announced again.
    announced: AtomicBool,
}

/// A member joined (service message or `chat_member` update; one join is handled once).
pub async fn on_join(turn: &Turn, chat: &Chat, user: &User) -> anyhow::Result<()> {
    if user.is_bot {
        return Ok(());
    }
    let key = (turn.bot(), chat.id.0, user.id.0 as i64);
    // A join from before the member's last leave, handled only now (held back, or handled again
    // after a failure), is history: the leave ended it, and taking it for a join now would let it
    // stand for the member's next real join, which would then go unchecked. (Same-second dates
    // cannot be told apart and are taken as a join.)
    if let (Some(at), Some(left_at)) = (turn.dated, turn.shared.departed.get(&key))
        && at < left_at
    {
        return Ok(());
    }
    // The service message and the `chat_member` update of one join may be handled concurrently:
    // an atomic test-and-set lets exactly one through, and after a failed handling one more.
    let entry = turn.shared.recent_joins.entry(key).or_default();
    let fresh = entry.is_fresh();
    let mark = entry.into_value();
    if !fresh && !mark.retry.swap(false, Ordering::AcqRel) {
        return Ok(());
    }
    let handled = joined(turn, chat, user, &mark).await;
    if handled.is_err() {
        // Not handled: the update will be delivered again, and let through.
        mark.retry.store(true, Ordering::Release);
    }
    handled
}

/// The rest of [`on_join`], for a join let through.
async fn joined(turn: &Turn, chat: &Chat, user: &User, mark: &JoinMark) -> anyhow::Result<()> {
    let user_id = user.id.0 as i64;
    let key = (turn.bot(), chat.id.0, user_id);
    turn.shared.known_members.insert(key, Instant::now());
    turn.shared.departed.invalidate(&key);
    // Joins go to General in a forum: the warning is posted there.
    let Some(group) = enforcing(turn, chat.id.0, None).await? else {
        return Ok(());
    };
    // Announced before it is acted on, so that the activity feed reads in order; once, however
    // often the handling fails after it and is tried again.
    if !mark.announced.swap(true, Ordering::AcqRel) {
        group.publish(
            EventKind::MemberJoin,
            json!({ "group_id": group.view.group.id, "chat_id": chat.id.0, "user_id": user_id }),
        );
    }
    if exempt(&group, user).await {
        group.record(user_id, Outcome::Exempt, true);
        return Ok(());
    }
    // A join that waited (the service was down) may be history: the member may have left.
    if group.is_late() && !still_here(&group, user_id).await {
        group.record(user_id, Outcome::Gone, false);
        return Ok(());
    }
    if group.view.policy.grace_s > 0 {
        let timer = NewTimer {
            bot_instance_id: group.bot(),
            kind: TimerKind::GraceCheck,
            chat_id: chat.id.0,
            user_id: Some(user_id),
            message_id: None,
            payload: json!({ "name": user.full_name() }),
            due_at: now_ms() + group.view.policy.grace_s as i64 * 1000,
        };
        group.shared.store.schedule(&timer).await?;
        group.record(user_id, Outcome::Grace, true);
        return Ok(());
    }
    let member = Member {
        user_id,
        name: user.full_name(),
    };
    check_and_act(&group, &member, Why::Joined, None, true).await
}

/// Whether the member is in the group now (an unreadable answer counts as yes: the action that
/// follows reads the member's standing again and leaves a member who is not there alone).
async fn still_here(group: &GroupTurn, user: i64) -> bool {
    !matches!(
        standing::read(group, group.chat(), user).await,
        Ok(Standing::Absent | Standing::Banned | Standing::Muted { present: false, .. })
    )
}

/// A grace period ended: check the member as if they had just joined.
pub async fn grace_over(turn: &Turn, chat: i64, member: Member) -> anyhow::Result<()> {
    let Some(group) = enforcing(turn, chat, None).await? else {
        return Ok(());
    };
    match standing::read(&group, chat, member.user_id).await? {
        Standing::Free { .. } | Standing::Muted { present: true, .. } => {
            check_and_act(&group, &member, Why::Joined, None, false).await
        }
        _ => Ok(()),
    }
}

/// Someone wrote in a group.
pub async fn on_message(turn: &Turn, message: &Message) -> anyhow::Result<()> {
    let thread = message.thread_id.map(|t| t.0.0);
    let Some(group) = enforcing(turn, message.chat.id.0, thread).await? else {
        return Ok(());
    };
    if let Some(sender) = &message.sender_chat {
        return from_a_chat(&group, message, sender.id.0).await;
    }
    let Some(user) = &message.from else {
        return Ok(());
    };
    if exempt(&group, user).await {
        return Ok(());
    }
    let member = Member {
        user_id: user.id.0 as i64,
        name: user.full_name(),
    };
    check_and_act(&group, &member, Why::Wrote, Some(message.id.0), false).await
}

/// A message written as a chat: an anonymous administrator (the group itself) and the group's
/// linked channel (its automatic forwards, its admins commenting) are never checked; any other
/// channel is a way around the check, deleted unless the group allows channel senders, and the
/// group is told why once a day per channel.
async fn from_a_chat(group: &GroupTurn, message: &Message, sender: i64) -> anyhow::Result<()> {
    let chat = group.chat();
    if sender == chat
        || message.is_automatic_forward()
        || group.view.policy.channel_senders == ChannelSenders::Allow
        || is_linked_channel(group, chat, sender).await
    {
        return Ok(());
    }
    say::delete_message(group, chat, message.id.0).await;
    group.record(sender, Outcome::ChannelSender, true);
    let key = (group.bot(), chat, sender);
    if group
        .shared
        .channel_notices
        .entry(key)
        .or_insert(())
        .is_fresh()
    {
        let name = message
            .sender_chat
            .as_ref()
            .and_then(|c| {
                c.username()
                    .map(|u| format!("@{u}"))
                    .or(c.title().map(str::to_string))
            })
            .unwrap_or_default();
        let view = &group.view;
        let text = view.texts.render(
            view.policy.language,
            "channel_sender_deleted",
            &[
                ("channel", &escape(&name)),
                ("group", &escape(&view.group.title)),
            ],
        );
        let ttl = view.policy.reply_ttl_s.max(60);
        if let Err(error) = say::say(group, text, None, ttl).await {
            tracing::debug!(chat, %error, "the channel-sender notice was not sent");
        }
    }
    Ok(())
}

/// Whether `sender` is the channel the group discusses (`linked_chat_id`). The answer is cached
/// like the administrator list, but a channel that is not the cached one makes Nezuko read the
/// group again (at most once a minute per group): the group may have been linked to it since, and
/// Telegram sends the bot no update when that happens.
async fn is_linked_channel(turn: &Turn, chat: i64, sender: i64) -> bool {
    let key = (turn.bot(), chat);
    let shared = &turn.shared;
    match shared.linked_channels.get(&key) {
        Some(known) if known == Some(sender) => return true,
        Some(_) if !shared.linked_rereads.entry(key).or_insert(()).is_fresh() => return false,
        _ => {}
    }
    let request = turn.calls().bot().get_chat(ChatId(chat));
    let linked = match turn.calls().run("getChat", None, request).await {
        Ok(info) => info.linked_chat_id(),
        Err(error) => {
            tracing::debug!(chat, %error, "cannot read the group's linked channel");
            return false;
        }
    };
    shared.linked_channels.insert(key, linked);
    linked == Some(sender)
}

/// Checks a member and acts on the verdict.
async fn check_and_act(
    group: &GroupTurn,
    member: &Member,
    why: Why,
    message_id: Option<i32>,
    greet: bool,
) -> anyhow::Result<()> {
    let view = &group.view;
    let mut outcome = group
        .shared
        .checker
        .check(group.calls(), &view.channels, member.user_id, false)
        .await?;
    if outcome.cached && !outcome.missing.is_empty() && why == Why::Joined {
        // A newcomer's "not subscribed" from the cache is confirmed with Telegram before they are
        // held back: they may have joined the channel a moment before the group, its update not
        // yet handled. (A member who writes is not asked again: the channel's `chat_member`
        // updates keep the cache current, and a lookup per message would spend the bot's budget.)
        outcome = group
            .shared
            .checker
            .check(group.calls(), &view.channels, member.user_id, true)
            .await?;
    }
    if outcome.unknown.iter().any(|(_, why)| unreadable(why)) {
        // The bot cannot read a channel's members: health says so now, not at the next probe.
        super::health::action_refused(group).await;
    }
    match verdict(view, &outcome) {
        Verdict::Allowed { assumed } => {
            let word = if assumed {
                Outcome::UnknownAllowed
            } else {
                Outcome::Passed
            };
            // A member chatting away is one decision a minute, not one row per message: a cached
            // pass already on record within PASS_FOLD is not written again.
            let folded = why == Why::Wrote
                && outcome.cached
                && !assumed
                && !pass_is_news(group, member.user_id);
            if !folded {
                group.decided(member.user_id, word, outcome.cached, &[]);
            }
            if greet && view.policy.welcome {
                let text = view.texts.render(
                    view.policy.language,
                    "welcome",
                    &[
                        ("users", &mention(member.user_id, &member.name)),
                        ("group", &escape(&view.group.title)),
                    ],
                );
                say::say(group, text, None, view.policy.reply_ttl_s.max(30)).await?;
            }
        }
        Verdict::Denied { unconfirmed } => {
            if why == Why::Wrote
                && view.policy.grace_s > 0
                && in_grace(group, member.user_id).await?
            {
                group.record(member.user_id, Outcome::Grace, outcome.cached);
                return Ok(());
            }
            let why = if unconfirmed { Why::Unconfirmed } else { why };
            let missing = to_name(&outcome);
            let word = actions::enforce(group, member, &missing, why, message_id).await?;
            let ids: Vec<i64> = missing.iter().map(|c| c.chat_id).collect();
            group.decided(member.user_id, word, outcome.cached, &ids);
        }
    }
    Ok(())
}

/// Telegram's answer when the bot may not read a chat's members (not an administrator there).
fn unreadable(error: &str) -> bool {
    error.contains("member list is inaccessible")
        || error.contains("not enough rights")
        || error.contains("CHAT_ADMIN_REQUIRED")
}

async fn in_grace(group: &GroupTurn, user: i64) -> anyhow::Result<bool> {
    // One indexed lookup, not every pending timer of the bot.
    Ok(group
        .shared
        .store
        .has_pending_timer(group.bot(), TimerKind::GraceCheck, group.chat(), user)
        .await?)
}

/// A basic group was upgraded to a supergroup (seen in either chat): the bot's record of it moves
/// to the new id with its channels, policy, what Nezuko holds there and its history.
pub async fn on_migration(turn: &Turn, old: i64, new: i64) -> anyhow::Result<()> {
    let moved = turn
        .shared
        .store
        .migrate_group_chat(turn.bot(), old, new)
        .await?;
    turn.shared.directory.invalidate(turn.bot(), old);
    turn.shared.directory.invalidate(turn.bot(), new);
    if let Some(group) = moved {
        turn.publish(
            EventKind::Activity,
            json!({ "action": "group_migrated", "group_id": group.id, "from_chat_id": old, "chat_id": new }),
        );
        tracing::info!(
            bot_instance_id = turn.bot(),
            old,
            new,
            "a protected group was upgraded; its record follows it"
        );
        // A supergroup is a new chat with its own rights: the basic group's health (which named
        // it a basic group) says nothing about it.
        if let Some(view) = turn.shared.directory.group(turn.bot(), new).await? {
            super::health::check_group(&turn.in_group(view, None)).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
