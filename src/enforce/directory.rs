//! What a bot needs to know about a chat on every update, without a database round trip: the group
//! row, its channels and its resolved policy and texts. An entry older than `refresh` is reloaded in
//! the background while it keeps serving, so a busy group never waits on the database; one older
//! than twice that (a quiet group) is reloaded before use. Either way a policy changed by the API or
//! another process applies within about `refresh`; changes made by this process drop the entry at
//! once ([`Directory::invalidate`]).

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
    globals: RwLock<Option<Globals>>,
    /// Bumped by every invalidation: a load that began before one does not cache what it read,
    /// which may predate the change (a background reload racing an API change).
    generation: AtomicU64,
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
            globals: RwLock::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// The group `chat_id` of bot `bot_instance_id`, or `None` if the bot does not protect it.
    pub async fn group(
        self: &Arc<Self>,
        bot_instance_id: i64,
        chat_id: i64,
    ) -> Result<Option<Arc<GroupView>>, StoreError> {
        let key = (bot_instance_id, chat_id);
        if let Some(known) = self
            .groups
            .get(&key)
            .filter(|entry| entry.read_at.elapsed() < self.refresh * 2)
        {
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
        self.load(key).await
    }

    async fn load(&self, key: (i64, i64)) -> Result<Option<Arc<GroupView>>, StoreError> {
        let read_at = Instant::now();
        let generation = self.generation.load(Ordering::Acquire);
        let view = match self.store.group_by_chat(key.0, key.1).await? {
            Some(group) => Some(Arc::new(self.view(group).await?)),
            None => None,
        };
        if self.generation.load(Ordering::Acquire) == generation {
            self.groups.insert(
                key,
                Entry {
                    view: view.clone(),
                    read_at,
                },
            );
        }
        Ok(view)
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
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.groups.invalidate(&(bot_instance_id, chat_id));
    }

    /// Forgets everything (global defaults or texts changed).
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.groups.invalidate_all();
        *self.globals.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    async fn globals(&self) -> Result<Globals, StoreError> {
        if let Some(globals) = self
            .globals
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|g| g.read_at.elapsed() < self.refresh)
        {
            return Ok(globals.clone());
        }
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
        *self.globals.write().unwrap_or_else(|p| p.into_inner()) = Some(globals.clone());
        Ok(globals)
    }
}
