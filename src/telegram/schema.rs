//! The dispatch schema every bot runs: the update kinds Nezuko asks Telegram for, routed to the
//! bot's [`UpdateHandler`] behind a panic guard.
//!
//! teloxide gives handlers no panic guard: a panic kills that chat's worker and the next update for
//! the chat takes the whole dispatcher down. Here a panic costs only the update that caused it.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use teloxide::dispatching::{UpdateFilterExt, UpdateHandler as TeloxideHandler};
use teloxide::prelude::*;

use super::polling::{Inbox, Ledger};
use crate::actors::Publisher;

/// What a handler gets with each update.
#[derive(Clone)]
pub struct BotContext {
    pub bot: Bot,
    /// The bot's row in `bot_instances`.
    pub bot_instance_id: i64,
    /// Who the bot is on Telegram (from `getMe`).
    pub me: Arc<BotIdentity>,
    /// Where the bot's events go (the fleet's Broadcaster).
    pub events: Publisher,
}

/// The bot's own Telegram account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    pub user_id: i64,
    pub username: String,
}

/// A bot's behaviour: what it does with one update. Errors are logged and survived.
pub trait UpdateHandler: Send + Sync + 'static {
    fn handle(&self, context: BotContext, update: Update)
    -> BoxFuture<'static, anyhow::Result<()>>;

    /// Resolves once everything handling has recorded so far is stored, so an update handled just
    /// before may be confirmed to Telegram without a crash losing its records. Nothing to wait for
    /// by default.
    fn stored(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }

    /// Where the bot's slow updates are kept once Telegram forgets them ([`Inbox`]); `None` (the
    /// default) keeps every update with Telegram until it is done with, however long it takes.
    fn inbox(&self, _bot_instance_id: i64) -> Option<Arc<dyn Inbox>> {
        None
    }

    /// The bot passed `getMe` and is about to poll (a restart calls this again).
    fn bot_started(&self, _context: &BotContext) {}

    /// The bot stopped polling; in-flight updates have finished.
    fn bot_stopped(&self, _bot_instance_id: i64) {}
}

/// The teloxide handler tree for one bot. Listing each update kind tells teloxide which kinds to
/// ask Telegram for (`chat_member` is only sent when asked). Every update's end is told to the
/// `ledger`: handled (or failed for good) lets Telegram forget it once its records are stored
/// ([`UpdateHandler::stored`]); one that met a database outage stays unconfirmed and is handled
/// again later.
pub fn schema(
    handler: Arc<dyn UpdateHandler>,
    context: BotContext,
    ledger: Arc<Ledger>,
) -> TeloxideHandler<anyhow::Error> {
    let endpoint = move |update: Update| {
        let handler = handler.clone();
        let context = context.clone();
        let ledger = ledger.clone();
        async move {
            let update_id = update.id.0;
            let bot_instance_id = context.bot_instance_id;
            let copy = update.clone();
            let handling = handler.clone();
            // `handle` itself may panic before it returns a future: that is caught too.
            let handled = AssertUnwindSafe(async move { handling.handle(context, update).await })
                .catch_unwind()
                .await;
            crate::metrics::update_handled(!matches!(handled, Ok(Ok(()))));
            // Done with (unless it met an outage) once what it recorded is stored.
            let done = {
                let stored = handler.stored();
                let ledger = ledger.clone();
                move || {
                    tokio::spawn(async move {
                        stored.await;
                        ledger.handled(update_id);
                    });
                }
            };
            match handled {
                Ok(Ok(())) => done(),
                Ok(Err(error)) if error.chain().any(crate::db::is_outage) => {
                    tracing::warn!(bot_instance_id, update_id, error = %error, "the database is unavailable; the update stays with Telegram and is handled again shortly");
                    ledger.retry_later(copy);
                }
                Ok(Err(error)) if error.chain().any(super::is_weather_cause) => {
                    tracing::warn!(bot_instance_id, update_id, error = %error, "Telegram is unavailable; the update stays with Telegram and is handled again shortly");
                    ledger.retry_later(copy);
                }
                Ok(Err(error)) => {
                    tracing::warn!(bot_instance_id, update_id, error = %error, "handling an update failed");
                    done();
                }
                Err(panic) => {
                    tracing::error!(
                        bot_instance_id,
                        update_id,
                        panic = panic_text(&panic),
                        "the update handler panicked; this update was skipped, the bot keeps running"
                    );
                    done();
                }
            }
            Ok(())
        }
    };
    dptree::entry()
        .branch(Update::filter_message().endpoint(endpoint.clone()))
        .branch(Update::filter_callback_query().endpoint(endpoint.clone()))
        .branch(Update::filter_chat_member().endpoint(endpoint.clone()))
        .branch(Update::filter_my_chat_member().endpoint(endpoint.clone()))
        .branch(Update::filter_chat_join_request().endpoint(endpoint))
}

fn panic_text(panic: &Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".into())
}
