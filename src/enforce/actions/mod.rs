//! What enforcement does to a member: restrict, kick, ban, warn, lift. Telegram's current state
//! comes first: before restricting or lifting, the member's standing is read afresh
//! ([`super::standing`]); a member who left, is banned, became an administrator or was restricted
//! by someone else is left alone, and Nezuko lifts only its own restriction, as it placed it,
//! putting back what an administrator had limited before. Each step is one rate-limited call;
//! warnings go through [`warnings`], messages through [`say`].

mod warnings;

use teloxide::RequestError;
use teloxide::payloads::UnbanChatMemberSetters;
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, ChatPermissions, UserId};

pub use self::warnings::{WarningQueue, WarningState, resume_owed};
use super::context::{GroupTurn, Turn};
use super::deadline::{UntilDate, ban_request, now_s, restrict_request};
use super::policy::Action;
use super::say::{channel_list, delete_message, say};
use super::standing::{self, Standing};
use super::texts::{escape, mention};
use crate::db::{ChannelRow, NewRestriction, NewTimer, Restricted, RestrictionRow};
use crate::domain::{EndReason, Outcome, TimerKind};

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
    /// The reason whose warning text is `template` (as stored on a record).
    pub fn from_template(template: &str) -> Option<Self> {
        [
            Self::Joined,
            Self::Wrote,
            Self::LeftChannel,
            Self::Unconfirmed,
        ]
        .into_iter()
        .find(|why| why.template() == template)
    }

    pub fn template(self) -> &'static str {
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

/// Applies the group's policy to a member who is not subscribed, then deletes the message that
/// set it off (`message_id`, if any); returns the outcome recorded in `verification_log`. If the
/// policy could not be applied (Telegram refused, or the standing could not be read), the message
/// stays: a message vanishing while its writer goes on writing would look like the bot works.
pub async fn enforce(
    group: &GroupTurn,
    member: &Member,
    missing: &[ChannelRow],
    why: Why,
    message_id: Option<i32>,
) -> anyhow::Result<Outcome> {
    let _acting = group
        .shared
        .hold_member(group.bot(), group.chat(), member.user_id)
        .await;
    let outcome = apply(group, member, missing, why).await?;
    if let Some(message_id) = message_id
        && !matches!(outcome, Outcome::Failed | Outcome::Exempt)
    {
        delete_message(group, group.chat(), message_id).await;
    }
    Ok(outcome)
}

