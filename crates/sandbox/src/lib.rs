//! The sandbox: a stateful fake Telegram Bot API server for tests, the demo and benchmarks.
//!
//! It speaks the Bot API over HTTP as `api.telegram.org` does (`/bot<token>/<method>`, JSON, form or
//! multipart bodies, Telegram's status codes and error descriptions), checks every request and every
//! reply against the Bot API 10.1 specification ([`spec`]), and keeps a model of accounts, chats and
//! members ([`model`], [`world`]) whose changes produce the updates Telegram would send. Tests and
//! tools play users and administrators through the control API ([`control`]: one [`Operation`] type,
//! also over HTTP under `/_sandbox/`) and read back what the bots did ([`journal`]). Faults and
//! Telegram's flood limits are injected in [`faults`]; [`driver`] plays load scenarios.
//!
//! Where Telegram's behaviour is not documented, the code follows the open-source Bot API server
//! (tdlib/telegram-bot-api 10.0) and tdlib, and names the function it followed.
//!
//! Deliberate differences from Telegram, each because a local test needs it: webhooks may use plain
//! `http://` on any port, bots read every group message (as admins do), and the clock can be
//! advanced ([`Sandbox::advance_clock`]).

pub mod api;
pub mod control;
pub mod driver;
pub mod faults;
mod http;
pub mod journal;
pub mod model;
pub mod spec;
mod updates;
pub mod world;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::net::TcpListener;

use self::api::ApiError;
pub use self::control::Operation;
use self::faults::{FaultEffect, Faults, FloodControl, RateLimits};
use self::journal::{CallRecord, Journal, Violation};
use self::spec::{Encoding, Spec};
use self::world::{QueuedUpdate, World};

/// How a sandbox behaves.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub rate_limits: RateLimits,
    /// Check every reply against the specification too (cheap; off only for raw benchmarks).
    pub check_replies: bool,
    /// How many call records to keep for reading back (counters cover all).
    pub call_log_capacity: usize,
    /// How many messages each chat keeps (the oldest go first), so a long run's memory stays
    /// bounded; an older message can no longer be replied to, edited or pressed.
    pub messages_kept_per_chat: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            rate_limits: RateLimits::default(),
            check_replies: true,
            call_log_capacity: 200_000,
            messages_kept_per_chat: 10_000,
        }
    }
}

/// Notified of what crosses the sandbox's boundary, for measurements (the load driver).
pub trait Observer: Send + Sync {
    /// Updates handed to a bot (a `getUpdates` reply or a webhook delivery).
    fn updates_handed(&self, bot: i64, updates: &[QueuedUpdate], at: Instant);
    /// A call the bot made, before it is answered.
    fn call_arrived(&self, bot: i64, method: &str, params: &Map<String, Value>, at: Instant);
}

/// A running or runnable sandbox; cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    world: Mutex<World>,
    journal: Mutex<Journal>,
    faults: Mutex<Faults>,
    flood: Mutex<FloodControl>,
    config: Mutex<SandboxConfig>,
    observer: Mutex<Option<Arc<dyn Observer>>>,
    webhook_client: reqwest::Client,
}

/// What the HTTP layer sends back.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Reply {
        status: u16,
        body: Value,
    },
    /// A body already serialized (a result, a batch of updates).
    Raw {
        status: u16,
        body: Vec<u8>,
    },
    /// Close the connection without an answer (an injected fault).
    Drop,
}

/// What a method answered: a JSON value, or updates whose JSON was written when they were queued.
enum Reply {
    Value(Value),
    Updates(Vec<QueuedUpdate>),
}

/// Why a call got no result.
enum Outcome {
    Refused(ApiError),
    /// An injected fault closes the connection.
    Dropped,
}

impl From<ApiError> for Outcome {
    fn from(error: ApiError) -> Self {
        Self::Refused(error)
    }
}

