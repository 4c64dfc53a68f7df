//! A bot's [`Inbox`] in the database: updates Telegram has forgotten and Nezuko is not done with.
//! Two tables feed it: `parked_updates`, where polling keeps the updates that held Telegram's
//! offset too long, and `webhook_updates`, where webhook deliveries wait for the bot's runner.
//! Reading both whatever the mode means a fleet switched from webhooks to polling still handles
//! what its webhooks took in before the switch.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::db::Store;
use crate::telegram::polling::Inbox;

pub struct StoredInbox {
    pub store: Store,
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
}
