//! A bot's [`Inbox`] in the database (`parked_updates`): where polling keeps the updates that held
//! Telegram's offset too long, so they survive a crash once Telegram has forgotten them.

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
        Box::pin(async move { Ok(store.unpark_updates(bot, &update_ids).await?) })
    }

    fn parked(&self) -> BoxFuture<'static, anyhow::Result<Vec<(i32, String)>>> {
        let (store, bot) = (self.store.clone(), self.bot_instance_id);
        Box::pin(async move { Ok(store.parked_updates(bot).await?) })
    }
}
