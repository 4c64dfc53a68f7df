//! The BotActor: one running Telegram bot. It decrypts its token, checks it with `getMe`, runs
//! Nezuko's dispatcher ([`crate::telegram::dispatch`]) over long polling or, in webhook mode, over
//! its webhook inbox, and turns anything that ends the dispatcher into an actor failure carrying a
//! classified [`Failure`] for the supervisor's restart policy.
//!
//! A graceful stop (ractor `stop`) shuts the dispatcher down: in-flight updates finish, and the
//! polling listener ([`crate::telegram::polling`]) confirms only what was handled, so the rest stay
//! with Telegram and are delivered again on the next start. In webhook mode the rest stay in the
//! inbox ([`crate::telegram::webhook`]).
//!
//! The mode is set on Telegram by the bot's runner as it starts: `deleteWebhook` before polling,
//! `setWebhook` before reading the inbox. So a fleet switched between modes (its nodes restarted
//! with the other `telegram.mode`) needs nothing else. A bot stopped for good (disabled or
//! deleted, [`BotMsg::Retire`]) in webhook mode also deletes its webhook, so Telegram keeps its
//! updates until it runs again instead of posting them to a bot that does not run. While it runs,
//! a webhook-mode bot's runner also reads what Telegram says of the webhook ([`webhook_watch`]).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor::{ActorCell, SpawnErr};
use teloxide::payloads::{
    DeleteWebhook, GetMe, GetUpdates, GetUpdatesSetters, SetWebhook, SetWebhookSetters,
};
use teloxide::prelude::*;
use teloxide::stop::StopToken;
use teloxide::update_listeners::{AsUpdateStream, UpdateListener};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::supervisor::{SupervisorMsg, SupervisorRef};
use super::webhook_watch;
use crate::db::BotRow;
use crate::events::Publisher;
use crate::telegram::dispatch::dispatch;
use crate::telegram::polling::{Inbox, Ledger, Listener};
use crate::telegram::webhook::WebhookListener;
use crate::telegram::{
    ALLOWED, BotContext, BotIdentity, Failure, Fence, POLL_TIMEOUT, TokenWatch, UpdateHandler,
    classify, endpoint, transport,
};
use crate::vault::Vault;
use crate::webhooks::Webhooks;

/// How a bot receives its updates (`telegram.mode`).
#[derive(Clone, Debug)]
pub enum Delivery {
    Polling,
    Webhook(Webhooks),
}

/// Tells Telegram that every update handled so far may be forgotten (`getUpdates` with the ledger's
/// offset, asking for nothing new), so the next start does not see them again. Updates the
/// dispatcher never began hold the offset; those handled after the first of them are in the
/// runner's progress, stored here before the bot's lease can pass on, and the next runner confirms
/// them without acting again.
async fn confirm_handled(
    bot: &Bot,
    ledger: &Ledger,
    inbox: Option<&dyn Inbox>,
    fence: &Fence,
    handler: &dyn UpdateHandler,
) {
    // Updates just handled are done with once their records are stored: a moment, or seconds
    // when the database is busy. The bot's lease passes on only after this, so the next runner
    // reads a progress that covers them; one shared deadline keeps it within the stop's grace.
    let deadline = tokio::time::Instant::now() + CONFIRM_WAIT;
    ledger.acted_stored(CONFIRM_WAIT).await;
    ledger.keep_final_progress();
    // A timeout is the answer: what was not stored by then is handled again next time.
    let _ = tokio::time::timeout_at(
        deadline.max(tokio::time::Instant::now() + PROGRESS_WAIT),
        handler.stored(),
    )
    .await;
    if let Some(inbox) = inbox {
        ledger.flush_unparked(inbox).await;
    }
    let offset = ledger.offset();
    // After the lease has ended the bot's next runner may be polling: a getUpdates from here
    // would cut its long poll short with a 409. And a poll already sent with this offset has
    // confirmed it: another, while that one is still open at Telegram, would end it with 409.
    if offset == 0 || !fence.holds() || ledger.confirmed_by_poll(offset, SENT_FOR_SURE) {
        return;
    }
    let request = GetUpdates::new().offset(offset).limit(1).timeout(0);
    let sent = transport::fenced(fence.clone(), transport::send(bot, &request)).await;
    if let Err(error) = sent.result {
        tracing::info!(%error, "could not confirm the handled updates; Telegram will deliver them again");
    }
}

/// How long a stopping bot waits for the records of its last updates and its progress to be
/// stored before confirming what is done (within [`STOP_GRACE`], after the dispatcher's end).
const CONFIRM_WAIT: Duration = Duration::from_secs(5);
/// The least a stopping bot waits for its final progress to be stored, however long the records
/// before it took.
const PROGRESS_WAIT: Duration = Duration::from_secs(1);

