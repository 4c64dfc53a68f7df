//! Join requests under a group's `join_requests: approve_subscribers` policy: checking before
//! someone enters instead of muting them after.
//!
//! A request ([`on_request`]) from a subscriber of the group's channels is approved at once. Anyone
//! else is written to through `user_chat_id` (Telegram allows it for 5 minutes even if they never
//! started the bot) with a join button per missing channel and "Check again"
//! ([`check_again`]); they are approved as soon as a check passes (or as soon as the bot sees them
//! join the last missing channel, [`subscribed`]), and declined when the policy's
//! `join_request_timeout_s` runs out ([`timed_out`], a durable timer). A guard bot's query
//! (Bot API 10.1, `query_id`) is answered within its 10 s: `approve` for subscribers; otherwise
//! `queue` (the request stays pending and the requester is written to, as above) or `decline`, by
//! the policy's `join_query_fallback`.
//!
//! Telegram sends nothing when a requester withdraws; Nezuko finds out when approving or declining
//! fails with `HIDE_REQUESTER_MISSING` and records the request as withdrawn.

use serde_json::json;
use teloxide::RequestError;
use teloxide::prelude::Requester;
use teloxide::types::{CallbackQuery, ChatId, ChatJoinRequest, MessageId, ParseMode, UserId};

use super::calls::Target;
use super::context::{GroupTurn, Turn};
use super::flows::{self, Verdict};
use super::membership::CheckOutcome;
use super::policy::{JoinQueryFallback, JoinRequests};
use super::say::{self, channel_list, keyboard};
use super::standing::{self, Standing};
use super::texts::escape;
use crate::db::{JoinDecision, JoinRequestRow, NewJoinRequest, NewTimer, now_ms};
use crate::domain::{Outcome, TimerKind};
use crate::telegram::init_data::{self, InitDataError};
use crate::telegram::join_query::{
    AnswerChatJoinRequestQuery, QueryResult, SendChatJoinRequestWebApp,
};

/// How long a guard query shown the check page stays open: Telegram does not document it; the
/// 5 minutes `user_chat_id` lasts are the nearest documented bound (`ChatJoinRequest`), and the
/// query is answered 20 s before them.
const QUERY_WINDOW_MS: i64 = 280_000;
/// How long a guard query's own check may take before it is answered anyway: Telegram declines a
/// query unanswered after 10 s (`ChatJoinRequest.query_id`, Bot API 10.1); the rest of the 10 s is
/// left for the answer itself.
const QUERY_CHECK_BUDGET: std::time::Duration = std::time::Duration::from_secs(6);

/// Who decided, as `join_requests.decided_by` keeps it.
const BY_NEZUKO: &str = "nezuko";
const BY_TIMEOUT: &str = "timeout";
/// Telegram itself: a guard query left unanswered past its deadline is declined.
const BY_TELEGRAM: &str = "telegram";

