//! The BotActor: one running Telegram bot. It decrypts its token, checks it with `getMe`, runs
//! Nezuko's dispatcher ([`crate::telegram::dispatch`]) over long polling, and turns anything that ends the dispatcher into an actor
//! failure carrying a classified [`Failure`] for the supervisor's restart policy.
//!
//! A graceful stop (ractor `stop`) shuts the dispatcher down: in-flight updates finish, and the
//! polling listener ([`crate::telegram::polling`]) confirms only what was handled, so the rest stay
//! with Telegram and are delivered again on the next start.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use teloxide::payloads::{DeleteWebhook, GetMe, GetUpdates, GetUpdatesSetters};
use teloxide::prelude::*;
use teloxide::stop::StopToken;
use teloxide::update_listeners::{AsUpdateStream, UpdateListener};
use tokio::task::JoinHandle;

use super::Publisher;
use super::supervisor::{SupervisorMsg, SupervisorRef};
use crate::db::BotRow;
use crate::telegram::dispatch::dispatch;
use crate::telegram::polling::{Inbox, Ledger, Listener};
use crate::telegram::{
    ALLOWED, BotContext, BotIdentity, Failure, Fence, POLL_TIMEOUT, UpdateHandler, classify,
    endpoint, transport,
};
use crate::vault::Vault;

/// Tells Telegram that every update handled so far may be forgotten (`getUpdates` with the ledger's
/// offset, asking for nothing new), so the next start does not see them again.
async fn confirm_handled(bot: &Bot, ledger: &Ledger, inbox: Option<&dyn Inbox>, fence: &Fence) {
    // Updates just handled are done with once their records are stored (a moment).
    ledger.settle(CONFIRM_WAIT).await;
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

/// How long a stopping bot waits for the records of its last updates to be stored before
/// confirming what is done.
const CONFIRM_WAIT: Duration = Duration::from_secs(2);

/// How long ago a poll must have been sent to count as having reached Telegram (a request is
/// written within milliseconds of being made).
const SENT_FOR_SURE: Duration = Duration::from_millis(100);

/// How long a stop waits for in-flight updates before giving up on the dispatcher.
const STOP_GRACE: Duration = Duration::from_secs(8);

pub type BotRef = ActorRef<BotMsg>;

pub enum BotMsg {
    /// The polling listener reported an error (sent by the listener's error handler).
    PollingFailed(Failure),
    /// The dispatcher task ended; the text says how.
    DispatcherExited(String),
}

pub struct BotArgs {
    pub row: BotRow,
    pub vault: Vault,
    pub http: reqwest::Client,
    pub api_url: reqwest::Url,
    pub handler: Arc<dyn UpdateHandler>,
    pub supervisor: SupervisorRef,
    /// Until when this node may send for the bot ([`Fence::open`] when bots are not leased).
    pub fence: Fence,
}

pub struct BotState {
    bot_instance_id: i64,
    bot: Bot,
    fence: Fence,
    handler: Arc<dyn UpdateHandler>,
    supervisor: SupervisorRef,
    /// Ends the listener's stream, which ends the dispatcher (see [`BotState::stop_dispatcher`]).
    listener_stop: Option<StopToken>,
    task: Option<JoinHandle<()>>,
    stopping: bool,
    /// The handler was told the bot started (so it must be told it stopped).
    started: bool,
}

pub struct BotActor;

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
            bot_instance_id: args.row.id,
            bot,
            fence: args.fence,
            handler: args.handler,
            supervisor: args.supervisor,
            listener_stop: None,
            task: None,
            stopping: false,
            started: false,
        })
    }

    /// Checks the token and starts polling; a failure here is a supervision event.
    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.fence.check().map_err(|e| classify(&e))?;
        // Nezuko's own transport: teloxide's would sleep 10 s after a 5xx before saying so.
        let me = transport::fenced(
            state.fence.clone(),
            transport::send(&state.bot, &GetMe::new()),
        )
        .await
        .result
        .map_err(|e| classify(&e))?;
        tracing::info!(
            bot_instance_id = state.bot_instance_id,
            username = me.username(),
            "bot started"
        );
        let context = BotContext {
            bot: state.bot.clone(),
            bot_instance_id: state.bot_instance_id,
            me: Arc::new(BotIdentity {
                user_id: me.id.0 as i64,
                username: me.username().to_string(),
            }),
            events: Publisher::new(state.supervisor.clone()),
            fence: state.fence.clone(),
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

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BotMsg::PollingFailed(failure) => {
                state.stop_dispatcher().await;
                Err(failure.into())
            }
            BotMsg::DispatcherExited(_) if state.stopping => Ok(()),
            BotMsg::DispatcherExited(how) => Err(Failure::Died(how).into()),
        }
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_dispatcher().await;
        if state.started {
            state.handler.bot_stopped(state.bot_instance_id);
        }
        Ok(())
    }
}

impl BotState {
    fn start_dispatcher(&mut self, myself: BotRef, context: BotContext) {
        let ledger = Ledger::new();
        let handle = endpoint(self.handler.clone(), context, ledger.clone());
        let bot = self.bot.clone();
        let reporter = myself.clone();
        let inbox = self.handler.inbox(self.bot_instance_id);
        let fence = self.fence.clone();
        let mut listener = Listener::new(bot.clone(), ledger.clone(), inbox.clone(), POLL_TIMEOUT)
            .fenced(fence.clone());
        listener.hint_allowed_updates(&mut ALLOWED.into_iter());
        self.listener_stop = Some(listener.stop_token());
        self.task = Some(tokio::spawn(async move {
            // A webhook left set would make every getUpdates fail with 409.
            let deleted = match fence.check() {
                Ok(()) => {
                    transport::fenced(fence.clone(), transport::send(&bot, &DeleteWebhook::new()))
                        .await
                        .result
                }
                Err(fenced) => Err(fenced),
            };
            if let Err(error) = deleted {
                let _ = myself.cast(BotMsg::PollingFailed(classify(&error)));
                return;
            }
            let run = dispatch(listener.as_stream(), handle, move |error| {
                let _ = reporter.cast(BotMsg::PollingFailed(classify(&error)));
            });
            let outcome = match AssertUnwindSafe(run).catch_unwind().await {
                Ok(()) => BotMsg::DispatcherExited("stopped".into()),
                Err(_) => BotMsg::DispatcherExited("panicked".into()),
            };
            confirm_handled(&bot, &ledger, inbox.as_deref(), &fence).await;
            let _ = myself.cast(outcome);
        }));
    }

    /// Asks the dispatcher to finish in-flight updates and stop, waiting at most [`STOP_GRACE`]:
    /// the listener's stream ends, the dispatcher waits for the updates it took, and the task's end
    /// (after confirming what was handled) is what is awaited.
    async fn stop_dispatcher(&mut self) {
        self.stopping = true;
        if let Some(listener) = self.listener_stop.take() {
            listener.stop();
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
        }
    }
}
