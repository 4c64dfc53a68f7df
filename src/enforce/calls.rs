//! Every Bot API call a bot makes for enforcement goes through [`Calls::run`]: rate-limited per bot
//! and per chat ([`Limiter`]), sent by Nezuko's own [`transport`], retried after exactly
//! `retry_after` on a 429 and briefly on a 5xx or a network failure, and recorded in
//! `api_call_log` (off the hot path, through [`Records`]).

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use teloxide::requests::{HasPayload, Output, Payload};
use teloxide::{ApiError, Bot, RequestError};
use tokio_util::sync::CancellationToken;

use super::limiter::{Limiter, Scope};
use super::records::Records;
use crate::db::{ApiCall, now_ms};
use crate::telegram::{
    Attempt, Fence, RetryPolicy, RunnerStopped, TokenRefused, TokenWatch, transport,
};

/// How often one call is retried after a 429 before its error is returned.
const RETRIES_AFTER_429: u32 = 3;

/// The chat a call targets, for per-chat limits: its id and whether it is a group.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub chat_id: i64,
    pub is_group: bool,
}

impl Target {
    /// A chat by id: negative ids are groups and channels (per-group limits apply to both).
    pub fn chat(chat_id: i64) -> Option<Self> {
        Some(Self {
            chat_id,
            is_group: chat_id < 0,
        })
    }
}

/// One bot's way to Telegram.
#[derive(Clone)]
pub struct Calls {
    bot: Bot,
    bot_instance_id: i64,
    limiter: Arc<Limiter>,
    records: Records,
    retry: RetryPolicy,
    /// Nothing is sent once this node's lease on the bot has ended.
    fence: Fence,
    /// Nothing more is sent once the runner these calls belong to has stopped ([`Calls::close`]):
    /// a warning still waiting for its chat's send slot, or a 429's end, is left to the next
    /// runner (the records are the durable promise) instead of being sent by both. A call still
    /// waiting for its turn (the limiter, a 429's `retry_after`) gives up at once.
    runner: CancellationToken,
    /// Fired at the first 401: the token was refused, the runner stops ([`TokenWatch`]), and no
    /// later call is sent.
    token: TokenWatch,
}

impl Calls {
    pub fn new(
        bot: Bot,
        bot_instance_id: i64,
        limiter: Arc<Limiter>,
        records: Records,
        fence: Fence,
        token: TokenWatch,
    ) -> Self {
        Self {
            bot,
            bot_instance_id,
            limiter,
            records,
            retry: RetryPolicy::default(),
            fence,
            runner: CancellationToken::new(),
            token,
        }
    }

    /// The runner stopped: no request made through these calls leaves after this (one already
    /// written completes).
    pub fn close(&self) {
        self.runner.cancel();
    }

    /// Whether the runner these calls belong to has stopped.
    pub fn is_closed(&self) -> bool {
        self.runner.is_cancelled()
    }

    /// The bot, for building requests (never log it: its Debug output holds the token).
    pub fn bot(&self) -> &Bot {
        &self.bot
    }

    pub fn bot_instance_id(&self) -> i64 {
        self.bot_instance_id
    }

    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// The scopes a call of `method` into `target` counts against.
    pub fn scopes(&self, method: &'static str, target: Option<Target>) -> Vec<Scope> {
        let bot = self.bot_instance_id;
        if !is_send(method) {
            return vec![Scope::BotCalls(bot, method)];
        }
        let mut scopes = vec![Scope::BotSends(bot)];
        if let Some(target) = target {
            scopes.push(Scope::ChatSends(bot, target.chat_id));
            if target.is_group {
                scopes.push(Scope::GroupSends(bot, target.chat_id));
            }
        }
        scopes
    }

    /// Sends `request` when the limits allow, waiting out 429s and retrying 5xx and network
    /// failures by [`RetryPolicy`] (where repeating the request is safe).
    pub async fn run<R>(
        &self,
        method: &'static str,
        target: Option<Target>,
        request: R,
    ) -> Result<Output<R>, RequestError>
    where
        R: HasPayload,
        R::Payload: Payload + Serialize,
        Output<R>: DeserializeOwned,
    {
        self.attempts(method, target, || {
            transport::send(self.bot(), request.payload_ref())
        })
        .await
    }

