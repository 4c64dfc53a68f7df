//! Force-subscribe enforcement: what each bot does in the groups it protects.
//!
//! [`Enforcer`] is the fleet's [`UpdateHandler`]. One instance serves every bot of the process, so the
//! membership cache, rate limiter, record writer and timer runner are shared; per bot it keeps only
//! the bot's [`Calls`] (its limited, recorded way to Telegram) and identity.
//!
//! ```text
//! update ─► route ─┬─ group message ──► commands (/protect …) or flows::on_message
//!                  ├─ new members ────► flows::on_join
//!                  ├─ group upgraded ─► flows::on_migration
//!                  ├─ callback ───────► callbacks (I have joined, menus)
//!                  ├─ chat_member ────► channel: cache + flows::channel; group: flows::members
//!                  └─ my_chat_member ─► health (bot added, promoted, demoted, removed)
//! ```
//! Every step gets one [`context::Turn`] (and in a protected group a [`context::GroupTurn`]).
//! Files: `policy` (what a group wants), `texts` (what is said), `membership` + `shared_cache`
//! (is a user subscribed), `standing` (what Telegram says a member is now), `limiter` + `calls`
//! (how Telegram is called), `deadline` (the only way to send an `until_date`), `records` (logs),
//! `inbox` (where slow updates are parked),
//! `directory` (group lookups), `protect` (what `/protect` and the API share), `say` (messages in a chat and their durable deletion),
//! `actions` (restrict, kick, warn, lift), `flows`, `callbacks`, `commands`, `settings_menu`,
//! `health`, `timers`. Shared helpers sit below the feature files that use them: no two feature
//! files import each other (`grep -n "use super::" src/enforce/*.rs` shows it). What reaches back
//! up is this file's [`Shared`] state, which every step is given, and its warning queue, whose
//! batches keep the turn they were queued in: a parent and the state it owns, not a loop of
//! helpers.

mod actions;
mod callbacks;
mod calls;
mod commands;
mod context;
mod deadline;
mod directory;
mod flows;
mod health;
mod inbox;
pub mod join_requests;
pub mod limiter;
mod membership;
pub mod policy;
mod progress;
pub mod protect;
mod records;
mod say;
mod settings_menu;
mod shared_cache;
mod standing;
pub mod texts;
mod timers;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use teloxide::types::{MessageKind, Update, UpdateKind};
use tracing::Instrument;

pub use self::calls::Calls;
use self::context::Turn;
pub use self::directory::GroupView;
pub use self::health::Checked;
pub use self::limiter::Limits;
pub use self::membership::CacheTtl;
use self::membership::{Checker, MembershipCache};
use self::records::Records;
use self::shared_cache::SharedCache;
use crate::db::Store;
use crate::events::Publisher;
use crate::telegram::{BotContext, BotIdentity, UpdateHandler};

/// How enforcement runs (from the `[enforce]` settings).
#[derive(Debug, Clone)]
pub struct EnforceOptions {
    pub cache_ttl: CacheTtl,
    /// How long a group's policy and channels are trusted before being re-read.
    pub policy_refresh: Duration,
    /// How long a group's administrator list is trusted.
    pub admin_ttl: Duration,
    /// Retries of a membership check Telegram could not answer, and the pause between them.
    pub check_retries: u32,
    pub check_retry_delay: Duration,
    pub limits: Limits,
    /// How often due timers are looked for.
    pub timer_poll: Duration,
    /// How often every protected group's permissions are checked again.
    pub health_interval: Duration,
    /// `REDIS_URL`: the shared membership cache tier.
    pub redis_url: Option<String>,
    /// Prefix of the Redis keys (processes sharing answers use the same one).
    pub redis_namespace: String,
    /// Where the Mini App check page is served (`server.public_url`, when it is HTTPS: Telegram
    /// opens Mini Apps over HTTPS only); `None`: guard-bot queries fall back to
    /// `join_query_fallback`.
    pub check_page: Option<String>,
}

impl Default for EnforceOptions {
    fn default() -> Self {
        Self {
            cache_ttl: CacheTtl {
                positive: Duration::from_secs(600),
                negative: Duration::from_secs(60),
            },
            policy_refresh: Duration::from_secs(5),
            admin_ttl: Duration::from_secs(300),
            check_retries: 2,
            check_retry_delay: Duration::from_millis(200),
            limits: Limits::default(),
            timer_poll: Duration::from_millis(500),
            health_interval: Duration::from_secs(3600),
            redis_url: None,
            redis_namespace: "nezuko".into(),
            check_page: None,
        }
    }
}

