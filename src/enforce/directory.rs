//! What a bot needs to know about a chat on every update, without a database round trip: the group
//! row, its channels and its resolved policy and texts. An entry older than `refresh` is reloaded in
//! the background while it keeps serving, so a busy group never waits on the database; one older
//! than twice that (a quiet group) is reloaded before use. Either way a policy changed by the API or
//! another process applies within about `refresh`; changes made by this process drop the entry at
//! once ([`Directory::invalidate`]).
//!
//! A load that began before an invalidation of its key does not cache what it read (it may predate
//! the change), but an invalidation of one group leaves loads of the others alone: with one counter
//! for all, the health checks of a bot's groups at start (an invalidation each) discarded nearly
//! every load in flight under load, so each update loaded its group again (81,271 group and 82,171
//! channel reads in a 20 s `bench verify` at 2,000 events/s), and the readers queued for the pool.
//! Concurrent misses of one key wait for one load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracing::Instrument;

use super::policy::{DEFAULTS_KEY, Policy};
use super::texts::{OVERRIDES_PREFIX, Texts};
use crate::db::{ChannelRow, GroupRow, Store, StoreError};

/// One protected group as a bot sees it.
#[derive(Debug, Clone)]
pub struct GroupView {
    pub group: GroupRow,
    pub channels: Vec<ChannelRow>,
    pub policy: Policy,
    pub texts: Arc<Texts>,
}

impl GroupView {
    /// Enforcement is on: the group is enabled and requires at least one channel.
    pub fn enforcing(&self) -> bool {
        self.group.enabled && !self.channels.is_empty()
    }
}

/// Global defaults and texts, read together.
#[derive(Debug, Clone)]
struct Globals {
    defaults: Value,
    texts: Arc<Texts>,
    read_at: Instant,
}

/// A cached lookup and when it was read.
#[derive(Clone)]
struct Entry {
    view: Option<Arc<GroupView>>,
    read_at: Instant,
}

pub struct Directory {
    store: Store,
    refresh: Duration,
    groups: moka::sync::Cache<(i64, i64), Entry>,
    /// Keys being reloaded in the background (one reload per key at a time).
    reloading: moka::sync::Cache<(i64, i64), ()>,
    /// One load per key at a time: concurrent misses wait for it and use what it cached.
    loading: moka::sync::Cache<(i64, i64), Arc<tokio::sync::Mutex<()>>>,
    globals: RwLock<Option<Globals>>,
    /// One read of the globals at a time.
    globals_loading: tokio::sync::Mutex<()>,
    /// Ticks at every invalidation; a load notes the tick it began at.
    clock: AtomicU64,
    /// The tick of each key's latest invalidation (kept far longer than any load takes).
    invalidated: moka::sync::Cache<(i64, i64), u64>,
    /// The tick of the latest invalidation of everything.
    all_invalidated: AtomicU64,
}

impl Directory {
    pub fn new(store: Store, refresh: Duration) -> Self {
        Self {
            store,
            refresh,
            // Unused entries go after an hour; used ones are refreshed in place.
            groups: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            reloading: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            loading: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_idle(Duration::from_secs(60))
                .build(),
            globals: RwLock::new(None),
            globals_loading: tokio::sync::Mutex::new(()),
            clock: AtomicU64::new(0),
            invalidated: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(Duration::from_secs(600))
                .build(),
            all_invalidated: AtomicU64::new(0),
        }
    }

    /// A fresh enough entry for `key`, if cached.
    fn cached(&self, key: &(i64, i64)) -> Option<Entry> {
        self.groups
            .get(key)
            .filter(|entry| entry.read_at.elapsed() < self.refresh * 2)
    }

    /// The group `chat_id` of bot `bot_instance_id`, or `None` if the bot does not protect it.
    pub async fn group(
        self: &Arc<Self>,
        bot_instance_id: i64,
        chat_id: i64,
    ) -> Result<Option<Arc<GroupView>>, StoreError> {
        let key = (bot_instance_id, chat_id);
        if let Some(known) = self.cached(&key) {
            if known.read_at.elapsed() >= self.refresh
                && self.reloading.entry(key).or_insert(()).is_fresh()
            {
                let directory = self.clone();
                tokio::spawn(
                    async move {
                    if let Err(error) = directory.load(key).await {
                        tracing::warn!(%error, chat = key.1, "cannot refresh a group; serving what is known");
                    }
                    directory.reloading.invalidate(&key);
                    }
                    .in_current_span(),
                );
            }
            return Ok(known.view);
        }
        let lock = self.loading.get_with(key, Default::default);
        let _loading = lock.lock().await;
        // Another load of this key may have ended while this one waited.
        if let Some(known) = self.cached(&key) {
            return Ok(known.view);
        }
        self.load(key).await
    }

    async fn load(&self, key: (i64, i64)) -> Result<Option<Arc<GroupView>>, StoreError> {
        let read_at = Instant::now();
        let began = self.clock.load(Ordering::Acquire);
        let view = match self.store.group_by_chat(key.0, key.1).await? {
            Some(group) => Some(Arc::new(self.view(group).await?)),
            None => None,
        };
        if self.unchanged_since(&key, began) {
            self.groups.insert(
                key,
                Entry {
                    view: view.clone(),
                    read_at,
                },
            );
            // An invalidation between the check and the insert must not leave the old read cached.
            if !self.unchanged_since(&key, began) {
                self.groups.invalidate(&key);
            }
        }
        Ok(view)
    }