    /// Like [`Calls::run`], but builds the request anew for every attempt, at the moment it
    /// leaves: after the rate limiter's wait and any 429's `retry_after`. Whatever the request says
    /// about time (an `until_date`) is computed then, not when the call was planned.
    pub async fn run_built<R>(
        &self,
        method: &'static str,
        target: Option<Target>,
        build: impl Fn() -> R,
    ) -> Result<Output<R>, RequestError>
    where
        R: HasPayload,
        R::Payload: Payload + Serialize,
        Output<R>: DeserializeOwned,
    {
        self.attempts(method, target, || async {
            let request = build();
            transport::send(self.bot(), request.payload_ref()).await
        })
        .await
    }

    /// Waits for the limits, makes an attempt, records it; waits out a 429 exactly, and a 5xx or a
    /// network failure briefly ([`RetryPolicy`]), before the next.
    async fn attempts<T, F>(
        &self,
        method: &'static str,
        target: Option<Target>,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T, RequestError>
    where
        F: std::future::Future<Output = Attempt<T>>,
    {
        let scopes = self.scopes(method, target);
        let (mut waited_out, mut retried) = (0, 0);
        loop {
            tokio::select! {
                () = self.limiter.acquire(&scopes) => {}
                () = self.runner.cancelled() => return Err(RunnerStopped.into()),
            }
            // Checked after the wait, right before sending, and while sending: a lease may end
            // while waiting, or the process may be paused between the check and the write.
            self.fence.check()?;
            if self.is_closed() {
                return Err(RunnerStopped.into());
            }
            if self.token.is_refused() {
                return Err(TokenRefused { method }.into());
            }
            let started = Instant::now();
            let Attempt {
                result,
                status,
                retryable,
            } = transport::fenced(self.fence.clone(), attempt()).await;
            self.record(method, result.as_ref().err(), status, started);
            match result {
                Err(RequestError::RetryAfter(after)) if waited_out < RETRIES_AFTER_429 => {
                    waited_out += 1;
                    tracing::warn!(
                        bot_instance_id = self.bot_instance_id,
                        method,
                        retry_after_s = after.seconds(),
                        "Telegram asked to slow down; waiting exactly as long as it said"
                    );
                    self.limiter.penalize(&scopes, after.duration());
                }
                Err(error) if retryable && retried < self.retry.retries => {
                    let wait = self.retry.delay(retried);
                    retried += 1;
                    tracing::info!(
                        bot_instance_id = self.bot_instance_id,
                        method,
                        status,
                        %error,
                        wait_ms = wait.as_millis() as u64,
                        "Telegram call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(error) if retryable && status.is_some_and(|code| code >= 500) => {
                    return Err(crate::telegram::Unavailable {
                        method,
                        status: status.unwrap_or(500),
                        description: error.to_string(),
                    }
                    .into());
                }
                Err(RequestError::Api(ApiError::InvalidToken)) => {
                    // About the bot, not this request: every call is refused from now on.
                    self.token.refuse();
                    return Err(TokenRefused { method }.into());
                }
                other => return other,
            }
        }
    }

    fn record(
        &self,
        method: &'static str,
        error: Option<&RequestError>,
        status: Option<u16>,
        started: Instant,
    ) {
        let code = status.map(i64::from);
        let (outcome, error_code) = match error {
            None => ("ok", None),
            Some(RequestError::RetryAfter(_)) => ("rate_limited", Some(429)),
            Some(RequestError::Api(_) | RequestError::MigrateToChatId(_)) => {
                ("api_error", code.or(Some(400)))
            }
            Some(RequestError::Network(_) | RequestError::Io(_)) => ("network_error", None),
            Some(_) => ("error", code),
        };
        crate::metrics::telegram_call(method, outcome);
        if let Some(code) = error_code {
            crate::metrics::telegram_error(method, code);
        }
        self.records.call(ApiCall {
            bot_instance_id: self.bot_instance_id,
            method: method.to_string(),
            outcome: outcome.to_string(),
            error_code,
            latency_ms: started.elapsed().as_millis() as i64,
            created_at: now_ms(),
        });
    }
}

fn is_send(method: &str) -> bool {
    matches!(method, "sendMessage" | "editMessageText")
}
