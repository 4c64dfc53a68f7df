//! Force-subscribe enforcement end to end: the fleet runs the real `Enforcer` against the sandbox and
//! a real database (every test on SQLite and on PostgreSQL). Each test ends by checking that the
//! sandbox saw no spec violation and no 429 the test did not inject itself.

mod bypass;
mod cache;
mod chat_kinds;
mod commands;
mod deadlines;
mod failures;
mod flows;
mod join_requests;
mod outages;
mod policies;
mod protected_channels;
mod records;
mod throughput;
mod truth;
mod wording;

use std::sync::Arc;
use std::time::Duration;

use nezuko::actors::{Fleet, FleetOptions};
use nezuko::db::{BotRow, NewBot, Verification};
use nezuko::domain::{BotToken, DesiredState};
use nezuko::enforce::{EnforceOptions, Enforcer};
use nezuko::events::Event;
use nezuko::vault::{EncryptionKey, Vault};
use nezuko_sandbox::control::{SandboxBot, TranscriptEntry};
use nezuko_sandbox::faults::{Fault, FaultKind};
use nezuko_sandbox::model::{Account, AdminRights, ChatKind, Status};
use nezuko_sandbox::{RunningSandbox, Sandbox, SandboxConfig};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::fleet::quick_policy;
use crate::support::TestDb;
use crate::support::wait::quiet_period;

pub const DEADLINE: Duration = Duration::from_secs(15);

/// Options that make timers and policy changes show up within a test's patience.
pub fn quick_options() -> EnforceOptions {
    EnforceOptions {
        policy_refresh: Duration::from_millis(200),
        check_retry_delay: Duration::from_millis(20),
        timer_poll: Duration::from_millis(50),
        ..EnforceOptions::default()
    }
}

/// A protected supergroup "Readers" requiring the public channel @news, guarded by one bot.
pub struct Guarded {
    pub db: TestDb,
    pub sandbox: Sandbox,
    pub running: RunningSandbox,
    pub vault: Vault,
    pub options: EnforceOptions,
    pub enforcer: Option<Enforcer>,
    pub fleet: Option<Fleet>,
    pub events: broadcast::Receiver<Arc<Event>>,
    pub bot: SandboxBot,
    pub row: BotRow,
    pub owner: Account,
    pub group: i64,
    pub channel: i64,
    /// 429s a test injected on purpose.
    pub injected_429s: u64,
}

impl Guarded {
    /// The world with the group already protected by `/protect @news`.
    pub async fn new(db: TestDb) -> Self {
        let world = Self::unprotected(db, quick_options()).await;
        world.protect("/protect @news").await;
        world
    }

    pub async fn unprotected(db: TestDb, options: EnforceOptions) -> Self {
        let sandbox = Sandbox::new(SandboxConfig::default());
        let running = sandbox.spawn_local().await.unwrap();
        let bot = sandbox.create_bot("Guard", "guard_bot");
        let owner = sandbox.create_user("Owner", Some("owner"));
        let group = sandbox.create_chat(ChatKind::Supergroup, "Readers", Some("readers"));
        let channel = sandbox.create_chat(ChatKind::Channel, "News", Some("news"));
        for chat in [group, channel] {
            sandbox.set_member(chat, owner.id, Status::Creator).unwrap();
            sandbox
                .promote(chat, bot.id, AdminRights::force_subscribe())
                .unwrap();
        }
        let vault = Vault::new(&[EncryptionKey::generate()]);
        let row = insert_bot(&db, &vault, &bot).await;
        let mut world = Self {
            db,
            sandbox,
            running,
            vault,
            options,
            enforcer: None,
            fleet: None,
            events: broadcast::channel(1).1,
            bot,
            row,
            owner,
            group,
            channel,
            injected_429s: 0,
        };
        world.start().await;
        world
    }

    /// Starts the enforcer and the fleet, and waits for the bot to poll.
    pub async fn start(&mut self) {
        let enforcer = Enforcer::start(self.db.store.clone(), self.options.clone()).unwrap();
        let options = FleetOptions {
            api_url: self.running.url(),
            http: nezuko::telegram::http_client(),
            handler: Arc::new(enforcer.clone()),
            policy: quick_policy(),
            poll_interval: Duration::from_millis(200),
            full_interval: Duration::from_secs(30),
            event_capacity: 4096,
            runs_bots: true,
            leases: None,
            delivery: nezuko::actors::Delivery::Polling,
            alerts: None,
        };
        let fleet = Fleet::start(self.db.store.clone(), self.vault.clone(), options)
            .await
            .unwrap();
        self.events = fleet.subscribe();
        self.fleet = Some(fleet);
        self.enforcer = Some(enforcer);
        self.sandbox
            .wait_polling(self.bot.id, DEADLINE)
            .await
            .unwrap();
    }

