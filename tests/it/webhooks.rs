//! Webhook mode (`telegram.mode = webhook`) end to end: real `nezuko serve` processes, the
//! sandbox's real webhook delivery (it posts each update to the URL `setWebhook` gave, with the
//! secret header, and retries until answered 2xx, as Telegram does), real SQLite and PostgreSQL.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nezuko::domain::DesiredState;
use nezuko::vault::{EncryptionKey, Vault};
use nezuko_sandbox::control::SandboxBot;
use nezuko_sandbox::faults::{Fault, FaultKind};
use nezuko_sandbox::model::{Account, AdminRights, ChatKind, Status};
use nezuko_sandbox::{RunningSandbox, Sandbox, SandboxConfig};
use serde_json::{Value, json};

use crate::enforce::insert_bot;
use crate::operator::{Operator, Serving};
use crate::support::TestDb;
use crate::support::wait::{elapse, quiet_period};

const PATIENCE: Duration = Duration::from_secs(30);

/// Guarded groups (each requiring its own channel), one bot each, in the sandbox and a database.
struct World {
    sandbox: Sandbox,
    telegram: RunningSandbox,
    operator: Operator,
    db: TestDb,
    key: EncryptionKey,
    owner: Account,
    guards: Vec<Guard>,
}

struct Guard {
    bot: SandboxBot,
    /// Nezuko's id of the bot.
    id: i64,
    group: i64,
}

impl World {
    async fn new(db: TestDb, bots: usize) -> Self {
        let sandbox = Sandbox::new(SandboxConfig::default());
        let telegram = sandbox.spawn_local().await.unwrap();
        let key = EncryptionKey::generate();
        let vault = Vault::new(std::slice::from_ref(&key));
        let owner = sandbox.create_user("Owner", Some("owner"));
        let mut guards = Vec::new();
        for i in 0..bots {
            let bot = sandbox.create_bot(&format!("Guard {i}"), &format!("guard{i}_bot"));
            let group = sandbox.create_chat(ChatKind::Supergroup, &format!("Readers {i}"), None);
            let channel = sandbox.create_chat(
                ChatKind::Channel,
                &format!("News {i}"),
                Some(&format!("news{i}")),
            );
            for chat in [group, channel] {
                sandbox.set_member(chat, owner.id, Status::Creator).unwrap();
                sandbox
                    .promote(chat, bot.id, AdminRights::force_subscribe())
                    .unwrap();
            }
            let row = insert_bot(&db, &vault, &bot).await;
            guards.push(Guard {
                bot,
                id: row.id,
                group,
            });
        }
        Self {
            sandbox,
            telegram,
            operator: Operator::new(),
            db,
            key,
            owner,
            guards,
        }
    }

    /// Starts `nezuko serve --role ROLE` in `mode` on a port chosen here, its public URL that
    /// port's address.
    async fn serve(&self, role: &str, mode: &str) -> Serving {
        self.serve_behind(role, mode, None).await
    }

    /// [`World::serve`], with `public` (another node's address, as a load balancer in front of
    /// the nodes would be) as its public URL when given.
    async fn serve_behind(&self, role: &str, mode: &str, public: Option<&str>) -> Serving {
        // Every test here also runs the runners' look at their webhooks, once a second.
        self.serve_looking(role, mode, public, 1).await
    }

    /// [`World::serve_behind`], the runners looking at their webhooks every `look_s` seconds.
    async fn serve_looking(
        &self,
        role: &str,
        mode: &str,
        public: Option<&str>,
        look_s: u64,
    ) -> Serving {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let public = public.map_or_else(|| format!("http://{listen}"), str::to_string);
        let vars = [
            ("NEZUKO_TELEGRAM__API_URL", self.telegram.url().to_string()),
            ("NEZUKO_TELEGRAM__MODE", mode.to_string()),
            ("NEZUKO_SERVER__LISTEN", listen),
            ("NEZUKO_SERVER__PUBLIC_URL", public),
            ("DATABASE_URL", self.db.url.clone()),
            ("ENCRYPTION_KEY", self.key.expose().to_string()),
            ("BOT_OWNER_TELEGRAM_ID", self.owner.id.to_string()),
            ("NEZUKO_TELEGRAM__WEBHOOK_CHECK_S", look_s.to_string()),
        ];
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.operator.serve_as(role, &vars).await
    }

