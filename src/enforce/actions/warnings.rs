//! Warnings: coalesced per group, topic and reason, so a raid of hundreds of joins produces a
//! handful of messages (each naming many newcomers) instead of a 429 storm; and kept only as long
//! as their reason. When a member named by a warning verifies, leaves, is banned or is let speak by
//! an administrator, the warning is written again without them, or deleted when nobody is left.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use teloxide::payloads::EditMessageTextSetters;
use teloxide::prelude::Requester;
use teloxide::types::{ChatId, MessageId, ParseMode};
use tracing::Instrument;

use super::super::calls::Target;
use super::super::context::{GroupTurn, Turn};
use super::super::directory::GroupView;
use super::super::say::{
    DELETE_AGAIN_AFTER_S, channel_list, delete_later, say, try_delete, warning_keyboard,
};
use super::super::standing::{self, Standing};
use super::super::texts::{escape, mention};
use super::{Member, Why};
use crate::db::{ChannelRow, RestrictionRow};
use crate::domain::EndReason;

/// Names per warning message at most (a longer raid gets several messages).
const NAMES_PER_WARNING: usize = 25;

/// (bot, group, topic, text, missing channels).
type BatchKey = (i64, i64, Option<i32>, &'static str, Vec<i64>);

/// What became of a sent warning, as the process last left it (kept under its lock,
/// `Shared::hold_warning`).
#[derive(Debug, Default)]
pub struct WarningState {
    /// Deleted (by Nezuko, or found gone): never edited or deleted again.
    pub deleted: bool,
    /// The members it was last written again to name (user ids, in order); empty until then. A
    /// rewrite that would name the same is not sent: when several named members verify at once,
    /// the first rewrite already drops them all, and Telegram would answer the others 400
    /// "message is not modified", each costing the chat a send slot.
    pub named: Vec<i64>,
}

struct Batch {
    group: GroupTurn,
    missing: Vec<ChannelRow>,
    why: Why,
    members: Vec<(i64, Member)>,
}

/// Warnings waiting for a send slot. While one waits, newcomers join it, so the number of
/// messages follows the group's send limit, not the raid.
#[derive(Default)]
pub struct WarningQueue {
    pending: Mutex<HashMap<BatchKey, Batch>>,
    /// Per bot, the warnings on their way: a send holds its bot's lock shared from its request
    /// until the message's id is stored. Whoever must find every sent warning recorded (the next
    /// runner's [`resume_owed`], a shutdown before the database closes) takes it exclusively;
    /// otherwise a warning sent as its runner stopped was sent again by the next one.
    sending: Mutex<HashMap<i64, Arc<tokio::sync::RwLock<()>>>>,
}

impl WarningQueue {
    /// Queues `member` (record `restriction_id`) for a warning in the group's current topic.
    pub fn enqueue(
        &self,
        group: &GroupTurn,
        restriction_id: i64,
        member: &Member,
        missing: &[ChannelRow],
        why: Why,
    ) {
        let key: BatchKey = (
            group.bot(),
            group.chat(),
            group.thread,
            why.template(),
            missing.iter().map(|c| c.chat_id).collect(),
        );
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        // Queued already (an owed warning resumed while the same member offends again).
        if pending
            .values()
            .any(|b| b.members.iter().any(|(id, _)| *id == restriction_id))
        {
            return;
        }
        if let Some(batch) = pending.get_mut(&key) {
            batch.members.push((restriction_id, member.clone()));
            return;
        }
        pending.insert(
            key.clone(),
            Batch {
                group: group.clone(),
                missing: missing.to_vec(),
                why,
                members: vec![(restriction_id, member.clone())],
            },
        );
        drop(pending);
        let shared = group.shared.clone();
        // In the span of whoever queued it (the bot's): what sending logs is filed under the bot.
        tokio::spawn(async move { send_batches(shared, key).await }.in_current_span());
    }

    /// The next warning's worth of a batch (at most [`NAMES_PER_WARNING`] members).
    fn take(&self, key: &BatchKey) -> Option<Batch> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let batch = pending.get_mut(key)?;
        let take = batch.members.len().min(NAMES_PER_WARNING);
        let taken = Batch {
            group: batch.group.clone(),
            missing: batch.missing.clone(),
            why: batch.why,
            members: batch.members.drain(..take).collect(),
        };
        if batch.members.is_empty() {
            pending.remove(key);
        }
        Some(taken)
    }

    /// Returns a batch that could not be sent to the front of its queue.
    fn put_back(&self, key: &BatchKey, mut batch: Batch) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(queued) = pending.get_mut(key) {
            batch.members.append(&mut queued.members);
            queued.members = batch.members;
        } else {
            pending.insert(key.clone(), batch);
        }
    }

    fn has(&self, key: &BatchKey) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(key)
    }

    /// Forgets every batch of a bot that stopped: the records are owed their warnings still, and
    /// the bot's next runner queues them again ([`resume_owed`]).
    pub fn drop_bot(&self, bot_instance_id: i64) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| key.0 != bot_instance_id);
    }

    fn sending_lock(&self, bot_instance_id: i64) -> Arc<tokio::sync::RwLock<()>> {
        self.sending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(bot_instance_id)
            .or_default()
            .clone()
    }

    /// Resolves once every warning of the bot already on its way is recorded (or failed).
    pub async fn recorded(&self, bot_instance_id: i64) {
        drop(self.sending_lock(bot_instance_id).write_owned().await);
    }

    /// Resolves once every warning already on its way, of any bot, is recorded (or failed).
    pub async fn all_recorded(&self) {
        let locks: Vec<_> = self
            .sending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for lock in locks {
            drop(lock.write_owned().await);
        }
    }

    fn drop_key(&self, key: &BatchKey) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// Sends the batches queued under `key` for the runner running the bot now, until none is left
