//! Several `nezuko serve` nodes on one PostgreSQL database share the bots by lease: real
//! processes, real PostgreSQL, the sandbox as Telegram (which ends a second poller of one token
//! with 409, as Telegram does).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use nezuko::db::NewBot;
use nezuko::domain::{BotToken, DesiredState};
use nezuko::vault::{EncryptionKey, Vault};
use nezuko_sandbox::{RunningSandbox, Sandbox, SandboxConfig};

use crate::api::sign_in_at;
use crate::operator::{Operator, Serving};

const OWNER: i64 = 424242;
use crate::support::TestDb;
use crate::support::wait::{eventually, quiet_period};

/// `n` bots in the sandbox and in a fresh PostgreSQL database, and the nodes serving them.
struct Cluster {
    sandbox: Sandbox,
    telegram: RunningSandbox,
    operator: Operator,
    db: TestDb,
    key: String,
    /// Telegram id of each bot, by Nezuko's id.
    bots: HashMap<i64, i64>,
}

impl Cluster {
    async fn new(n: usize) -> Self {
        let sandbox = Sandbox::new(SandboxConfig::default());
        let telegram = sandbox.spawn_local().await.unwrap();
        let db = TestDb::postgres().await;
        let key = EncryptionKey::generate();
        let vault = Vault::new(std::slice::from_ref(&key));
        let mut bots = HashMap::new();
        for i in 0..n {
            let bot = sandbox.create_bot(&format!("Guard {i}"), &format!("guard{i}_bot"));
            let row = db
                .store
                .insert_bot(&NewBot {
                    telegram_bot_id: bot.id,
                    username: format!("guard{i}_bot"),
                    display_name: format!("Guard {i}"),
                    token_ciphertext: vault.encrypt_token(&BotToken::parse(&bot.token).unwrap()),
                    owner_telegram_id: None,
                    desired_state: DesiredState::Enabled,
                })
                .await
                .unwrap();
            bots.insert(row.id, bot.id);
        }
        Self {
            sandbox,
            telegram,
            operator: Operator::new(),
            db,
            key: key.expose().to_string(),
            bots,
        }
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("NEZUKO_TELEGRAM__API_URL", self.telegram.url().to_string()),
            ("DATABASE_URL", self.db.url.clone()),
            ("ENCRYPTION_KEY", self.key.clone()),
            ("BOT_OWNER_TELEGRAM_ID", OWNER.to_string()),
        ]
    }

    async fn serve(&self, role: &str) -> Serving {
        let vars = self.vars();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.operator.serve_as(role, &vars).await
    }

    /// Runs a `nezuko` command on the cluster's database; its standard output.
    async fn run(&self, args: &[&str]) -> String {
        let vars = self.vars();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let done = self.operator.run(args, &vars).await;
        assert!(done.status.success(), "{args:?}: {}", done.stderr);
        done.stdout
    }

    /// `GET path` on `serving`'s admin API, signed in as the owner.
    async fn api(&self, serving: &Serving, path: &str) -> serde_json::Value {
        let session = sign_in_at(&self.db.store, &serving.base, OWNER).await;
        let response = reqwest::Client::new()
            .get(format!("{}{path}", serving.base))
            .header("cookie", format!("nezuko_session={}", session.cookie))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.unwrap()
    }

    /// The node id (`nodes.id`) of a serving process, once it has written its row.
    async fn node_of(&self, serving: &Serving) -> String {
        let pid = i64::from(serving.child.id().unwrap());
        for _ in 0..100 {
            let nodes = self.db.store.nodes().await.unwrap();
            if let Some(node) = nodes.into_iter().find(|n| n.pid == pid) {
                return node.id;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("node of pid {pid} never registered");
    }

    /// Waits until every bot is leased, by exactly `nodes` nodes holding within one of an even
    /// share, and polling; returns each node's bots.
    async fn wait_spread(&self, nodes: usize) -> HashMap<String, Vec<i64>> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let runners = self.db.store.bot_runners().await.unwrap();
            let mut by_node: HashMap<String, Vec<i64>> = HashMap::new();
            for (bot, node) in &runners {
                by_node.entry(node.clone()).or_default().push(*bot);
            }
            let counts: Vec<usize> = by_node.values().map(Vec::len).collect();
            let even = counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0) <= 1;
            if runners.len() == self.bots.len()
                && by_node.len() == nodes
                && even
                && self.bots.values().all(|bot| self.sandbox.is_polling(*bot))
            {
                return by_node;
            }
            assert!(
                Instant::now() < deadline,
                "not spread over {nodes} nodes in 60 s: {counts:?} of {} bots",
                self.bots.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `getUpdates` calls Telegram ended with 409 (two pollers of one token), for any bot.
    fn conflicts(&self) -> usize {
        self.sandbox
            .calls(None, Some("getUpdates"))
            .iter()
            .filter(|c| c.error_code == Some(409))
            .count()
    }

    /// Times a bot was recorded as failed or in backoff.
    async fn failures(&self) -> i64 {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM events WHERE kind = 'bot_status' \
             AND payload->>'state' IN ('failed', 'backoff')",
        )
        .fetch_one(self.db.store.postgres_pool().unwrap())
        .await
        .unwrap();
        count
    }
}

