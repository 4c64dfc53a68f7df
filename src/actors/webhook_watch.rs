//! A webhook-mode runner's look at what Telegram says of its bot's webhook (`getWebhookInfo`).
//!
//! Telegram reports a delivery it could not make only there (`last_error_date`,
//! `last_error_message`; <https://core.telegram.org/bots/api#getwebhookinfo>), and keeps retrying
//! the update meanwhile: without this look a webhook Telegram cannot reach (a wrong
//! `server.public_url`, a proxy refusing the route, a certificate it does not trust) shows the bot
//! `running` while nothing arrives. Each new error is a warning in the log and an `activity` event;
//! a webhook set to another URL (or removed) by someone else ends the bot's run as a transient
//! failure, so the restart sets it again, the way a second poller is treated in polling mode.

use std::time::Duration;

use serde_json::json;
use teloxide::Bot;
use teloxide::payloads::GetWebhookInfo;

use crate::domain::EventKind;
use crate::events::Publisher;
use crate::telegram::{Failure, Fence, classify, transport};

/// What Nezuko reads of `getWebhookInfo`'s `WebhookInfo` (its own type rather than teloxide's,
/// which refuses the whole reply when `allowed_updates` names an update type newer than it).
#[derive(Debug, serde::Deserialize)]
struct WebhookState {
    /// Empty when no webhook is set.
    #[serde(default)]
    url: String,
    #[serde(default)]
    pending_update_count: u64,
    /// Unix time (s) of the latest failed delivery.
    last_error_date: Option<i64>,
    last_error_message: Option<String>,
}

/// How long a webhook found changed is given before it counts: a bot being disabled has its
/// webhook deleted by the admin API or the CLI a moment before its runner is told to stop.
const CHANGE_CONFIRM_WAIT: Duration = Duration::from_secs(5);

/// Reads the bot's webhook every `every` until Telegram holds another URL than `url` (twice,
/// [`CHANGE_CONFIRM_WAIT`] apart) or refuses the token, and returns that as the failure ending the
/// run. Reports each delivery error newer than the last one reported; the first read reports an
/// error only while updates wait (Telegram's clock decides what is new, not this host's). A read
/// that fails otherwise is left for the next look: the dispatcher's own failures are what restart
/// a bot.
pub async fn watch(
    bot: Bot,
    bot_instance_id: i64,
    fence: Fence,
    url: String,
    every: Duration,
    events: Publisher,
) -> Failure {
    let mut reported: Option<i64> = None;
    let mut changed_since: Option<tokio::time::Instant> = None;
    loop {
        let pause = if changed_since.is_some() {
            CHANGE_CONFIRM_WAIT
        } else {
            every
        };
        tokio::time::sleep(pause).await;
        let state = match read(&bot, &fence).await {
            Ok(state) => state,
            Err(Failure::InvalidToken) => return Failure::InvalidToken,
            Err(error) => {
                tracing::debug!(bot_instance_id, %error, "cannot read the webhook's state now");
                continue;
            }
        };
        if !same_url(&state.url, &url) {
            let first_seen = *changed_since.get_or_insert_with(tokio::time::Instant::now);
            if first_seen.elapsed() < CHANGE_CONFIRM_WAIT {
                continue;
            }
            let now = if state.url.is_empty() {
                "removed".to_string()
            } else {
                format!("set to {}", state.url)
            };
            tracing::warn!(
                bot_instance_id,
                "the bot's webhook was {now} outside Nezuko; restarting the bot sets it again"
            );
            return Failure::Transient {
                reason: format!("the webhook was {now} outside Nezuko"),
                retry_after: None,
            };
        }
        changed_since = None;
        let (Some(date), Some(message)) = (state.last_error_date, state.last_error_message) else {
            continue;
        };
        let news = match reported {
            Some(last) => date > last,
            None => state.pending_update_count > 0,
        };
        reported = Some(reported.map_or(date, |last| last.max(date)));
        if news {
            tracing::warn!(
                bot_instance_id,
                error = %message,
                pending = state.pending_update_count,
                "Telegram cannot deliver this bot's updates to its webhook; it keeps them and retries"
            );
            events.publish(
                EventKind::Activity,
                Some(bot_instance_id),
                json!({
                    "action": "webhook_error",
                    "error": message,
                    "at": date,
                    "pending_update_count": state.pending_update_count,
                }),
            );
        }
    }
}

/// `getWebhookInfo`, its failure classified.
async fn read(bot: &Bot, fence: &Fence) -> Result<WebhookState, Failure> {
    let ask = GetWebhookInfo::new();
    let request = transport::send_with(bot, &ask, |s: WebhookState| s);
    transport::fenced(fence.clone(), request)
        .await
        .result
        .map_err(|error| classify(&error))
}

/// Whether Telegram's URL is the one Nezuko set: compared as parsed URLs, since the URL sent was
/// serialised by the URL parser (host lower-cased, a default port dropped).
fn same_url(telegram: &str, ours: &str) -> bool {
    match (reqwest::Url::parse(telegram), reqwest::Url::parse(ours)) {
        (Ok(a), Ok(b)) => a == b,
        _ => telegram == ours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_info_is_read_with_update_types_newer_than_teloxide() {
        let state: WebhookState = serde_json::from_str(
            r#"{"url":"https://n.example/telegram/3","has_custom_certificate":false,
                "pending_update_count":4,"last_error_date":1764600000,
                "last_error_message":"Wrong response from the webhook: 502 Bad Gateway",
                "allowed_updates":["message","guest_message"]}"#,
        )
        .unwrap();
        assert_eq!(state.url, "https://n.example/telegram/3");
        assert_eq!(state.pending_update_count, 4);
        assert_eq!(state.last_error_date, Some(1_764_600_000));
        let none: WebhookState =
            serde_json::from_str(r#"{"url":"","pending_update_count":0}"#).unwrap();
        assert!(none.url.is_empty() && none.last_error_date.is_none());
    }

    #[test]
    fn a_url_is_the_same_however_the_parser_wrote_it() {
        assert!(same_url(
            "http://localhost/x/telegram/1",
            "http://LOCALHOST:80/x/telegram/1"
        ));
        assert!(same_url(
            "https://bots.example.org/telegram/1",
            "https://bots.example.org:443/telegram/1"
        ));
        assert!(!same_url("", "https://bots.example.org/telegram/1"));
        assert!(!same_url(
            "https://evil.example/telegram/1",
            "https://bots.example.org/telegram/1"
        ));
    }
}