/// or that runner stops (its batches are dropped with it: see [`WarningQueue::drop_bot`]).
async fn send_batches(shared: Arc<super::super::Shared>, key: BatchKey) {
    let Some(runtime) = shared.runtime(key.0) else {
        shared.warnings.drop_key(&key);
        return;
    };
    let mut failures = 0u32;
    loop {
        if runtime.calls.is_closed() {
            return;
        }
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
        if runtime.calls.is_closed() {
            return;
        }
        let Some(mut batch) = shared.warnings.take(&key) else {
            return;
        };
        // Whoever left while waiting is not named.
        batch
            .members
            .retain(|(_, m)| !shared.departed.contains_key(&(key.0, key.1, m.user_id)));
        if batch.members.is_empty() {
            continue;
        }
        match send_warning(&batch.group, &batch.missing, batch.why, &batch.members).await {
            Ok(()) => failures = 0,
            // The runner stopped (its calls refuse to send): the warning is owed to the next
            // runner, with nothing to wait for or retry here.
            Err(_) if runtime.calls.is_closed() => return,
            // Telegram was unavailable (5xx after retries, the network, a 429 beyond waiting):
            // the warning is owed still. It goes back in the queue and is sent after a pause.
            Err(error) if error.chain().any(crate::telegram::is_weather_cause) => {
                failures += 1;
                let pause = WEATHER_PAUSE.saturating_mul(failures.min(10));
                tracing::info!(chat = key.1, %error, pause_s = pause.as_secs(), "a warning waits for Telegram");
                tokio::time::sleep(pause).await;
                // A runner that stopped meanwhile leaves the warning owed to the next one.
                if runtime.calls.is_closed() {
                    return;
                }
                shared.warnings.put_back(&key, batch);
            }
            Err(error) => {
                tracing::warn!(chat = key.1, %error, "a warning could not be sent or recorded")
            }
        }
        if !shared.warnings.has(&key) {
            return;
        }
    }
}

/// The first pause before a warning Telegram could not take is tried again; it grows with each
/// failure in a row, up to ten times this.
const WEATHER_PAUSE: Duration = Duration::from_secs(2);

/// How long a starting runner waits for its last runner's warnings on their way to be recorded: a
/// send is one request, which the shared HTTP client gives up after `POLL_TIMEOUT` + 7 s (a 429
/// is waited out before it is written, and a stopped runner's wait ends at once), and a database
/// write. Past this the records are read as they are.
const SENT_RECORDED_WAIT: Duration = Duration::from_secs(30);

/// Records are owed warnings at most this many at a time when a bot starts.
const OWED_AT_START: i64 = 5_000;