/// What [`enforce`] does before the message goes.
async fn apply(
    group: &GroupTurn,
    member: &Member,
    missing: &[ChannelRow],
    why: Why,
) -> anyhow::Result<Outcome> {
    let (bot, chat, user) = (group.bot(), group.chat(), member.user_id);
    let standing = match standing::read(group, chat, user).await {
        Ok(standing) => standing,
        // Not an answer about the member (Telegram unreachable, the token refused): the update
        // stays with Telegram and is handled again, rather than confirmed with nothing done.
        Err(error) if crate::telegram::is_weather(&error) => return Err(error.into()),
        Err(error) => {
            tracing::warn!(bot_instance_id = bot, chat, %error, "cannot read a member's standing; not acting");
            super::health::action_refused(group).await;
            return Ok(Outcome::Failed);
        }
    };
    let store = &group.shared.store;
    let existing = store.active_restriction(bot, chat, user).await?;
    match &standing {
        // Gone, or an update that arrived after the member left: nothing to do or say.
        Standing::Absent | Standing::Muted { present: false, .. } => return Ok(Outcome::Gone),
        Standing::Banned => {
            end(group, chat, user, EndReason::Banned).await?;
            return Ok(Outcome::Yielded);
        }
        Standing::Admin => {
            end(group, chat, user, EndReason::Moot).await?;
            group.shared.admins.invalidate(&(bot, chat));
            return Ok(Outcome::Exempt);
        }
        Standing::Muted { .. } if !existing.as_ref().is_some_and(|r| standing.is_ours(r)) => {
            // Muted, and not as Nezuko left it: an administrator's restriction stands.
            end(group, chat, user, EndReason::AdminRestricted).await?;
            return Ok(Outcome::Yielded);
        }
        Standing::Muted { .. } | Standing::Free { .. } => {}
    }
    // Every offence counts towards escalation; a burst of messages gets one warning message.
    // Atomic test-and-set: concurrent messages of one burst agree on which one came first.
    let first = group
        .shared
        .recently_warned
        .entry((bot, chat, user))
        .or_insert(())
        .is_fresh();
    let repeat = why == Why::Wrote && !first;
    let planned = group.view.policy.action;
    let recorded = store
        .record_restriction(&NewRestriction {
            bot_instance_id: bot,
            chat_id: chat,
            user_id: user,
            reason: if planned == Action::Warn {
                "warned"
            } else {
                "restricted"
            }
            .into(),
            missing_channels: missing.iter().map(|c| c.chat_id).collect(),
            member_name: member.name.clone(),
            warning_template: why.template().into(),
            warning_thread_id: group.thread.map(i64::from),
        })
        .await;
    let record = match recorded {
        Ok(record) => record,
        Err(error) => {
            // Nothing was decided: when the update is handled again it is not "a repeat".
            if first {
                group.shared.recently_warned.invalidate(&(bot, chat, user));
            }
            return Err(error.into());
        }
    };
    let action = group.view.policy.action_after(record.warnings);
    let applied = match action {
        Action::Warn => Ok(()),
        // Already restricted, exactly as Nezuko left it.
        Action::Restrict if matches!(standing, Standing::Muted { .. }) => Ok(()),
        Action::Restrict => restrict(group, &record, &standing).await,
        Action::Kick | Action::Ban => remove(group, user, action == Action::Kick).await,
    };
    if let Err(error) = applied {
        if crate::telegram::is_weather(&error) {
            // Not a refusal: Telegram could not be reached. The update stays with Telegram and is
            // handled again shortly (the record stands; the warning waits for the action).
            if first {
                group.shared.recently_warned.invalidate(&(bot, chat, user));
            }
            return Err(error.into());
        }
        tracing::warn!(bot_instance_id = bot, chat, %error, "Telegram refused an enforcement action");
        super::health::action_refused(group).await;
        return Ok(Outcome::Failed);
    }
    match action {
        Action::Kick | Action::Ban => {
            end(group, chat, user, EndReason::Removed).await?;
            announce_removal(group, member, missing).await;
            Ok(if action == Action::Kick {
                Outcome::Kicked
            } else {
                Outcome::Banned
            })
        }
        Action::Warn | Action::Restrict => {
            // A repeat within the burst window is not warned again, unless it just escalated.
            let escalated_now = action != group.view.policy.action_after(record.warnings - 1);
            if repeat && !escalated_now {
                return Ok(Outcome::Suppressed);
            }
            group
                .shared
                .warnings
                .enqueue(group, record.id, member, missing, why);
            Ok(if action == Action::Restrict {
                Outcome::Restricted
            } else {
                Outcome::Warned
            })
        }
    }
}

/// Mutes the member, remembering what an administrator had limited before, and, for a temporary
/// restriction, the date actually sent (computed when the request leaves).
async fn restrict(
    group: &GroupTurn,
    record: &RestrictionRow,
    standing: &Standing,
) -> Result<(), RequestError> {
    let (chat, user) = (group.chat(), record.user_id);
    let mute_for = group.view.policy.mute_for_s;
    let sent = std::sync::Mutex::new(0i64);
    group
        .calls()
        .run_built("restrictChatMember", None, || {
            let until = (mute_for > 0).then(|| UntilDate::from_now(now_s(), mute_for));
            *sent.lock().unwrap_or_else(|p| p.into_inner()) = until.map_or(0, UntilDate::unix);
            restrict_request(
                group.calls().bot(),
                chat,
                user,
                ChatPermissions::empty(),
                until,
            )
        })
        .await?;
    let until = *sent.lock().unwrap_or_else(|p| p.into_inner());
    let (prior_permissions, prior_until) = match standing {
        Standing::Free {
            limits: Some((permissions, until)),
        } => (serde_json::to_value(permissions).ok(), Some(*until)),
        _ => (None, None),
    };
    let restricted = Restricted {
        until,
        prior_permissions,
        prior_until,
    };
    note_restricted(group, record, &restricted).await;
    Ok(())
}

