//! The verification flows: a member joins, writes, or leaves (or rejoins) a linked channel.
//! Each decision writes a `verification_log` row; those that change something publish an event.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use teloxide::prelude::Requester;
use teloxide::types::{Chat, ChatId, ChatMemberUpdated, Message, User, UserId};

use super::actions::{self, Member, Why};
use super::directory::GroupView;
use super::membership::CheckOutcome;
use super::policy::{FailMode, Require};
use super::texts::{escape, mention};
use super::{BotRuntime, Shared, verification_payload};
use crate::db::{NewTimer, Verification, now_ms};

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

pub fn record(
    shared: &Shared,
    runtime: &BotRuntime,
    view: &GroupView,
    user: i64,
    outcome: &str,
    cached: bool,
    started: Instant,
) {
    crate::metrics::count("nezuko_verifications_total", &[("outcome", outcome)], 1);
    shared.records.verification(Verification {
        bot_instance_id: runtime.id(),
        group_id: view.group.id,
        chat_id: view.group.chat_id,
        user_id: user,
        channel_ids: sqlx::types::Json(view.channels.iter().map(|c| c.chat_id).collect()),
        outcome: outcome.to_string(),
        cached,
        latency_ms: started.elapsed().as_millis() as i64,
        created_at: now_ms(),
    });
}

/// How long a cached pass of one member in one group stays the same decision.
const PASS_FOLD: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether a member's pass in a group is worth a record (none within [`PASS_FOLD`]); also marks
/// the member as known in the group.
fn pass_is_news(shared: &Shared, runtime: &BotRuntime, view: &GroupView, user: i64) -> bool {
    let key = (runtime.id(), view.group.chat_id, user);
    let now = Instant::now();
    match shared.known_members.get(&key) {
        Some(last) if now.duration_since(last) < PASS_FOLD => false,
        _ => {
            shared.known_members.insert(key, now);
            true
        }
    }
}