/// Queues the warnings a bot owes: its active records whose warning was never sent, because the
/// process stopped (or was killed) while they were queued in memory, or Telegram refused them.
/// The record, written before Telegram was asked to restrict, is the durable promise of the
/// warning. Telegram's current state decides who is still named: a member who left, was let
/// speak or banned meanwhile is not.
pub async fn resume_owed(shared: Arc<super::super::Shared>, bot: i64) -> anyhow::Result<usize> {
    // Called as the bot starts, possibly before its runtime is registered.
    let mut runtime = shared.runtime(bot);
    for _ in 0..40 {
        if runtime.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        runtime = shared.runtime(bot);
    }
    let Some(runtime) = runtime else {
        return Ok(0);
    };
    // A warning the last runner was sending as it stopped is recorded first, or it is owed twice.
    if tokio::time::timeout(SENT_RECORDED_WAIT, shared.warnings.recorded(bot))
        .await
        .is_err()
    {
        tracing::warn!(
            bot_instance_id = bot,
            "a warning of the last runner is still on its way; owed warnings are read without it"
        );
    }
    let owed = shared
        .store
        .unwarned_restrictions(bot, OWED_AT_START)
        .await?;
    let mut queued = 0;
    // Queued together, up to a warning's worth at a time: each member's standing is a call to
    // Telegram, and queued one by one the first would go out alone before the next was read
    // (6 owed members made 3 messages).
    let mut ready: Vec<(GroupTurn, i64, Member, Vec<ChannelRow>, Why)> = Vec::new();
    for record in owed {
        if ready.len() >= NAMES_PER_WARNING {
            queued += queue_owed(&shared, ready.drain(..));
        }
        let Some(view) = shared.directory.group(bot, record.chat_id).await? else {
            continue;
        };
        let turn = Turn::new(shared.clone(), runtime.clone(), None);
        let thread = record.warning_thread_id.and_then(|t| i32::try_from(t).ok());
        let group = turn.in_group(view, thread);
        // An update about the member handled meanwhile (one replayed at start, say) acts first or
        // after, never beside this.
        let _acting = shared
            .hold_member(bot, record.chat_id, record.user_id)
            .await;
        let standing = match standing::read(&group, record.chat_id, record.user_id).await {
            Ok(standing) => standing,
            Err(error) => {
                tracing::info!(chat = record.chat_id, %error, "an owed warning waits: the member's standing is unknown");
                continue;
            }
        };
        let still_held = if record.reason == "restricted" && record.restricted_until.is_none() {
            match carry_out_restriction(&group, &record, &standing).await {
                Ok(held) => held,
                Err(error) => {
                    tracing::info!(chat = record.chat_id, %error, "an owed restriction waits: Telegram could not be asked");
                    continue;
                }
            }
        } else {
            match &standing {
                Standing::Muted { present: true, .. } => standing.is_ours(&record),
                Standing::Free { .. } => record.reason == "warned",
                _ => false,
            }
        };
        if !still_held {
            continue;
        }
        let missing: Vec<ChannelRow> = group
            .view
            .channels
            .iter()
            .filter(|c| record.missing_channels.0.contains(&c.chat_id))
            .cloned()
            .collect();
        let why = record
            .warning_template
            .as_deref()
            .and_then(Why::from_template)
            .unwrap_or(Why::Joined);
        let member = Member {
            user_id: record.user_id,
            name: record
                .member_name
                .clone()
                .unwrap_or_else(|| "member".into()),
        };
        ready.push((group, record.id, member, missing, why));
    }
    queued += queue_owed(&shared, ready.drain(..));
    Ok(queued)
}

/// Queues owed warnings (see [`resume_owed`]); returns how many.
fn queue_owed(
    shared: &super::super::Shared,
    ready: impl Iterator<Item = (GroupTurn, i64, Member, Vec<ChannelRow>, Why)>,
) -> usize {
    let mut queued = 0;
    for (group, record, member, missing, why) in ready {
        shared
            .warnings
            .enqueue(&group, record, &member, &missing, why);
        queued += 1;
    }
    queued
}

