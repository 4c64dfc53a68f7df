//! Inline buttons: "I have joined" (`nz:v[:user]`), the private help menu (`nz:h:<page>`) and the
//! group settings menu (`nz:s:<field>`). Every press is answered, so the client's spinner stops.

use teloxide::payloads::AnswerCallbackQuerySetters;
use teloxide::prelude::Requester;
use teloxide::types::CallbackQuery;

use super::actions::{self, Lifted};
use super::context::Turn;
use super::flows::{self, Verdict};
use super::standing::Standing;
use super::{commands, settings_menu};
use crate::domain::{EndReason, Outcome};

pub async fn handle(turn: &Turn, query: &CallbackQuery) -> anyhow::Result<()> {
    let data = query.data.as_deref().unwrap_or_default();
    let mut parts = data.split(':');
    match (parts.next(), parts.next()) {
        (Some("nz"), Some("v")) => verify(turn, query, parts.next()).await,
        (Some("nz"), Some("h")) => {
            commands::help_page(turn, query, parts.next().unwrap_or_default()).await
        }
        (Some("nz"), Some("s")) => {
            settings_menu::pressed(turn, query, parts.next().unwrap_or_default()).await
        }
        _ => answer(turn, query, None, false).await,
    }
}

/// Answers a press, with an optional text (an alert box when `alert`).
pub async fn answer(
    turn: &Turn,
    query: &CallbackQuery,
    text: Option<String>,
    alert: bool,
) -> anyhow::Result<()> {
    let mut request = turn.calls().bot().answer_callback_query(query.id.clone());
    if let Some(text) = text {
        request = request.text(text).show_alert(alert);
    }
    turn.calls()
        .run("answerCallbackQuery", None, request)
        .await?;
    Ok(())
}

/// "I have joined": only for the member(s) the warning names; the check skips the cache.
async fn verify(turn: &Turn, query: &CallbackQuery, addressed: Option<&str>) -> anyhow::Result<()> {
    let Some(message) = query.regular_message() else {
        return answer(turn, query, None, false).await;
    };
    let chat = message.chat.id.0;
    let presser = query.from.id.0 as i64;
    let Some(view) = turn.shared.directory.group(turn.bot(), chat).await? else {
        return answer(turn, query, None, false).await;
    };
    let group = turn.in_group(view, message.thread_id.map(|t| t.0.0));
    let view = &group.view;
    let say = |name: &str| view.texts.render(view.policy.language, name, &[]);
    if addressed.is_some_and(|id| id.parse::<i64>().ok() != Some(presser)) {
        return answer(turn, query, Some(say("not_your_button")), true).await;
    }
    // Pressing only ever checks the presser: anyone Nezuko holds back may use a button meant for
    // them. Anyone else, or a member muted by an admin (no record of Nezuko's), is told the button
    // is not theirs.
    let Some(record) = group
        .shared
        .store
        .active_restriction(group.bot(), chat, presser)
        .await?
    else {
        if addressed.is_some() {
            // Their own button, already released (rejoining the channel restored them).
            return answer(turn, query, Some(say("verified")), false).await;
        }
        return answer(turn, query, Some(say("not_your_button")), true).await;
    };
    if record.warning_message_id.is_none() {
        // Pressed before the warning's id was stored: it is this one.
        group
            .shared
            .store
            .set_warning_message(&[record.id], i64::from(message.id.0))
            .await?;
    }
    let outcome = group
        .shared
        .checker
        .check(group.calls(), &view.channels, presser, true)
        .await;
    match flows::verdict(view, &outcome) {
        Verdict::Allowed { assumed } => {
            let lifted = match actions::lift(&group, chat, presser, EndReason::Verified).await {
                Ok(lifted) => lifted,
                Err(error) => {
                    tracing::info!(chat, presser, %error, "could not read the member's standing to lift");
                    return answer(turn, query, Some(say("check_failed")), true).await;
                }
            };
            if let Lifted::Superseded(Standing::Banned | Standing::Muted { .. }) = lifted {
                // An administrator's decision stands; only they can change it.
                return answer(turn, query, Some(say("admin_hold")), true).await;
            }
            let word = if assumed {
                Outcome::UnknownAllowed
            } else {
                Outcome::Verified
            };
            group.decided(presser, word, false, &[]);
            answer(turn, query, Some(say("verified")), false).await
        }
        Verdict::Denied { unconfirmed: true } => {
            group.record(presser, Outcome::UnknownDenied, false);
            answer(turn, query, Some(say("check_failed")), true).await
        }
        Verdict::Denied { unconfirmed: false } => {
            group.record(presser, Outcome::StillMissing, false);
            // Alerts are plain text: channel names as written, not escaped for HTML.
            let names = outcome
                .missing
                .iter()
                .map(|c| match &c.username {
                    Some(username) => format!("@{username}"),
                    None => c.title.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let text = view.texts.render(
                view.policy.language,
                "still_missing",
                &[("channels", &names)],
            );
            answer(turn, query, Some(text), true).await
        }
    }
}
