//! `nezuko bench failover`: several `nezuko serve` nodes on one PostgreSQL database share a
//! scenario's bots (the `verify` world's 100 by default) by lease while the sandbox (a process of
//! its own) plays its load. One node, the one running the most bots, is killed with SIGKILL; once
//! its bots run elsewhere a node takes its place, then every node is restarted in turn (SIGTERM,
//! a new process, its share back): a rolling deploy, all under load. Reported: how long each of the
//! killed node's bots took to run again elsewhere (from the kill to the new runner recording it
//! running), how long the rolling restart took, bots ever recorded failed or in backoff, and what
//! Telegram saw: updates that called for an action and still had none `--settle` s after the load
//! ended, messages deleted twice (an update acted on twice), and `getUpdates` calls ended with 409
//! (two pollers met).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use super::bench_fleet::Scratch;
use super::bench_verify::{Product, read_world, sandbox_command, stop, store_plan};
use crate::db::{Store, now_ms};
use crate::vault::{EncryptionKey, Vault};

/// The most nodes a run starts (each a `nezuko serve` process with its own database pool).
const MAX_NODES: usize = 16;

/// What to run.
#[derive(Debug, Clone)]
pub struct FailoverBench {
    /// The PostgreSQL server (a database is created and dropped): leases need PostgreSQL.
    pub postgres: String,
    pub nodes: usize,
    /// A built-in scenario or a scenario file: the world and its mix of traffic.
    pub scenario: String,
    /// Events per second the sandbox plays.
    pub rate: f64,
    /// Measured seconds: the load lasts this long, and the kill and the rolling restart must
    /// happen within it.
    pub seconds: f64,
    /// Seconds of load before measuring (the nodes share the bots out meanwhile).
    pub warmup_s: f64,
    /// Seconds into the measured run when a node is killed.
    pub kill_at: f64,
    /// After the takeover, restart every node in turn under the load.
    pub rolling: bool,
    /// Seconds after the load the bots have to act on what they were handed before an update
    /// still waiting counts as lost.
    pub settle_s: f64,
    /// Keep the scratch directory (each node's `serve.log`, the sandbox's log) and say where.
    pub keep: bool,
}

/// Runs the benchmark and prints its report. On `interrupted` (SIGINT/SIGTERM) the nodes and the
/// sandbox are killed and the scratch database dropped before returning an error.
pub async fn run(
    bench: FailoverBench,
    interrupted: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (2..=MAX_NODES).contains(&bench.nodes),
        "--nodes must be 2 to {MAX_NODES}: one is killed, and each is a process on this machine"
    );
    anyhow::ensure!(
        bench.rate > 0.0 && bench.rate <= nezuko_sandbox::driver::scenario::MAX_RATE,
        "--rate must be above 0 and at most {} events/s",
        nezuko_sandbox::driver::scenario::MAX_RATE
    );
    anyhow::ensure!(
        bench.seconds.is_finite() && bench.warmup_s.is_finite() && bench.warmup_s >= 0.0,
        "--seconds and --warmup must be numbers of seconds"
    );
    anyhow::ensure!(
        bench.kill_at > 0.0 && bench.kill_at < bench.seconds,
        "--kill-at must fall inside the measured --seconds"
    );
    anyhow::ensure!(
        bench.settle_s.is_finite() && bench.settle_s >= 0.0,
        "--settle must be a number of seconds, 0 or more"
    );
    let scratch = Scratch::create(Some(&bench.postgres)).await?;
    // Dropping the run kills its processes (each child is killed on drop).
    let outcome = tokio::select! {
        outcome = measure(&scratch, &bench) => outcome,
        () = interrupted => Err(anyhow::anyhow!(
            "interrupted: the nodes and the sandbox were stopped and the scratch database dropped"
        )),
    };
    scratch.drop_all().await;
    println!("{}", outcome?);
    Ok(())
}

/// Starts `nezuko serve` nodes on the scratch database, each with a data directory of its own.
struct Nodes {
    database_url: String,
    api_url: String,
    key: EncryptionKey,
    dir: PathBuf,
    started: usize,
}

impl Nodes {
    fn start(&mut self) -> anyhow::Result<Child> {
        let data = self.dir.join(format!("node{}", self.started));
        self.started += 1;
        std::fs::create_dir_all(&data)?;
        Product::new(&self.database_url, &self.api_url, self.key.clone(), data)?.start()
    }
}

/// What happened to the nodes while the load ran.
struct Operations {
    /// Seconds from the kill to each moved bot running again.
    takeover: Vec<f64>,
    /// The killed node's bots not running again within 60 s.
    stranded: usize,
    /// Seconds the rolling restart took, when there was one.
    rolling_s: Option<f64>,
    /// When the last operation ended (the report is only good if that was under load).
    ended: Instant,
    nodes: Vec<Child>,
}