/// A restriction recorded but never confirmed: the process stopped between writing the record
/// and noting Telegram's answer. Telegram's state decides what it became. Muted with nothing
/// allowed: Telegram carried it out, and the record adopts the date Telegram shows. Free and still
/// missing a channel (asked afresh): the restriction is carried out now. Otherwise (subscribed
/// meanwhile, gone, banned, limited by an administrator) the record ends. Returns whether the
/// member is held and owed the warning; `Err` when Telegram could not be asked or did not answer
/// (weather, a refused token), which decides nothing: the record waits for the next start.
async fn carry_out_restriction(
    group: &GroupTurn,
    record: &RestrictionRow,
    standing: &Standing,
) -> Result<bool, teloxide::RequestError> {
    let (chat, user) = (record.chat_id, record.user_id);
    let held = match standing {
        Standing::Muted {
            permissions,
            until,
            present: true,
        } if *permissions == teloxide::types::ChatPermissions::empty() => {
            let adopted = crate::db::Restricted {
                until: *until,
                prior_permissions: None,
                prior_until: None,
            };
            super::note_restricted(group, record, &adopted).await;
            true
        }
        Standing::Free { .. } => {
            let view = &group.view;
            let outcome = group
                .shared
                .checker
                .check(group.calls(), &view.channels, user, true)
                .await?;
            if outcome.missing.is_empty() {
                false
            } else {
                match super::restrict(group, record, standing).await {
                    Ok(()) => true,
                    Err(error) if crate::telegram::is_weather(&error) => return Err(error),
                    Err(_) => false,
                }
            }
        }
        _ => false,
    };
    if !held {
        let why = match standing {
            Standing::Free { .. } => EndReason::Verified,
            Standing::Banned => EndReason::Banned,
            Standing::Muted { .. } => EndReason::AdminRestricted,
            Standing::Absent | Standing::Admin => EndReason::Moot,
        };
        if let Err(error) = group
            .shared
            .store
            .end_restriction(group.bot(), chat, user, why)
            .await
        {
            tracing::warn!(%error, chat, "cannot end a restriction that was never carried out");
        }
    }
    Ok(held)
}

/// The warning's text and keyboard for these members.
fn compose(
    view: &GroupView,
    missing: &[ChannelRow],
    template: &str,
    members: &[(i64, String)],
) -> (String, teloxide::types::InlineKeyboardMarkup) {
    let users = members
        .iter()
        .map(|(id, name)| mention(*id, name))
        .collect::<Vec<_>>()
        .join(", ");
    let text = view.texts.render(
        view.policy.language,
        template,
        &[
            ("users", &users),
            ("group", &escape(&view.group.title)),
            ("channels", &channel_list(missing)),
        ],
    );
    // One member: the button names them, so a bystander is answered without a database read.
    let data = match members {
        [(only, _)] => format!("nz:v:{only}"),
        _ => "nz:v".to_string(),
    };
    (text, warning_keyboard(view, missing, data))
}

async fn send_warning(
    group: &GroupTurn,
    missing: &[ChannelRow],
    why: Why,
    members: &[(i64, Member)],
) -> anyhow::Result<()> {
    let named: Vec<(i64, String)> = members
        .iter()
        .map(|(_, m)| (m.user_id, m.name.clone()))
        .collect();
    let (text, keyboard) = compose(&group.view, missing, why.template(), &named);
    let in_flight: Vec<(i64, i64, i64)> = members
        .iter()
        .map(|(_, m)| (group.bot(), group.chat(), m.user_id))
        .collect();
    for key in &in_flight {
        group.shared.warning_in_flight.insert(*key, ());
    }
    let sent = record_sent_warning(group, members, text, keyboard).await;
    for key in &in_flight {
        group.shared.warning_in_flight.invalidate(key);
    }
    sent
}

/// Sends the warning and points the members' records at it (see [`send_warning`]).
async fn record_sent_warning(
    group: &GroupTurn,
    members: &[(i64, Member)],
    text: String,
    keyboard: teloxide::types::InlineKeyboardMarkup,
) -> anyhow::Result<()> {
    let sending = group.shared.warnings.sending_lock(group.bot());
    let on_its_way = sending.read().await;
    let message_id = say(group, text, Some(keyboard), group.view.policy.warning_ttl_s).await?;
    let ids: Vec<i64> = members.iter().map(|(id, _)| *id).collect();
    let earlier = group
        .shared
        .store
        .set_warning_message(&ids, i64::from(message_id))
        .await
        .with_context(|| format!("warning {message_id} was sent, but not recorded"))?;
    drop(on_its_way);
    // A member warned again (a new offence, a retried action) is named by this warning only: the
    // earlier one drops them, and goes when it names nobody.
    for earlier in earlier {
        rewrite(group, group.chat(), earlier, None).await?;
    }
    // A member who left while it was being sent: this one drops them.
    for (record, member) in members {
        if group
            .shared
            .departed
            .contains_key(&(group.bot(), group.chat(), member.user_id))
        {
            group.shared.store.clear_warning(*record).await?;
        }
    }
    // A member who verified while it was being sent (the warning is in the group before Telegram's
    // answer names its id) had their record ended before it pointed here, so nothing wrote the
    // warning again: it would go on naming them. Likewise one who left (above).
    let still_named = group
        .shared
        .store
        .named_by_warning(group.bot(), group.chat(), i64::from(message_id))
        .await?
        .len();
    if still_named < members.len() {
        rewrite(group, group.chat(), i64::from(message_id), None).await?;
    }
    Ok(())
}