/// One running bot as enforcement sees it.
pub struct BotRuntime {
    pub calls: Calls,
    pub me: Arc<BotIdentity>,
    pub events: Publisher,
    /// Periodic permission checks; aborted when the bot stops.
    health_task: tokio::task::JoinHandle<()>,
}

impl BotRuntime {
    pub fn id(&self) -> i64 {
        self.calls.bot_instance_id()
    }
}

/// Everything the bots of one process share.
pub struct Shared {
    /// Held while a chat is protected or enabled, so that two bots cannot both become its
    /// enforcer between one's check and its write.
    pub protecting: tokio::sync::Mutex<()>,
    pub store: Store,
    pub options: EnforceOptions,
    pub records: Records,
    pub checker: Checker,
    pub directory: Arc<directory::Directory>,
    limiter: Arc<limiter::Limiter>,
    admins: moka::sync::Cache<(i64, i64), Arc<HashSet<i64>>>,
    /// (bot, chat, user) seen joining and not seen leaving since: the service message and the
    /// `chat_member` update of one join are handled once, however far apart they arrive (a 429
    /// or an outage can hold one back for minutes); a leave clears the key, so a rejoin is a join.
    recent_joins: moka::sync::Cache<(i64, i64, i64), Arc<flows::JoinMark>>,
    /// (bot, chat, user) who left a group and have not come back, with when they left (Telegram's
    /// date, s): a warning being sent as they left does not name them (its record is stored only
    /// once it is sent), and a join from before the leave, handled late, is history.
    departed: moka::sync::Cache<(i64, i64, i64), i64>,
    /// (bot, chat, user) named by a warning on its way to Telegram, whose id is not stored yet: a
    /// press on it in that moment must not take the warning for one naming the presser alone.
    warning_in_flight: moka::sync::Cache<(i64, i64, i64), ()>,
    /// (bot, chat, user) seen in a group (joined or wrote) within a day, with when their last pass
    /// was recorded: the groups a member who leaves a channel is checked in at once (anyone else
    /// is caught by their next message), and the fold of repeated passes into one record.
    known_members: moka::sync::Cache<(i64, i64, i64), std::time::Instant>,
    /// (bot, group) → the channel the group discusses (`linked_chat_id`), whose automatic forwards
    /// and posts are never checked; read from `getChat`, kept like the administrator list.
    linked_channels: moka::sync::Cache<(i64, i64), Option<i64>>,
    /// (bot, group) whose linked channel was read again in the last minute because a message came
    /// from another channel.
    linked_rereads: moka::sync::Cache<(i64, i64), ()>,
    /// (bot, group, channel) told recently that messages sent as that channel are deleted: the
    /// group hears it once a day, not once a message.
    channel_notices: moka::sync::Cache<(i64, i64, i64), ()>,
    /// (bot, chat, user) warned recently: a burst of messages gets one warning.
    recently_warned: moka::sync::Cache<(i64, i64, i64), ()>,
    /// (bot, chat, user) → held while Nezuko reads a member's standing and acts on it, so two
    /// paths (a message and a channel's leave, a replayed update and the start's settling of an
    /// unnoted restriction) never both find the member free and both restrict.
    member_locks: moka::sync::Cache<(i64, i64, i64), Arc<tokio::sync::Mutex<()>>>,
    /// (bot, chat, warning's message id) → held while the warning is written again or deleted,
    /// holding what became of it (see `actions::warnings`).
    warning_locks:
        moka::sync::Cache<(i64, i64, i64), Arc<tokio::sync::Mutex<actions::WarningState>>>,
    warnings: actions::WarningQueue,
    /// (bot, chat) whose permissions were checked after a refusal in the last half minute.
    health_checked: moka::sync::Cache<(i64, i64), ()>,
    bots: RwLock<HashMap<i64, Arc<BotRuntime>>>,
}

/// The fleet's update handler for force-subscribe groups.
#[derive(Clone)]
pub struct Enforcer {
    shared: Arc<Shared>,
    timers: Arc<tokio::task::JoinHandle<()>>,
    /// Warms the membership cache at start, then forgets old answers hourly.
    warm: Arc<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Enforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcer").finish_non_exhaustive()
    }
}