/// How long ago a poll must have been sent to count as having reached Telegram (a request is
/// written within milliseconds of being made).
const SENT_FOR_SURE: Duration = Duration::from_millis(100);

/// How long a stop waits for in-flight updates before giving up on the dispatcher.
const STOP_GRACE: Duration = Duration::from_secs(8);

/// How long an aborted dispatcher's progress may take to be stored: with [`STOP_GRACE`], within
/// the lease keeper's limit for a handover (12 s).
const ABORTED_PROGRESS_WAIT: Duration = Duration::from_secs(3);

/// How long a retiring webhook-mode bot waits for `deleteWebhook`.
const DELETE_WEBHOOK_WAIT: Duration = Duration::from_secs(5);

pub type BotRef = ActorRef<BotMsg>;

pub enum BotMsg {
    /// The polling listener reported an error (sent by the listener's error handler).
    PollingFailed(Failure),
    /// The dispatcher task ended; the text says how.
    DispatcherExited(String),
    /// Stop for good (disabled or deleted): as a stop, and in webhook mode delete the webhook.
    Retire,
}

pub struct BotArgs {
    pub row: BotRow,
    pub vault: Vault,
    pub http: reqwest::Client,
    pub api_url: reqwest::Url,
    pub handler: Arc<dyn UpdateHandler>,
    pub supervisor: SupervisorRef,
    /// Where the bot's handlers publish events.
    pub events: Publisher,
    /// Until when this node may send for the bot ([`Fence::open`] when bots are not leased).
    pub fence: Fence,
    pub delivery: Delivery,
}

pub struct BotState {
    bot_instance_id: i64,
    /// `bot{bot_instance_id=…}`: every record the actor and its dispatcher write carries the id.
    span: tracing::Span,
    bot: Bot,
    fence: Fence,
    handler: Arc<dyn UpdateHandler>,
    supervisor: SupervisorRef,
    events: Publisher,
    /// Ends the listener's stream, which ends the dispatcher (see [`BotState::stop_dispatcher`]).
    listener_stop: Option<StopToken>,
    /// Cancelled with the listener's stop: updates read but not yet in hand are left to the next
    /// runner (see `dispatch`).
    dispatch_stop: Option<CancellationToken>,
    task: Option<JoinHandle<()>>,
    /// The running dispatcher's ledger, to keep its progress if it has to be aborted.
    ledger: Option<Arc<Ledger>>,
    stopping: bool,
    /// The handler was told the bot started (so it must be told it stopped).
    started: bool,
    delivery: Delivery,
    /// Stopping for good ([`BotMsg::Retire`]).
    retiring: bool,
}

pub struct BotActor;

/// Starts a BotActor linked to `supervisor`: its exit and its failures (a failed `post_start`
/// included) reach the supervisor as supervision events; a failed `pre_start` comes back here.
pub(crate) async fn spawn(args: BotArgs, supervisor: ActorCell) -> Result<BotRef, SpawnErr> {
    Actor::spawn_linked(None, BotActor, args, supervisor)
        .await
        .map(|(actor, _)| actor)
}

impl Actor for BotActor {
    type Msg = BotMsg;
    type State = BotState;
    type Arguments = BotArgs;

    /// Only local work here: a failure in `pre_start` reaches the supervisor as a spawn error.
    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        args: BotArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let token = args
            .vault
            .decrypt_token(&args.row.token_ciphertext)
            .map_err(|_| Failure::Undecryptable)?;
        let bot = Bot::with_client(token.expose(), args.http).set_api_url(args.api_url);
        Ok(BotState {
            span: tracing::info_span!("bot", bot_instance_id = args.row.id),
            bot_instance_id: args.row.id,
            bot,
            fence: args.fence,
            handler: args.handler,
            supervisor: args.supervisor,
            events: args.events,
            listener_stop: None,
            dispatch_stop: None,
            task: None,
            ledger: None,
            stopping: false,
            started: false,
            delivery: args.delivery,
            retiring: false,
        })
    }

    /// Checks the token and starts polling; a failure here is a supervision event.
    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        state.begin(myself).instrument(span).await
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        state.on_message(myself, message).instrument(span).await
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        state.end().instrument(span).await;
        Ok(())
    }
}

impl BotState {
    async fn begin(&mut self, myself: BotRef) -> Result<(), ActorProcessingErr> {
        let state = self;
        state.fence.check().map_err(|e| classify(&e))?;
        // Nezuko's own transport: teloxide's would sleep 10 s after a 5xx before saying so.
        let me = transport::fenced(
            state.fence.clone(),
            transport::send(&state.bot, &GetMe::new()),
        )
        .await
        .result
        .map_err(|e| classify(&e))?;
        tracing::info!(username = me.username(), "bot started");
        let context = BotContext {
            bot: state.bot.clone(),
            bot_instance_id: state.bot_instance_id,
            me: Arc::new(BotIdentity {
                user_id: me.id.0 as i64,
                username: me.username().to_string(),
            }),
            events: state.events.clone(),
            fence: state.fence.clone(),
            token: TokenWatch::default(),
            join_query: None,
        };
        state.handler.bot_started(&context);
        state.started = true;
        let actor = myself.get_id();
        state.start_dispatcher(myself, context);
        state.supervisor.cast(SupervisorMsg::BotRunning {
            bot_instance_id: state.bot_instance_id,
            actor,
        })?;
        Ok(())
    }

