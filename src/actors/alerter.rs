//! The Alerter: tells the owner in Telegram what needs a person. Every `alerts.check_ms` it reads
//! what needs attention ([`Store::attention`]), opens an alert for each new condition and clears
//! the alerts whose condition has been gone for `alerts.settle_s` (so a bot that fails, runs for a
//! moment and fails again is one alert, not a message every minute). Each raised and cleared alert
//! is told once, through `alerts.sender` to `alerts.chat_id`.
//!
//! Deduplication lives in the `alerts` table, not here: a condition is one row, and telling it is
//! claimed by a conditional update, so a restart never repeats an alert and of several nodes
//! passing at once exactly one sends each message.
//!
//! Rate: one message per pass at most. When several alerts wait, they go as one digest. Telegram's
//! Bot FAQ ("My bot is hitting limits, how do I avoid this?") asks for no more than one message a
//! second in a chat and 20 a minute in a group; a pass every 5 s (the default) stays under both.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr};
use teloxide::payloads::SendMessage;
use teloxide::types::{ChatId, LinkPreviewOptions};

use crate::db::attention::{AlertRow, Attention};
use crate::db::{Store, StoreError, now_ms};
pub use crate::domain::AlertConfig;
use crate::domain::BotToken;
use crate::telegram::transport;
use crate::vault::Vault;

pub type AlerterRef = ActorRef<AlerterMsg>;

/// The `settings` row that holds the alert configuration chosen on the dashboard; when absent,
/// the configuration's `alerts.*` apply.
pub const SETTINGS_KEY: &str = "alerts";

/// Telegram's longest message, in characters (Bot API `sendMessage`, `text`: 1-4096).
const MAX_TEXT: usize = 4096;

/// Settled alerts are forgotten after this long (30 days, ms).
const KEEP_SETTLED_MS: i64 = 30 * 86_400_000;

/// The alert configuration in force: the dashboard's choice when one is stored (the `alerts`
/// setting), else `defaults` (the configuration's `alerts.*`).
pub async fn current_config(
    store: &Store,
    defaults: &AlertConfig,
) -> Result<AlertConfig, StoreError> {
    let stored = store.setting(SETTINGS_KEY).await?;
    Ok(stored
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_else(|| defaults.clone()))
}

/// Sends alert messages: the configured sender to the configured chat. Shared by the Alerter and
/// the settings page's "Send a test".
#[derive(Clone)]
pub struct AlertSender {
    pub store: Store,
    pub vault: Vault,
    pub http: reqwest::Client,
    pub api_url: reqwest::Url,
    /// The login bot's token (`auth.login_bot_token`), for `sender = "login"`.
    pub login_token: Option<BotToken>,
    /// The configuration's `alerts.*`, used until the dashboard stores a choice.
    pub defaults: AlertConfig,
    /// Why the Alerter's last message could not be delivered, and since when (Unix ms); `None`
    /// once one is. Shown as needing attention: alerts that cannot go out must not fail quietly.
    pub undelivered: std::sync::Arc<std::sync::Mutex<Option<(Undelivered, i64)>>>,
}

