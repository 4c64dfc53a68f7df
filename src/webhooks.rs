//! Webhook mode (`telegram.mode = webhook`): each bot's secret, the URL Telegram posts to, and
//! taking in a delivery on any node.
//!
//! Telegram posts a bot's updates to `<server.public_url>/telegram/<bot id>` with the secret given
//! to `setWebhook` in `X-Telegram-Bot-Api-Secret-Token`
//! (<https://core.telegram.org/bots/api#setwebhook>). A delivery whose secret does not match is
//! refused before anything is read from its body. One that matches is stored in the bot's inbox
//! (`webhook_updates`) and only then answered 200: Telegram forgets an update once answered, so
//! answering first would lose it to a crash in between. Which node runs the bot does not matter;
//! the runner reads the inbox ([`crate::telegram::webhook`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Store, StoreError, now_ms};
use crate::domain::Secret;
use crate::telegram::transport;
use crate::telegram::webhook::Arrivals;
use crate::vault::Vault;

/// How long done updates' ids are kept to recognise Telegram's retries: Telegram drops an update
/// it could not deliver at most 86,400 s after it happened (tdlib/telegram-bot-api
/// `WebhookActor::on_update_error` against the `expires_at` of `Client::add_update`).
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(86_400);
/// How often the tombstones past [`TOMBSTONE_TTL`] are deleted.
/// How often a bot's runner reads `getWebhookInfo` unless configured (`telegram.webhook_check_s`):
/// often enough that a webhook Telegram cannot reach is noticed within a minute, rarely enough to
/// be nothing beside the bot's traffic.
pub const DEFAULT_CHECK_EVERY: Duration = Duration::from_secs(60);

const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// A cached secret that did not match is read again from the database at most this often (the
/// runner may have replaced one it could no longer decrypt after a key rotation).
const RELOAD_AFTER: Duration = Duration::from_secs(5);
/// The largest update body taken in, in bytes: Telegram's updates are a few KB, but a message
/// quoting another with long texts and entities is more, and one refused is retried for a day.
pub const MAX_BODY_BYTES: u64 = 1 << 20;

/// Why a delivery was not taken.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No secret, or not this bot's: answered 401, nothing read.
    #[error("wrong or missing X-Telegram-Bot-Api-Secret-Token for this bot")]
    Unauthorized,
    /// The body is not an update.
    #[error("the body is not a Telegram Update: {0}")]
    NotAnUpdate(String),
    /// The update could not be stored: Telegram is answered 5xx and delivers it again.
    #[error("the update could not be stored: {0}")]
    Store(String),
}

impl From<StoreError> for DeliveryError {
    fn from(error: StoreError) -> Self {
        Self::Store(error.to_string())
    }
}

/// One delivery waiting to be stored, and who to tell how that went (`true`: stored now).
struct Taken {
    bot_instance_id: i64,
    update_id: i64,
    body: String,
    reply: oneshot::Sender<Result<bool, String>>,
}

/// The most deliveries stored in one statement.
const MAX_BATCH: usize = 256;

/// Webhook mode's shared state: one per process, cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    store: Store,
    vault: Vault,
    /// `<server.public_url>` without a trailing slash.
    base_url: Arc<str>,
    arrivals: Arrivals,
    /// How often a bot's runner reads `getWebhookInfo` (`telegram.webhook_check_s`).
    check_every: Duration,
    secrets: Arc<RwLock<HashMap<i64, Cached>>>,
    /// To the task that stores deliveries ([`store_in_batches`]); it ends with the last clone.
    intake: mpsc::Sender<Taken>,
}

struct Cached {
    secret: Secret<String>,
    read_at: Instant,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Must be called within a Tokio runtime: starts the task that stores deliveries.
    pub fn new(store: Store, vault: Vault, base_url: &str, arrivals: Arrivals) -> Self {
        let (intake, taken) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(store_in_batches(store.clone(), arrivals.clone(), taken));
        Self {
            store,
            vault,
            base_url: base_url.trim_end_matches('/').into(),
            arrivals,
            check_every: DEFAULT_CHECK_EVERY,
            secrets: Arc::default(),
            intake,
        }
    }

    /// Reads each running bot's webhook state every `every` instead of [`DEFAULT_CHECK_EVERY`].
    pub fn checked_every(mut self, every: Duration) -> Self {
        self.check_every = every;
        self
    }

    /// How often a bot's runner reads `getWebhookInfo`.
    pub fn check_every(&self) -> Duration {
        self.check_every
    }

    /// The wake-ups of the bots running here.
    pub fn arrivals(&self) -> &Arrivals {
        &self.arrivals
    }

    /// Where Telegram posts a bot's updates.
    pub fn url_for(&self, bot_instance_id: i64) -> String {
        format!("{}/telegram/{bot_instance_id}", self.base_url)
    }