    /// No invalidation of `key` (or of everything) since tick `began`.
    fn unchanged_since(&self, key: &(i64, i64), began: u64) -> bool {
        self.all_invalidated.load(Ordering::Acquire) <= began
            && self.invalidated.get(key).is_none_or(|tick| tick <= began)
    }

    /// Builds the view of a group row (channels, policy, texts).
    pub async fn view(&self, group: GroupRow) -> Result<GroupView, StoreError> {
        let channels = self.store.channels_of_group(group.id).await?;
        let globals = self.globals().await?;
        let policy = Policy::resolve(&globals.defaults, &group.policy.0)
            .or_else(|error| {
                tracing::warn!(group_id = group.id, %error, "the group's policy overrides are invalid; using the defaults");
                Policy::resolve(&globals.defaults, &Value::Null)
            })
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "the global policy defaults are invalid; using the built-in ones");
                Policy::default()
            })
            .for_chat(group.is_channel());
        Ok(GroupView {
            group,
            channels,
            policy,
            texts: globals.texts,
        })
    }

    /// Texts with overrides, for chats that are not protected groups (private chats).
    pub async fn texts(&self) -> Result<Arc<Texts>, StoreError> {
        Ok(self.globals().await?.texts)
    }

    /// The policy a group has before it has any of its own: the built-in defaults overlaid by the
    /// global ones (so a group not yet protected is answered in the global language), with texts.
    pub async fn defaults(&self) -> Result<(Policy, Arc<Texts>), StoreError> {
        let globals = self.globals().await?;
        let policy = Policy::resolve(&globals.defaults, &Value::Null).unwrap_or_else(|error| {
            tracing::warn!(%error, "the global policy defaults are invalid; using the built-in ones");
            Policy::default()
        });
        Ok((policy, globals.texts))
    }

    /// Forgets one group (this process changed it).
    pub fn invalidate(&self, bot_instance_id: i64, chat_id: i64) {
        let key = (bot_instance_id, chat_id);
        let tick = self.clock.fetch_add(1, Ordering::AcqRel) + 1;
        self.invalidated.insert(key, tick);
        self.groups.invalidate(&key);
    }

    /// Forgets everything (global defaults or texts changed).
    pub fn invalidate_all(&self) {
        let tick = self.clock.fetch_add(1, Ordering::AcqRel) + 1;
        self.all_invalidated.store(tick, Ordering::Release);
        self.groups.invalidate_all();
        *self.globals.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The globals if read within `refresh`.
    fn fresh_globals(&self) -> Option<Globals> {
        self.globals
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|g| g.read_at.elapsed() < self.refresh)
            .cloned()
    }

    async fn globals(&self) -> Result<Globals, StoreError> {
        if let Some(globals) = self.fresh_globals() {
            return Ok(globals);
        }
        let _loading = self.globals_loading.lock().await;
        if let Some(globals) = self.fresh_globals() {
            return Ok(globals);
        }
        let began = self.clock.load(Ordering::Acquire);
        let defaults = self
            .store
            .setting(DEFAULTS_KEY)
            .await?
            .unwrap_or(Value::Null);
        let overrides = self.store.settings_with_prefix(OVERRIDES_PREFIX).await?;
        let globals = Globals {
            defaults,
            texts: Arc::new(Texts::with_overrides(&overrides)),
            read_at: Instant::now(),
        };
        // Kept only if nothing was invalidated meanwhile (the read may predate the change).
        if self.all_invalidated.load(Ordering::Acquire) <= began {
            *self.globals.write().unwrap_or_else(|p| p.into_inner()) = Some(globals.clone());
        }
        Ok(globals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn directory(dir: &tempfile::TempDir) -> Directory {
        let store = crate::db::scratch_store(dir.path()).await;
        Directory::new(store, Duration::from_secs(60))
    }

    /// A load that began before an invalidation of its group is not cached; loads of other groups
    /// are (a bot's start checks every group's health, one invalidation each, while its updates
    /// load their groups), and an invalidation of everything spoils every load in flight.
    #[tokio::test]
    async fn an_invalidation_spoils_loads_of_its_own_group_only() {
        let dir = tempfile::tempdir().unwrap();
        let directory = directory(&dir).await;
        let (one, other) = ((1, -100), (1, -200));
        let began = directory.clock.load(Ordering::Acquire);
        directory.invalidate(one.0, one.1);
        assert!(!directory.unchanged_since(&one, began));
        assert!(directory.unchanged_since(&other, began));

        let later = directory.clock.load(Ordering::Acquire);
        assert!(directory.unchanged_since(&one, later));
        directory.invalidate_all();
        assert!(!directory.unchanged_since(&one, later));
        assert!(!directory.unchanged_since(&other, later));
    }

    /// What a load read is served until invalidated: a chat the bot does not protect is answered
    /// from the cache, and read again once invalidated.
    #[tokio::test]
    async fn a_load_is_cached_until_its_group_is_invalidated() {
        let dir = tempfile::tempdir().unwrap();
        let directory = Arc::new(directory(&dir).await);
        assert!(directory.group(1, -100).await.unwrap().is_none());
        assert!(directory.cached(&(1, -100)).is_some());
        directory.invalidate(1, -200);
        assert!(directory.cached(&(1, -100)).is_some());
        directory.invalidate(1, -100);
        assert!(directory.cached(&(1, -100)).is_none());
        assert!(directory.group(1, -100).await.unwrap().is_none());
        assert!(directory.cached(&(1, -100)).is_some());
    }
}
