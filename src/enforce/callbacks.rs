//! Inline buttons: "I have joined" (`nz:v[:user]`), a join request's "Check again"
//! (`nz:j:<request id>`), the private help menu (`nz:h:<page>`) and the group settings menu
//! (`nz:s:<field>`). Every press is answered, so the client's spinner stops.

use teloxide::types::CallbackQuery;

use super::actions::{self, Lifted};
use super::context::{GroupTurn, Turn};
use super::directory::GroupView;
use super::flows::{self, Verdict};
use super::say;
use super::standing::{self, Standing};
use super::{commands, join_requests, settings_menu};
use crate::db::ChannelRow;
use crate::domain::{EndReason, Outcome};

pub async fn handle(turn: &Turn, query: &CallbackQuery) -> anyhow::Result<()> {
    let data = query.data.as_deref().unwrap_or_default();
    let mut parts = data.split(':');
    match (parts.next(), parts.next()) {
        (Some("nz"), Some("v")) => verify(turn, query, parts.next()).await,
        (Some("nz"), Some("j")) => join_requests::check_again(turn, query, parts.next()).await,
        (Some("nz"), Some("h")) => {
            commands::help_page(turn, query, parts.next().unwrap_or_default()).await
        }
        (Some("nz"), Some("s")) => {
            settings_menu::pressed(turn, query, parts.next().unwrap_or_default()).await
        }
        _ => say::answer_callback_query(turn, query, None, false).await,
    }
}

/// A press of one's own button when Nezuko holds nothing on the presser: Telegram says whether they
/// may write, not Nezuko's record. A release whose unrestrict never reached Telegram (the record
/// ended, Telegram still shows Nezuko's exact restriction) is sent now if the presser is subscribed.
/// Returns the text to answer with and whether it is an alert.
async fn released_already(
    group: &GroupTurn,
    view: &GroupView,
    chat: i64,
    presser: i64,
) -> anyhow::Result<(String, bool)> {
    let phrase = |name: &str| view.texts.render(view.policy.language, name, &[]);
    let standing = standing::read(group, chat, presser).await?;
    let (word, alert) = match &standing {
        Standing::Free { .. } | Standing::Admin => ("verified", false),
        Standing::Absent => ("not_your_button", true),
        Standing::Banned => ("admin_hold", true),
        Standing::Muted { .. } => {
            let last = group
                .shared
                .store
                .last_restriction(group.bot(), chat, presser)
                .await?;
            let Some(last) = last.filter(|r| standing.is_ours(r)) else {
                return Ok((phrase("admin_hold"), true));
            };
            let outcome = group
                .shared
                .checker
                .check(group.calls(), &view.channels, presser, true)
                .await?;
            match flows::verdict(view, &outcome) {
                Verdict::Allowed { .. } => {
                    if actions::finish_release(group, &last, &standing).await? {
                        ("verified", false)
                    } else {
                        ("admin_hold", true)
                    }
                }
                Verdict::Denied { unconfirmed: true } => ("check_failed", true),
                Verdict::Denied { unconfirmed: false } => {
                    return Ok((still_missing(view, &outcome.missing), true));
                }
            }
        }
    };
    Ok((phrase(word), alert))
}

/// The alert naming the channels the presser has not joined. Alerts are plain text: channel names
/// as written, not escaped for HTML.
pub(super) fn still_missing(view: &GroupView, missing: &[ChannelRow]) -> String {
    let names = missing
        .iter()
        .map(|c| match &c.username {
            Some(username) => format!("@{username}"),
            None => c.title.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    view.texts.render(
        view.policy.language,
        "still_missing",
        &[("channels", &names)],
    )
}

/// "I have joined": only for the member(s) the warning names; the check skips the cache.
async fn verify(turn: &Turn, query: &CallbackQuery, addressed: Option<&str>) -> anyhow::Result<()> {
    let Some(message) = query.regular_message() else {
        return say::answer_callback_query(turn, query, None, false).await;
    };
    let chat = message.chat.id.0;
    let presser = query.from.id.0 as i64;
    let Some(view) = turn.shared.directory.group(turn.bot(), chat).await? else {
        return say::answer_callback_query(turn, query, None, false).await;
    };
    let group = turn.in_group(view, message.thread_id.map(|t| t.0.0));
    let view = &group.view;
    let phrase = |name: &str| view.texts.render(view.policy.language, name, &[]);
    if addressed.is_some_and(|id| id.parse::<i64>().ok() != Some(presser)) {
        return say::answer_callback_query(turn, query, Some(phrase("not_your_button")), true)
            .await;
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
            let (text, alert) = match released_already(&group, view, chat, presser).await {
                Ok(reply) => reply,
                Err(error) => {
                    tracing::info!(chat, presser, %error, "could not re-check a released member");
                    (phrase("check_failed"), true)
                }
            };
            return say::answer_callback_query(turn, query, Some(text), alert).await;
        }
        return say::answer_callback_query(turn, query, Some(phrase("not_your_button")), true)
            .await;
    };
    let in_flight = group
        .shared
        .warning_in_flight
        .contains_key(&(group.bot(), chat, presser));
    if record.warning_message_id.is_none() && !in_flight {
        // Pressed on a warning whose id was never stored (the process ended between sending it and
        // storing it): it is this one. While it is still being stored, that send writes the
        // warning again without whoever verified meanwhile.
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
        .await?;
    match flows::verdict(view, &outcome) {
        Verdict::Allowed { assumed } => {
            let lifted = match actions::lift(&group, chat, presser, EndReason::Verified).await {
                Ok(lifted) => lifted,
                // The press stays with Telegram and is handled again when the database is back.
                Err(error) if error.chain().any(crate::db::is_outage) => return Err(error),
                Err(error) => {
                    tracing::info!(chat, presser, %error, "could not read the member's standing to lift");
                    return say::answer_callback_query(
                        turn,
                        query,
                        Some(phrase("check_failed")),
                        true,
                    )
                    .await;
                }
            };
            if let Lifted::Superseded(Standing::Banned | Standing::Muted { .. }) = lifted {
                // An administrator's decision stands; only they can change it.
                return say::answer_callback_query(turn, query, Some(phrase("admin_hold")), true)
                    .await;
            }
            let word = if assumed {
                Outcome::UnknownAllowed
            } else {
                Outcome::Verified
            };
            group.decided(presser, word, false, &[]);
            say::answer_callback_query(turn, query, Some(phrase("verified")), false).await
        }
        Verdict::Denied { unconfirmed: true } => {
            group.record(presser, Outcome::UnknownDenied, false);
            say::answer_callback_query(turn, query, Some(phrase("check_failed")), true).await
        }
        Verdict::Denied { unconfirmed: false } => {
            group.record(presser, Outcome::StillMissing, false);
            let text = still_missing(view, &outcome.missing);
            say::answer_callback_query(turn, query, Some(text), true).await
        }
    }
}