    /// Stops the fleet (in-flight updates finish) and the enforcer, as a process exit would.
    pub async fn stop(&mut self) {
        if let Some(fleet) = self.fleet.take() {
            fleet.shutdown(Duration::from_secs(9)).await;
        }
        if let Some(enforcer) = self.enforcer.take() {
            enforcer.flush().await;
        }
    }

    pub fn enforcer(&self) -> &Enforcer {
        self.enforcer.as_ref().unwrap()
    }

    /// The owner sends a command in the group and waits for the bot's answer (the first bot
    /// message after the command that is not a warning or an announcement).
    pub async fn protect(&self, command: &str) -> TranscriptEntry {
        self.settle().await;
        let sent = self
            .sandbox
            .send(self.group, self.owner.id, command)
            .unwrap();
        self.wait_bot_text(self.group, sent, "a reply to the command", |_| true)
            .await
    }

    /// Waits for a bot message after message `after` in `chat` whose text passes `accept`
    /// (warnings and permission announcements are skipped).
    pub async fn wait_bot_text(
        &self,
        chat: i64,
        after: i64,
        what: &str,
        accept: impl Fn(&str) -> bool,
    ) -> TranscriptEntry {
        let bot = self.bot.id;
        self.sandbox
            .wait_until(DEADLINE, what, |s| {
                s.transcript(chat).into_iter().find(|m| {
                    let text = m.text.as_deref().unwrap_or_default();
                    m.from == bot
                        && m.message_id > after
                        && !text.contains("I have joined")
                        && !text.starts_with("⚠ Administrators")
                        && accept(text)
                })
            })
            .await
            .unwrap()
    }

    /// Waits for a deleted message.
    pub async fn wait_deleted(&self, chat: i64, message_id: i64, what: &str) {
        self.sandbox
            .wait_until(DEADLINE, what, |s| {
                s.transcript(chat)
                    .into_iter()
                    .find(|m| m.message_id == message_id && m.deleted)
            })
            .await
            .unwrap();
    }

    /// Makes the sandbox fail the bot's calls of `method` with `kind`, `times` times (`None`: until
    /// the faults are cleared).
    pub fn fault(&self, method: &str, kind: FaultKind, times: Option<u32>) {
        self.sandbox.inject_fault(Fault {
            bot: Some(self.bot.id),
            method: Some(method.into()),
            kind,
            times,
        });
    }

    /// A user who is a member of the group (and of @news if `subscribed`).
    pub fn member(&self, name: &str, subscribed: bool) -> i64 {
        let user = self.sandbox.create_user(name, None).id;
        if subscribed {
            self.sandbox.join(self.channel, user).unwrap();
        }
        self.sandbox.join(self.group, user).unwrap();
        user
    }

    /// Another channel owned by the owner, with the bot as its administrator.
    pub fn channel(&self, title: &str, username: Option<&str>) -> i64 {
        self.chat(ChatKind::Channel, title, username)
    }

    /// Another group (or channel) of `kind` the owner created, with the bot as its administrator.
    pub fn chat(&self, kind: ChatKind, title: &str, username: Option<&str>) -> i64 {
        let chat = self.sandbox.create_chat(kind, title, username);
        self.sandbox
            .set_member(chat, self.owner.id, Status::Creator)
            .unwrap();
        self.sandbox
            .promote(chat, self.bot.id, AdminRights::force_subscribe())
            .unwrap();
        chat
    }

    /// A user who is not in the group yet.
    pub fn user(&self, name: &str) -> i64 {
        self.sandbox.create_user(name, None).id
    }

    /// Messages the bot sent in `chat` (deleted ones included).
    pub fn bot_messages(&self, chat: i64) -> Vec<TranscriptEntry> {
        self.sandbox
            .transcript(chat)
            .into_iter()
            .filter(|m| m.from == self.bot.id)
            .collect()
    }

    /// Waits for the bot's message number `index` (0-based) in `chat`.
    pub async fn wait_bot_message(&self, chat: i64, index: usize, what: &str) -> TranscriptEntry {
        let bot = self.bot.id;
        self.sandbox
            .wait_until(DEADLINE, what, |s| {
                s.transcript(chat)
                    .into_iter()
                    .filter(|m| m.from == bot)
                    .nth(index)
            })
            .await
            .unwrap()
    }

