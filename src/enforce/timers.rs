//! The timer runner: carries out `scheduled_actions` of the bots running in this process when they
//! fall due (auto-deletes, grace checks, ends of temporary restrictions), including those scheduled
//! before a restart. See `db/timers.rs` for the lease that keeps two processes from doing one twice.

use std::sync::Arc;

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

pub async fn run(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(shared.options.timer_poll).await;
        if let Err(error) = run_due(&shared).await {
            tracing::warn!(%error, "the timer runner could not read due timers; retrying");
        }
    }
}

/// Carries out every due timer of the running bots; returns how many it handled.
pub async fn run_due(shared: &Arc<Shared>) -> anyhow::Result<usize> {
    let bots = shared.running_bots();
    let due = shared.store.due_timers(&bots, now_ms(), BATCH).await?;
    let mut handled = 0;
    for timer in due {
        if !shared.store.lease_timer(&timer, LEASE_MS).await? {
            continue;
        }
        handled += 1;
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
    Ok(handled)
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
                    warning.deleted =
                        say::delete_message(&turn, timer.chat_id, message_id as i32).await;
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