    /// The secret to give `setWebhook` for a starting bot: the stored one, else a new one (32
    /// random bytes, URL-safe base64: 43 characters of `A-Za-z0-9_-`, within Telegram's 1–256
    /// of that alphabet). A stored secret the configured keys cannot decrypt (its key was rotated
    /// away) is replaced.
    pub async fn secret_for_start(
        &self,
        bot_instance_id: i64,
    ) -> Result<Secret<String>, StoreError> {
        if let Some(ciphertext) = self.store.webhook_secret(bot_instance_id).await? {
            match self.decrypt(&ciphertext) {
                Some(secret) => return Ok(secret),
                None => {
                    tracing::warn!(
                        bot_instance_id,
                        "the webhook secret cannot be decrypted with the configured keys; making a new one"
                    );
                    self.store.forget_webhook_secret(bot_instance_id).await?;
                }
            }
        }
        let fresh =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let kept = self
            .store
            .keep_webhook_secret(bot_instance_id, &self.vault.encrypt(fresh.as_bytes()))
            .await?;
        let secret = self.decrypt(&kept).ok_or_else(|| {
            StoreError::Conflict("the webhook secret just stored cannot be decrypted".into())
        })?;
        self.remember(bot_instance_id, &secret);
        Ok(secret)
    }

    /// Takes in one delivery: checks the secret in constant time, stores the update unless its
    /// `update_id` was stored before (a retry), and wakes the bot if it runs here. `Ok(true)`:
    /// stored now; `Ok(false)`: a retry of an update already taken.
    pub async fn receive(
        &self,
        bot_instance_id: i64,
        secret: Option<&str>,
        body: &[u8],
    ) -> Result<bool, DeliveryError> {
        let given = secret.ok_or(DeliveryError::Unauthorized)?;
        if !self.matches(bot_instance_id, given).await? {
            return Err(DeliveryError::Unauthorized);
        }
        let update_id = update_id_of(body)?;
        let text = std::str::from_utf8(body)
            .map_err(|_| DeliveryError::NotAnUpdate("not UTF-8".into()))?;
        let (reply, stored) = oneshot::channel();
        let taken = Taken {
            bot_instance_id,
            update_id,
            body: text.to_string(),
            reply,
        };
        let gone = || DeliveryError::Store("the service is shutting down".into());
        self.intake.send(taken).await.map_err(|_| gone())?;
        stored
            .await
            .map_err(|_| gone())?
            .map_err(DeliveryError::Store)
    }

    /// Whether `given` is the bot's secret, compared in constant time.
    async fn matches(&self, bot_instance_id: i64, given: &str) -> Result<bool, StoreError> {
        let cached = {
            let secrets = self.secrets.read().unwrap_or_else(|p| p.into_inner());
            secrets
                .get(&bot_instance_id)
                .map(|c| (equal(c.secret.expose(), given), c.read_at.elapsed()))
        };
        match cached {
            Some((true, _)) => return Ok(true),
            Some((false, age)) if age < RELOAD_AFTER => return Ok(false),
            _ => {}
        }
        let Some(ciphertext) = self.store.webhook_secret(bot_instance_id).await? else {
            return Ok(false);
        };
        let Some(secret) = self.decrypt(&ciphertext) else {
            return Ok(false);
        };
        let matches = equal(secret.expose(), given);
        self.remember(bot_instance_id, &secret);
        Ok(matches)
    }

    fn remember(&self, bot_instance_id: i64, secret: &Secret<String>) {
        self.secrets
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                bot_instance_id,
                Cached {
                    secret: Secret::new(secret.expose().clone()),
                    read_at: Instant::now(),
                },
            );
    }

    fn decrypt(&self, ciphertext: &str) -> Option<Secret<String>> {
        let plain = self.vault.decrypt(ciphertext).ok()?;
        String::from_utf8(plain).ok().map(Secret::new)
    }

    /// Deletes the tombstones past [`TOMBSTONE_TTL`] every [`PRUNE_EVERY`]; runs until aborted.
    pub async fn prune_forever(self) {
        let mut every = tokio::time::interval(PRUNE_EVERY);
        loop {
            every.tick().await;
            let before = now_ms() - TOMBSTONE_TTL.as_millis() as i64;
            match self.store.prune_webhook_updates(before).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "deleted webhook update ids past a day"),
                Err(error) => tracing::warn!(%error, "could not prune webhook update ids"),
            }
        }
    }
}

/// How long a disable or delete waits for Telegram's `deleteWebhook`.
const DELETE_WAIT: Duration = Duration::from_secs(5);