    pub async fn wait_status(
        &self,
        chat: i64,
        user: i64,
        what: &str,
        accept: impl Fn(&Status) -> bool,
    ) -> Status {
        self.sandbox
            .wait_until(DEADLINE, what, |s| {
                Some(s.member(chat, user)).filter(|st| accept(st))
            })
            .await
            .unwrap()
    }

    /// A newcomer `name`, not subscribed, is restricted and warned, and the warning expires (the
    /// group's `warning_ttl_s`); returns the member and the warning.
    pub async fn warned_until_it_expires(&self, name: &str) -> (i64, TranscriptEntry) {
        let before = self.bot_messages(self.group).len();
        let user = self.member(name, false);
        self.wait_restricted(user).await;
        let warning = self
            .wait_bot_message(self.group, before, "the warning")
            .await;
        self.wait_deleted(self.group, warning.message_id, "the warning expires")
            .await;
        (user, warning)
    }

    /// Waits until the sandbox's injected faults have acted on more than `taken` calls (a call held
    /// by a `Delay` has reached Telegram).
    pub async fn wait_fault_taken(&self, taken: u64) {
        self.sandbox
            .wait_until(DEADLINE, "the held call reached Telegram", |s| {
                (s.faults_taken() > taken).then_some(())
            })
            .await
            .unwrap();
    }

    /// How many events of `kind` about `user` are stored.
    pub async fn stored_events(&self, kind: &str, user: i64) -> usize {
        self.db
            .store
            .events_after(0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == kind && e.payload["user_id"] == user)
            .count()
    }

    pub async fn wait_restricted(&self, user: i64) {
        self.wait_status(self.group, user, "the member is restricted", |s| {
            matches!(s, Status::Restricted { .. })
        })
        .await;
    }

    pub async fn wait_free(&self, user: i64) {
        self.wait_status(self.group, user, "the member may speak again", |s| {
            s.can_send_messages()
        })
        .await;
    }

    /// Calls of `method` by the bot so far.
    pub fn calls(&self, method: &str) -> Vec<nezuko_sandbox::journal::CallRecord> {
        self.sandbox.calls(Some(self.bot.id), Some(method))
    }

    /// Waits for the bot's call number `index` (from 0) of `method`. The sandbox records a call
    /// once it is answered, after its effect: a test that saw the effect waits for the record.
    pub async fn wait_call(
        &self,
        method: &str,
        index: usize,
    ) -> nezuko_sandbox::journal::CallRecord {
        self.sandbox
            .wait_for_call(self.bot.id, method, index, DEADLINE)
            .await
            .unwrap()
    }

    /// Lets the bot work through what is pending: waits until it confirmed every update (an
    /// update is confirmed only once handled), then keeps a short quiet period, so that a negative
    /// check after it (the bot did *not* act) is not a race.
    pub async fn settle(&self) {
        let bot = self.bot.id;
        self.sandbox
            .wait_until(DEADLINE, "the bot confirmed every update", |s| {
                (s.pending_updates(bot) == 0).then_some(())
            })
            .await
            .unwrap();
        // What a handled update leaves to run after it (a warning waiting in the queue for its
        // send slot, a permission check after a refusal) reaches the sandbox within milliseconds
        // when nothing is wrong.
        quiet_period(
            Duration::from_millis(300),
            "work a handled update left running reaches Telegram",
        )
        .await;
    }

    pub fn acted_on(&self, user: i64) -> bool {
        ["restrictChatMember", "banChatMember", "deleteMessage"]
            .iter()
            .any(|m| {
                self.calls(m)
                    .iter()
                    .any(|c| c.params["user_id"].as_i64() == Some(user))
            })
    }

    /// The group's id in the store.
    pub async fn group_row(&self) -> nezuko::db::GroupRow {
        self.db
            .store
            .group_by_chat(self.row.id, self.group)
            .await
            .unwrap()
            .expect("the group is stored")
    }

    /// Replaces the group's policy overrides (as the API will) and makes the bot see them now.
    pub async fn set_policy(&self, policy: Value) {
        let group = self.group_row().await;
        self.db
            .store
            .set_group_policy(group.id, &policy)
            .await
            .unwrap();
        self.enforcer().invalidate_group(self.row.id, self.group);
    }

    /// Every verification written so far in the world's group.
    pub async fn verifications(&self) -> Vec<Verification> {
        let group = self.group_row().await;
        self.verifications_in(group.id).await
    }

