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
use super::policy::{JoinQueryFallback, JoinRequests};
use super::say::{self, channel_list, keyboard};
use super::standing::{self, Standing};
use super::texts::escape;
use crate::db::{JoinDecision, JoinRequestRow, NewJoinRequest, NewTimer, now_ms};
use crate::domain::{Outcome, TimerKind};
use crate::telegram::join_query::{AnswerChatJoinRequestQuery, QueryResult};

/// Who decided, as `join_requests.decided_by` keeps it.
const BY_NEZUKO: &str = "nezuko";
const BY_TIMEOUT: &str = "timeout";

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
    let outcome = group
        .shared
        .checker
        .check(group.calls(), &group.view.channels, user, true)
        .await;
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
    if let Some(query) = &query {
        match group.view.policy.join_query_fallback {
            JoinQueryFallback::Decline => {
                answer_query(turn, query, QueryResult::Decline).await?;
                decided(&group, user, Outcome::JoinDeclined, &missing);
                return Ok(());
            }
            JoinQueryFallback::Queue => {
                answer_query(turn, query, QueryResult::Queue).await?;
                group.record(user, Outcome::JoinQueued, false);
            }
        }
    }
    let row = group
        .shared
        .store
        .open_join_request(&NewJoinRequest {
            bot_instance_id: group.bot(),
            group_id: group.view.group.id,
            chat_id: chat,
            user_id: user,
            user_chat_id: request.user_chat_id.0,
            name: request.from.full_name(),
            query_id: query,
        })
        .await?;
    let timeout_s = group.view.policy.join_request_timeout_s;
    if timeout_s > 0 {
        group
            .shared
            .store
            .schedule(&NewTimer {
                bot_instance_id: group.bot(),
                kind: TimerKind::JoinRequestTimeout,
                chat_id: chat,
                user_id: Some(user),
                message_id: None,
                payload: json!({ "request_id": row.id }),
                due_at: now_ms() + timeout_s as i64 * 1000,
            })
            .await?;
    }
    tell_requester(&group, &row, &outcome.missing, &missing).await
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
    if !row.is_pending() {
        let text = phrase("join_request_gone");
        return say::answer_callback_query(turn, query, Some(strip_tags(&text)), true).await;
    }
    let outcome = group
        .shared
        .checker
        .check(group.calls(), &group.view.channels, presser, true)
        .await;
    match flows::verdict(&group.view, &outcome) {
        Verdict::Allowed { .. } => {
            let decision = match approve(turn, row.chat_id, presser).await {
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
        let outcome = group
            .shared
            .checker
            .check(group.calls(), &group.view.channels, user, false)
            .await;
        if flows::verdict(&group.view, &outcome) != (Verdict::Allowed { assumed: false }) {
            continue;
        }
        let decision = match approve(turn, row.chat_id, user).await {
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
    if !row.is_pending() {
        return Ok(());
    }
    let Some(view) = turn.shared.directory.group(turn.bot(), row.chat_id).await? else {
        // The group is gone from Nezuko: the request is the administrators' again.
        return Ok(());
    };
    let group = turn.in_group(view, None);
    let request = turn
        .calls()
        .bot()
        .decline_chat_join_request(ChatId(row.chat_id), UserId(row.user_id as u64));
    let decision = match turn
        .calls()
        .run("declineChatJoinRequest", None, request)
        .await
    {
        Ok(_) => JoinDecision::Declined,
        Err(error) if is_gone(&error) => gone(turn, row.chat_id, row.user_id).await,
        Err(error) => return Err(error.into()),
    };
    finish(&group, &row, decision, BY_TIMEOUT).await
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