    async fn on_message(
        &mut self,
        myself: BotRef,
        message: BotMsg,
    ) -> Result<(), ActorProcessingErr> {
        let state = self;
        match message {
            BotMsg::PollingFailed(failure) => {
                state.stop_dispatcher().await;
                Err(failure.into())
            }
            BotMsg::DispatcherExited(_) if state.stopping => Ok(()),
            BotMsg::DispatcherExited(how) => Err(Failure::Died(how).into()),
            BotMsg::Retire => {
                state.retiring = true;
                myself.stop(Some("stop requested".into()));
                Ok(())
            }
        }
    }

    async fn end(&mut self) {
        self.stop_dispatcher().await;
        if self.retiring {
            self.delete_webhook().await;
        }
        if self.started {
            self.handler.bot_stopped(self.bot_instance_id);
        }
    }

    fn start_dispatcher(&mut self, myself: BotRef, context: BotContext) {
        let ledger = Ledger::new();
        self.ledger = Some(ledger.clone());
        let token = context.token.clone();
        let handle = endpoint(self.handler.clone(), context, ledger.clone());
        let bot = self.bot.clone();
        let reporter = myself.clone();
        let inbox = self.handler.inbox(self.bot_instance_id);
        let fence = self.fence.clone();
        let id = self.bot_instance_id;
        let handler = self.handler.clone();
        let events = self.events.clone();
        let (mut stream_of, stop) = match (&self.delivery, inbox.clone()) {
            (Delivery::Webhook(webhooks), Some(inbox)) => {
                let mut listener = WebhookListener::new(
                    ledger.clone(),
                    inbox,
                    webhooks.arrivals().of(id),
                    fence.clone(),
                );
                let stop = listener.stop_token();
                (Source::Webhook(webhooks.clone(), listener), stop)
            }
            _ => {
                let mut listener =
                    Listener::new(bot.clone(), ledger.clone(), inbox.clone(), POLL_TIMEOUT)
                        .fenced(fence.clone());
                listener.hint_allowed_updates(&mut ALLOWED.into_iter());
                let stop = listener.stop_token();
                (Source::Polling(listener), stop)
            }
        };
        self.listener_stop = Some(stop);
        let stopping = CancellationToken::new();
        self.dispatch_stop = Some(stopping.clone());
        self.task = Some(tokio::spawn(
            async move {
                if let Err(error) = stream_of.prepare(&bot, id, &fence).await {
                    // Fails only if this actor already stopped, which is what the message would
                    // have caused.
                    let _ = myself.cast(BotMsg::PollingFailed(error));
                    return;
                }
                let watcher = myself.clone();
                let refusal_reporter = myself.clone();
                let on_error = move |error| {
                    // Fails only if this actor already stopped, which is what the message would
                    // have caused.
                    let _ = reporter.cast(BotMsg::PollingFailed(classify(&error)));
                };
                let run = async {
                    match &mut stream_of {
                        Source::Polling(listener) => {
                            dispatch(listener.as_stream(), handle, on_error, stopping).await
                        }
                        Source::Webhook(webhooks, listener) => {
                            let watch = webhook_watch::watch(
                                bot.clone(),
                                id,
                                fence.clone(),
                                webhooks.url_for(id),
                                webhooks.check_every(),
                                events,
                            );
                            let dispatching =
                                dispatch(listener.as_stream(), handle, on_error, stopping);
                            tokio::pin!(dispatching);
                            // The watch runs as long as the dispatcher; a failure it finds stops the
                            // bot as any other does (the dispatcher finishing what it took).
                            tokio::select! {
                                () = &mut dispatching => {}
                                failure = watch => {
                                    // Fails only if this actor already stopped, which is what the
                                    // message would have caused.
                                    let _ = watcher.cast(BotMsg::PollingFailed(failure));
                                    dispatching.await;
                                }
                            }
                        }
                    }
                };
                let run = until_token_refused(run, token, &refusal_reporter);
                let outcome = match AssertUnwindSafe(run).catch_unwind().await {
                    Ok(()) => BotMsg::DispatcherExited("stopped".into()),
                    Err(_) => BotMsg::DispatcherExited("panicked".into()),
                };
                confirm_handled(&bot, &ledger, inbox.as_deref(), &fence, &*handler).await;
                if let Source::Webhook(webhooks, _) = &stream_of {
                    webhooks.arrivals().forget(id);
                }
                // Fails only if this actor already stopped: then nobody waits for how the
                // dispatcher ended.
                let _ = myself.cast(outcome);
            }
            .instrument(self.span.clone()),
        ));
    }