/// Sends `SIG<name>` to process `pid`.
fn signal(name: &str, pid: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{name}"), pid])
        .status()
        .unwrap();
    assert!(sent.success());
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_a_hundred_bots_evenly_survive_a_sigkill_and_a_rolling_restart() {
    let cluster = Cluster::new(100).await;
    let mut nodes = vec![
        cluster.serve("all").await,
        cluster.serve("bots").await,
        cluster.serve("bots").await,
    ];
    let spread = cluster.wait_spread(3).await;
    // People see who runs what: the nodes with their bot counts, and each bot's node.
    let listed = cluster.run(&["nodes"]).await;
    for (node, bots) in &spread {
        let line = listed
            .lines()
            .find(|l| l.starts_with(node.as_str()))
            .unwrap_or_else(|| panic!("{node} not in {listed}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[5], bots.len().to_string(), "{listed}");
    }
    let listed = cluster.run(&["bot", "list"]).await;
    for (node, bots) in &spread {
        let shown = listed.lines().filter(|l| l.contains(node.as_str())).count();
        assert_eq!(shown, bots.len(), "{listed}");
    }
    let api_nodes = cluster.api(&nodes[0], "/api/v1/nodes").await;
    let counted: usize = api_nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["bots"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(counted, 100, "{api_nodes}");
    let api_bots = cluster.api(&nodes[0], "/api/v1/bots").await;
    for bot in api_bots["items"].as_array().unwrap() {
        let id = bot["id"].as_i64().unwrap();
        let node = bot["node"]["id"].as_str().unwrap();
        assert!(spread[node].contains(&id), "{bot}");
    }
    // Every bot is polled (above); two pollers of one token would meet Telegram's 409 many
    // times in this long.
    quiet_period(Duration::from_secs(3), "two pollers of one token meet").await;
    assert_eq!(cluster.conflicts(), 0, "every bot polled by one node");

    // SIGKILL one node: its bots run elsewhere within 15 s.
    let victim = nodes.remove(1);
    let victim_id = cluster.node_of(&victim).await;
    let moved = spread[&victim_id].clone();
    let killed_at = now_ms();
    let killed = Instant::now();
    victim.kill().await;
    // Taken over: leased by another node, and polled by it (the sandbox forgets a long poll
    // whose connection closed, as the victim's did).
    let deadline = killed + Duration::from_secs(30);
    loop {
        let runners = cluster.db.store.bot_runners().await.unwrap();
        let all_moved = moved.iter().all(|id| {
            runners.get(id).is_some_and(|node| *node != victim_id)
                && cluster.sandbox.is_polling(cluster.bots[id])
        });
        if all_moved {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the killed node's bots did not move"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = killed.elapsed();
    eprintln!(
        "{} bots ran elsewhere {took:?} after the SIGKILL",
        moved.len()
    );
    assert!(took < Duration::from_secs(15), "taken over in {took:?}");
    // Those polls began after the kill (the journal has a long poll once it has ended).
    for id in &moved {
        let bot = cluster.bots[id];
        cluster
            .sandbox
            .wait_until(
                Duration::from_secs(15),
                "a poll begun after the kill",
                |s| {
                    s.calls(Some(bot), Some("getUpdates"))
                        .iter()
                        .any(|c| c.at_ms > killed_at)
                        .then_some(())
                },
            )
            .await
            .unwrap();
    }
    cluster.wait_spread(2).await;
    // The feed says so: the node gone, its bots taken.
    let (gone,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM events WHERE kind = 'node' AND payload->>'change' = 'gone' AND payload->>'node' = $1")
            .bind(&victim_id)
            .fetch_one(cluster.db.store.postgres_pool().unwrap())
            .await
            .unwrap();
    assert_eq!(gone, 1, "one node-gone event");

    // A third node again, then a rolling restart of all three, one by one.
    nodes.push(cluster.serve("bots").await);
    cluster.wait_spread(3).await;
    for _ in 0..3 {
        let (status, _) = nodes.remove(0).terminate().await;
        assert!(status.success());
        nodes.push(cluster.serve("all").await);
        cluster.wait_spread(3).await;
    }
    assert_eq!(cluster.conflicts(), 0, "never two pollers at once");
    assert_eq!(
        cluster.failures().await,
        0,
        "no bot ever failed or backed off"
    );
    for node in nodes {
        let (status, _) = node.terminate().await;
        assert!(status.success());
    }
    cluster.db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_beyond_its_lease_sends_nothing_for_the_bots_that_moved_once_resumed() {
    let cluster = Cluster::new(6).await;
    let first = cluster.serve("all").await;
    let second = cluster.serve("bots").await;
    let spread = cluster.wait_spread(2).await;
    let paused_id = cluster.node_of(&second).await;
    let moved: Vec<i64> = spread[&paused_id].clone();
    let pid = second.child.id().unwrap().to_string();
    signal("STOP", &pid);
    let paused_at = now_ms();
    // The other node takes the bots once the leases expire.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runners = cluster.db.store.bot_runners().await.unwrap();
        if moved
            .iter()
            .all(|id| runners.get(id).is_some_and(|node| *node != paused_id))
            && moved.iter().all(|id| {
                cluster
                    .sandbox
                    .calls(Some(cluster.bots[id]), Some("getUpdates"))
                    .iter()
                    .any(|c| c.at_ms > paused_at && c.error_code.is_none())
            })
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the paused node's bots did not move"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A leased bot's long poll ends at Telegram before its fence does, so the paused node had no
    // poll open when the new runner began: no 409, not even for the poll it was in when paused.
    assert_eq!(cluster.conflicts(), 0, "a poll outlived the lease");
    // The new runner has a long poll open for each of them, which a poll of the resumed node
    // would end with 409.
    for id in &moved {
        cluster
            .sandbox
            .wait_polling(cluster.bots[id], Duration::from_secs(15))
            .await
            .unwrap();
    }
    let resumed_at = now_ms();
    signal("CONT", &pid);
    // Running again: its heartbeat, overdue after the pause, is written at once.
    eventually(
        "the resumed node's heartbeat",
        Duration::from_secs(15),
        async || {
            let nodes = cluster.db.store.nodes().await.unwrap();
            match nodes.iter().find(|n| n.id == paused_id) {
                Some(node) if node.heartbeat_at >= resumed_at => Ok(()),
                Some(node) => Err(format!("last heartbeat at {}", node.heartbeat_at)),
                None => Err(format!("no row among {nodes:?}")),
            }
        },
    )
    .await;
    // Once resumed it sends nothing for the bots that moved: a poll from it would end the new
    // runner's with 409, and would come as soon as its runners of them run again.
    quiet_period(
        Duration::from_secs(5),
        "the resumed node polls for a bot it lost",
    )
    .await;
    let conflicts: Vec<_> = cluster
        .sandbox
        .calls(None, None)
        .into_iter()
        .filter(|c| c.error_code == Some(409))
        .collect();
    assert!(conflicts.is_empty(), "two pollers met: {conflicts:#?}");
    // The bots it lost are still recorded as running (by their new runner), and they run.
    for id in &moved {
        let row = cluster.db.store.bot(*id).await.unwrap();
        assert_eq!(
            row.run_state.as_str(),
            "running",
            "bot {id}: {:?}",
            row.run_reason
        );
        cluster
            .sandbox
            .wait_polling(cluster.bots[id], Duration::from_secs(10))
            .await
            .unwrap();
    }
    assert_eq!(cluster.failures().await, 0);
    // Back in the database, the resumed node gets its share again.
    cluster.wait_spread(2).await;
    for node in [first, second] {
        let (status, _) = node.terminate().await;
        assert!(status.success());
    }
    cluster.db.finish().await;
}

/// Under load, through `nezuko bench failover`: three real nodes share a small world's bots; one is
/// killed with SIGKILL, a node takes its place, then every node is restarted in turn. The
/// sandbox's records: no update that called for an action went without one, no two pollers met,
/// no bot was ever failed or in backoff, and at most the kill's last moment was acted on twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_and_a_rolling_restart_under_load_lose_no_action_and_repeat_almost_none() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.json");
    // A fifth of the members not subscribed: most events call for an action.
    std::fs::write(
        &scenario,
        serde_json::json!({
            "name": "failover-test", "bots": 12, "groups": 48, "channels": 6,
            "members_per_group": 20, "non_subscriber_share": 0.2, "rate": 40.0,
        })
        .to_string(),
    )
    .unwrap();
    let scenario = scenario.to_str().unwrap();
    let admin = crate::support::postgres_admin_url();
    let args = [
        "bench",
        "failover",
        "--postgres",
        &admin,
        "--scenario",
        scenario,
        "--rate",
        "40",
        "--seconds",
        "50",
        "--warmup",
        "5",
        "--kill-at",
        "5",
        "--settle",
        "30",
    ];
    let (report, stderr) = Operator::new()
        .bench_report(&args, Duration::from_secs(240))
        .await;
    assert!(report["moved"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["rolling_restarts"], 3, "{report}");
    assert!(report["actions_measured"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["takeover_p99_s"].as_f64().unwrap() < 15.0,
        "taken over within 15 s: {report}"
    );
    for field in ["lost", "conflicts_409", "bots_failed", "spec_violations"] {
        assert_eq!(report[field], 0, "{field} in {report}\n{stderr}");
    }
    // The handovers repeat nothing; the SIGKILL may repeat what the killed node acted on in the
    // moment before that action's records (and its progress) were written: tens of ms, a message
    // or two at this rate. Without the kept progress it was every update acted on since the
    // node's last poll.
    assert!(
        report["doubled"].as_u64().unwrap() <= 2,
        "doubled in {report}\n{stderr}"
    );
}

/// A bot an admin disables is let go; enabled again, it is taken at the next round (by any node,
/// this one too), not after the pause that keeps a node from taking back a bot it handed to
/// another to even the shares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_disabled_and_enabled_again_is_taken_at_once_not_after_the_handover_pause() {
    let cluster = Cluster::new(1).await;
    let node = cluster.serve("all").await;
    cluster.wait_spread(1).await;
    let (&id, &telegram_id) = cluster.bots.iter().next().unwrap();
    cluster.run(&["bot", "disable", &id.to_string()]).await;
    let held = || async {
        cluster
            .db
            .store
            .bot_runners()
            .await
            .unwrap()
            .contains_key(&id)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while held().await {
        assert!(
            Instant::now() < deadline,
            "the disabled bot was never let go"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let released = Instant::now();
    assert!(!cluster.sandbox.is_polling(telegram_id), "stopped polling");
    cluster.run(&["bot", "enable", &id.to_string()]).await;
    while !cluster.sandbox.is_polling(telegram_id) || !held().await {
        assert!(Instant::now() < deadline, "the enabled bot never ran again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The pause for bots handed over to even the shares is 5 s (`LET_GO_FOR`).
    assert!(
        released.elapsed() < Duration::from_secs(5),
        "taken back after {:?}: it waited out the handover pause",
        released.elapsed()
    );
    let (status, _) = node.terminate().await;
    assert!(status.success());
    cluster.db.finish().await;
}