impl AlertSender {
    /// Why alerts cannot be delivered now, and since when (Unix ms).
    pub fn undelivered(&self) -> Option<(Undelivered, i64)> {
        self.undelivered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn note_delivery(&self, outcome: Result<(), &Undelivered>) {
        let mut slot = self
            .undelivered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match outcome {
            Ok(()) => *slot = None,
            // The first failure's time is kept while they continue.
            Err(problem) => {
                let since = slot.as_ref().map_or_else(now_ms, |(_, since)| *since);
                *slot = Some((problem.clone(), since));
            }
        }
    }
}

impl std::fmt::Debug for AlertSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No token, not even redacted: the configuration says which sender is meant.
        f.debug_struct("AlertSender")
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

/// What the Alerter needs from the process.
#[derive(Clone)]
pub struct AlerterArgs {
    pub sender: AlertSender,
    /// Links in messages start with it (`server.public_url`).
    pub public_url: String,
    /// The pause between passes (`alerts.check_ms`).
    pub every: Duration,
    /// How long a condition must stay gone before its alert clears (`alerts.settle_s`).
    pub settle: Duration,
}

pub enum AlerterMsg {
    /// Look, record, tell (sent by the Alerter's own interval).
    Pass,
}

pub struct AlerterState {
    args: AlerterArgs,
    /// Conditions found gone, and since when; cleared once gone for `settle`.
    gone_since: HashMap<String, Instant>,
    /// The last failure to send, logged once until it changes.
    last_problem: Option<String>,
}

pub struct Alerter;

/// Starts the Alerter linked to `supervisor`.
pub(crate) async fn spawn(
    args: AlerterArgs,
    supervisor: ActorCell,
) -> Result<AlerterRef, SpawnErr> {
    Actor::spawn_linked(None, Alerter, args, supervisor)
        .await
        .map(|(actor, _)| actor)
}

impl Actor for Alerter {
    type Msg = AlerterMsg;
    type State = AlerterState;
    type Arguments = AlerterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // ractor's interval ends with the actor (its next send finds no mailbox).
        myself.send_interval(args.every, || AlerterMsg::Pass);
        Ok(AlerterState {
            args,
            gone_since: HashMap::new(),
            last_problem: None,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AlerterMsg::Pass => {
                // A database outage skips this pass; the next one catches up (nothing is lost:
                // what needs attention is read afresh each time).
                if let Err(error) = state.pass().await {
                    state.problem(format!("cannot check what needs attention: {error}"));
                }
            }
        }
        Ok(())
    }
}

impl AlerterState {
    async fn pass(&mut self) -> Result<(), StoreError> {
        let store = self.args.sender.store.clone();
        let now = now_ms();
        let found = store.attention(now).await?;
        let unsettled = store.unsettled_alerts().await?;
        let present: HashMap<&str, &Attention> =
            found.iter().map(|f| (f.key.as_str(), f)).collect();
        let open: Vec<&AlertRow> = unsettled
            .iter()
            .filter(|a| a.cleared_at.is_none())
            .collect();
        for need in &found {
            self.gone_since.remove(&need.key);
            if !open.iter().any(|a| a.key == need.key) {
                store.raise_alert(need, now).await?;
            }
        }
        for alert in open {
            if present.contains_key(alert.key.as_str()) {
                continue;
            }
            let since = *self
                .gone_since
                .entry(alert.key.clone())
                .or_insert_with(Instant::now);
            if since.elapsed() >= self.args.settle {
                store.clear_alert(&alert.key, now).await?;
                self.gone_since.remove(&alert.key);
            }
        }
        store.prune_alerts(now - KEEP_SETTLED_MS).await?;
        self.tell(now).await
    }

    /// Sends what waits to be told: one alert as itself, several as one digest.
    async fn tell(&mut self, now: i64) -> Result<(), StoreError> {
        let store = self.args.sender.store.clone();
        let config = current_config(&store, &self.args.sender.defaults).await?;
        if config.chat_id.is_none() {
            return Ok(());
        }
        let mut claimed: Vec<(String, bool, String)> = Vec::new();
        for alert in store.unsettled_alerts().await? {
            let recovery = alert.cleared_at.is_some();
            let due = if recovery {
                alert.cleared_notified_at.is_none()
            } else {
                alert.notified_at.is_none()
            };
            if due && store.claim_alert(&alert.key, recovery, now).await? {
                let line = self.line(&alert, recovery);
                claimed.push((alert.key, recovery, line));
            }
        }
        let text = match claimed.as_slice() {
            [] => return Ok(()),
            [(_, _, line)] => line.clone(),
            many => digest(many.iter().map(|(_, _, line)| line.as_str())),
        };
        let sent = self.args.sender.send(&text).await;
        self.args.sender.note_delivery(sent.as_ref().map(|_| ()));
        if let Err(problem) = sent {
            for (key, recovery, _) in &claimed {
                store.unclaim_alert(key, *recovery).await?;
            }
            self.problem(problem.message);
        } else if self.last_problem.take().is_some() {
            tracing::info!("alerts are delivered again");
        }
        Ok(())
    }

    /// One alert's message: what happened, then the page that shows it.
    fn line(&self, alert: &AlertRow, recovery: bool) -> String {
        let mark = if recovery { "✅ Resolved:" } else { "⚠️" };
        let link = format!(
            "{}{}",
            self.args.public_url.trim_end_matches('/'),
            page_of(&alert.key)
        );
        format!("{mark} {}\n{link}", alert.summary)
    }

    /// Logs a problem once, until a different one (or success) replaces it.
    fn problem(&mut self, problem: String) {
        if self.last_problem.as_deref() != Some(problem.as_str()) {
            tracing::warn!(%problem, "an alert could not be delivered; retrying on the next pass");
            self.last_problem = Some(problem);
        }
    }
}

impl AlertSender {
    /// Sends `text` to the configured chat through the configured sender.
    pub async fn send(&self, text: &str) -> Result<(), Undelivered> {
        let config = current_config(&self.store, &self.defaults)
            .await
            .map_err(|error| Undelivered {
                field: None,
                message: format!("cannot read the alert settings: {error}"),
            })?;
        self.send_as(&config, text).await
    }

