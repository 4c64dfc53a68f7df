//! A bot's [`Inbox`] in the database: updates Telegram has forgotten and Nezuko is not done with.
//! Two tables feed it: `parked_updates`, where polling keeps the updates that held Telegram's
//! offset too long, and `webhook_updates`, where webhook deliveries wait for the bot's runner.
//! Reading both whatever the mode means a fleet switched from webhooks to polling still handles
//! what its webhooks took in before the switch. The runner's progress (`update_progress`, through
//! the records writer) is kept here too, so its successor does not act on updates twice.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::records::Records;
use crate::db::{Store, UpdateProgress};
use crate::telegram::polling::Inbox;
use crate::telegram::progress::Progress;

pub struct StoredInbox {
    pub store: Store,
    /// The write-behind the bot's progress goes through, after the records of its updates.
    pub records: Records,
    pub bot_instance_id: i64,
}

impl Inbox for StoredInbox {
    fn park(&self, updates: Vec<(i32, Arc<str>)>) -> BoxFuture<'static, anyhow::Result<()>> {
        let (store, bot) = (self.store.clone(), self.bot_instance_id);
        Box::pin(async move {
            let rows: Vec<(i32, &str)> = updates.iter().map(|(id, raw)| (*id, &**raw)).collect();
            store.park_updates(bot, &rows).await?;
            Ok(())
        })
    }

    fn unpark(&self, update_ids: Vec<i32>) -> BoxFuture<'static, anyhow::Result<()>> {
        let (store, bot) = (self.store.clone(), self.bot_instance_id);
        Box::pin(async move {
            store.unpark_updates(bot, &update_ids).await?;
            store.finish_webhook_updates(bot, &update_ids).await?;
            Ok(())
        })
    }

    fn parked(&self) -> BoxFuture<'static, anyhow::Result<Vec<(i32, String)>>> {
        let (store, bot) = (self.store.clone(), self.bot_instance_id);
        Box::pin(async move {
            let mut kept = store.parked_updates(bot).await?;
            kept.extend(
                store
                    .pending_webhook_updates(bot, crate::telegram::webhook::READ_BATCH as i64)
                    .await?,
            );
            kept.sort_by_key(|(id, _)| *id);
            kept.dedup_by_key(|(id, _)| *id);
            Ok(kept)
        })
    }

    fn keep_progress(&self, progress: Progress) {
        self.records.progress(UpdateProgress {
            bot_instance_id: self.bot_instance_id,
            highest_update_id: i64::from(progress.highest),
            pending: progress.pending.into_iter().map(i64::from).collect(),
        });
    }

    fn progress(&self) -> BoxFuture<'static, anyhow::Result<Option<Progress>>> {
        let (store, bot) = (self.store.clone(), self.bot_instance_id);
        Box::pin(async move {
            let Some(kept) = store.update_progress(bot).await? else {
                return Ok(None);
            };
            // Telegram's update ids fit an i32 (Bot API docs); a row that does not is not believed.
            let highest = i32::try_from(kept.highest_update_id).ok();
            let pending: Option<Vec<i32>> = kept
                .pending
                .into_iter()
                .map(|id| i32::try_from(id).ok())
                .collect();
            Ok(highest
                .zip(pending)
                .map(|(highest, pending)| Progress { highest, pending }))
        })
    }
}
