//! The supervised fleet against the sandbox and a real database: lifecycle through the database,
//! failures and the restart policy, graceful shutdown.

mod failures;
mod fan_out;
mod lifecycle;
mod shutdown;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use nezuko::actors::{Fleet, FleetOptions, RestartPolicy};
use nezuko::db::{BotRow, NewBot};
use nezuko::domain::{BotToken, DesiredState};
use nezuko::events::Event;
use nezuko::telegram::{BotContext, UpdateHandler};
use nezuko::vault::{EncryptionKey, Vault};
use nezuko_sandbox::control::SandboxBot;
use nezuko_sandbox::model::{ChatKind, Status};
use nezuko_sandbox::{RunningSandbox, Sandbox, SandboxConfig};
use teloxide::types::{Update, UpdateKind};
use tokio::sync::broadcast;

use crate::support::TestDb;

pub const DEADLINE: Duration = Duration::from_secs(15);

/// Records the text of every message it handles; panics on "panic", takes a while on "slow".
#[derive(Default)]
pub struct Recorder {
    /// Updates whose handling began (slow ones only).
    pub started: Arc<Mutex<Vec<u32>>>,
    pub handled: Arc<Mutex<Vec<(u32, String)>>>,
    /// While set, starting a bot panics: a fault of Nezuko's own, with no outside cause.
    pub crash_on_start: Arc<AtomicBool>,
}

impl UpdateHandler for Recorder {
    fn handle(&self, _: BotContext, update: Update) -> BoxFuture<'static, anyhow::Result<()>> {
        let text = match &update.kind {
            UpdateKind::Message(m) => m.text().unwrap_or_default().to_string(),
            _ => String::new(),
        };
        let id = update.id.0;
        if text == "panic" {
            panic!("the handler panics on purpose");
        }
        let handled = self.handled.clone();
        let started = self.started.clone();
        Box::pin(async move {
            if text.starts_with("slow") {
                started.lock().unwrap().push(id);
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
            handled.lock().unwrap().push((id, text));
            Ok(())
        })
    }

    fn bot_started(&self, _: &BotContext) {
        if self.crash_on_start.load(Ordering::SeqCst) {
            panic!("starting the bot panics on purpose");
        }
    }
}

/// A sandbox, a database, a vault and a fleet with a quick restart policy.
pub struct FleetWorld {
    pub db: TestDb,
    pub sandbox: Sandbox,
    pub running: RunningSandbox,
    pub vault: Vault,
    pub recorder: Arc<Recorder>,
    pub fleet: Option<Fleet>,
    pub events: broadcast::Receiver<Arc<Event>>,
    pub group: i64,
    pub user: i64,
}

pub fn quick_policy() -> RestartPolicy {
    RestartPolicy {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        stable_after: Duration::from_secs(30),
        max_failures: 4,
        window: Duration::from_secs(60),
        ..RestartPolicy::default()
    }
}

impl FleetWorld {
    pub async fn new(db: TestDb) -> Self {
        Self::with_policy(db, quick_policy()).await
    }

    pub async fn with_policy(db: TestDb, policy: RestartPolicy) -> Self {
        let sandbox = Sandbox::new(SandboxConfig::default());
        let running = sandbox.spawn_local().await.unwrap();
        let vault = Vault::new(&[EncryptionKey::generate()]);
        let recorder = Arc::new(Recorder::default());
        let group = sandbox.create_chat(ChatKind::Supergroup, "Readers", None);
        let user = sandbox.create_user("Uma", None).id;
        sandbox.join(group, user).unwrap();
        let mut world = Self {
            db,
            sandbox,
            running,
            vault,
            recorder,
            fleet: None,
            events: broadcast::channel(1).1,
            group,
            user,
        };
        world.start_fleet(policy).await;
        world
    }

