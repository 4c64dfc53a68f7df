//! `nezuko bench failover`: several `nezuko serve` nodes on one PostgreSQL database share the
//! `verify` world's 100 bots by lease while the sandbox (a process of its own) plays its load; one
//! node, the one running the most bots, is killed with SIGKILL. Reported: how long each of its
//! bots took to run again elsewhere (from the kill to the new runner recording it running), and
//! what Telegram saw: updates that called for an action and got none, messages deleted twice (an
//! update acted on twice), and `getUpdates` calls ended with 409 (two pollers met).

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use super::bench_fleet::Scratch;
use super::bench_verify::{Product, read_world, sandbox_command, stop, store_plan};
use crate::db::now_ms;
use crate::vault::{EncryptionKey, Vault};

/// What to run.
#[derive(Debug, Clone)]
pub struct FailoverBench {
    /// The PostgreSQL server (a database is created and dropped): leases need PostgreSQL.
    pub postgres: String,
    pub nodes: usize,
    /// Events per second the sandbox plays.
    pub rate: f64,
    /// Measured seconds.
    pub seconds: f64,
    /// Seconds of load before measuring (the nodes share the bots out meanwhile).
    pub warmup_s: f64,
    /// Seconds into the measured run when a node is killed.
    pub kill_at: f64,
    /// Keep the scratch directory (each node's `serve.log`, the sandbox's log) and say where.
    pub keep: bool,
}

pub async fn run(bench: FailoverBench) -> anyhow::Result<()> {
    anyhow::ensure!(bench.nodes >= 2, "--nodes must be 2 or more: one is killed");
    anyhow::ensure!(
        bench.kill_at > 0.0 && bench.kill_at < bench.seconds,
        "--kill-at must fall inside the measured --seconds"
    );
    let scratch = Scratch::create(Some(&bench.postgres)).await?;
    let outcome = measure(&scratch, &bench).await;
    scratch.drop_all().await;
    println!("{}", outcome?);
    Ok(())
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
    let mut sandbox = sandbox_command(None, "verify", &world_file, dir.path())?;
    sandbox.args(["--duration", &bench.seconds.to_string()]);
    sandbox.args(["--warmup", &bench.warmup_s.to_string()]);
    sandbox.args(["--rate", &bench.rate.to_string()]);
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
    let mut nodes: Vec<Child> = Vec::new();
    for i in 0..bench.nodes {
        let data = dir.path().join(format!("node{i}"));
        std::fs::create_dir_all(&data)?;
        let product = Product::new(&scratch.url, &plan.api_url, key.clone(), data)?;
        nodes.push(product.start()?);
    }
    eprintln!(
        "world: {} bots, {} groups; {} nodes; warming up for {} s once every bot polls",
        plan.bots.len(),
        plan.groups.len(),
        bench.nodes,
        bench.warmup_s
    );
    let mut kill_due: Option<Instant> = None;
    let mut takeover: Option<tokio::task::JoinHandle<anyhow::Result<Vec<f64>>>> = None;
    let report: Value = loop {
        let line = tokio::select! {
            line = lines.next_line() => line?,
            () = super::bench_verify::sleep_until(kill_due) => {
                kill_due = None;
                let (victim, bots) = busiest(scratch, &nodes).await?;
                let killed_at = now_ms();
                let mut child = nodes.remove(victim);
                child.start_kill()?;
                child.wait().await?;
                eprintln!("killed a node running {} bots", bots.len());
                takeover = Some(tokio::spawn(watch_takeover(scratch.store.clone(), bots, killed_at)));
                continue;
            }
        };
        let line = line.context("the sandbox ended without a report")?;
        let value: Value = serde_json::from_str(&line)
            .with_context(|| format!("the sandbox printed something unexpected: {line}"))?;
        if value["phase"] == "measuring" {
            kill_due = Some(Instant::now() + Duration::from_secs_f64(bench.kill_at));
            eprintln!("measuring for {} s", bench.seconds);
        } else {
            break value;
        }
    };
    let mut times = match takeover {
        Some(task) => task.await??,
        None => anyhow::bail!("the run ended before the kill"),
    };
    for node in nodes {
        stop(node).await?;
    }
    let _ = sandbox.wait().await;
    times.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        times
            .get(((times.len() as f64 - 1.0) * q).round() as usize)
            .map(|s| (s * 100.0).round() / 100.0)
    };
    Ok(json!({
        "bench": "failover",
        "nodes": bench.nodes,
        "bots": plan.bots.len(),
        "rate": bench.rate,
        "moved": times.len(),
        "takeover_p50_s": quantile(0.5),
        "takeover_p99_s": quantile(0.99),
        "lost": report["unanswered"],
        "doubled": report["deleted_twice"],
        "conflicts_409": report["conflicts_409"],
        "updates_confirmed": report["updates_confirmed"],
        "actions_measured": report["actions_measured"],
        "p50_ms": report["p50_ms"],
        "p99_ms": report["p99_ms"],
        "rate_limited": report["rate_limited"],
        "spec_violations": report["spec_violations"],
    }))
}

/// The node (index into `nodes`) running the most bots, and those bots.
async fn busiest(scratch: &Scratch, nodes: &[Child]) -> anyhow::Result<(usize, Vec<i64>)> {
    let runners = scratch.store.bot_runners().await?;
    let rows = scratch.store.nodes().await?;
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
async fn watch_takeover(
    store: crate::db::Store,
    bots: Vec<i64>,
    killed_at: i64,
) -> anyhow::Result<Vec<f64>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = store.bots_by_ids(&bots).await?;
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