    /// Runs `nezuko ARGS` on the world's database; its standard output.
    async fn cli(&self, args: &[&str]) -> String {
        let vars = [
            ("NEZUKO_TELEGRAM__API_URL", self.telegram.url().to_string()),
            ("DATABASE_URL", self.db.url.clone()),
            ("ENCRYPTION_KEY", self.key.expose().to_string()),
        ];
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let done = self.operator.run(args, &vars).await;
        assert!(done.status.success(), "{args:?}: {}", done.stderr);
        done.stdout
    }

    /// `getWebhookInfo` as the bot would ask Telegram.
    async fn webhook_info(&self, guard: &Guard) -> Value {
        let url = format!(
            "{}/bot{}/getWebhookInfo",
            self.telegram.url(),
            guard.bot.token
        );
        let answer: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        answer["result"].clone()
    }

    /// Waits until each bot's webhook points at `base`.
    async fn wait_webhooks_at(&self, base: &str, guards: &[&Guard]) {
        let deadline = Instant::now() + PATIENCE;
        for guard in guards {
            let want = format!("{base}/telegram/{}", guard.id);
            while self.webhook_info(guard).await["url"] != want.as_str() {
                assert!(
                    Instant::now() < deadline,
                    "webhook of bot {} never set to {want}",
                    guard.id
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// The owner protects the guard's group with its channel; waits for the bot's answer (so
    /// the command went Telegram → webhook → inbox → runner → Telegram).
    async fn protect(&self, index: usize) {
        let guard = &self.guards[index];
        let sent = self
            .sandbox
            .send(
                guard.group,
                self.owner.id,
                &format!("/protect @news{index}"),
            )
            .unwrap();
        let bot = guard.bot.id;
        self.sandbox
            .wait_until(PATIENCE, "the answer to /protect", |s| {
                s.transcript(guard.group)
                    .into_iter()
                    .find(|m| m.from == bot && m.message_id > sent)
            })
            .await
            .unwrap();
    }

    /// `restrictChatMember` calls the bot of `guard` made for `user`.
    fn restricts(&self, guard: &Guard, user: i64) -> usize {
        self.sandbox
            .calls(Some(guard.bot.id), Some("restrictChatMember"))
            .iter()
            .filter(|c| c.ok && c.params["user_id"].as_i64() == Some(user))
            .count()
    }

    /// A user (not subscribed to the guard's channel) joins the group; returns the user.
    fn newcomer(&self, guard: &Guard, name: &str) -> i64 {
        let user = self.sandbox.create_user(name, None).id;
        self.sandbox.join(guard.group, user).unwrap();
        user
    }

    async fn wait_restricted(&self, guard: &Guard, user: i64) {
        self.sandbox
            .wait_until(PATIENCE, "the newcomer restricted", |s| {
                matches!(s.member(guard.group, user), Status::Restricted { .. }).then_some(())
            })
            .await
            .unwrap();
    }

    /// The bot's webhook secret, as stored (encrypted) by Nezuko.
    async fn secret(&self, guard: &Guard) -> String {
        let ciphertext = self
            .db
            .store
            .webhook_secret(guard.id)
            .await
            .unwrap()
            .unwrap();
        let plain = Vault::new(std::slice::from_ref(&self.key))
            .decrypt(&ciphertext)
            .unwrap();
        String::from_utf8(plain).unwrap()
    }

    /// Whether Nezuko's webhook inbox holds (or held: done) the bot's update `update_id`.
    async fn stored(&self, guard: &Guard, update_id: i64) -> bool {
        let sql =
            "SELECT count(*) FROM webhook_updates WHERE bot_instance_id = $1 AND update_id = $2";
        let (count,): (i64,) = match self.db.store.postgres_pool() {
            Some(pool) => sqlx::query_as(sql)
                .bind(guard.id)
                .bind(update_id)
                .fetch_one(pool)
                .await
                .unwrap(),
            None => {
                let pool = sqlx::SqlitePool::connect(&self.db.url).await.unwrap();
                let count = sqlx::query_as(sql)
                    .bind(guard.id)
                    .bind(update_id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                count
            }
        };
        count == 1
    }
}

impl World {
    /// Waits for an event of `kind` about the guard's bot whose payload `matches`.
    async fn wait_event(
        &self,
        guard: &Guard,
        kind: &str,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let events = self.db.store.events_after(0, 10_000).await.unwrap();
            let found = events.into_iter().find(|e| {
                e.kind == kind && e.bot_instance_id == Some(guard.id) && matches(&e.payload.0)
            });
            if let Some(event) = found {
                return event.payload.0;
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} event for bot {}",
                guard.id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the guard's bot to stop for good as `invalid token`.
    async fn wait_invalid_token(&self, guard: &Guard) {
        self.wait_event(guard, "bot_status", |p| {
            p["state"] == "stopped"
                && p["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("invalid token"))
        })
        .await;
    }

    /// Ends the test: the sandbox saw nothing against the Bot API's rules.
    async fn finish(self) {
        let violations = self.sandbox.violations();
        assert!(violations.is_empty(), "{violations:?}");
        self.db.finish().await;
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A message update from `user` in `chat`, as Telegram would post it.
fn message_update(update_id: i64, chat: i64, user: i64, message_id: i64) -> Value {
    json!({
        "update_id": update_id,
        "message": {
            "message_id": message_id,
            "date": 1_800_000_000,
            "chat": { "id": chat, "type": "supergroup", "title": "Readers 0" },
            "from": { "id": user, "is_bot": false, "first_name": "Mallory" },
            "text": "let me in",
        }
    })
}

async fn post(base: &str, bot: i64, secret: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/telegram/{bot}"))
        .json(body);
    if let Some(secret) = secret {
        request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
    }
    let answer = crate::api::answer(request.send().await.unwrap()).await;
    let path = format!("/telegram/{bot}");
    crate::api::contract::check(&reqwest::Method::POST, &path, &answer);
    (answer.status.as_u16(), answer.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_in_webhook_mode_is_served_through_its_webhook_refuses_a_wrong_secret_and_takes_a_retry_once()
 {
    let world = World::new(TestDb::sqlite().await, 1).await;
    let guard = &world.guards[0];
    let node = world.serve("all", "webhook").await;
    world.wait_webhooks_at(&node.base, &[guard]).await;
    // setWebhook carried the secret (Telegram sends it back: the deliveries are accepted) and
    // Nezuko's update kinds.
    let info = world.webhook_info(guard).await;
    let allowed: Vec<&str> = info["allowed_updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        allowed.contains(&"chat_member") && allowed.contains(&"message"),
        "{info}"
    );
    assert!(
        world
            .sandbox
            .calls(Some(guard.bot.id), Some("getUpdates"))
            .is_empty()
    );

    // Enforcement works through the webhook: a command, then a newcomer restricted.
    world.protect(0).await;
    let newcomer = world.newcomer(guard, "Newcomer");
    world.wait_restricted(guard, newcomer).await;
    assert_eq!(world.restricts(guard, newcomer), 1);

    // A wrong or missing secret: 401, nothing stored, nothing done.
    let mallory = world.sandbox.create_user("Mallory", None).id;
    world.sandbox.join(guard.group, mallory).unwrap();
    world.wait_restricted(guard, mallory).await;
    let restricted_before = world.restricts(guard, mallory);
    let forged = message_update(900_000, guard.group, mallory, 777_000);
    for secret in [Some("not-the-secret"), None] {
        let (status, body) = post(&node.base, guard.id, secret, &forged).await;
        assert_eq!(status, 401, "{body}");
    }
    let secret = world.secret(guard).await;
    let (status, _) = post(&node.base, guard.id + 1000, Some(&secret), &forged).await;
    assert_eq!(status, 401, "another bot's secret does not open this one");
    assert!(!world.stored(guard, 900_000).await, "nothing stored");

    // The right secret: taken once. Telegram retrying the same update_id (its 200 was lost) is
    // answered 200 and not handled again; nor is a third delivery after it was handled.
    let (status, body) = post(&node.base, guard.id, Some(&secret), &forged).await;
    assert_eq!(
        (status, body["duplicate"].as_bool()),
        (200, Some(false)),
        "{body}"
    );
    assert!(world.stored(guard, 900_000).await);
    let (status, body) = post(&node.base, guard.id, Some(&secret), &forged).await;
    assert_eq!(
        (status, body["duplicate"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    // Handled: the bot tried to delete the non-subscriber's message.
    world
        .sandbox
        .wait_until(PATIENCE, "the forged message handled", |s| {
            s.calls(Some(guard.bot.id), Some("deleteMessage"))
                .iter()
                .any(|c| c.params["message_id"].as_i64() == Some(777_000))
                .then_some(())
        })
        .await
        .unwrap();
    let (status, body) = post(&node.base, guard.id, Some(&secret), &forged).await;
    assert_eq!(
        (status, body["duplicate"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    // The third delivery was answered as a duplicate; had it been taken in after all, handling
    // it would delete the message again within milliseconds.
    quiet_period(
        Duration::from_secs(1),
        "a repeated delivery handled again deletes again",
    )
    .await;
    let deletes = world
        .sandbox
        .calls(Some(guard.bot.id), Some("deleteMessage"))
        .iter()
        .filter(|c| c.params["message_id"].as_i64() == Some(777_000))
        .count();
    assert_eq!(deletes, 1, "one update, handled once");
    assert!(world.restricts(guard, mallory) >= restricted_before);
    // A long update (a message quoting another, both long) is taken, not refused as too large:
    // Telegram would retry a refused one for a day, holding up its chat.
    let mut long = message_update(900_001, guard.group, mallory, 777_001);
    long["message"]["text"] = json!("x".repeat(80_000));
    let (status, body) = post(&node.base, guard.id, Some(&secret), &long).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        &node.base,
        guard.id,
        Some(&secret),
        &json!({"no": "update"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Disabling the bot deletes its webhook; enabling sets it again.
    world
        .db
        .store
        .set_desired_state(guard.id, DesiredState::Disabled)
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while world.webhook_info(guard).await["url"] != "" {
        assert!(
            Instant::now() < deadline,
            "the webhook of a disabled bot stayed set"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    world
        .db
        .store
        .set_desired_state(guard.id, DesiredState::Enabled)
        .await
        .unwrap();
    world.wait_webhooks_at(&node.base, &[guard]).await;

    // Back to polling: a restart with the other mode is all it takes (the webhook is deleted
    // by the runner, which then polls), and the bot still enforces.
    let (status, _) = node.terminate().await;
    assert!(status.success());
    let node = world.serve("all", "polling").await;
    world
        .sandbox
        .wait_until(PATIENCE, "the bot polling", |s| {
            s.is_polling(guard.bot.id).then_some(())
        })
        .await
        .unwrap();
    assert_eq!(world.webhook_info(guard).await["url"], "");
    let later = world.newcomer(guard, "Later");
    world.wait_restricted(guard, later).await;
    assert_eq!(world.restricts(guard, later), 1);
    let calls = world.sandbox.calls(None, None);
    assert!(
        calls.iter().all(|c| c.error_code != Some(409)),
        "no getUpdates met a webhook"
    );
    let (status, _) = node.terminate().await;
    assert!(status.success());

    // Back to webhooks, then every node stopped (a stop leaves the webhook for the next runner):
    // disabling the bot now, with no node to run it, still deletes its webhook.
    let node = world.serve("all", "webhook").await;
    world.wait_webhooks_at(&node.base, &[guard]).await;
    let (status, _) = node.terminate().await;
    assert!(status.success());
    assert_ne!(world.webhook_info(guard).await["url"], "");
    let disabled = world.cli(&["bot", "disable", &guard.id.to_string()]).await;
    assert!(disabled.contains("webhook deleted"), "{disabled}");
    assert_eq!(world.webhook_info(guard).await["url"], "");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_while_telegram_delivers_loses_no_update_and_acts_on_none_twice() {
    let world = World::new(TestDb::postgres().await, 4).await;
    let first = world.serve("all", "webhook").await;
    let second = world.serve("bots", "webhook").await;
    // Every bot's webhook points at the node that runs it.
    let deadline = Instant::now() + PATIENCE;
    let runner_of = loop {
        let runners = world.db.store.bot_runners().await.unwrap();
        let mut counts: HashMap<&String, usize> = HashMap::new();
        for node in runners.values() {
            *counts.entry(node).or_default() += 1;
        }
        if runners.len() == 4 && counts.len() == 2 && counts.values().all(|n| *n == 2) {
            break runners;
        }
        assert!(Instant::now() < deadline, "not spread: {runners:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let bases = [first.base.clone(), second.base.clone()];
    let deadline = Instant::now() + PATIENCE;
    for guard in &world.guards {
        loop {
            let url = world.webhook_info(guard).await["url"]
                .as_str()
                .unwrap()
                .to_string();
            if bases
                .iter()
                .any(|b| url == format!("{b}/telegram/{}", guard.id))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "webhook of {} not set: {url}",
                guard.id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for index in 0..world.guards.len() {
        world.protect(index).await;
    }
    // The second node's bots: their webhooks point at it.
    let second_pid = i64::from(second.child.id().unwrap());
    let second_node = world
        .db
        .store
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.pid == second_pid)
        .unwrap()
        .id;
    let victims: Vec<&Guard> = world
        .guards
        .iter()
        .filter(|g| runner_of[&g.id] == second_node)
        .collect();
    assert_eq!(victims.len(), 2);

    // Newcomers keep joining every group while the second node is paused, then killed: the
    // deliveries it had taken in hang and are cut mid-request, later ones are refused, and
    // Telegram retries them until the bots' new runner has set their webhooks to itself.
    let mut joined: Vec<(usize, i64)> = Vec::new();
    let mut killed = None;
    let mut failed_deliveries = 0;
    let mut second = Some(second);
    for round in 0..80 {
        for (index, guard) in world.guards.iter().enumerate() {
            joined.push((index, world.newcomer(guard, &format!("N{round}-{index}"))));
        }
        if round == 20 {
            let pid = second.as_ref().unwrap().child.id().unwrap().to_string();
            let paused = std::process::Command::new("kill")
                .args(["-STOP", &pid])
                .status();
            assert!(paused.unwrap().success());
        }
        if round == 30 {
            second.take().unwrap().kill().await;
            killed = Some(Instant::now());
        }
        if round > 20 {
            for victim in &victims {
                if world.webhook_info(victim).await["last_error_message"].is_string() {
                    failed_deliveries += 1;
                }
            }
        }
        elapse(
            Duration::from_millis(100),
            "newcomers keep joining, ten rounds a second",
        )
        .await;
    }
    let killed = killed.unwrap();
    world.wait_webhooks_at(&first.base, &victims).await;
    eprintln!("webhooks moved {:?} after the SIGKILL", killed.elapsed());
    assert!(
        failed_deliveries > 0,
        "deliveries to the dead node failed and were retried"
    );
    for (index, user) in &joined {
        world.wait_restricted(&world.guards[*index], *user).await;
    }
    let doubled: Vec<_> = joined
        .iter()
        .filter(|(index, user)| world.restricts(&world.guards[*index], *user) != 1)
        .collect();
    assert!(doubled.is_empty(), "acted on twice: {doubled:?}");
    let (status, _) = first.terminate().await;
    assert!(status.success());
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_taken_in_by_one_node_is_handled_at_once_by_the_node_running_its_bot() {
    let world = World::new(TestDb::postgres().await, 3).await;
    // Telegram reaches only the front node (as through a load balancer that picked it), which
    // runs no bot; the other node runs them all.
    let front = world.serve("api", "webhook").await;
    let runner = world
        .serve_behind("bots", "webhook", Some(&front.base))
        .await;
    let guards: Vec<&Guard> = world.guards.iter().collect();
    world.wait_webhooks_at(&front.base, &guards).await;
    for index in 0..world.guards.len() {
        world.protect(index).await;
    }
    for (index, guard) in world.guards.iter().enumerate() {
        let joined = Instant::now();
        let newcomer = world.newcomer(guard, &format!("Newcomer {index}"));
        world.wait_restricted(guard, newcomer).await;
        // Told through PostgreSQL's NOTIFY, not found by the runner's 10 s look at its inbox.
        assert!(
            joined.elapsed() < Duration::from_secs(5),
            "restricted {:?} after joining",
            joined.elapsed()
        );
        assert_eq!(world.restricts(guard, newcomer), 1);
    }
    for node in [runner, front] {
        let (status, _) = node.terminate().await;
        assert!(status.success());
    }
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_telegram_cannot_reach_is_reported_one_changed_by_hand_is_set_again_and_a_revoked_token_stops_the_bot()
 {
    let world = World::new(TestDb::sqlite().await, 1).await;
    let guard = &world.guards[0];
    // The public URL leads nowhere (a proxy not set up yet): nothing listens on that port.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let node = world.serve_behind("all", "webhook", Some(&nowhere)).await;
    world.wait_webhooks_at(&nowhere, &[guard]).await;
    world.newcomer(guard, "Lost");
    let reported = world
        .wait_event(guard, "activity", |p| p["action"] == "webhook_error")
        .await;
    assert!(
        reported["error"]
            .as_str()
            .unwrap()
            .contains("Connection failed"),
        "{reported}"
    );
    assert!(
        reported["pending_update_count"].as_u64().unwrap() >= 1,
        "{reported}"
    );

    // Someone removes the webhook by hand (another tool holding the token): the runner notices,
    // restarts the bot, and the restart sets the webhook again.
    let url = format!(
        "{}/bot{}/deleteWebhook",
        world.telegram.url(),
        guard.bot.token
    );
    let deleted: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    assert_eq!(deleted["ok"], true, "{deleted}");
    let restarted = world
        .wait_event(guard, "bot_status", |p| {
            p["state"] == "backoff"
                && p["reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("outside Nezuko")
        })
        .await;
    assert!(
        restarted["reason"].as_str().unwrap().contains("removed"),
        "{restarted}"
    );
    world.wait_webhooks_at(&nowhere, &[guard]).await;

    // A token revoked while no update arrives is seen by the same look: the bot stops for good.
    world.sandbox.revoke_token(guard.bot.id).unwrap();
    world.wait_invalid_token(guard).await;

    let (status, log) = node.terminate().await;
    assert!(status.success());
    assert!(
        log.iter()
            .any(|l| l.contains("Telegram cannot deliver this bot's updates to its webhook")),
        "{log:#?}"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_while_a_delivered_update_is_handled_stops_the_bot_and_the_update_waits_for_its_next_start()
 {
    let world = World::new(TestDb::sqlite().await, 1).await;
    let guard = &world.guards[0];
    // The runner looks at its webhook only every 10 minutes here: no poll and no look meets the
    // revoked token, only the update's own call.
    let node = world.serve_looking("all", "webhook", None, 600).await;
    world.wait_webhooks_at(&node.base, &[guard]).await;
    world.protect(0).await;
    // The newcomer's membership check is on its way when the owner revokes the token.
    let taken = world.sandbox.faults_taken();
    world.sandbox.inject_fault(Fault {
        bot: Some(guard.bot.id),
        method: Some("getChatMember".into()),
        kind: FaultKind::Delay { ms: 1_500 },
        times: Some(1),
    });
    let newcomer = world.newcomer(guard, "Ivo");
    world
        .sandbox
        .wait_until(PATIENCE, "the check reached Telegram", |s| {
            (s.faults_taken() > taken).then_some(())
        })
        .await
        .unwrap();
    world.sandbox.revoke_token(guard.bot.id).unwrap();
    world.wait_invalid_token(guard).await;
    assert_eq!(world.restricts(guard, newcomer), 0);

    // The token back and the bot started again: the delivered update, kept, is handled then.
    world.sandbox.restore_token(guard.bot.id).unwrap();
    world.db.store.request_bot_start(guard.id).await.unwrap();
    world.wait_restricted(guard, newcomer).await;
    assert_eq!(world.restricts(guard, newcomer), 1);
    let (status, log) = node.terminate().await;
    assert!(status.success());
    assert!(
        log.iter()
            .any(|l| l.contains("Telegram refused the bot's token while it handled updates")),
        "{log:#?}"
    );
    world.finish().await;
}
