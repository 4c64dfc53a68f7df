//! Getting updates to bots: long polling with offsets (and 409 for a terminated poll), and webhooks
//! with real HTTP delivery and the secret-token header.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::api::{ApiError, Params};
use super::world::{QueuedUpdate, Webhook};
use super::{Sandbox, lock};

/// Telegram's longest long-poll.
const MAX_TIMEOUT_S: i64 = 50;

/// Long polling: the batch of updates to hand over (already serialized, so the lock is held only
/// to clone a few `Arc`s), or 409 when a newer poll took over.
pub async fn get_updates(
    sandbox: &Sandbox,
    bot: i64,
    params: &Params,
) -> Result<Vec<QueuedUpdate>, ApiError> {
    let timeout = params
        .get("timeout")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .clamp(0, MAX_TIMEOUT_S);
    let limit = params
        .get("limit")
        .and_then(Value::as_i64)
        .unwrap_or(100)
        .clamp(1, 100) as usize;
    let offset = params.get("offset").and_then(Value::as_i64);
    let (generation, mut wake) = {
        let mut world = sandbox.world();
        let state = world
            .bots
            .get_mut(&bot)
            .ok_or_else(ApiError::unauthorized)?;
        if state.webhook.is_some() {
            return Err(ApiError::conflict(
                "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            ));
        }
        if let Some(allowed) = allowed_updates(params) {
            state.allowed_updates = Some(allowed);
        }
        let confirmed = confirm(&mut state.queue, offset);
        // A newer poll terminates the one waiting (which answers 409), as Telegram does.
        state.poll_generation += 1;
        state.polling = true;
        state.wake.send_modify(|n| *n += 1);
        let waiting = (state.poll_generation, state.wake.subscribe());
        drop(world);
        sandbox.journal().counters.updates_confirmed += confirmed;
        waiting
    };
    // Clears `polling` however this poll ends, also when the client hangs up and the future is dropped.
    let _guard = PollGuard {
        sandbox,
        bot,
        generation,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout as u64);
    loop {
        {
            let mut world = sandbox.world();
            let state = world
                .bots
                .get_mut(&bot)
                .ok_or_else(ApiError::unauthorized)?;
            if state.poll_generation != generation {
                tracing::warn!(
                    bot,
                    "two pollers met: a newer getUpdates ended a waiting one with 409"
                );
                return Err(ApiError::terminated_by_other_poller());
            }
            if !state.queue.is_empty() || tokio::time::Instant::now() >= deadline {
                let batch: Vec<QueuedUpdate> = state.queue.iter().take(limit).cloned().collect();
                drop(world);
                return Ok(hand_over(sandbox, bot, batch));
            }
        }
        // A closed channel cannot happen while the bot exists; treat it like the deadline.
        if tokio::time::timeout_at(deadline, wake.changed())
            .await
            .is_ok_and(|r| r.is_err())
        {
            return Ok(Vec::new());
        }
    }
}

/// The `allowed_updates` a call sets, if it sets any (Telegram keeps the previous list otherwise).
fn allowed_updates(params: &Params) -> Option<Vec<String>> {
    let list = params.get("allowed_updates")?.as_array()?;
    Some(
        list.iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
    )
}

struct PollGuard<'a> {
    sandbox: &'a Sandbox,
    bot: i64,
    generation: u64,
}

impl Drop for PollGuard<'_> {
    fn drop(&mut self) {
        if let Some(state) = self.sandbox.world().bots.get_mut(&self.bot)
            && state.poll_generation == self.generation
        {
            state.polling = false;
        }
    }
}

/// Drops confirmed updates: below a positive offset, or all but the last `-offset`. Returns how many.
fn confirm(queue: &mut std::collections::VecDeque<QueuedUpdate>, offset: Option<i64>) -> u64 {
    let before = queue.len();
    match offset {
        Some(offset) if offset > 0 => {
            while queue.front().is_some_and(|u| u.update_id < offset) {
                queue.pop_front();
            }
        }
        Some(offset) if offset < 0 => {
            let keep = offset.unsigned_abs() as usize;
            while queue.len() > keep {
                queue.pop_front();
            }
        }
        _ => {}
    }
    (before - queue.len()) as u64
}

fn hand_over(sandbox: &Sandbox, bot: i64, batch: Vec<QueuedUpdate>) -> Vec<QueuedUpdate> {
    if !batch.is_empty() {
        if let Some(observer) = lock(&sandbox.inner.observer).clone() {
            observer.updates_handed(bot, &batch, Instant::now());
        }
        sandbox.journal().counters.updates_delivered += batch.len() as u64;
    }
    batch
}