/// Tells Telegram to stop posting a bot's updates (`deleteWebhook`) if the bot ever had a webhook
/// (it has a secret), for a bot being disabled or deleted: its runner does so as it stops, but a
/// bot that is not running anywhere (in backoff, parked as failed, no node running bots) has no
/// runner, and a deleted bot's token is gone afterwards, so Telegram would post to it for a day.
/// Sent even so, the second `deleteWebhook` changes nothing. Waits up to 5 s; a failure is
/// logged (`false`), never an error of the caller's request.
pub async fn delete_webhook_of(
    store: &Store,
    vault: &Vault,
    http: &reqwest::Client,
    api_url: &str,
    bot_instance_id: i64,
) -> bool {
    match store.webhook_secret(bot_instance_id).await {
        Ok(Some(_)) => {}
        Ok(None) => return false,
        Err(error) => {
            tracing::warn!(bot_instance_id, %error, "could not tell whether the bot has a webhook");
            return false;
        }
    }
    let bot = match store.bot(bot_instance_id).await {
        Ok(row) => row,
        Err(_) => return false,
    };
    let (Ok(token), Ok(url)) = (
        vault.decrypt_token(&bot.token_ciphertext),
        reqwest::Url::parse(api_url),
    ) else {
        tracing::warn!(
            bot_instance_id,
            "cannot call deleteWebhook: the token cannot be decrypted or the Bot API URL is invalid"
        );
        return false;
    };
    let client = teloxide::Bot::with_client(token.expose(), http.clone()).set_api_url(url);
    let delete = teloxide::payloads::DeleteWebhook::new();
    match tokio::time::timeout(DELETE_WAIT, transport::send(&client, &delete)).await {
        Ok(attempt) if attempt.result.is_ok() => true,
        Ok(attempt) => {
            if let Err(error) = attempt.result {
                tracing::warn!(bot_instance_id, %error, "deleteWebhook failed; Telegram may keep posting to the stopped bot");
            }
            false
        }
        Err(_) => {
            tracing::warn!(
                bot_instance_id,
                "deleteWebhook did not answer in 5 s; Telegram may keep posting to the stopped bot"
            );
            false
        }
    }
}

/// Stores deliveries as they come, those that came together in one statement (one transaction
/// instead of one per delivery: the difference between keeping up and falling behind on SQLite),
/// and hands each new update to its bot if it runs here. Ends when every [`Webhooks`] is gone.
async fn store_in_batches(store: Store, arrivals: Arrivals, mut taken: mpsc::Receiver<Taken>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while taken.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let rows: Vec<(i64, i64, &str)> = batch
            .iter()
            .map(|t| (t.bot_instance_id, t.update_id, t.body.as_str()))
            .collect();
        match store.receive_webhook_updates(&rows).await {
            Ok(mut stored) => {
                for taken in batch.drain(..) {
                    // A retry within the same batch counts as stored once.
                    let new = stored.remove(&(taken.bot_instance_id, taken.update_id));
                    if new {
                        arrivals.deliver(
                            taken.bot_instance_id,
                            taken.update_id as i32,
                            &taken.body,
                        );
                    }
                    // The request that waited for this answer may have gone (client hung up); the
                    // row is stored either way.
                    let _ = taken.reply.send(Ok(new));
                }
            }
            Err(error) => {
                tracing::warn!(%error, count = batch.len(), "webhook deliveries could not be stored; Telegram will deliver them again");
                let error = error.to_string();
                for taken in batch.drain(..) {
                    // As above: a request that hung up needs no answer.
                    let _ = taken.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Constant-time equality of two secrets (their lengths are not secret).
fn equal(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// The `update_id` of an Update's JSON, read without the rest of it: a non-negative 32-bit
/// integer, as Telegram's are (<https://core.telegram.org/bots/api#update>: "fits within a
/// signed 32-bit integer") and as the dispatcher keeps them.
fn update_id_of(body: &[u8]) -> Result<i64, DeliveryError> {
    #[derive(serde::Deserialize)]
    struct Head {
        update_id: i64,
    }
    let head = serde_json::from_slice::<Head>(body)
        .map_err(|error| DeliveryError::NotAnUpdate(error.to_string()))?;
    if !(0..=i64::from(i32::MAX)).contains(&head.update_id) {
        return Err(DeliveryError::NotAnUpdate(format!(
            "update_id {} is not between 0 and 2147483647",
            head.update_id
        )));
    }
    Ok(head.update_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_match_only_when_identical() {
        assert!(equal("abc_-1", "abc_-1"));
        assert!(!equal("abc_-1", "abc_-2"));
        assert!(!equal("abc", "abcd"));
        assert!(!equal("abc", ""));
    }

    #[test]
    fn an_update_id_is_read_from_the_head_of_an_update_and_nothing_else_is_an_update() {
        let body = br#"{"update_id": 42, "message": {"text": "hi"}}"#;
        assert_eq!(update_id_of(body).unwrap(), 42);
        for bad in [
            &b"{}"[..],
            b"[]",
            b"not json",
            br#"{"update_id": "x"}"#,
            br#"{"update_id": -1}"#,
            br#"{"update_id": 2147483648}"#,
        ] {
            assert!(matches!(
                update_id_of(bad),
                Err(DeliveryError::NotAnUpdate(_))
            ));
        }
    }
}