    /// Sends `text` as `config` says (the settings page tests values before saving them).
    pub async fn send_as(&self, config: &AlertConfig, text: &str) -> Result<(), Undelivered> {
        let chat = config.chat_id.ok_or(Undelivered {
            field: Some("chat_id"),
            message: "no alert chat is set (alerts.chat_id)".into(),
        })?;
        let token = self
            .sender_token(&config.sender)
            .await
            .map_err(|message| Undelivered {
                field: Some("sender"),
                message,
            })?;
        let bot = teloxide::Bot::with_client(token.expose(), self.http.clone())
            .set_api_url(self.api_url.clone());
        let mut payload = SendMessage::new(ChatId(chat), text);
        payload.link_preview_options = Some(LinkPreviewOptions {
            is_disabled: true,
            url: None,
            prefer_small_media: false,
            prefer_large_media: false,
            show_above_text: false,
        });
        let Err(error) = transport::send(&bot, &payload).await.result else {
            return Ok(());
        };
        Err(refusal(chat, &config.sender, &error))
    }

    /// The token of `sender`: the login bot's, or a fleet bot's found by its username.
    async fn sender_token(&self, sender: &str) -> Result<BotToken, String> {
        if sender == "login" {
            return self.login_token.clone().ok_or_else(|| {
                "alerts.sender is `login` but no login bot is configured (auth.login_bot_token)"
                    .into()
            });
        }
        let name = sender.trim_start_matches('@');
        let bots = self
            .store
            .bots()
            .await
            .map_err(|error| format!("cannot read the bots: {error}"))?;
        let bot = bots
            .iter()
            .find(|b| b.username.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!("alerts.sender @{name} is not one of Nezuko's bots (deleted?)")
            })?;
        self.vault
            .decrypt_token(&bot.token_ciphertext)
            .map_err(|error| format!("cannot decrypt @{name}'s token: {error}"))
    }
}

/// Why an alert could not be sent, and which setting is at fault (`chat_id`, `sender`; none when
/// neither is, Telegram unreachable say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undelivered {
    pub field: Option<&'static str>,
    pub message: String,
}

impl std::fmt::Display for Undelivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Telegram's refusal of an alert in its own words, put on the setting that can fix it: an
/// unknown chat, or a group upgraded to a supergroup (a new id), is the chat id's; anything else Telegram refuses (not a member, kicked, no right
/// to post, a revoked token) is the sender's; a network failure is neither's.
fn refusal(chat: i64, sender: &str, error: &teloxide::RequestError) -> Undelivered {
    use teloxide::{ApiError, RequestError};
    let (field, said) = match error {
        RequestError::Api(ApiError::ChatNotFound) => (Some("chat_id"), error_words(error)),
        RequestError::MigrateToChatId(id) => (
            Some("chat_id"),
            format!("the group became a supergroup; its chat id is now {id}"),
        ),
        RequestError::Api(_) => (Some("sender"), error_words(error)),
        other => (None, other.to_string()),
    };
    let who = if sender == "login" {
        "the login bot"
    } else {
        sender
    };
    Undelivered {
        field,
        message: format!("Telegram refused {who}'s message to chat {chat}: {said}"),
    }
}

/// Telegram's description of an API error, without teloxide's wrapping ("A Telegram's error:
/// Unknown error: …").
fn error_words(error: &teloxide::RequestError) -> String {
    match error {
        teloxide::RequestError::Api(teloxide::ApiError::Unknown(text)) => text.clone(),
        teloxide::RequestError::Api(api) => api.to_string(),
        other => other.to_string(),
    }
}

/// The dashboard page for an alert's key (`bot_failed:12` → `/bots/12`).
fn page_of(key: &str) -> String {
    match key.split_once(':') {
        Some(("group_degraded", id)) => format!("/groups/{id}"),
        Some(("node_lost", _)) | None => "/".into(),
        Some((_, id)) => format!("/bots/{id}"),
    }
}

/// Several alerts in one message, cut to Telegram's length with a note of what was left out.
fn digest<'a>(lines: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = lines.len();
    let mut text = format!("Nezuko: {total} changes\n");
    for (shown, line) in lines.enumerate() {
        let rest = format!("\n… and {} more on the dashboard", total - shown);
        if text.chars().count() + line.chars().count() + 2 + rest.chars().count() > MAX_TEXT {
            text.push_str(&rest);
            break;
        }
        text.push('\n');
        text.push_str(line);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_links_to_its_page() {
        assert_eq!(page_of("bot_failed:12"), "/bots/12");
        assert_eq!(page_of("invalid_token:3"), "/bots/3");
        assert_eq!(page_of("group_degraded:7"), "/groups/7");
        assert_eq!(page_of("node_lost:abc"), "/");
    }

    #[test]
    fn a_digest_fits_one_message_and_says_what_it_left_out() {
        let line = "x".repeat(300);
        let lines: Vec<&str> = std::iter::repeat_n(line.as_str(), 40).collect();
        let text = digest(lines.into_iter());
        assert!(text.chars().count() <= MAX_TEXT, "{}", text.len());
        assert!(text.starts_with("Nezuko: 40 changes"));
        assert!(text.contains("more on the dashboard"));
        let short = digest(["a", "b"].into_iter());
        assert!(!short.contains("more on the dashboard"));
    }
}
