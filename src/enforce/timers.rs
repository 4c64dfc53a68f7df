//! The timer runner: carries out `scheduled_actions` of the bots running in this process when they
//! fall due (auto-deletes, grace checks, ends of temporary restrictions), including those scheduled
//! before a restart. See `db/timers.rs` for the lease that keeps two processes from doing one twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tracing::Instrument;

use super::actions::{self, Member};
use super::context::Turn;
use super::say;
use super::{Shared, flows};
use crate::db::{TimerRow, now_ms};
use crate::domain::{EndReason, TimerKind};

/// A leased timer is retried by anyone after this long (a crash mid-action).
const LEASE_MS: i64 = 60_000;
/// Timers taken per poll.
const BATCH: i64 = 500;
/// After this many failed attempts a timer is given up (and logged).
const MAX_ATTEMPTS: i64 = 5;

/// Chats whose timers are carried out at once, at most. A chat's timers run in order; chats run
/// side by side, so one chat's slow timer (a deletion waiting for its warning's lock, or a 429's
/// `retry_after` on `deleteMessage`) holds up neither another chat's nor another bot's.
const CHATS_AT_ONCE: usize = 64;

pub async fn run(shared: Arc<Shared>) {
    let busy = Busy::default();
    loop {
        tokio::time::sleep(shared.options.timer_poll).await;
        if let Err(error) = run_due(&shared, &busy).await {
            tracing::warn!(%error, "the timer runner could not read due timers; retrying");
        }
    }
}

/// (bot, chat) whose timers are being carried out now.
type Busy = Arc<Mutex<HashSet<(i64, i64)>>>;

/// Starts carrying out the due timers of the running bots, chat by chat, skipping the chats
/// still busy with earlier ones (their timers are due still and taken at a later poll); returns
/// how many chats it started.
async fn run_due(shared: &Arc<Shared>, busy: &Busy) -> anyhow::Result<usize> {
    let bots = shared.running_bots();
    let due = shared.store.due_timers(&bots, now_ms(), BATCH).await?;
    // Each chat's timers in due order; chats in the order their first timer fell due.
    let mut chats: Vec<((i64, i64), Vec<TimerRow>)> = Vec::new();
    let mut slot_of: HashMap<(i64, i64), usize> = HashMap::new();
    for timer in due {
        let key = (timer.bot_instance_id, timer.chat_id);
        let slot = *slot_of.entry(key).or_insert_with(|| {
            chats.push((key, Vec::new()));
            chats.len() - 1
        });
        chats[slot].1.push(timer);
    }
    let mut started = 0;
    for (key, timers) in chats {
        {
            let mut busy = busy.lock().unwrap_or_else(|p| p.into_inner());
            if busy.len() >= CHATS_AT_ONCE || !busy.insert(key) {
                continue;
            }
        }
        started += 1;
        let (shared, busy) = (shared.clone(), busy.clone());
        tokio::spawn(async move {
            // Freed however the task ends, a panic included: a chat is never left busy for good.
            let _free = Free { busy, key };
            if let Err(error) = run_chat(&shared, timers).await {
                tracing::warn!(bot_instance_id = key.0, chat = key.1, %error, "the timer runner could not store a timer's progress; retrying");
            }
        });
    }
    Ok(started)
}

/// Marks a chat no longer busy when dropped.
struct Free {
    busy: Busy,
    key: (i64, i64),
}

impl Drop for Free {
    fn drop(&mut self) {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// Carries out one chat's due timers in order.
async fn run_chat(shared: &Arc<Shared>, timers: Vec<TimerRow>) -> anyhow::Result<()> {
    for timer in timers {
        if !shared.store.lease_timer(&timer, LEASE_MS).await? {
            continue;
        }
        // In the bot's span, like its updates: what the timer logs is filed under the bot.
        let span = tracing::info_span!("bot", bot_instance_id = timer.bot_instance_id);
        match carry_out(shared, &timer).instrument(span).await {
            Ok(()) => shared.store.finish_timer(timer.id).await?,
            Err(error) if timer.attempts + 1 >= MAX_ATTEMPTS => {
                tracing::warn!(timer = timer.id, kind = timer.kind, %error, "a timer failed too often; giving up");
                shared.store.finish_timer(timer.id).await?;
            }
            Err(error) => {
                tracing::info!(timer = timer.id, kind = timer.kind, %error, "a timer failed; retrying later");
                let later = now_ms() + 5_000 * (timer.attempts + 1);
                shared.store.postpone_timer(timer.id, later).await?;
            }
        }
    }
    Ok(())
}

async fn carry_out(shared: &Arc<Shared>, timer: &TimerRow) -> anyhow::Result<()> {
    let Some(runtime) = shared.runtime(timer.bot_instance_id) else {
        // The bot stopped meanwhile: it takes its timers up again when it starts.
        anyhow::bail!("bot {} is not running", timer.bot_instance_id);
    };
    let turn = Turn::new(shared.clone(), runtime, None);
    let user = timer.user_id.unwrap_or_default();
    match timer.kind() {
        Some(TimerKind::DeleteMessage) => {
            if let Some(message_id) = timer.message_id {
                // Under the message's warning lock, remembering the deletion: a warning is
                // written again or deleted by one path at a time, and the members it named who
                // verify, leave or are lifted later must not have it edited or deleted again
                // (Telegram answers 400 "message to edit/delete not found").
                let mut warning = shared
                    .hold_warning(timer.bot_instance_id, timer.chat_id, message_id)
                    .await;
                if !warning.deleted {
                    match say::try_delete(&turn, timer.chat_id, message_id as i32).await {
                        Ok(()) => warning.deleted = true,
                        // No answer: the timer is postponed and tried again (before, the warning
                        // and its button stayed up for good after one unanswered try).
                        Err(error) if crate::telegram::is_weather(&error) => {
                            return Err(error.into());
                        }
                        // Telegram's answer: already gone, or too old to delete (48 h).
                        Err(error) => {
                            tracing::debug!(chat = timer.chat_id, message_id, %error, "a message could not be deleted");
                        }
                    }
                }
            }
            Ok(())
        }
        Some(TimerKind::GraceCheck) => {
            let name = timer.payload.0["name"]
                .as_str()
                .unwrap_or("member")
                .to_string();
            let member = Member {
                user_id: user,
                name,
            };
            flows::grace_over(&turn, timer.chat_id, member).await
        }
        Some(TimerKind::RestrictionExpired) => {
            // Telegram lifted it at until_date; Nezuko's record and its warning end with it,
            // unless the member was restricted again since (a later date on the record).
            let until = timer.payload.0["until"].as_i64();
            let record = shared
                .store
                .active_restriction(turn.bot(), timer.chat_id, user)
                .await?;
            if record.is_some_and(|r| until.is_none() || r.restricted_until == until) {
                actions::end(&turn, timer.chat_id, user, EndReason::Expired).await?;
            }
            Ok(())
        }
        Some(TimerKind::JoinRequestTimeout) => match timer.payload.0["request_id"].as_i64() {
            Some(id) => super::join_requests::timed_out(&turn, id).await,
            None => Ok(()),
        },
        None => {
            tracing::warn!(kind = timer.kind, "unknown timer kind; dropped");
            Ok(())
        }
    }
}