impl Answer {
    /// `{"ok":true,"result":[…]}` from updates serialized once, when they were queued.
    fn updates(batch: &[QueuedUpdate]) -> Self {
        let mut body =
            Vec::with_capacity(24 + batch.iter().map(|u| u.raw.len() + 1).sum::<usize>());
        body.extend_from_slice(b"{\"ok\":true,\"result\":[");
        for (n, update) in batch.iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            body.extend_from_slice(update.raw.as_bytes());
        }
        body.extend_from_slice(b"]}");
        Self::Raw { status: 200, body }
    }

    /// `{"ok":true,"result":…}`, written straight out rather than built as a tree first.
    fn ok(result: Value) -> Self {
        let mut body = Vec::with_capacity(256);
        body.extend_from_slice(b"{\"ok\":true,\"result\":");
        // Writing a `Value` into a Vec cannot fail: no I/O, and its keys are strings.
        let _ = serde_json::to_writer(&mut body, &result);
        body.push(b'}');
        Self::Raw { status: 200, body }
    }

    fn error(error: &ApiError) -> Self {
        Self::Reply {
            status: error.code,
            body: error.to_json(),
        }
    }
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Self {
        let journal = Journal::new(config.call_log_capacity);
        let mut world = World::default();
        world.messages_kept_per_chat = config.messages_kept_per_chat.max(1);
        Self {
            inner: Arc::new(Inner {
                world: Mutex::new(world),
                journal: Mutex::new(journal),
                faults: Mutex::new(Faults::default()),
                flood: Mutex::new(FloodControl::default()),
                config: Mutex::new(config),
                observer: Mutex::new(None),
                webhook_client: reqwest::Client::new(),
            }),
        }
    }

    /// Serves the Bot API and the control API on `listener` until `shutdown` resolves.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        http::serve(self.clone(), listener, shutdown).await;
    }

    /// Binds 127.0.0.1 on a free port and serves in the background until the returned guard drops.
    pub async fn spawn_local(&self) -> std::io::Result<RunningSandbox> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sandbox = self.clone();
        tokio::spawn(async move {
            sandbox
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(RunningSandbox { addr, _stop: stop })
    }

    pub fn set_observer(&self, observer: Arc<dyn Observer>) {
        *lock(&self.inner.observer) = Some(observer);
    }

    fn world(&self) -> MutexGuard<'_, World> {
        lock(&self.inner.world)
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        lock(&self.inner.journal)
    }

    /// Handles one Bot API call: authentication, specification check, faults, flood limits, the
    /// method itself, and the record of it.
    pub async fn handle(
        &self,
        token: &str,
        method_name: &str,
        mut params: Map<String, Value>,
        encoding: Encoding,
    ) -> Answer {
        let arrived = Instant::now();
        if let Err(error) = check_token_shape(token) {
            return Answer::error(&error);
        }
        let bot = {
            let world = self.world();
            match world.tokens.get(token).copied() {
                Some(bot) if !world.bots[&bot].revoked => bot,
                _ => return Answer::error(&ApiError::unauthorized()),
            }
        };
        self.expire_join_queries();
        let spec = Spec::bot_api();
        let Some(method) = spec.method(method_name) else {
            self.violation(
                Some(bot),
                method_name,
                format!("{method_name} is not a method of {}", spec.version),
            );
            return Answer::error(&ApiError::method_not_found());
        };
        let name = method.name.as_str();
        let problems = spec.check_request(method, &mut params, encoding);
        let outcome = if problems.is_empty() {
            if let Some(observer) = lock(&self.inner.observer).clone() {
                observer.call_arrived(bot, name, &params, arrived);
            }
            self.carry_out(bot, name, &params).await
        } else {
            let reason = problems.join("; ");
            self.violation(Some(bot), name, reason.clone());
            Err(Outcome::Refused(ApiError::bad_request(&reason)))
        };
        let (ok, error) = match &outcome {
            Ok(_) => (true, None),
            Err(Outcome::Refused(error)) => (false, Some(error.clone())),
            Err(Outcome::Dropped) => (false, Some(ApiError::server_error(599))),
        };
        self.record(bot, name, params, ok, error);
        match outcome {
            Ok(Reply::Value(result)) => {
                if lock(&self.inner.config).check_replies {
                    self.check_reply(bot, name, &method.returns, &result);
                }
                Answer::ok(result)
            }
            Ok(Reply::Updates(batch)) => {
                if lock(&self.inner.config).check_replies {
                    self.check_updates(bot, &batch);
                }
                Answer::updates(&batch)
            }
            Err(Outcome::Refused(error)) => Answer::error(&error),
            Err(Outcome::Dropped) => Answer::Drop,
        }
    }

    /// Injected faults, flood limits, then the method.
    async fn carry_out(
        &self,
        bot: i64,
        name: &str,
        params: &Map<String, Value>,
    ) -> Result<Reply, Outcome> {
        let fault = lock(&self.inner.faults).take(bot, name);
        let mut slow_reply = None;
        match fault {
            Some(FaultEffect::Fail(error)) => return Err(Outcome::Refused(error)),
            Some(FaultEffect::Drop) => return Err(Outcome::Dropped),
            Some(FaultEffect::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                // The delay is the call's way to Telegram: a token revoked meanwhile is refused,
                // as every call of a logged-out bot is (`Client::get_closing_error`,
                // tdlib/telegram-bot-api 01a3679: 401 "Unauthorized").
                if self.world().bots.get(&bot).is_some_and(|b| b.revoked) {
                    return Err(Outcome::Refused(ApiError::unauthorized()));
                }
            }
            Some(FaultEffect::SlowReply(delay)) => slow_reply = Some(delay),
            None => {}
        }
        self.admit(bot, name, params)?;
        let reply = match name {
            "getUpdates" => Reply::Updates(updates::get_updates(self, bot, params).await?),
            "setWebhook" => Reply::Value(updates::set_webhook(self, bot, params)?),
            "deleteWebhook" => Reply::Value(updates::delete_webhook(self, bot, params)?),
            "getWebhookInfo" => Reply::Value(updates::get_webhook_info(self, bot)?),
            _ => Reply::Value(api::call(&mut self.world(), bot, name, params)?),
        };
        if let Some(delay) = slow_reply {
            tokio::time::sleep(delay).await;
        }
        Ok(reply)
    }

    fn admit(&self, bot: i64, method: &str, params: &Map<String, Value>) -> Result<(), ApiError> {
        if !api::is_send_method(method) {
            if method == "getUpdates" {
                return Ok(());
            }
            let limits = lock(&self.inner.config).rate_limits;
            return lock(&self.inner.flood)
                .admit_call(&limits, bot, method, Instant::now())
                .map_err(ApiError::too_many_requests);
        }
        let chat = {
            let world = self.world();
            api::target_chat(&world, params).map(|id| {
                let is_group = world.chats.get(&id).is_some_and(|c| {
                    matches!(c.kind, model::ChatKind::Group | model::ChatKind::Supergroup)
                });
                (id, is_group)
            })
        };
        let limits = lock(&self.inner.config).rate_limits;
        lock(&self.inner.flood)
            .admit(&limits, bot, chat, Instant::now())
            .map_err(ApiError::too_many_requests)
    }

    fn check_reply(&self, bot: i64, method: &str, returns: &[String], result: &Value) {
        let spec = Spec::bot_api();
        if !returns
            .iter()
            .any(|ty| spec.check_value(ty, result, "result").is_ok())
        {
            let reason = returns
                .first()
                .and_then(|ty| spec.check_value(ty, result, "result").err())
                .unwrap_or_default();
            self.violation(
                Some(bot),
                method,
                format!("the sandbox's own reply does not match the spec: {reason}"),
            );
        }
    }

    /// Checks what updates carry, each payload once however many bots and polls it reaches.
    fn check_updates(&self, bot: i64, batch: &[QueuedUpdate]) {
        let spec = Spec::bot_api();
        for update in batch {
            if update.payload.checked.swap(true, Ordering::Relaxed) {
                continue;
            }
            let at = format!("result[].{}", update.kind);
            if let Err(reason) = spec.check_value(update.payload_type(), &update.payload.value, &at)
            {
                self.violation(
                    Some(bot),
                    "getUpdates",
                    format!("the sandbox's own reply does not match the spec: {reason}"),
                );
            }
        }
    }

    /// Declines the join requests whose guard-bot query went unanswered past its deadline, and
    /// records each as the bot's violation. Run before every call and every read of violations or
    /// requests, so a missed deadline shows however the sandbox is next touched.
    fn expire_join_queries(&self) {
        let expired = self.world().expire_join_queries();
        for query in expired {
            let late = if query.web_app_url.is_some() {
                "its Mini App was shown but the query was never answered"
            } else {
                "not answered within 10 s"
            };
            self.violation(
                Some(query.bot),
                "answerChatJoinRequestQuery",
                format!(
                    "join request query {} (user {} to chat {}) {late}; Telegram declined the request",
                    query.id, query.user, query.chat
                ),
            );
        }
    }

    fn violation(&self, bot: Option<i64>, method: &str, reason: String) {
        self.journal().violation(Violation {
            bot,
            method: method.to_string(),
            reason,
        });
    }

    fn record(
        &self,
        bot: i64,
        method: &str,
        params: Map<String, Value>,
        ok: bool,
        error: Option<ApiError>,
    ) {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        self.journal().record(CallRecord {
            seq: 0,
            at_ms,
            bot,
            method: method.to_string(),
            params: Value::Object(params),
            ok,
            error_code: error.as_ref().map(|e| e.code),
            description: error.map(|e| e.description),
        });
    }
}

/// Refuses a token that cannot be any bot's before looking it up, as the Bot API server does
/// (`ClientManager::send`, telegram-bot-api 10.0): no colon, a slash, over 80 characters or a
/// leading `0` is an invalid token; a bot id that is not a number is an unallowed one.
fn check_token_shape(token: &str) -> Result<(), ApiError> {
    let Some((id, _)) = token.split_once(':') else {
        return Err(ApiError::invalid_token());
    };
    if token.starts_with('0') || token.len() > 80 || token.contains('/') {
        return Err(ApiError::invalid_token());
    }
    match id.parse::<i64>() {
        Err(_) => Err(ApiError::unallowed_token()),
        Ok(id) if id <= 0 || id >= 1 << 54 => Err(ApiError::invalid_token()),
        Ok(_) => Ok(()),
    }
}

/// A sandbox serving on a local port; stops when dropped.
pub struct RunningSandbox {
    pub addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl RunningSandbox {
    /// The base URL to give a bot (`Bot::set_api_url`), without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Locks a mutex, recovering from a poisoned one: the sandbox's state stays usable after a
/// panicking test thread, which is what a test harness wants.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
