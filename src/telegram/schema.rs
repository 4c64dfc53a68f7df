//! What every bot runs for each update: the update kinds Nezuko asks Telegram for, routed to the
//! bot's [`UpdateHandler`] behind a panic guard, and the update's end told to the polling ledger.
//!
//! A panic in a handler costs only the update that caused it (teloxide gives handlers no guard: a
//! panic there killed the chat's worker, and the next update for the chat the whole dispatcher).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use teloxide::prelude::*;
use teloxide::types::{AllowedUpdate, UpdateKind};

use super::dispatch::Handle;
use super::polling::{Inbox, Ledger};
use crate::events::Publisher;

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
    /// Until when this node may send for the bot (see [`super::Fence`]).
    pub fence: super::Fence,
    /// Fired by the first of the runner's calls Telegram answers 401: the runner stops as
    /// `invalid_token` (see [`super::TokenWatch`]).
    pub token: super::TokenWatch,
    /// For a `chat_join_request` handed to a guard bot: the query it must answer within 10 s
    /// (Bot API 10.1; teloxide's type drops it, see [`super::join_query`]). `None` otherwise.
    pub join_query: Option<String>,
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

/// The update kinds Nezuko asks Telegram for (`chat_member` is only sent when asked); anything
/// else that arrives anyway is done with at once.
pub const ALLOWED: [AllowedUpdate; 5] = [
    AllowedUpdate::Message,
    AllowedUpdate::CallbackQuery,
    AllowedUpdate::ChatMember,
    AllowedUpdate::MyChatMember,
    AllowedUpdate::ChatJoinRequest,
];

/// What one bot does with each update, behind a panic guard. Every update's end is told to the
/// `ledger`: handled (or failed for good) lets Telegram forget it once its records are stored
/// ([`UpdateHandler::stored`]); one that met a database or Telegram outage stays unconfirmed and is
/// handled again later.
pub fn endpoint(
    handler: Arc<dyn UpdateHandler>,
    context: BotContext,
    ledger: Arc<Ledger>,
) -> Handle {
    Arc::new(move |update: Update| {
        let handler = handler.clone();
        let mut context = context.clone();
        let ledger = ledger.clone();
        // Boxed, like the copy kept for a retry: held by value, each took its kilobyte in every
        // update's future for as long as the update is in hand (see `dispatch`).
        let update = Box::new(update);
        async move {
            let update_id = update.id.0;
            if matches!(update.kind, UpdateKind::ChatJoinRequest(_)) {
                context.join_query = ledger.join_query(update_id);
            }
            if !is_asked_for(&update.kind) {
                ledger.handled(update_id);
                return;
            }
            let bot_instance_id = context.bot_instance_id;
            let copy = update.clone();
            let handling = handler.clone();
            // `handle` itself may panic before it returns a future: that is caught too.
            let handled = AssertUnwindSafe(async move { handling.handle(context, *update).await })
                .catch_unwind()
                .await;
            crate::metrics::update_handled(!matches!(handled, Ok(Ok(()))));
            // Done with (unless it met an outage) once what it recorded is stored.
            let done = {
                let stored = handler.stored();
                let ledger = ledger.clone();
                move || {
                    ledger.acted(update_id);
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
                    ledger.retry_later(*copy);
                }
                // Not Telegram's weather but this runner's end (its token refused, its lease or
                // itself stopped): said as what it is.
                Ok(Err(error)) if error.chain().any(super::is_halt_cause) => {
                    tracing::info!(bot_instance_id, update_id, error = %error, "the bot's runner cannot act for it any more; the update stays with Telegram for its next runner");
                    ledger.retry_later(*copy);
                }
                Ok(Err(error)) if error.chain().any(super::is_weather_cause) => {
                    tracing::warn!(bot_instance_id, update_id, error = %error, "Telegram is unavailable; the update stays with Telegram and is handled again shortly");
                    ledger.retry_later(*copy);
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
        }
        .boxed()
    })
}

/// Whether the update is of a kind in [`ALLOWED`].
fn is_asked_for(kind: &UpdateKind) -> bool {
    matches!(
        kind,
        UpdateKind::Message(_)
            | UpdateKind::CallbackQuery(_)
            | UpdateKind::ChatMember(_)
            | UpdateKind::MyChatMember(_)
            | UpdateKind::ChatJoinRequest(_)
    )
}

fn panic_text(panic: &Box<dyn Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".into())
}