/// Administrators (and the creator) of a group, cached for `admin_ttl`.
pub async fn admins(shared: &Shared, runtime: &BotRuntime, chat: i64) -> Arc<HashSet<i64>> {
    let key = (runtime.id(), chat);
    if let Some(known) = shared.admins.get(&key) {
        return known;
    }
    let request = runtime.calls.bot().get_chat_administrators(ChatId(chat));
    match runtime
        .calls
        .run("getChatAdministrators", None, request)
        .await
    {
        Ok(list) => {
            let set: Arc<HashSet<i64>> =
                Arc::new(list.iter().map(|m| m.user.id.0 as i64).collect());
            shared.admins.insert(key, set.clone());
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
async fn exempt(shared: &Shared, runtime: &BotRuntime, view: &GroupView, user: &User) -> bool {
    let id = user.id.0 as i64;
    user.is_bot
        || id == TELEGRAM_SERVICE_ACCOUNT
        || view.policy.allowlist.contains(&id)
        || admins(shared, runtime, view.group.chat_id)
            .await
            .contains(&id)
}

/// A member joined (service message or `chat_member` update; one join is handled once).
pub async fn on_join(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    chat: &Chat,
    user: &User,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let user_id = user.id.0 as i64;
    let key = (runtime.id(), chat.id.0, user_id);
    // The service message and the `chat_member` update of one join may be handled concurrently:
    // an atomic test-and-set lets exactly one through.
    if user.is_bot || !shared.recent_joins.entry(key).or_insert(()).is_fresh() {
        return Ok(());
    }
    shared.known_members.insert(key, Instant::now());
    let Some(view) = shared.directory.group(runtime.id(), chat.id.0).await? else {
        return Ok(());
    };
    if !view.enforcing() {
        return Ok(());
    }
    shared.publish(
        runtime,
        "member_join",
        json!({ "group_id": view.group.id, "chat_id": chat.id.0, "user_id": user_id }),
    );
    if exempt(shared, runtime, &view, user).await {
        record(shared, runtime, &view, user_id, "exempt", true, started);
        return Ok(());
    }
    if view.policy.grace_s > 0 {
        let timer = NewTimer {
            bot_instance_id: runtime.id(),
            kind: "grace_check".into(),
            chat_id: chat.id.0,
            user_id: Some(user_id),
            message_id: None,
            payload: json!({ "name": user.full_name() }),
            due_at: now_ms() + view.policy.grace_s as i64 * 1000,
        };
        shared.store.schedule(&timer).await?;
        record(shared, runtime, &view, user_id, "grace", true, started);
        return Ok(());
    }
    let member = Member {
        user_id,
        name: user.full_name(),
    };
    check_and_act(
        shared,
        runtime,
        &view,
        &member,
        Why::Joined,
        None,
        started,
        true,
    )
    .await
}

/// A grace period ended: check the member as if they had just joined.
pub async fn grace_over(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    chat: i64,
    member: Member,
) -> anyhow::Result<()> {
    let Some(view) = shared.directory.group(runtime.id(), chat).await? else {
        return Ok(());
    };
    if !view.enforcing() {
        return Ok(());
    }
    let request = runtime
        .calls
        .bot()
        .get_chat_member(ChatId(chat), UserId(member.user_id.max(0) as u64));
    let present = runtime.calls.run("getChatMember", None, request).await?;
    if !present.kind.is_present() || present.kind.is_privileged() {
        return Ok(());
    }
    check_and_act(
        shared,
        runtime,
        &view,
        &member,
        Why::Joined,
        None,
        Instant::now(),
        false,
    )
    .await
}

/// Someone wrote in a group.
pub async fn on_message(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    message: &Message,
) -> anyhow::Result<()> {
    let started = Instant::now();
    // Anonymous admins write as the group itself, linked-channel posts arrive as automatic
    // forwards, and members posting as a channel carry that channel: none has a user to check.
    if message.sender_chat.is_some() || message.is_automatic_forward() {
        return Ok(());
    }
    let Some(user) = &message.from else {
        return Ok(());
    };
    let Some(view) = shared
        .directory
        .group(runtime.id(), message.chat.id.0)
        .await?
    else {
        return Ok(());
    };
    if !view.enforcing() || exempt(shared, runtime, &view, user).await {
        return Ok(());
    }
    let member = Member {
        user_id: user.id.0 as i64,
        name: user.full_name(),
    };
    check_and_act(
        shared,
        runtime,
        &view,
        &member,
        Why::Wrote,
        Some(message.id.0),
        started,
        false,
    )
    .await
}

/// Checks a member and acts on the verdict.
#[allow(clippy::too_many_arguments)]
async fn check_and_act(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    view: &GroupView,
    member: &Member,
    why: Why,
    message_id: Option<i32>,
    started: Instant,
    greet: bool,
) -> anyhow::Result<()> {
    let outcome = shared
        .checker
        .check(&runtime.calls, &view.channels, member.user_id, false)
        .await;
    match verdict(view, &outcome) {
        Verdict::Allowed { assumed } => {
            let word = if assumed { "unknown_allowed" } else { "passed" };
            // A member chatting away is one decision a minute, not one row per message: a cached
            // pass already on record within PASS_FOLD is not written again.
            let folded = why == Why::Wrote
                && outcome.cached
                && !assumed
                && !pass_is_news(shared, runtime, view, member.user_id);
            if !folded {
                record(
                    shared,
                    runtime,
                    view,
                    member.user_id,
                    word,
                    outcome.cached,
                    started,
                );
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
                actions::say(
                    shared,
                    runtime,
                    view.group.chat_id,
                    text,
                    None,
                    view.policy.reply_ttl_s.max(30),
                )
                .await?;
            }
            if assumed {
                shared.publish(
                    runtime,
                    "verification",
                    verification_payload(view, member.user_id, word, outcome.cached),
                );
            }
        }
        Verdict::Denied { unconfirmed } => {
            if why == Why::Wrote
                && view.policy.grace_s > 0
                && in_grace(shared, runtime, view, member.user_id).await?
            {
                record(
                    shared,
                    runtime,
                    view,
                    member.user_id,
                    "grace",
                    outcome.cached,
                    started,
                );
                return Ok(());
            }
            let why = if unconfirmed { Why::Unconfirmed } else { why };
            let missing = to_name(&outcome);
            let word =
                actions::enforce(shared, runtime, view, member, &missing, why, message_id).await?;
            record(
                shared,
                runtime,
                view,
                member.user_id,
                word,
                outcome.cached,
                started,
            );
            if word != "suppressed" {
                let mut payload = verification_payload(view, member.user_id, word, outcome.cached);
                payload["missing"] = json!(missing.iter().map(|c| c.chat_id).collect::<Vec<_>>());
                shared.publish(runtime, "verification", payload);
            }
        }
    }
    Ok(())
}

async fn in_grace(
    shared: &Shared,
    runtime: &BotRuntime,
    view: &GroupView,
    user: i64,
) -> anyhow::Result<bool> {
    // One indexed lookup, not every pending timer of the bot.
    Ok(shared
        .store
        .has_pending_timer(runtime.id(), "grace_check", view.group.chat_id, user)
        .await?)
}

/// A `chat_member` update: in a channel it updates the cache and may revoke or restore; in a
/// group it is a join (or an admin change).
pub async fn on_member_change(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    change: &ChatMemberUpdated,
) -> anyhow::Result<()> {
    let user = &change.new_chat_member.user;
    let user_id = user.id.0 as i64;
    let was = change.old_chat_member.kind.is_present();
    let is = change.new_chat_member.kind.is_present();
    if change.chat.is_channel() {
        shared
            .checker
            .cache
            .put(change.chat.id.0, user_id, is)
            .await;
        if was && !is {
            return left_channel(shared, runtime, change.chat.id.0, user).await;
        }
        if !was && is {
            return rejoined_channel(shared, runtime, change.chat.id.0, user_id).await;
        }
        return Ok(());
    }
    if change.old_chat_member.kind.is_privileged() != change.new_chat_member.kind.is_privileged() {
        shared.admins.invalidate(&(runtime.id(), change.chat.id.0));
    }
    if !was && is {
        return on_join(shared, runtime, &change.chat, user).await;
    }
    if was
        && !is
        && let Some(view) = shared
            .directory
            .group(runtime.id(), change.chat.id.0)
            .await?
    {
        let payload =
            json!({ "group_id": view.group.id, "chat_id": change.chat.id.0, "user_id": user_id });
        shared.publish(runtime, "member_leave", payload);
    }
    Ok(())
}

/// A member left a channel: in each of this bot's groups that require it where they are known to be
/// (seen joining or writing), they are checked again (the cache now knows) and lose the right to
/// speak if no longer entitled. In other groups their next message meets the same check, since the
/// cache already says they left.
async fn left_channel(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    channel: i64,
    user: &User,
) -> anyhow::Result<()> {
    let user_id = user.id.0 as i64;
    let groups = shared.store.groups_requiring_channel(channel).await?;
    for group in groups
        .into_iter()
        .filter(|g| g.bot_instance_id == runtime.id() && g.enabled)
    {
        let started = Instant::now();
        if !shared
            .known_members
            .contains_key(&(runtime.id(), group.chat_id, user_id))
        {
            continue;
        }
        let Some(view) = shared.directory.group(runtime.id(), group.chat_id).await? else {
            continue;
        };
        let request = runtime
            .calls
            .bot()
            .get_chat_member(ChatId(group.chat_id), UserId(user_id.max(0) as u64));
        let Ok(in_group) = runtime.calls.run("getChatMember", None, request).await else {
            continue;
        };
        if !in_group.kind.is_present()
            || in_group.kind.is_privileged()
            || exempt(shared, runtime, &view, user).await
        {
            continue;
        }
        shared.publish(
            runtime,
            "member_leave",
            json!({ "group_id": view.group.id, "channel_id": channel, "user_id": user_id }),
        );
        let member = Member {
            user_id,
            name: user.full_name(),
        };
        let outcome = shared
            .checker
            .check(&runtime.calls, &view.channels, user_id, false)
            .await;
        if let Verdict::Denied { unconfirmed } = verdict(&view, &outcome) {
            let why = if unconfirmed {
                Why::Unconfirmed
            } else {
                Why::LeftChannel
            };
            let word = actions::enforce(
                shared,
                runtime,
                &view,
                &member,
                &to_name(&outcome),
                why,
                None,
            )
            .await?;
            record(
                shared,
                runtime,
                &view,
                user_id,
                word,
                outcome.cached,
                started,
            );
            shared.publish(
                runtime,
                "verification",
                verification_payload(&view, user_id, word, outcome.cached),
            );
        }
    }
    Ok(())
}

/// A member (re)joined a channel: where the group allows it, Nezuko's restriction is lifted
/// without waiting for the button.
async fn rejoined_channel(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    channel: i64,
    user: i64,
) -> anyhow::Result<()> {
    for record_row in shared
        .store
        .active_restrictions_of_user(runtime.id(), user)
        .await?
    {
        if !record_row.missing_channels.0.contains(&channel) {
            continue;
        }
        let started = Instant::now();
        let Some(view) = shared
            .directory
            .group(runtime.id(), record_row.chat_id)
            .await?
        else {
            continue;
        };
        if !view.policy.restore_on_rejoin {
            continue;
        }
        let outcome = shared
            .checker
            .check(&runtime.calls, &view.channels, user, false)
            .await;
        if verdict(&view, &outcome) == (Verdict::Allowed { assumed: false })
            && actions::lift(shared, runtime, record_row.chat_id, user, None).await?
        {
            record(
                shared,
                runtime,
                &view,
                user,
                "restored",
                outcome.cached,
                started,
            );
            shared.publish(
                runtime,
                "verification",
                verification_payload(&view, user, "restored", outcome.cached),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sqlx::types::Json;

    use super::*;
    use crate::db::{ChannelRow, GroupRow};
    use crate::enforce::policy::Policy;
    use crate::enforce::texts::Texts;

    fn channel(id: i64) -> ChannelRow {
        ChannelRow {
            id,
            chat_id: -100 - id,
            title: format!("Channel {id}"),
            username: None,
            invite_link: None,
            is_private: true,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn view(require: Require, fail_mode: FailMode) -> GroupView {
        GroupView {
            group: GroupRow {
                id: 1,
                bot_instance_id: 1,
                chat_id: -1,
                title: "G".into(),
                username: None,
                enabled: true,
                policy: Json(serde_json::json!({})),
                health: "ok".into(),
                health_detail: None,
                health_checked_at: None,
                member_count: None,
                created_at: 0,
                updated_at: 0,
            },
            channels: vec![channel(1), channel(2)],
            policy: Policy {
                require,
                fail_mode,
                ..Policy::default()
            },
            texts: Arc::new(Texts::default()),
        }
    }

    fn outcome(subscribed: &[i64], missing: &[i64], unknown: &[i64]) -> CheckOutcome {
        CheckOutcome {
            subscribed: subscribed.iter().map(|id| channel(*id)).collect(),
            missing: missing.iter().map(|id| channel(*id)).collect(),
            unknown: unknown
                .iter()
                .map(|id| (channel(*id), "member list is inaccessible".into()))
                .collect(),
            cached: false,
        }
    }

    #[test]
    fn all_channels_are_needed_unless_the_group_asks_for_any() {
        let all = view(Require::All, FailMode::Open);
        let any = view(Require::Any, FailMode::Open);
        let one_of_two = outcome(&[1], &[2], &[]);
        assert_eq!(
            verdict(&all, &one_of_two),
            Verdict::Denied { unconfirmed: false }
        );
        assert_eq!(
            verdict(&any, &one_of_two),
            Verdict::Allowed { assumed: false }
        );
        assert_eq!(
            verdict(&all, &outcome(&[1, 2], &[], &[])),
            Verdict::Allowed { assumed: false }
        );
        assert_eq!(
            verdict(&any, &outcome(&[], &[1, 2], &[])),
            Verdict::Denied { unconfirmed: false }
        );
    }

    #[test]
    fn an_unknown_answer_is_never_read_as_not_subscribed() {
        let open = view(Require::All, FailMode::Open);
        let closed = view(Require::All, FailMode::Closed);
        let unknown = outcome(&[1], &[], &[2]);
        assert_eq!(verdict(&open, &unknown), Verdict::Allowed { assumed: true });
        assert_eq!(
            verdict(&closed, &unknown),
            Verdict::Denied { unconfirmed: true }
        );
        // A channel known to be missing decides, whatever the unknown one would have said.
        assert_eq!(
            verdict(&open, &outcome(&[], &[1], &[2])),
            Verdict::Denied { unconfirmed: false }
        );
        let any_closed = view(Require::Any, FailMode::Closed);
        assert_eq!(
            verdict(&any_closed, &outcome(&[], &[1], &[2])),
            Verdict::Denied { unconfirmed: true }
        );
        assert_eq!(
            verdict(&any_closed, &outcome(&[2], &[], &[1])),
            Verdict::Allowed { assumed: false }
        );
    }

    #[test]
    fn a_fail_closed_warning_names_the_unreadable_channels_too() {
        let names: Vec<i64> = to_name(&outcome(&[], &[1], &[2]))
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(names, [1, 2]);
    }
}