impl Enforcer {
    /// Starts the shared parts (record writer, timer runner, Redis tier if configured).
    pub fn start(store: Store, options: EnforceOptions) -> anyhow::Result<Self> {
        let shared_tier = match &options.redis_url {
            Some(url) => Some(SharedCache::connect(url, &options.redis_namespace)?),
            None => None,
        };
        let records = Records::start(store.clone());
        let cache = Arc::new(MembershipCache::new(
            options.cache_ttl,
            shared_tier,
            records.clone(),
        ));
        let shared = Arc::new(Shared {
            checker: Checker {
                cache: cache.clone(),
                retries: options.check_retries,
                retry_delay: options.check_retry_delay,
            },
            directory: Arc::new(directory::Directory::new(
                store.clone(),
                options.policy_refresh,
            )),
            limiter: Arc::new(limiter::Limiter::new(options.limits)),
            admins: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(options.admin_ttl)
                .build(),
            recent_joins: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(15 * 60))
                .build(),
            departed: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(15 * 60))
                .build(),
            // Outlives the longest a send may take (retries included); a crash's leftovers expire.
            warning_in_flight: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(5 * 60))
                .build(),
            known_members: moka::sync::Cache::builder()
                .max_capacity(2_000_000)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            linked_channels: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(options.admin_ttl)
                .build(),
            linked_rereads: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            channel_notices: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
            protecting: tokio::sync::Mutex::new(()),
            member_locks: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            recently_warned: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            warning_locks: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            warnings: actions::WarningQueue::default(),
            health_checked: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            bots: RwLock::new(HashMap::new()),
            records,
            store,
            options,
        });
        let timers = Arc::new(tokio::spawn(timers::run(shared.clone())));
        let warm = Arc::new(tokio::spawn(keep_memberships(shared.store.clone(), cache)));
        Ok(Self {
            shared,
            timers,
            warm,
        })
    }

    /// Waits for the warnings on their way to be recorded (at most [`SENT_RECORDED_WAIT`]), then
    /// writes every queued record (call after the bots stopped, before the process exits).
    pub async fn flush(&self) {
        self.flush_within(SENT_RECORDED_WAIT).await;
    }

    /// [`Enforcer::flush`], waiting at most `sends` (at least 1 s) for warnings on their way: what
    /// is left of a stopping service's time once its bots have stopped.
    pub async fn flush_within(&self, sends: Duration) {
        // A warning sent as the service stops gets its id stored while the database is open: the
        // next start would otherwise find it owed and warn the members again.
        let sends = sends.max(Duration::from_secs(1));
        if tokio::time::timeout(sends, self.shared.warnings.all_recorded())
            .await
            .is_err()
        {
            tracing::warn!(
                wait_s = sends.as_secs(),
                "Telegram had not answered a warning's sendMessage by shutdown; if it was posted, its members are warned again at the next start"
            );
        }
        self.shared.records.flush(Duration::from_secs(5)).await;
    }

    /// (hits, misses) of the membership cache since start.
    pub fn cache_stats(&self) -> (u64, u64) {
        self.shared.checker.cache.stats()
    }

    /// Drops what this process remembers of a group (after the API changed it).
    pub fn invalidate_group(&self, bot_instance_id: i64, chat_id: i64) {
        self.shared.directory.invalidate(bot_instance_id, chat_id);
    }

    /// Drops every cached group view (after global defaults or texts changed).
    pub fn invalidate_all(&self) {
        self.shared.directory.invalidate_all();
    }

    /// Checks the permissions of every group of a running bot now.
    pub async fn check_health_now(&self, bot_instance_id: i64) -> anyhow::Result<()> {
        let runtime = self
            .shared
            .runtime(bot_instance_id)
            .ok_or_else(|| anyhow::anyhow!("bot {bot_instance_id} is not running here"))?;
        health::check_bot(&Turn::new(self.shared.clone(), runtime, None)).await
    }

    /// The Mini App check page of join request `id` (see [`join_requests::check_page`]).
    pub async fn check_join_page(
        &self,
        id: i64,
        init_data: &str,
    ) -> Result<join_requests::PageState, join_requests::PageError> {
        join_requests::check_page(&self.shared, id, init_data).await
    }

    /// An administrator's decision on join request `id` (see [`join_requests::decide_by_admin`]).
    pub async fn decide_join_request(
        &self,
        id: i64,
        approve: bool,
        admin: i64,
    ) -> Result<crate::db::JoinRequestRow, join_requests::DecideError> {
        join_requests::decide_by_admin(&self.shared, id, approve, admin).await
    }

    /// Enables protected chat `group_id` unless another bot enforces there (then that bot's id
    /// and username); see [`protect::enable`].
    pub async fn enable_group(
        &self,
        group_id: i64,
    ) -> Result<Result<crate::db::GroupRow, (i64, String)>, crate::db::StoreError> {
        protect::enable(&self.shared, group_id).await
    }

    /// Protects a supergroup or a channel through the API (see [`protect::by_admin`]).
    pub async fn protect_chat(
        &self,
        bot_instance_id: i64,
        chat: &str,
        channels: &[String],
    ) -> Result<protect::Protection, protect::ProtectError> {
        protect::by_admin(&self.shared, bot_instance_id, chat, channels).await
    }

    /// Checks one group's permissions now (after its channels changed through the API) and
    /// returns the stored result: `ok`, `degraded` with each fix, or `unknown` when the group's bot
    /// does not run in this process, so the check could not be made.
    pub async fn check_group_now(&self, group_id: i64) -> anyhow::Result<Checked> {
        health::check_by_id(&self.shared, group_id).await
    }
}