    /// Webhook mode: `deleteWebhook`, so Telegram keeps the bot's updates while it does not run.
    async fn delete_webhook(&self) {
        if !matches!(self.delivery, Delivery::Webhook(_)) || !self.started {
            return;
        }
        let delete = DeleteWebhook::new();
        let request = transport::fenced(self.fence.clone(), transport::send(&self.bot, &delete));
        match tokio::time::timeout(DELETE_WEBHOOK_WAIT, request).await {
            Ok(attempt) => {
                if let Err(error) = attempt.result {
                    tracing::warn!(bot_instance_id = self.bot_instance_id, %error, "could not delete the webhook of a stopped bot; Telegram keeps posting to it");
                }
            }
            Err(_) => tracing::warn!(
                bot_instance_id = self.bot_instance_id,
                "deleteWebhook did not answer in time; Telegram may keep posting to the stopped bot"
            ),
        }
    }

    /// Asks the dispatcher to finish in-flight updates and stop, waiting at most [`STOP_GRACE`]:
    /// the listener's stream ends, the dispatcher waits for the updates it took, and the task's end
    /// (after confirming what was handled) is what is awaited.
    async fn stop_dispatcher(&mut self) {
        self.stopping = true;
        if let Some(listener) = self.listener_stop.take() {
            listener.stop();
        }
        if let Some(dispatcher) = self.dispatch_stop.take() {
            dispatcher.cancel();
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(STOP_GRACE, &mut task).await.is_err()
        {
            // Never leave a second poller behind for this token.
            task.abort();
            tracing::warn!(
                bot_instance_id = self.bot_instance_id,
                "the dispatcher did not stop in time; aborted it"
            );
            // What it did act on is still kept for the next runner (the updates it was still
            // working on stay pending): without this, a handover while the database is slow
            // left the next runner acting again on everything since the last kept progress.
            if let Some(ledger) = &self.ledger {
                ledger.keep_final_progress();
                // A timeout is the answer: what was not stored in time is handled again at the next
                // start.
                let _ = tokio::time::timeout(ABORTED_PROGRESS_WAIT, self.handler.stored()).await;
            }
        }
        self.ledger = None;
    }
}

/// Runs the dispatcher until it ends; a token Telegram refuses on any of the runner's calls (an
/// update's, a health check's: see [`TokenWatch`]) stops the bot as `invalid_token` as a refused
/// poll does, the dispatcher finishing what it took (those updates stay with Telegram).
async fn until_token_refused(
    dispatching: impl std::future::Future<Output = ()>,
    token: TokenWatch,
    bot: &BotRef,
) {
    tokio::pin!(dispatching);
    tokio::select! {
        () = &mut dispatching => {}
        () = token.refused() => {
            tracing::warn!("Telegram refused the bot's token while it handled updates; stopping it");
            // Fails only if this actor already stopped, which is what the message would have
            // caused.
            let _ = bot.cast(BotMsg::PollingFailed(Failure::InvalidToken));
            dispatching.await;
        }
    }
}

/// Where a bot's dispatcher reads updates from.
enum Source {
    Polling(Listener),
    Webhook(Webhooks, WebhookListener),
}

impl Source {
    /// Sets the mode on Telegram: polling deletes a webhook left set (it would make every
    /// `getUpdates` fail with 409); webhook mode sets this bot's webhook with its secret and
    /// Nezuko's `allowed_updates`, which also ends polling by anyone still at it.
    async fn prepare(&self, bot: &Bot, id: i64, fence: &Fence) -> Result<(), Failure> {
        fence.check().map_err(|e| classify(&e))?;
        let sent = match self {
            Source::Polling(_) => {
                transport::fenced(fence.clone(), transport::send(bot, &DeleteWebhook::new())).await
            }
            Source::Webhook(webhooks, _) => {
                let secret =
                    webhooks
                        .secret_for_start(id)
                        .await
                        .map_err(|error| Failure::Transient {
                            reason: format!("the webhook secret cannot be read or kept: {error}"),
                            retry_after: None,
                        })?;
                let url = reqwest::Url::parse(&webhooks.url_for(id)).map_err(|error| {
                    Failure::Died(format!(
                        "server.public_url does not make a webhook URL: {error}"
                    ))
                })?;
                let request = SetWebhook::new(url)
                    .secret_token(secret.expose().clone())
                    .allowed_updates(ALLOWED);
                transport::fenced(fence.clone(), transport::send(bot, &request)).await
            }
        };
        sent.result.map(|_| ()).map_err(|e| classify(&e))
    }
}