/// Notes on `record` the restriction Telegram carried out, and for a temporary one schedules the
/// closing of the record when Telegram lets the member go.
async fn note_restricted(group: &GroupTurn, record: &RestrictionRow, restricted: &Restricted) {
    let (chat, user, until) = (record.chat_id, record.user_id, restricted.until);
    if let Err(error) = group
        .shared
        .store
        .set_restricted(record.id, restricted)
        .await
    {
        tracing::warn!(%error, chat, "cannot note a restriction on its record");
    }
    if until > 0 {
        let timer = NewTimer {
            bot_instance_id: group.bot(),
            kind: TimerKind::RestrictionExpired,
            chat_id: chat,
            user_id: Some(user),
            message_id: None,
            payload: serde_json::json!({ "until": until }),
            due_at: until * 1000,
        };
        if let Err(error) = group.shared.store.schedule(&timer).await {
            tracing::warn!(%error, "cannot schedule the end of a temporary restriction");
        }
    }
}

/// Kick or ban for good. A kick is a ban that ends by itself (the shortest `until_date` Telegram
/// honours, fixed when the request leaves) followed by an unban, so the member may come back at
/// once; if the unban fails, the ban still runs out within a minute instead of lasting forever.
async fn remove(group: &GroupTurn, user: i64, kick: bool) -> Result<(), RequestError> {
    let chat = group.chat();
    group
        .calls()
        .run_built("banChatMember", None, || {
            let until = kick.then(|| UntilDate::from_now(now_s(), 0));
            ban_request(group.calls().bot(), chat, user, until)
        })
        .await?;
    if kick {
        let unban = group
            .calls()
            .bot()
            .unban_chat_member(ChatId(chat), user_id(user))
            .only_if_banned(true);
        if let Err(error) = group.calls().run("unbanChatMember", None, unban).await {
            tracing::info!(chat, user, %error, "a kicked member's ban was not lifted; it runs out by itself");
        }
    }
    Ok(())
}

/// What lifting found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lifted {
    /// Nezuko had nothing active on the member there.
    Nothing,
    /// Nezuko's own restriction (or warning) was lifted: the member may write.
    Released,
    /// Telegram's state had moved on (banned, restricted otherwise, let speak, gone): Nezuko's
    /// record ended and nothing was undone.
    Superseded(Standing),
}

/// Lifts what Nezuko did to a member in a group, if it is still in force as Nezuko left it, and
/// takes the member's name off its warning. Reading the member's standing can fail: then nothing
/// changes and the error is returned (the caller answers "try again").
pub async fn lift(turn: &Turn, chat: i64, user: i64, why: EndReason) -> anyhow::Result<Lifted> {
    let _acting = turn.shared.hold_member(turn.bot(), chat, user).await;
    let store = &turn.shared.store;
    let Some(record) = store.active_restriction(turn.bot(), chat, user).await? else {
        return Ok(Lifted::Nothing);
    };
    let lifted = if record.reason == "restricted" && record.restricted_until.is_some() {
        let standing = standing::read(turn, chat, user).await?;
        if standing.is_ours(&record) {
            restore(turn, &record).await?;
            end(turn, chat, user, why).await?;
            Lifted::Released
        } else {
            end(turn, chat, user, superseded_by(&standing)).await?;
            Lifted::Superseded(standing)
        }
    } else {
        end(turn, chat, user, why).await?;
        Lifted::Released
    };
    Ok(lifted)
}