    pub async fn start_fleet(&mut self, policy: RestartPolicy) {
        let options = FleetOptions {
            api_url: self.running.url(),
            http: nezuko::telegram::http_client(),
            handler: self.recorder.clone(),
            policy,
            poll_interval: Duration::from_millis(1000),
            full_interval: Duration::from_secs(30),
            event_capacity: 1024,
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
    }

    pub fn fleet(&self) -> &Fleet {
        self.fleet.as_ref().unwrap()
    }

    /// A sandbox bot stored as an enabled bot instance, and a member of the test group.
    pub async fn add_bot(&self, name: &str) -> (SandboxBot, BotRow) {
        self.add_bot_sealed_by(name, &self.vault.clone()).await
    }

    /// Like [`FleetWorld::add_bot`], with the token encrypted by `vault` (which may not be the fleet's).
    pub async fn add_bot_sealed_by(&self, name: &str, vault: &Vault) -> (SandboxBot, BotRow) {
        let bot = self
            .sandbox
            .create_bot(name, &format!("{}_bot", name.to_lowercase()));
        self.sandbox
            .set_member(self.group, bot.id, Status::Member)
            .unwrap();
        let token = BotToken::parse(&bot.token).unwrap();
        let row = self
            .db
            .store
            .insert_bot(&NewBot {
                telegram_bot_id: bot.id,
                username: bot.username.clone(),
                display_name: name.into(),
                token_ciphertext: vault.encrypt_token(&token),
                owner_telegram_id: None,
                desired_state: DesiredState::Enabled,
            })
            .await
            .unwrap();
        (bot, row)
    }

    /// Adds a bot and waits until it runs.
    pub async fn running_bot(&mut self, name: &str) -> (SandboxBot, BotRow) {
        let (bot, row) = self.add_bot(name).await;
        self.fleet().reconcile_all();
        self.wait_state(row.id, "running", DEADLINE).await;
        (bot, row)
    }

    /// Waits for a `bot_status` event of `row_id` in `state`, returning its payload.
    pub async fn wait_state(
        &mut self,
        row_id: i64,
        state: &str,
        within: Duration,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let Ok(received) = tokio::time::timeout_at(deadline, self.events.recv()).await else {
                // Say what did happen, so a failure here can be diagnosed from its message.
                let seen = self.stored_states(row_id).await;
                let calls: Vec<String> = self
                    .sandbox
                    .calls(None, None)
                    .iter()
                    .map(|c| format!("{}:{:?}", c.method, c.error_code))
                    .collect();
                panic!(
                    "bot {row_id} did not reach `{state}` within {within:?}; states: {seen:?}; calls: {calls:?}"
                );
            };
            let event = received.expect("the event stream stays open");
            if event.kind == "bot_status"
                && event.bot_instance_id == Some(row_id)
                && event.payload["state"] == state
            {
                assert!(event.id > 0, "events are stored before they are published");
                return event.payload.clone();
            }
        }
    }

    /// The states `row_id` went through, from the durable `events` table.
    pub async fn stored_states(&self, row_id: i64) -> Vec<String> {
        let events = self.db.store.events_after(0, 10_000).await.unwrap();
        events
            .into_iter()
            .filter(|e| e.kind == "bot_status" && e.bot_instance_id == Some(row_id))
            .map(|e| {
                e.payload.0["state"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    pub async fn finish(mut self) {
        if let Some(fleet) = self.fleet.take() {
            fleet.shutdown(Duration::from_secs(9)).await;
        }
        self.db.finish().await;
    }
}

/// Declares each listed `async fn NAME(world: FleetWorld)` as a test on SQLite and on PostgreSQL.
macro_rules! fleet_tests {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let world = super::super::FleetWorld::new($crate::support::TestDb::sqlite().await).await;
                    super::$name(world).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let world = super::super::FleetWorld::new($crate::support::TestDb::postgres().await).await;
                    super::$name(world).await;
                }
            )*
        }
    };
}
pub(crate) use fleet_tests;