    /// Every verification written so far in protected chat `group_id` (the store's id), oldest first.
    pub async fn verifications_in(&self, group_id: i64) -> Vec<Verification> {
        if let Some(enforcer) = &self.enforcer {
            enforcer.flush().await;
        }
        let mut rows = self
            .db
            .store
            .recent_verifications(group_id, 10_000)
            .await
            .unwrap();
        rows.reverse();
        rows
    }

    /// Waits until a verification of `user` with `outcome` is written.
    pub async fn wait_verification(&self, user: i64, outcome: &str) {
        self.wait_verifications(user, outcome, 1).await;
    }

    /// Waits until `count` verifications of `user` with `outcome` are written.
    pub async fn wait_verifications(&self, user: i64, outcome: &str, count: usize) {
        let group = self.group_row().await;
        self.wait_verifications_in(group.id, user, outcome, count)
            .await;
    }

    /// [`Guarded::wait_verifications`] in protected chat `group_id` (the store's id).
    pub async fn wait_verifications_in(
        &self,
        group_id: i64,
        user: i64,
        outcome: &str,
        count: usize,
    ) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let rows = self.verifications_in(group_id).await;
            let found = rows
                .iter()
                .filter(|v| v.user_id == user && v.outcome == outcome)
                .count();
            if found >= count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{found} of {count} `{outcome}` verifications of {user}: {rows:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Waits until `condition` holds, checking every 50 ms.
    pub async fn eventually(&self, what: &str, condition: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while !condition() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Waits for an event of `kind` matching `accept`.
    pub async fn wait_event(&mut self, kind: &str, accept: impl Fn(&Value) -> bool) -> Arc<Event> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let received = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no `{kind}` event arrived"));
            match received {
                Ok(event) if event.kind == kind && accept(&event.payload) => return event,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(error) => panic!("the event stream closed: {error}"),
            }
        }
    }

    /// The press of a button: its callback answer (`text`, `show_alert`).
    pub async fn press(&self, message_id: i64, user: i64, data: &str) -> Value {
        let id = self
            .sandbox
            .press_button(self.group, message_id, user, data)
            .unwrap();
        self.sandbox
            .wait_until(DEADLINE, "the press is answered", |s| {
                s.callback_answer(&id)
            })
            .await
            .unwrap()
    }

    /// Stops everything and checks the run was clean.
    pub async fn finish(mut self) {
        self.stop().await;
        let violations = self.sandbox.violations();
        assert!(violations.is_empty(), "spec violations: {violations:?}");
        let too_many = self.sandbox.counters().too_many_requests;
        assert_eq!(too_many, self.injected_429s, "429s the test did not inject");
        self.db.finish().await;
    }
}

/// Stores a sandbox bot as an enabled bot instance.
pub async fn insert_bot(db: &TestDb, vault: &Vault, bot: &SandboxBot) -> BotRow {
    db.store
        .insert_bot(&NewBot {
            telegram_bot_id: bot.id,
            username: bot.username.clone(),
            display_name: "Guard".into(),
            token_ciphertext: vault.encrypt_token(&BotToken::parse(&bot.token).unwrap()),
            owner_telegram_id: None,
            desired_state: DesiredState::Enabled,
        })
        .await
        .unwrap()
}

/// The callback data of the warning's "I have joined" button and the join buttons' URLs.
pub fn buttons(message: &TranscriptEntry) -> (String, Vec<String>) {
    let markup = message.reply_markup.clone().unwrap_or(Value::Null);
    let buttons: Vec<Value> = markup["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .collect();
    let data = buttons
        .iter()
        .find_map(|b| b["callback_data"].as_str())
        .unwrap_or_default()
        .to_string();
    let urls = buttons
        .iter()
        .filter_map(|b| b["url"].as_str().map(str::to_string))
        .collect();
    (data, urls)
}

/// Declares each `async fn NAME(world: Guarded)` as a test on SQLite and on PostgreSQL.
macro_rules! enforce_tests {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let world = super::super::Guarded::new($crate::support::TestDb::sqlite().await).await;
                    super::$name(world).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let world = super::super::Guarded::new($crate::support::TestDb::postgres().await).await;
                    super::$name(world).await;
                }
            )*
        }
    };
}
pub(crate) use enforce_tests;

/// Like [`enforce_tests`], for tests that build their own world from a database.
macro_rules! enforce_db_tests {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite_db {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::TestDb::sqlite().await).await;
                }
            )*
        }
        mod on_postgres_db {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::TestDb::postgres().await).await;
                }
            )*
        }
    };
}
pub(crate) use enforce_db_tests;
