//! Inline buttons: "I have joined" (`nz:v[:user]`), the private help menu (`nz:h:<page>`) and the
//! group settings menu (`nz:s:<field>`). Every press is answered, so the client's spinner stops.

use std::sync::Arc;
use std::time::Instant;

use teloxide::payloads::AnswerCallbackQuerySetters;
use teloxide::prelude::Requester;
use teloxide::types::CallbackQuery;

use super::actions::{self, channel_list};
use super::flows::{self, Verdict};
use super::{BotRuntime, Shared, commands, settings_menu, verification_payload};

pub async fn handle(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    query: &CallbackQuery,
) -> anyhow::Result<()> {
    let data = query.data.as_deref().unwrap_or_default();
    let mut parts = data.split(':');
    match (parts.next(), parts.next()) {
        (Some("nz"), Some("v")) => verify(shared, runtime, query, parts.next()).await,
        (Some("nz"), Some("h")) => {
            commands::help_page(shared, runtime, query, parts.next().unwrap_or_default()).await
        }
        (Some("nz"), Some("s")) => {
            settings_menu::pressed(shared, runtime, query, parts.next().unwrap_or_default()).await
        }
        _ => answer(runtime, query, None, false).await,
    }
}

/// Answers a press, with an optional text (an alert box when `alert`).
pub async fn answer(
    runtime: &BotRuntime,
    query: &CallbackQuery,
    text: Option<String>,
    alert: bool,
) -> anyhow::Result<()> {
    let mut request = runtime.calls.bot().answer_callback_query(query.id.clone());
    if let Some(text) = text {
        request = request.text(text).show_alert(alert);
    }
    runtime
        .calls
        .run("answerCallbackQuery", None, request)
        .await?;
    Ok(())
}

/// "I have joined": only for the member(s) the warning names; the check skips the cache.
async fn verify(
    shared: &Arc<Shared>,
    runtime: &BotRuntime,
    query: &CallbackQuery,
    addressed: Option<&str>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let Some(message) = query.regular_message() else {
        return answer(runtime, query, None, false).await;
    };
    let chat = message.chat.id.0;
    let presser = query.from.id.0 as i64;
    let Some(view) = shared.directory.group(runtime.id(), chat).await? else {
        return answer(runtime, query, None, false).await;
    };
    let not_yours = view
        .texts
        .render(view.policy.language, "not_your_button", &[]);
    if addressed.is_some_and(|id| id.parse::<i64>().ok() != Some(presser)) {
        return answer(runtime, query, Some(not_yours), true).await;
    }
    // Pressing only ever checks the presser: anyone Nezuko holds back may use a button meant for
    // them (the warning's id may not be stored yet when a quick member presses). Anyone else, or a
    // member muted by an admin (no record of Nezuko's), is told the button is not theirs.
    if shared
        .store
        .active_restriction(runtime.id(), chat, presser)
        .await?
        .is_none()
    {
        if addressed.is_some() {
            // Their own button, already released (rejoining the channel restored them).
            let text = view.texts.render(view.policy.language, "verified", &[]);
            return answer(runtime, query, Some(text), false).await;
        }
        return answer(runtime, query, Some(not_yours), true).await;
    }
    let outcome = shared
        .checker
        .check(&runtime.calls, &view.channels, presser, true)
        .await;
    match flows::verdict(&view, &outcome) {
        Verdict::Allowed { assumed } => {
            actions::lift(shared, runtime, chat, presser, Some(message.id.0)).await?;
            let word = if assumed {
                "unknown_allowed"
            } else {
                "verified"
            };
            flows::record(shared, runtime, &view, presser, word, false, started);
            shared.publish(
                runtime,
                "verification",
                verification_payload(&view, presser, word, false),
            );
            let text = view.texts.render(view.policy.language, "verified", &[]);
            answer(runtime, query, Some(text), false).await
        }
        Verdict::Denied { unconfirmed: true } => {
            flows::record(
                shared,
                runtime,
                &view,
                presser,
                "unknown_denied",
                false,
                started,
            );
            let text = view.texts.render(view.policy.language, "check_failed", &[]);
            answer(runtime, query, Some(text), true).await
        }
        Verdict::Denied { unconfirmed: false } => {
            flows::record(
                shared,
                runtime,
                &view,
                presser,
                "still_missing",
                false,
                started,
            );
            // Alerts are plain text: channel names without HTML.
            let names = channel_list(&outcome.missing)
                .replace("<b>", "")
                .replace("</b>", "");
            let text = view.texts.render(
                view.policy.language,
                "still_missing",
                &[("channels", &names)],
            );
            answer(runtime, query, Some(text), true).await
        }
    }
}