/// A `chat_join_request` (with the guard bot's `query`, if it carried one).
pub async fn on_request(
    turn: &Turn,
    request: &ChatJoinRequest,
    query: Option<String>,
) -> anyhow::Result<()> {
    let chat = request.chat.id.0;
    let user = request.from.id.0 as i64;
    let view = turn
        .shared
        .directory
        .group(turn.bot(), chat)
        .await?
        .filter(|view| view.enforcing() && view.policy.join_requests != JoinRequests::Off);
    let Some(view) = view else {
        // Not Nezuko's to decide: a guard bot still owes Telegram an answer in 10 s.
        if let Some(query) = query {
            answer_query(turn, &query, QueryResult::Queue).await?;
        }
        return Ok(());
    };
    let group = turn.in_group(view, None);
    let exempt = request.from.is_bot || group.view.policy.allowlist.contains(&user);
    let checking = group
        .shared
        .checker
        .check(group.calls(), &group.view.channels, user, true);
    // A guard query cannot wait for a slow or rate-limited check: past the budget the requester
    // is treated as not yet subscribed (the page, "Check again" or the channel's update approves
    // them once Telegram answers).
    let outcome = match &query {
        Some(_) => match tokio::time::timeout(QUERY_CHECK_BUDGET, checking).await {
            Ok(outcome) => outcome?,
            Err(_) => {
                tracing::warn!(
                    chat,
                    user,
                    "the membership check outlasted the guard query's budget; answering as not yet subscribed"
                );
                CheckOutcome::missing_all(&group.view.channels)
            }
        },
        None => checking.await?,
    };
    let allowed = exempt
        || matches!(
            flows::verdict(&group.view, &outcome),
            Verdict::Allowed { .. }
        );
    if allowed {
        let approved = match &query {
            Some(query) => answer_query(turn, query, QueryResult::Approve).await,
            None => approve(turn, chat, user).await,
        };
        return match approved {
            Ok(()) => {
                decided(&group, user, Outcome::JoinApproved, &[]);
                Ok(())
            }
            Err(error) if is_gone(&error) => {
                group.record(user, Outcome::JoinWithdrawn, false);
                Ok(())
            }
            Err(error) => Err(error.into()),
        };
    }
    let missing: Vec<i64> = outcome.missing.iter().map(|c| c.chat_id).collect();
    let mut filed = NewJoinRequest {
        bot_instance_id: group.bot(),
        group_id: group.view.group.id,
        chat_id: chat,
        user_id: user,
        user_chat_id: request.user_chat_id.0,
        // PostgreSQL's text cannot hold NUL, which a Telegram name can.
        name: request.from.full_name().replace('\0', ""),
        query_id: query.clone(),
    };
    if let Some(query) = &query {
        if let Some(base) = &group.shared.options.check_page {
            let row = file(&group, &filed).await?;
            let page = SendChatJoinRequestWebApp {
                chat_join_request_query_id: query.clone(),
                web_app_url: format!("{}/join/{}", base.trim_end_matches('/'), row.id),
            };
            match turn
                .calls()
                .run("sendChatJoinRequestWebApp", None, page)
                .await
            {
                Ok(_) => {
                    decided(&group, user, Outcome::JoinAsked, &missing);
                    return Ok(());
                }
                Err(error) if error.to_string().contains("QUERY_ID_INVALID") => {
                    // Too late: Telegram declined the request when the query's 10 s ran out.
                    tracing::warn!(
                        chat,
                        user,
                        "the guard query was answered after Telegram's 10 s"
                    );
                    return finish(&group, &row, JoinDecision::Declined, BY_TELEGRAM).await;
                }
                Err(error) if is_gone(&error) => {
                    return finish(&group, &row, JoinDecision::Withdrawn, BY_NEZUKO).await;
                }
                // Still inside the 10 s: the fallback below answers instead.
                Err(error) => {
                    tracing::warn!(chat, user, %error, "the check page could not be shown; answering by join_query_fallback")
                }
            }
        }
        match group.view.policy.join_query_fallback {
            JoinQueryFallback::Decline => {
                answer_query(turn, query, QueryResult::Decline).await?;
                if let Some(row) = group
                    .shared
                    .store
                    .pending_join_request(group.bot(), chat, user)
                    .await?
                {
                    group
                        .shared
                        .store
                        .decide_join_request(row.id, JoinDecision::Declined, BY_NEZUKO)
                        .await?;
                }
                decided(&group, user, Outcome::JoinDeclined, &missing);
                return Ok(());
            }
            JoinQueryFallback::Queue => {
                answer_query(turn, query, QueryResult::Queue).await?;
                group.record(user, Outcome::JoinQueued, false);
                // Answered: from here on the request is decided the classic way.
                filed.query_id = None;
            }
        }
    }
    let row = file(&group, &filed).await?;
    tell_requester(&group, &row, &outcome.missing, &missing).await
}

/// Files the request as pending (the same row if it already is) and schedules its timeout.
async fn file(group: &GroupTurn, request: &NewJoinRequest) -> anyhow::Result<JoinRequestRow> {
    let store = &group.shared.store;
    if let Some(row) = store
        .pending_join_request(request.bot_instance_id, request.chat_id, request.user_id)
        .await?
    {
        return Ok(row);
    }
    let row = store.open_join_request(request).await?;
    let timeout_ms = group.view.policy.join_request_timeout_s as i64 * 1000;
    // A guard query shown the check page must be answered while its window lasts, whatever the
    // policy's timeout: its timer comes first then (see `timed_out`).
    let due = match (&row.query_id, timeout_ms) {
        (Some(_), 0) => Some(QUERY_WINDOW_MS),
        (Some(_), timeout) => Some(timeout.min(QUERY_WINDOW_MS)),
        (None, 0) => None,
        (None, timeout) => Some(timeout),
    };
    if let Some(after) = due {
        schedule_timeout(group, &row, row.requested_at + after).await?;
    }
    Ok(row)
}