/// Telegram still holds a member under the exact restriction of Nezuko's `record`, which ended as
/// released (a lift recorded whose `restrictChatMember` never reached Telegram): send it now.
/// Returns whether it was such a leftover and is now undone.
pub async fn finish_release(
    turn: &Turn,
    record: &RestrictionRow,
    standing: &Standing,
) -> anyhow::Result<bool> {
    let released = record
        .end_reason
        .as_deref()
        .and_then(EndReason::parse)
        .is_some_and(|why| matches!(why, EndReason::Verified | EndReason::Restored));
    if !released || record.reason != "restricted" || !standing.is_ours(record) {
        return Ok(false);
    }
    restore(turn, record).await?;
    Ok(true)
}

/// Why Nezuko's record ends when Telegram shows `standing` instead of its restriction.
fn superseded_by(standing: &Standing) -> EndReason {
    match standing {
        Standing::Banned => EndReason::Banned,
        Standing::Free { .. } => EndReason::AdminLifted,
        Standing::Muted { .. } => EndReason::AdminRestricted,
        Standing::Absent | Standing::Admin => EndReason::Moot,
    }
}

/// Undoes Nezuko's restriction: back to what an administrator had limited, if anything (and it has
/// not run out), otherwise every permission.
async fn restore(turn: &Turn, record: &RestrictionRow) -> Result<(), RequestError> {
    let (chat, user) = (record.chat_id, record.user_id);
    let prior: Option<(ChatPermissions, i64)> = record.prior_permissions.as_ref().and_then(|p| {
        let permissions = serde_json::from_value(p.0.clone()).ok()?;
        Some((permissions, record.prior_until.unwrap_or(0)))
    });
    turn.calls()
        .run_built("restrictChatMember", None, || {
            let now = now_s();
            match &prior {
                // An administrator's earlier restriction that still has time to run.
                Some((permissions, until)) if *until == 0 || *until - now > 0 => {
                    let (permissions, until) = (permissions.clone(), *until);
                    let until = (until > 0).then(|| UntilDate::from_now(now, (until - now) as u64));
                    restrict_request(turn.calls().bot(), chat, user, permissions, until)
                }
                _ => restrict_request(turn.calls().bot(), chat, user, ChatPermissions::all(), None),
            }
        })
        .await?;
    Ok(())
}

/// Ends Nezuko's active record of a member (if any), with its timers and its place on a warning.
pub async fn end(turn: &Turn, chat: i64, user: i64, why: EndReason) -> anyhow::Result<()> {
    let shared = &turn.shared;
    let Some(record) = shared
        .store
        .end_restriction(turn.bot(), chat, user, why)
        .await?
    else {
        return Ok(());
    };
    shared.recently_warned.invalidate(&(turn.bot(), chat, user));
    shared
        .store
        .cancel_timers(turn.bot(), TimerKind::RestrictionExpired, chat, user)
        .await?;
    warnings::forget(turn, &record).await
}

/// The member left the group while Nezuko held them back: Nezuko's restriction outlives them
/// (Telegram keeps it for their return), but the warning stops naming them.
pub async fn left_group(turn: &Turn, chat: i64, user: i64) -> anyhow::Result<()> {
    let store = &turn.shared.store;
    let Some(record) = store.active_restriction(turn.bot(), chat, user).await? else {
        return Ok(());
    };
    turn.shared
        .recently_warned
        .invalidate(&(turn.bot(), chat, user));
    if record.warning_message_id.is_some() {
        store.clear_warning(record.id).await?;
        warnings::forget(turn, &record).await?;
    }
    Ok(())
}

async fn announce_removal(group: &GroupTurn, member: &Member, missing: &[ChannelRow]) {
    let view = &group.view;
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
    if let Err(error) = say(group, text, None, ttl).await {
        tracing::debug!(%error, "the removal notice was not sent");
    }
}

fn user_id(user: i64) -> UserId {
    UserId(user.max(0) as u64)
}