async fn measure(scratch: &Scratch, bench: &FailoverBench) -> anyhow::Result<Value> {
    let dir = tempfile::Builder::new()
        .prefix("nezuko-failover-")
        .disable_cleanup(bench.keep)
        .tempdir()?;
    if bench.keep {
        eprintln!("keeping {}", dir.path().display());
    }
    let world_file = dir.path().join("world.json");
    let mut sandbox = sandbox_command(None, &bench.scenario, &world_file, dir.path())?;
    sandbox.args(["--duration", &bench.seconds.to_string()]);
    sandbox.args(["--warmup", &bench.warmup_s.to_string()]);
    sandbox.args(["--rate", &bench.rate.to_string()]);
    sandbox.args(["--settle", &bench.settle_s.to_string()]);
    let mut sandbox = sandbox.spawn().context("cannot start `nezuko sandbox`")?;
    let mut lines = BufReader::new(sandbox.stdout.take().context("the sandbox's output")?).lines();
    let plan = read_world(&world_file, &mut sandbox, dir.path()).await?;
    let key = EncryptionKey::generate();
    store_plan(
        &scratch.store,
        &Vault::new(std::slice::from_ref(&key)),
        &plan,
    )
    .await?;
    let mut starter = Nodes {
        database_url: scratch.url.clone(),
        api_url: plan.api_url.clone(),
        key,
        dir: dir.path().to_path_buf(),
        started: 0,
    };
    let mut nodes: Vec<Child> = Vec::new();
    for _ in 0..bench.nodes {
        nodes.push(starter.start()?);
    }
    eprintln!(
        "world: {} bots, {} groups; {} nodes; warming up for {} s once every bot polls",
        plan.bots.len(),
        plan.groups.len(),
        bench.nodes,
        bench.warmup_s
    );
    loop {
        let line = lines
            .next_line()
            .await?
            .context("the sandbox ended before measuring")?;
        let value: Value = serde_json::from_str(&line)
            .with_context(|| format!("the sandbox printed something unexpected: {line}"))?;
        if value["phase"] == "measuring" {
            break;
        }
    }
    let measuring = Instant::now();
    let measuring_ms = now_ms();
    eprintln!("measuring for {} s", bench.seconds);
    let report = async {
        let line = lines
            .next_line()
            .await?
            .context("the sandbox ended without a report")?;
        serde_json::from_str::<Value>(&line)
            .with_context(|| format!("the sandbox printed something unexpected: {line}"))
    };
    let operations = operate(
        &scratch.store,
        bench,
        plan.bots.len(),
        measuring,
        nodes,
        &mut starter,
    );
    let (operations, report) = tokio::join!(operations, report);
    let (operations, report) = (operations?, report?);
    for node in operations.nodes {
        stop(node).await?;
    }
    // The sandbox's report was read before; how its process ended adds nothing.
    let _ = sandbox.wait().await;
    anyhow::ensure!(
        operations.ended <= measuring + Duration::from_secs_f64(bench.seconds),
        "the load ended {:.1} s before the kill and the rolling restart did: give it more --seconds",
        (operations.ended - measuring).as_secs_f64() - bench.seconds
    );
    // The sandbox stops serving once it has reported: bots failing after that are not counted.
    let load_ended_ms = measuring_ms
        + ((bench.seconds + report["caught_up_s"].as_f64().unwrap_or(0.0)) * 1000.0) as i64;
    let mut times = operations.takeover;
    times.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        times
            .get(((times.len() as f64 - 1.0) * q).round() as usize)
            .map(|s| (s * 100.0).round() / 100.0)
    };
    Ok(json!({
        "bench": "failover",
        "scenario": bench.scenario,
        "nodes": bench.nodes,
        "bots": plan.bots.len(),
        "rate": bench.rate,
        "moved": times.len(),
        "not_moved": operations.stranded,
        "takeover_p50_s": quantile(0.5),
        "takeover_p99_s": quantile(0.99),
        "rolling_restarts": if operations.rolling_s.is_some() { bench.nodes } else { 0 },
        "rolling_s": operations.rolling_s.map(|s| (s * 10.0).round() / 10.0),
        "bots_failed": failures_between(&scratch.store, measuring_ms, load_ended_ms).await?,
        "lost": report["unanswered"],
        "lost_sample": report["unanswered_sample"],
        "doubled": report["deleted_twice"],
        "conflicts_409": report["conflicts_409"],
        "caught_up_s": report["caught_up_s"],
        "updates_confirmed": report["updates_confirmed"],
        "actions_measured": report["actions_measured"],
        "p50_ms": report["p50_ms"],
        "p99_ms": report["p99_ms"],
        "rate_limited": report["rate_limited"],
        "spec_violations": report["spec_violations"],
    }))
}