impl Drop for Enforcer {
    fn drop(&mut self) {
        // The last handle stops the timer runner and the membership keeper.
        if Arc::strong_count(&self.timers) == 1 {
            self.timers.abort();
            self.warm.abort();
        }
    }
}

/// How long `channel_members` keeps an answer: past every TTL, and long enough for an operator to
/// see what Nezuko last knew about someone.
const MEMBERSHIP_KEPT: Duration = Duration::from_secs(24 * 3600);

/// How long [`Enforcer::flush`] waits for warnings on their way to be recorded (the service itself
/// gives them what is left of its stop: `App::run`).
const SENT_RECORDED_WAIT: Duration = Duration::from_secs(3);

/// Warms the membership cache with what the last run learned, then deletes answers older than
/// [`MEMBERSHIP_KEPT`] every hour. A database that does not answer at start is asked again shortly
/// (the cache fills from Telegram meanwhile).
async fn keep_memberships(store: Store, cache: Arc<MembershipCache>) {
    let mut pause = Duration::from_secs(1);
    loop {
        match store.channel_members_since(cache.oldest_usable()).await {
            Ok(kept) => {
                let taken = cache.warm(&kept);
                tracing::info!(taken, "membership cache warmed with what the last run knew");
                break;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the kept memberships yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(60));
            }
        }
    }
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        let before = crate::db::now_ms() - MEMBERSHIP_KEPT.as_millis() as i64;
        if let Err(error) = store.forget_channel_members(before).await {
            tracing::debug!(%error, "cannot forget old memberships yet");
        }
    }
}

impl Shared {
    /// Waits for the member's lock (see `member_locks`); acting on the member is exclusive while
    /// the guard lives.
    pub async fn hold_member(
        &self,
        bot: i64,
        chat: i64,
        user: i64,
    ) -> tokio::sync::OwnedMutexGuard<()> {
        self.member_locks
            .get_with((bot, chat, user), || Arc::new(tokio::sync::Mutex::new(())))
            .lock_owned()
            .await
    }

    /// Waits for a warning's lock (see `warning_locks`); the guard holds what became of the
    /// warning (deleted, or whom it was last written to name).
    pub async fn hold_warning(
        &self,
        bot: i64,
        chat: i64,
        message_id: i64,
    ) -> tokio::sync::OwnedMutexGuard<actions::WarningState> {
        self.warning_locks
            .get_with((bot, chat, message_id), Default::default)
            .lock_owned()
            .await
    }

    pub fn runtime(&self, bot_instance_id: i64) -> Option<Arc<BotRuntime>> {
        self.bots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&bot_instance_id)
            .cloned()
    }

    pub fn running_bots(&self) -> Vec<i64> {
        self.bots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }
}