/// Writes to the requester what to join, with "Check again"; one who blocked the bot cannot be
/// told, and their request waits for its timeout (or an administrator).
async fn tell_requester(
    group: &GroupTurn,
    row: &JoinRequestRow,
    channels: &[crate::db::ChannelRow],
    missing: &[i64],
) -> anyhow::Result<()> {
    let view = &group.view;
    let text = view.texts.render(
        view.policy.language,
        "join_request_missing",
        &[
            ("group", &escape(&view.group.title)),
            ("channels", &channel_list(channels)),
        ],
    );
    let buttons = keyboard(
        view,
        channels,
        "button_check_again",
        format!("nz:j:{}", row.id),
    );
    match say::say_in(group, row.user_chat_id, None, text, Some(buttons), 0).await {
        Ok(message_id) => {
            group
                .shared
                .store
                .set_join_request_message(row.id, i64::from(message_id))
                .await?;
            decided(group, row.user_id, Outcome::JoinAsked, missing);
            Ok(())
        }
        Err(error) if is_unreachable(&error) => {
            tracing::info!(chat = row.chat_id, user = row.user_id, %error, "the requester cannot be written to");
            decided(group, row.user_id, Outcome::JoinUnreachable, missing);
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// "Check again" (`nz:j:<request id>`), pressed by the requester in their private chat.
pub async fn check_again(
    turn: &Turn,
    query: &CallbackQuery,
    id: Option<&str>,
) -> anyhow::Result<()> {
    let presser = query.from.id.0 as i64;
    let row = match id.and_then(|id| id.parse::<i64>().ok()) {
        Some(id) => turn.shared.store.join_request(id).await?,
        None => None,
    };
    let Some(row) = row.filter(|r| r.user_id == presser && r.bot_instance_id == turn.bot()) else {
        return say::answer_callback_query(turn, query, None, false).await;
    };
    let Some(view) = turn.shared.directory.group(turn.bot(), row.chat_id).await? else {
        return say::answer_callback_query(turn, query, None, false).await;
    };
    let group = turn.in_group(view, None);
    let phrase = |name: &str| {
        group.view.texts.render(
            group.view.policy.language,
            name,
            &[("group", &escape(&group.view.group.title))],
        )
    };
    let (_held, row) = hold(&turn.shared, row).await?;
    if !row.is_pending() {
        let text = phrase("join_request_gone");
        return say::answer_callback_query(turn, query, Some(strip_tags(&text)), true).await;
    }
    let outcome = group
        .shared
        .checker
        .check(group.calls(), &group.view.channels, presser, true)
        .await?;
    match flows::verdict(&group.view, &outcome) {
        Verdict::Allowed { .. } => {
            let decision = match carry_out(turn, &row, true).await {
                Ok(()) => JoinDecision::Approved,
                Err(error) if is_gone(&error) => gone(turn, row.chat_id, presser).await,
                Err(error) => return Err(error.into()),
            };
            finish(&group, &row, decision, BY_NEZUKO).await?;
            let word = match decision {
                JoinDecision::Approved => "join_request_approved",
                _ => "join_request_gone",
            };
            say::answer_callback_query(turn, query, Some(strip_tags(&phrase(word))), false).await
        }
        Verdict::Denied { unconfirmed: true } => {
            group.record(presser, Outcome::UnknownDenied, false);
            say::answer_callback_query(turn, query, Some(phrase("check_failed")), true).await
        }
        Verdict::Denied { unconfirmed: false } => {
            group.record(presser, Outcome::StillMissing, false);
            let text = super::callbacks::still_missing(&group.view, &outcome.missing);
            say::answer_callback_query(turn, query, Some(text), true).await
        }
    }
}

/// The requester joined a channel (its `chat_member` update, the bot being the channel's
/// administrator): each of their pending requests this bot took up is checked again and approved
/// if that was the last channel missing, without waiting for "Check again".
pub async fn subscribed(turn: &Turn, user: i64) -> anyhow::Result<()> {
    for row in turn
        .shared
        .store
        .pending_join_requests_of(turn.bot(), user)
        .await?
    {
        let Some(view) = turn.shared.directory.group(turn.bot(), row.chat_id).await? else {
            continue;
        };
        let group = turn.in_group(view, None);
        let (_held, row) = hold(&turn.shared, row).await?;
        if !row.is_pending() {
            continue;
        }
        let outcome = group
            .shared
            .checker
            .check(group.calls(), &group.view.channels, user, false)
            .await?;
        if flows::verdict(&group.view, &outcome) != (Verdict::Allowed { assumed: false }) {
            continue;
        }
        let decision = match carry_out(turn, &row, true).await {
            Ok(()) => JoinDecision::Approved,
            Err(error) if is_gone(&error) => gone(turn, row.chat_id, user).await,
            Err(error) => return Err(error.into()),
        };
        finish(&group, &row, decision, BY_NEZUKO).await?;
    }
    Ok(())
}

/// The policy's timeout ran out on request `id`: declined if still pending.
pub async fn timed_out(turn: &Turn, id: i64) -> anyhow::Result<()> {
    let Some(row) = turn.shared.store.join_request(id).await? else {
        return Ok(());
    };
    let (_held, row) = hold(&turn.shared, row).await?;
    if !row.is_pending() {
        return Ok(());
    }
    let view = turn
        .shared
        .directory
        .group(turn.bot(), row.chat_id)
        .await?
        .filter(|view| view.enforcing() && view.policy.join_requests != JoinRequests::Off);
    let Some(view) = view else {
        // No longer Nezuko's to decide (the group unprotected, or the policy turned off): the
        // request is the administrators' again; an open guard query is left to them.
        if let Some(query) = &row.query_id {
            let _ = answer_query(turn, query, QueryResult::Queue).await;
        }
        return Ok(());
    };
    let group = turn.in_group(view, None);
    // A `chat_member` update may have been missed: Telegram is asked before anyone is declined.
    let outcome = group
        .shared
        .checker
        .check(group.calls(), &group.view.channels, row.user_id, true)
        .await?;
    if matches!(
        flows::verdict(&group.view, &outcome),
        Verdict::Allowed { .. }
    ) {
        let decision = match carry_out(turn, &row, true).await {
            Ok(()) => JoinDecision::Approved,
            Err(error) if is_gone(&error) => gone(turn, row.chat_id, row.user_id).await,
            Err(error) => return Err(error.into()),
        };
        return finish(&group, &row, decision, BY_NEZUKO).await;
    }
    let timeout_s = group.view.policy.join_request_timeout_s as i64;
    let policy_due = (timeout_s > 0).then(|| row.requested_at + timeout_s * 1000);
    if let Some(query) = &row.query_id
        && policy_due.is_none_or(|due| now_ms() < due)
    {
        // The check page's window is closing before the policy's timeout: the query is answered
        // `queue` while it still can be, and the request goes on the classic way (a message with
        // "Check again", then the policy's timeout).
        match answer_query(turn, query, QueryResult::Queue).await {
            Ok(()) => {}
            Err(error) if is_gone(&error) => {
                let decision = gone(turn, row.chat_id, row.user_id).await;
                return finish(&group, &row, decision, BY_TIMEOUT).await;
            }
            Err(error) => return Err(error.into()),
        }
        group.shared.store.clear_join_query(row.id).await?;
        group.record(row.user_id, Outcome::JoinQueued, false);
        if let Some(due) = policy_due {
            schedule_timeout(&group, &row, due).await?;
        }
        let missing: Vec<i64> = outcome.missing.iter().map(|c| c.chat_id).collect();
        return tell_requester(&group, &row, &outcome.missing, &missing).await;
    }
    let decision = match carry_out(turn, &row, false).await {
        Ok(()) => JoinDecision::Declined,
        Err(error) if is_gone(&error) => gone(turn, row.chat_id, row.user_id).await,
        Err(error) => return Err(error.into()),
    };
    finish(&group, &row, decision, BY_TIMEOUT).await
}

/// Schedules request `row`'s timeout at `due` (Unix ms).
async fn schedule_timeout(group: &GroupTurn, row: &JoinRequestRow, due: i64) -> anyhow::Result<()> {
    group
        .shared
        .store
        .schedule(&NewTimer {
            bot_instance_id: group.bot(),
            kind: TimerKind::JoinRequestTimeout,
            chat_id: row.chat_id,
            user_id: Some(row.user_id),
            message_id: None,
            payload: json!({ "request_id": row.id }),
            due_at: due,
        })
        .await?;
    Ok(())
}

/// What the Mini App check page shows after a check (`POST /api/v1/join-requests/{id}/check`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct PageState {
    /// `approved`, `missing` (join the channels, then check again), `declined`, `withdrawn`, or
    /// `check_failed` (Telegram could not say; try again).
    pub status: String,
    /// The group's title.
    pub group: String,
    /// What to tell the person, in the group's language (plain text).
    pub text: String,
    /// The channels still to join, with where to join them.
    pub channels: Vec<PageChannel>,
    /// The check button's label, in the group's language.
    pub button: String,
}

/// A channel the check page names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct PageChannel {
    pub title: String,
    /// `https://t.me/<username>` or the invite link; `None` when Nezuko has neither.
    pub url: Option<String>,
}

/// Why a request named by id cannot be acted on here.
enum Lookup {
    NoSuchRequest,
    /// Its bot runs on another node (or nowhere).
    NotHere,
    Failed(anyhow::Error),
}

/// Request `id` and a turn of its bot in its group, for a page or an administrator acting on it.
async fn look_up(
    shared: &std::sync::Arc<super::Shared>,
    id: i64,
) -> Result<(JoinRequestRow, GroupTurn), Lookup> {
    let row = shared
        .store
        .join_request(id)
        .await
        .map_err(|e| Lookup::Failed(e.into()))?
        .ok_or(Lookup::NoSuchRequest)?;
    let runtime = shared.runtime(row.bot_instance_id).ok_or(Lookup::NotHere)?;
    let view = shared
        .directory
        .group(row.bot_instance_id, row.chat_id)
        .await
        .map_err(|e| Lookup::Failed(e.into()))?
        .ok_or(Lookup::NoSuchRequest)?;
    let group = Turn::new(shared.clone(), runtime, None).in_group(view, None);
    Ok((row, group))
}

/// Why the check page could not check.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("no such join request")]
    NoSuchRequest,
    #[error("the request's bot is not running here (it is stopped, or runs on another node)")]
    NotHere,
    #[error(transparent)]
    InitData(#[from] InitDataError),
    #[error("this check page belongs to another user's join request")]
    NotYours,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// The check page of request `id`, opened by the user whose Mini App `init_data` Telegram signed
/// with the request's bot's token: checks their subscriptions now and, if they are complete,
/// approves the request (answering the guard bot's query while it is open, else the classic way).
pub async fn check_page(
    shared: &std::sync::Arc<super::Shared>,
    id: i64,
    init_data: &str,
) -> Result<PageState, PageError> {
    let (row, group) = match look_up(shared, id).await {
        Ok(found) => found,
        Err(Lookup::NoSuchRequest) => return Err(PageError::NoSuchRequest),
        Err(Lookup::NotHere) => return Err(PageError::NotHere),
        Err(Lookup::Failed(error)) => return Err(error.into()),
    };
    let signed = init_data::verify(init_data, group.calls().bot().token(), now_ms() / 1000)?;
    if signed.id != row.user_id {
        return Err(PageError::NotYours);
    }
    let turn = group.turn.clone();
    let (_held, row) = hold(shared, row).await?;
    if !row.is_pending() {
        return Ok(page(&group, &row.status, &[]));
    }
    let outcome = group
        .shared
        .checker
        .check(group.calls(), &group.view.channels, row.user_id, true)
        .await
        .map_err(anyhow::Error::from)?;
    match flows::verdict(&group.view, &outcome) {
        Verdict::Allowed { .. } => {
            let answered = carry_out(&turn, &row, true).await;
            let decision = match answered {
                Ok(()) => JoinDecision::Approved,
                Err(error) if is_gone(&error) => gone(&turn, row.chat_id, row.user_id).await,
                Err(error) => return Err(anyhow::Error::from(error).into()),
            };
            finish(&group, &row, decision, BY_NEZUKO).await?;
            Ok(page(&group, decision.as_str(), &[]))
        }
        Verdict::Denied { unconfirmed: true } => {
            group.record(row.user_id, Outcome::UnknownDenied, false);
            Ok(page(&group, "check_failed", &[]))
        }
        Verdict::Denied { unconfirmed: false } => {
            group.record(row.user_id, Outcome::StillMissing, false);
            Ok(page(&group, "missing", &outcome.missing))
        }
    }
}

/// The page for `status`, in the group's language.
fn page(group: &GroupTurn, status: &str, missing: &[crate::db::ChannelRow]) -> PageState {
    let view = &group.view;
    let template = match status {
        "approved" => "join_request_approved",
        "missing" => "join_request_missing",
        "declined" => "join_request_declined",
        "check_failed" => "check_failed",
        _ => "join_request_gone",
    };
    let named = if missing.is_empty() {
        &view.channels[..]
    } else {
        missing
    };
    let text = view.texts.render(
        view.policy.language,
        template,
        &[
            ("group", &escape(&view.group.title)),
            ("channels", &channel_list(named)),
        ],
    );
    PageState {
        status: status.to_string(),
        group: view.group.title.clone(),
        text: strip_tags(&text),
        channels: missing
            .iter()
            .map(|c| PageChannel {
                title: c.title.clone(),
                url: c
                    .username
                    .as_ref()
                    .map(|u| format!("https://t.me/{u}"))
                    .or_else(|| c.invite_link.clone()),
            })
            .collect(),
        button: view
            .texts
            .render(view.policy.language, "button_check_again", &[]),
    }
}

/// Why an administrator's decision could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no such join request")]
    NoSuchRequest,
    #[error("the request's bot is not running here (it is stopped, or runs on another node)")]
    NotHere,
    #[error("the request is no longer pending: it was {0}")]
    Decided(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// An administrator approves or declines pending request `id` from the dashboard: Telegram is
/// told (through the guard bot's query while it is open), and the request ends as Telegram then
/// has it. Returns the request as it ended.
pub async fn decide_by_admin(
    shared: &std::sync::Arc<super::Shared>,
    id: i64,
    approve_it: bool,
    admin: i64,
) -> Result<JoinRequestRow, DecideError> {
    let store = &shared.store;
    let (row, group) = match look_up(shared, id).await {
        Ok(found) => found,
        Err(Lookup::NoSuchRequest) => return Err(DecideError::NoSuchRequest),
        Err(Lookup::NotHere) => return Err(DecideError::NotHere),
        Err(Lookup::Failed(error)) => return Err(error.into()),
    };
    let turn = group.turn.clone();
    let (_held, row) = hold(shared, row).await?;
    if !row.is_pending() {
        return Err(DecideError::Decided(row.status));
    }
    let wanted = if approve_it {
        JoinDecision::Approved
    } else {
        JoinDecision::Declined
    };
    let answered = carry_out(&turn, &row, approve_it).await;
    let decision = match answered {
        Ok(()) => wanted,
        Err(error) if is_gone(&error) => gone(&turn, row.chat_id, row.user_id).await,
        Err(error) => return Err(anyhow::Error::from(error).into()),
    };
    finish(&group, &row, decision, &format!("admin:{admin}")).await?;
    if decision == JoinDecision::Withdrawn {
        // Gone at Telegram before the administrator's decision reached it.
        return Err(DecideError::Decided(
            "withdrawn by the requester, or decided at Telegram (a guard query left unanswered is declined)".into(),
        ));
    }
    Ok(store
        .join_request(id)
        .await
        .map_err(anyhow::Error::from)?
        .unwrap_or(row))
}

/// Stores how a pending request ended (once: a racing decision finds it decided), records it,
/// and rewrites the message the requester was sent to say so.
async fn finish(
    group: &GroupTurn,
    row: &JoinRequestRow,
    decision: JoinDecision,
    by: &str,
) -> anyhow::Result<()> {
    if !group
        .shared
        .store
        .decide_join_request(row.id, decision, by)
        .await?
    {
        return Ok(());
    }
    let (outcome, template) = match decision {
        JoinDecision::Approved => (Outcome::JoinApproved, "join_request_approved"),
        JoinDecision::Declined if by.starts_with("admin:") => {
            (Outcome::JoinDeclined, "join_request_refused")
        }
        JoinDecision::Declined => (Outcome::JoinDeclined, "join_request_declined"),
        JoinDecision::Withdrawn => (Outcome::JoinWithdrawn, "join_request_gone"),
    };
    decided(group, row.user_id, outcome, &[]);
    let Some(message_id) = row.message_id else {
        return Ok(());
    };
    let view = &group.view;
    let text = view.texts.render(
        view.policy.language,
        template,
        &[
            ("group", &escape(&view.group.title)),
            ("channels", &channel_list(&view.channels)),
        ],
    );
    let request = group.calls().bot().edit_message_text(
        ChatId(row.user_chat_id),
        MessageId(message_id as i32),
        text,
    );
    let request = teloxide::payloads::EditMessageTextSetters::parse_mode(request, ParseMode::Html);
    if let Err(error) = group
        .calls()
        .run("editMessageText", Target::chat(row.user_chat_id), request)
        .await
    {
        tracing::debug!(chat = row.chat_id, user = row.user_id, %error, "the requester's message could not be updated");
    }
    Ok(())
}

/// Records a join-request outcome and publishes it on the live feed.
fn decided(group: &GroupTurn, user: i64, outcome: Outcome, missing: &[i64]) {
    group.record(user, outcome, false);
    group.announce(user, outcome, false, missing);
}

/// Approves or declines a pending request at Telegram: through the guard bot's query while it is
/// open (the query is the guard bot's to answer), else, as when it was queued or ran out, the
/// classic way.
async fn carry_out(
    turn: &Turn,
    row: &JoinRequestRow,
    approve_it: bool,
) -> Result<(), RequestError> {
    if let Some(query) = &row.query_id {
        let result = if approve_it {
            QueryResult::Approve
        } else {
            QueryResult::Decline
        };
        match answer_query(turn, query, result).await {
            Err(error) if error.to_string().contains("QUERY_ID_INVALID") => {}
            other => return other,
        }
    }
    if approve_it {
        return approve(turn, row.chat_id, row.user_id).await;
    }
    let request = turn
        .calls()
        .bot()
        .decline_chat_join_request(ChatId(row.chat_id), UserId(row.user_id as u64));
    turn.calls()
        .run("declineChatJoinRequest", None, request)
        .await
        .map(|_| ())
}

async fn approve(turn: &Turn, chat: i64, user: i64) -> Result<(), RequestError> {
    let request = turn
        .calls()
        .bot()
        .approve_chat_join_request(ChatId(chat), UserId(user as u64));
    match turn
        .calls()
        .run("approveChatJoinRequest", None, request)
        .await
    {
        // Already in (an administrator approved, or added them): what approving was for.
        Err(error) if error.to_string().contains("USER_ALREADY_PARTICIPANT") => Ok(()),
        other => other.map(|_| ()),
    }
}

async fn answer_query(turn: &Turn, query: &str, result: QueryResult) -> Result<(), RequestError> {
    let answer = AnswerChatJoinRequestQuery {
        chat_join_request_query_id: query.to_string(),
        result,
    };
    turn.calls()
        .run("answerChatJoinRequestQuery", None, answer)
        .await
        .map(|_| ())
}

/// Holds the requester's lock (the one every action on a member takes) and reads the request
/// again: of two decisions racing ("Check again" pressed as the channel join arrives), the second
/// finds the first finished and makes no call of its own.
async fn hold(
    shared: &std::sync::Arc<super::Shared>,
    row: JoinRequestRow,
) -> anyhow::Result<(tokio::sync::OwnedMutexGuard<()>, JoinRequestRow)> {
    let held = shared
        .hold_member(row.bot_instance_id, row.chat_id, row.user_id)
        .await;
    let now = shared.store.join_request(row.id).await?.unwrap_or(row);
    Ok((held, now))
}

/// What became of a request that is no longer there to decide on, by Telegram's account: the
/// requester is in (approved by an administrator, or by a decision of Nezuko's racing this one, such
/// as "Check again" pressed as the channel join arrived) or not (withdrawn, or declined).
async fn gone(turn: &Turn, chat: i64, user: i64) -> JoinDecision {
    match standing::read(turn, chat, user).await {
        Ok(Standing::Free { .. } | Standing::Admin | Standing::Muted { present: true, .. }) => {
            JoinDecision::Approved
        }
        _ => JoinDecision::Withdrawn,
    }
}

/// The request is no longer there to decide on: withdrawn, or decided by someone else.
fn is_gone(error: &RequestError) -> bool {
    let text = error.to_string();
    text.contains("HIDE_REQUESTER_MISSING") || text.contains("QUERY_ID_INVALID")
}

/// The requester cannot be written to: they blocked the bot or deleted their account (403), or
/// the 5 minutes of `user_chat_id` are over (the chat is unknown to the bot again: 400 "chat not
/// found", or 403 once it had been written to).
fn is_unreachable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<RequestError>().is_some_and(|e| {
            let text = e.to_string();
            matches!(e, RequestError::Api(_))
                && (text.contains("Forbidden") || text.contains("chat not found"))
        })
    })
}

/// A template's text without its HTML tags, for a callback answer (shown as plain text).
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}