/// The measured run's operations: the kill at `kill_at`, the takeover, then (with `rolling`) a
/// node in the killed one's place and every node restarted in turn, each time waiting for the
/// bots to be spread evenly again.
async fn operate(
    store: &Store,
    bench: &FailoverBench,
    bots: usize,
    measuring: Instant,
    mut nodes: Vec<Child>,
    starter: &mut Nodes,
) -> anyhow::Result<Operations> {
    tokio::time::sleep_until((measuring + Duration::from_secs_f64(bench.kill_at)).into()).await;
    let (victim, moved) = busiest(store, &nodes).await?;
    let killed_at = now_ms();
    let mut child = nodes.remove(victim);
    child.start_kill()?;
    child.wait().await?;
    eprintln!("killed a node running {} bots", moved.len());
    let takeover = watch_takeover(store, &moved, killed_at).await?;
    let stranded = moved.len() - takeover.len();
    let mut rolling_s = None;
    if bench.rolling {
        nodes.push(starter.start()?);
        wait_spread(store, bots, nodes.len()).await?;
        let rolling = Instant::now();
        for _ in 0..nodes.len() {
            stop(nodes.remove(0)).await?;
            eprintln!("stopped a node (SIGTERM; SIGKILL after 15 s)");
            nodes.push(starter.start()?);
            wait_spread(store, bots, nodes.len()).await?;
        }
        rolling_s = Some(rolling.elapsed().as_secs_f64());
        eprintln!("restarted every node in turn");
    }
    Ok(Operations {
        takeover,
        stranded,
        rolling_s,
        ended: Instant::now(),
        nodes,
    })
}

/// Waits (60 s at most) until all `bots` are leased, by exactly `nodes` nodes holding within one
/// of an even share.
async fn wait_spread(store: &Store, bots: usize, nodes: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runners = store.bot_runners().await?;
        let mut by_node: HashMap<&str, usize> = HashMap::new();
        for node in runners.values() {
            *by_node.entry(node).or_default() += 1;
        }
        let most = by_node.values().max().copied().unwrap_or(0);
        let least = by_node.values().min().copied().unwrap_or(0);
        if runners.len() == bots && by_node.len() == nodes && most - least <= 1 {
            let mut shares: Vec<usize> = by_node.into_values().collect();
            shares.sort_unstable();
            eprintln!("bots spread over {nodes} nodes: {shares:?}");
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the bots were not spread over {nodes} nodes within 60 s: {} of {bots} leased, {:?} by node",
            runners.len(),
            by_node.values().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Times within `[from_ms, to_ms]` (Unix ms) a bot was recorded failed or in backoff, from the
/// events.
async fn failures_between(store: &Store, from_ms: i64, to_ms: i64) -> anyhow::Result<usize> {
    let mut after = 0;
    let mut failures = 0;
    loop {
        let page = store.events_after(after, 1_000).await?;
        let Some(last) = page.last() else {
            return Ok(failures);
        };
        after = last.id;
        failures += page
            .iter()
            .filter(|e| e.kind == "bot_status" && (from_ms..=to_ms).contains(&e.created_at))
            .filter(|e| matches!(e.payload.0["state"].as_str(), Some("failed" | "backoff")))
            .count();
    }
}

/// The node (index into `nodes`) running the most bots, and those bots.
async fn busiest(store: &Store, nodes: &[Child]) -> anyhow::Result<(usize, Vec<i64>)> {
    let runners = store.bot_runners().await?;
    let rows = store.nodes().await?;
    let mut best: Option<(usize, Vec<i64>)> = None;
    for (index, child) in nodes.iter().enumerate() {
        let pid = i64::from(child.id().context("a node exited")?);
        let Some(row) = rows.iter().find(|r| r.pid == pid) else {
            continue;
        };
        let bots: Vec<i64> = runners
            .iter()
            .filter(|(_, node)| **node == row.id)
            .map(|(bot, _)| *bot)
            .collect();
        if best.as_ref().is_none_or(|(_, b)| bots.len() > b.len()) {
            best = Some((index, bots));
        }
    }
    best.context("no node holds a bot")
}

/// Seconds from the kill (`killed_at`, Unix ms) until each of `bots` was recorded running again
/// (by its new runner); waits at most 60 s.
async fn watch_takeover(store: &Store, bots: &[i64], killed_at: i64) -> anyhow::Result<Vec<f64>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = store.bots_by_ids(bots).await?;
        let times: Vec<f64> = rows
            .iter()
            .filter(|r| r.run_state == crate::domain::RunState::Running)
            .filter_map(|r| r.started_at.filter(|at| *at > killed_at))
            .map(|at| (at - killed_at) as f64 / 1000.0)
            .collect();
        if times.len() == bots.len() || Instant::now() > deadline {
            if times.len() < bots.len() {
                eprintln!(
                    "{} of {} bots did not run again within 60 s",
                    bots.len() - times.len(),
                    bots.len()
                );
            }
            return Ok(times);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
