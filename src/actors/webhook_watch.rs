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

use super::Publisher;
use crate::domain::EventKind;
use crate::telegram::{Failure, Fence, transport};

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

/// Reads the bot's webhook every `every` until the URL Telegram holds is not `url`, and returns
/// that as the failure ending the run. Reports each delivery error newer than the start (or the
/// last one reported). A read that fails is left for the next look: the dispatcher's own
/// failures are what restart a bot.
pub async fn watch(
    bot: Bot,
    bot_instance_id: i64,
    fence: Fence,
    url: String,
    every: Duration,
    events: Publisher,
) -> Failure {
    // Errors from before this run (a previous runner's, or from before a fix) are not news.
    let mut reported = unix_now();
    let ask = GetWebhookInfo::new();
    loop {
        tokio::time::sleep(every).await;
        let request = transport::send_with(&bot, &ask, |s: WebhookState| s);
        let state = match transport::fenced(fence.clone(), request).await.result {
            Ok(state) => state,
            Err(error) => {
                tracing::debug!(bot_instance_id, %error, "cannot read the webhook's state now");
                continue;
            }
        };
        if state.url != url {
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
        if let (Some(date), Some(message)) = (state.last_error_date, state.last_error_message)
            && date > reported
        {
            reported = date;
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

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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
}