pub fn set_webhook(sandbox: &Sandbox, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let url = params
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_string();
    if url.is_empty() {
        return delete_webhook(sandbox, bot, params);
    }
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(ApiError::bad_request(
            "bad webhook: An HTTPS URL must be provided for webhook",
        ));
    }
    let secret_token = params
        .get("secret_token")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(secret) = &secret_token {
        let valid = (1..=256).contains(&secret.len())
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(ApiError::bad_request(
                "secret token contains unallowed characters",
            ));
        }
    }
    let mut world = sandbox.world();
    let state = world
        .bots
        .get_mut(&bot)
        .ok_or_else(ApiError::unauthorized)?;
    if params
        .get("drop_pending_updates")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        state.queue.clear();
    }
    if let Some(allowed) = allowed_updates(params) {
        state.allowed_updates = Some(allowed);
    }
    let already_delivering = state.webhook.is_some();
    state.webhook = Some(Webhook {
        url,
        secret_token,
        max_connections: params
            .get("max_connections")
            .and_then(Value::as_i64)
            .unwrap_or(40),
        ..Webhook::default()
    });
    // Terminates a waiting poll, as setting a webhook does on Telegram.
    state.poll_generation += 1;
    state.wake.send_modify(|n| *n += 1);
    if !already_delivering {
        tokio::spawn(deliver(sandbox.clone(), bot));
    }
    Ok(json!(true))
}

pub fn delete_webhook(sandbox: &Sandbox, bot: i64, params: &Params) -> Result<Value, ApiError> {
    let mut world = sandbox.world();
    let state = world
        .bots
        .get_mut(&bot)
        .ok_or_else(ApiError::unauthorized)?;
    state.webhook = None;
    if params
        .get("drop_pending_updates")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        state.queue.clear();
    }
    state.wake.send_modify(|n| *n += 1);
    Ok(json!(true))
}

pub fn get_webhook_info(sandbox: &Sandbox, bot: i64) -> Result<Value, ApiError> {
    let world = sandbox.world();
    let state = world.bots.get(&bot).ok_or_else(ApiError::unauthorized)?;
    let mut info = json!({
        "url": state.webhook.as_ref().map(|w| w.url.as_str()).unwrap_or(""),
        "has_custom_certificate": false,
        "pending_update_count": state.queue.len(),
    });
    if let Some(webhook) = &state.webhook {
        info["max_connections"] = json!(webhook.max_connections);
        if let (Some(date), Some(message)) = (webhook.last_error_date, &webhook.last_error_message)
        {
            info["last_error_date"] = json!(date);
            info["last_error_message"] = json!(message);
        }
        if let Some(allowed) = &state.allowed_updates {
            info["allowed_updates"] = json!(allowed);
        }
    }
    Ok(info)
}

/// Posts a bot's updates to its webhook one at a time, in order, until the webhook is removed.
/// An update leaves the queue only when the receiver answers 2xx; failures are retried with
/// backoff and reported by `getWebhookInfo`, as Telegram does.
async fn deliver(sandbox: Sandbox, bot: i64) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let next = {
            let mut world = sandbox.world();
            let Some(state) = world.bots.get_mut(&bot) else {
                return;
            };
            let Some(webhook) = state.webhook.clone() else {
                return;
            };
            match state.queue.front().cloned() {
                Some(update) => Ok((webhook, update)),
                None => Err(state.wake.subscribe()),
            }
        };
        let (webhook, update) = match next {
            Ok(work) => work,
            Err(mut wake) => {
                let _ = wake.changed().await;
                continue;
            }
        };
        let mut request = sandbox
            .inner
            .webhook_client
            .post(&webhook.url)
            .header("content-type", "application/json")
            .body(update.raw.to_string());
        if let Some(secret) = &webhook.secret_token {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        // Handed over when sent: the bot may act on it before its answer reaches us.
        if let Some(observer) = lock(&sandbox.inner.observer).clone() {
            observer.updates_handed(bot, std::slice::from_ref(&update), Instant::now());
        }
        let result = request.timeout(Duration::from_secs(10)).send().await;
        let failure = match result {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!(
                "Wrong response from the webhook: {}",
                response.status()
            )),
            Err(err) => Some(format!("Connection failed: {err}")),
        };
        let delivered = failure.is_none();
        {
            let mut world = sandbox.world();
            let now = world.now();
            let Some(state) = world.bots.get_mut(&bot) else {
                return;
            };
            match failure {
                None if state
                    .queue
                    .front()
                    .is_some_and(|u| u.update_id == update.update_id) =>
                {
                    state.queue.pop_front();
                }
                None => {}
                Some(message) => {
                    if let Some(webhook) = state.webhook.as_mut() {
                        webhook.last_error_date = Some(now);
                        webhook.last_error_message = Some(message);
                    }
                }
            }
        }
        if delivered {
            let mut journal = sandbox.journal();
            journal.counters.updates_delivered += 1;
            journal.counters.updates_confirmed += 1;
            backoff = Duration::from_millis(100);
        } else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