/// A member's warning lost its reason (`record` ended, or no longer names them): the warning is
/// written again naming whoever it still names, or deleted when that is nobody.
pub async fn forget(turn: &Turn, record: &RestrictionRow) -> anyhow::Result<()> {
    match record.warning_message_id {
        Some(message_id) => rewrite(turn, record.chat_id, message_id, Some(record.id)).await,
        None => Ok(()),
    }
}

/// Writes warning `message_id` again naming the active records that still point at it (but
/// `except`), or deletes it when that is nobody.
async fn rewrite(
    turn: &Turn,
    chat: i64,
    message_id: i64,
    except: Option<i64>,
) -> anyhow::Result<()> {
    // One rewrite of a warning at a time: two members leaving it at once would otherwise both
    // read the other still named (two edits, the staler possibly landing last) or both read
    // nobody left (deleteMessage twice, the second answered 400 "message to delete not found":
    // seen in `nezuko bench verify`'s `deleted_twice`).
    let mut warning = turn.shared.hold_warning(turn.bot(), chat, message_id).await;
    if warning.deleted {
        return Ok(());
    }
    let view = turn.shared.directory.group(turn.bot(), chat).await?;
    // Only a group whose warnings expire has deletion timers; the others are spared a read.
    let expiring = view.as_ref().is_none_or(|v| v.policy.warning_ttl_s > 0);
    // Deleted by its timer before this process (or this lock's memory of it) began.
    if expiring
        && turn
            .shared
            .store
            .message_deletion_done(turn.bot(), chat, message_id)
            .await?
    {
        warning.deleted = true;
        return Ok(());
    }
    let remaining: Vec<RestrictionRow> = turn
        .shared
        .store
        .named_by_warning(turn.bot(), chat, message_id)
        .await?
        .into_iter()
        .filter(|r| Some(r.id) != except)
        .collect();
    if remaining.is_empty() {
        match try_delete(turn, chat, message_id as i32).await {
            Ok(()) => warning.deleted = true,
            // No answer: a durable timer asks again shortly (the warning names nobody now).
            Err(error) if crate::telegram::is_weather(&error) => {
                delete_later(turn, chat, message_id as i32, DELETE_AGAIN_AFTER_S).await;
                return Ok(());
            }
            Err(error) => {
                tracing::debug!(chat, message_id, %error, "a warning naming nobody could not be deleted");
            }
        }
        // Its deletion timer would ask again.
        if warning.deleted && expiring {
            turn.shared
                .store
                .cancel_message_deletion(turn.bot(), chat, message_id)
                .await?;
        }
        return Ok(());
    }
    let Some(view) = view else {
        return Ok(());
    };
    let template = remaining[0]
        .warning_template
        .clone()
        .unwrap_or_else(|| Why::Joined.template().to_string());
    let missing: Vec<ChannelRow> = view
        .channels
        .iter()
        .filter(|c| remaining[0].missing_channels.0.contains(&c.chat_id))
        .cloned()
        .collect();
    let named: Vec<(i64, String)> = remaining
        .iter()
        .map(|r| {
            let name = r.member_name.clone().unwrap_or_else(|| "member".into());
            (r.user_id, name)
        })
        .collect();
    let ids: Vec<i64> = named.iter().map(|(user, _)| *user).collect();
    if warning.named == ids {
        return Ok(());
    }
    let (text, keyboard) = compose(&view, &missing, &template, &named);
    let request = turn
        .calls()
        .bot()
        .edit_message_text(ChatId(chat), MessageId(message_id as i32), text)
        .parse_mode(ParseMode::Html)
        .reply_markup(keyboard);
    match turn
        .calls()
        .run("editMessageText", Target::chat(chat), request)
        .await
    {
        Ok(_) => warning.named = ids,
        Err(error) => {
            tracing::debug!(chat, message_id, %error, "a warning could not be written again")
        }
    }
    Ok(())
}
