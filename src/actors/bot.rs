//! The BotActor: one running Telegram bot. It decrypts its token, checks it with `getMe`, runs a
//! teloxide dispatcher with long polling, and turns anything that ends the dispatcher into an actor
//! failure carrying a classified [`Failure`] for the supervisor's restart policy.
//!
//! A graceful stop (ractor `stop`) shuts the dispatcher down: in-flight updates finish, and the
//! polling listener confirms only what was handed out, so unconfirmed updates stay with Telegram.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use teloxide::dispatching::{Dispatcher, ShutdownToken};
use teloxide::payloads::GetMe;
use teloxide::prelude::*;
use teloxide::update_listeners::Polling;
use tokio::task::JoinHandle;

use super::Publisher;
use super::supervisor::{SupervisorMsg, SupervisorRef};
use crate::db::BotRow;
use crate::telegram::{
    BotContext, BotIdentity, Failure, POLL_TIMEOUT, UpdateHandler, classify, schema, transport,
};
use crate::vault::Vault;

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
}

pub struct BotState {
    bot_instance_id: i64,
    bot: Bot,
    handler: Arc<dyn UpdateHandler>,
    supervisor: SupervisorRef,
    shutdown: Option<ShutdownToken>,
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
            handler: args.handler,
            supervisor: args.supervisor,
            shutdown: None,
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
        // Nezuko's own transport: teloxide's would sleep 10 s after a 5xx before saying so.
        let me = transport::send(&state.bot, &GetMe::new())
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
        };
        state.handler.bot_started(&context);
        state.started = true;
        state.start_dispatcher(myself, context);
        state.supervisor.cast(SupervisorMsg::BotRunning {
            bot_instance_id: state.bot_instance_id,
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
        let mut dispatcher =
            Dispatcher::builder(self.bot.clone(), schema(self.handler.clone(), context))
                // Kinds outside the schema are not asked for; if one arrives anyway, ignore it quietly.
                .default_handler(|_| async {})
                .build();
        self.shutdown = Some(dispatcher.shutdown_token());
        let bot = self.bot.clone();
        let reporter = myself.clone();
        let on_error = move |error: teloxide::RequestError| {
            let reporter = reporter.clone();
            async move {
                let _ = reporter.cast(BotMsg::PollingFailed(classify(&error)));
            }
        };
        self.task = Some(tokio::spawn(async move {
            let listener = Polling::builder(bot)
                .timeout(POLL_TIMEOUT)
                .delete_webhook()
                .await
                .build();
            let run = dispatcher.try_dispatch_with_listener(listener, Arc::new(on_error));
            let outcome = match AssertUnwindSafe(run).catch_unwind().await {
                Ok(Ok(())) => BotMsg::DispatcherExited("stopped".into()),
                Ok(Err(error)) => BotMsg::PollingFailed(classify(&error)),
                Err(_) => BotMsg::DispatcherExited("panicked".into()),
            };
            let _ = myself.cast(outcome);
        }));
    }

    /// Asks the dispatcher to finish in-flight updates and stop, waiting at most [`STOP_GRACE`].
    async fn stop_dispatcher(&mut self) {
        self.stopping = true;
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        if let Some(token) = self.shutdown.take() {
            loop {
                match token.shutdown() {
                    Ok(done) => {
                        if tokio::time::timeout_at(deadline, done).await.is_err() {
                            tracing::warn!(
                                bot_instance_id = self.bot_instance_id,
                                "the dispatcher did not stop in time"
                            );
                        }
                        break;
                    }
                    // Not dispatching yet (still starting) or already gone: wait for one or the other.
                    Err(_) if self.task.as_ref().is_none_or(|t| t.is_finished()) => break,
                    Err(_) if tokio::time::Instant::now() >= deadline => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(1), &mut task)
                .await
                .is_err()
        {
            // Never leave a second poller behind for this token.
            task.abort();
            tracing::warn!(
                bot_instance_id = self.bot_instance_id,
                "the polling task did not end in time; aborted it"
            );
        }
    }
}