impl UpdateHandler for Enforcer {
    fn handle(
        &self,
        context: BotContext,
        update: Update,
    ) -> BoxFuture<'static, anyhow::Result<()>> {
        let shared = self.shared.clone();
        Box::pin(async move {
            // An update still in flight while its bot stops is handled like any other, with a
            // runtime built for it (no periodic task).
            let runtime = match shared.runtime(context.bot_instance_id) {
                Some(runtime) => runtime,
                None => Arc::new(BotRuntime {
                    calls: Calls::new(
                        context.bot.clone(),
                        context.bot_instance_id,
                        shared.limiter.clone(),
                        shared.records.clone(),
                        context.fence.clone(),
                        context.token.clone(),
                    ),
                    me: context.me.clone(),
                    events: context.events.clone(),
                    health_task: tokio::spawn(async {}),
                }),
            };
            route(shared, runtime, update, context.join_query).await
        })
    }

    fn inbox(&self, bot_instance_id: i64) -> Option<Arc<dyn crate::telegram::polling::Inbox>> {
        Some(Arc::new(inbox::StoredInbox {
            store: self.shared.store.clone(),
            records: self.shared.records.clone(),
            bot_instance_id,
        }))
    }

    fn stored(&self) -> BoxFuture<'static, ()> {
        let records = self.shared.records.clone();
        let mark = records.mark();
        Box::pin(async move { records.written(mark).await })
    }

    fn bot_started(&self, context: &BotContext) {
        let calls = Calls::new(
            context.bot.clone(),
            context.bot_instance_id,
            self.shared.limiter.clone(),
            self.shared.records.clone(),
            context.fence.clone(),
            context.token.clone(),
        );
        let id = context.bot_instance_id;
        // Owned by the runtime (aborted when the bot stops): first the warnings the bot owes from
        // before it (re)started, then the periodic permission checks. The first step is boxed so
        // its space is given back when it ends instead of staying in the task for the bot's life
        // (4 KB a bot, measured with heaptrack on `nezuko bench fleet --bots 10000`).
        let shared = self.shared.clone();
        let health_task = tokio::spawn(async move {
            match Box::pin(actions::resume_owed(shared.clone(), id)).await {
                Ok(0) => {}
                Ok(queued) => tracing::info!(bot_instance_id = id, queued, "owed warnings queued"),
                Err(error) => {
                    tracing::warn!(bot_instance_id = id, %error, "owed warnings could not be read")
                }
            }
            health::periodic(shared, id).await
        }
        .instrument(tracing::info_span!("bot", bot_instance_id = id)));
        let runtime = Arc::new(BotRuntime {
            calls,
            me: context.me.clone(),
            events: context.events.clone(),
            health_task,
        });
        let previous = self
            .shared
            .bots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, runtime);
        if let Some(previous) = previous {
            previous.health_task.abort();
        }
    }

    fn bot_stopped(&self, bot_instance_id: i64) {
        let removed = self
            .shared
            .bots
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&bot_instance_id);
        if let Some(runtime) = removed {
            runtime.health_task.abort();
            // Nothing more leaves for this runner: what it still had queued (warnings waiting for
            // a send slot) is owed in the records and the next runner sends it, not both.
            runtime.calls.close();
        }
        self.shared.warnings.drop_bot(bot_instance_id);
        self.shared.limiter.forget_bot(bot_instance_id);
    }
}

/// Each branch's future is boxed on its own (`Box::pin(…).await`): an async fn's future is as large
/// as its largest branch, and this one was 25,568 bytes while a message's branch needs 4,936 and a
/// `my_chat_member` 3,904. Every update in hand holds one (40,000 at once while 10,000 bots start,
/// `nezuko bench fleet --bots 10000`), so each now costs what its own branch needs.
async fn route(
    shared: Arc<Shared>,
    runtime: Arc<BotRuntime>,
    update: Update,
    join_query: Option<String>,
) -> anyhow::Result<()> {
    match update.kind {
        UpdateKind::Message(message) => {
            let turn = Turn::new(shared, runtime, Some(message.date.timestamp()));
            if message.chat.is_private() {
                return Box::pin(commands::private(&turn, &message)).await;
            }
            if !(message.chat.is_group() || message.chat.is_supergroup()) {
                return Ok(());
            }
            if let Some(members) = message.new_chat_members() {
                for user in members {
                    Box::pin(flows::on_join(&turn, &message.chat, user)).await?;
                }
                return Ok(());
            }
            if let Some(to) = message.migrate_to_chat_id() {
                return Box::pin(flows::on_migration(&turn, message.chat.id.0, to.0)).await;
            }
            if let Some(from) = message.migrate_from_chat_id() {
                return Box::pin(flows::on_migration(&turn, from.0, message.chat.id.0)).await;
            }
            // Leaves arrive as `chat_member` updates too, and other service messages (topics
            // opened, pins, …) are nobody's words to check.
            if !matches!(message.kind, MessageKind::Common(_)) {
                return Ok(());
            }
            if Box::pin(commands::group(&turn, &message)).await? {
                return Ok(());
            }
            Box::pin(flows::on_message(&turn, &message)).await
        }
        UpdateKind::CallbackQuery(query) => {
            Box::pin(callbacks::handle(&Turn::new(shared, runtime, None), &query)).await
        }
        UpdateKind::ChatMember(change) => {
            let turn = Turn::new(shared, runtime, Some(change.date.timestamp()));
            Box::pin(flows::on_member_change(&turn, &change)).await
        }
        UpdateKind::ChatJoinRequest(request) => {
            let turn = Turn::new(shared, runtime, Some(request.date.timestamp()));
            Box::pin(join_requests::on_request(&turn, &request, join_query)).await
        }
        UpdateKind::MyChatMember(change) => {
            Box::pin(health::on_my_member(
                &Turn::new(shared, runtime, None),
                &change,
            ))
            .await
        }
        _ => Ok(()),
    }
}
