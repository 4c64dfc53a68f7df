//! `nezuko bench verify`: the whole enforcement path under load, with the product measured alone.
//!
//! Three processes: the sandbox and its load driver (`nezuko sandbox --scenario`) pinned to one CPU,
//! the product (`nezuko serve`, default configuration, Telegram's flood limits on in the sandbox)
//! pinned to another, and this one, which only sets up the scratch database, reads the sandbox's
//! world, starts and (with `--restart-at`) restarts the product, and samples the product's CPU
//! time and memory from `/proc`. It prints one JSON line last: the sandbox's figures (confirmed
//! updates per second, update-to-first-action latency from the sandbox's side, 429s, spec
//! violations) and the product's own (`product_cpu_us_per_update`, `product_cores`,
//! `product_rss_mb`, the membership cache's hit rate read from its `/metrics`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::affinity;
use super::bench_fleet::Scratch;
use crate::db::{NewBot, NewChannel, NewGroup, Store};
use crate::domain::{BotToken, DesiredState};
use crate::vault::{EncryptionKey, Vault};
use nezuko_sandbox::driver::{Scenario, WorldPlan};

/// What to run.
#[derive(Debug, Clone)]
pub struct VerifyBench {
    pub postgres: Option<String>,
    pub redis: Option<String>,
    pub scenario: String,
    pub seconds: Option<f64>,
    pub rate: Option<f64>,
    pub warmup_s: f64,
    /// Stop the product this many seconds into the measured run and start it again.
    pub restart_at: Option<f64>,
    /// The stretch after the restart whose latency is reported on its own, in seconds.
    pub after_restart_s: f64,
    /// Keep the scratch directory and say where it is.
    pub keep: bool,
    /// Bots receive updates by webhook (`--mode webhook`) instead of long polling.
    pub webhook: bool,
}
/// The bearer token the benchmark reads the product's `/metrics` with.
const METRICS_TOKEN: &str = "bench-verify-metrics-token";

pub async fn run(bench: VerifyBench) -> anyhow::Result<()> {
    let scenario = Scenario::load(&bench.scenario)?;
    if let Some(at) = bench.restart_at {
        anyhow::ensure!(
            at > 0.0 && bench.after_restart_s > 0.0,
            "--restart-at and --after-restart must be positive numbers of seconds"
        );
    }
    let scratch = Scratch::create(bench.postgres.as_deref()).await?;
    let outcome = measure(&scratch, &bench, &scenario).await;
    scratch.drop_all().await;
    println!("{}", outcome?);
    Ok(())
}

/// Which CPU each side runs on: the sandbox on one, the product on another (the last two this
/// process may use); `None` when there are not two.
pub(super) fn cpus() -> (Option<usize>, Option<usize>) {
    match affinity::available_cpus().as_slice() {
        [.., a, b] => (Some(*a), Some(*b)),
        _ => (None, None),
    }
}

async fn measure(
    scratch: &Scratch,
    bench: &VerifyBench,
    scenario: &Scenario,
) -> anyhow::Result<Value> {
    let dir = tempfile::Builder::new()
        .prefix("nezuko-bench-")
        .disable_cleanup(bench.keep)
        .tempdir()?;
    if bench.keep {
        eprintln!("keeping {}", dir.path().display());
    }
    let (sandbox_cpu, product_cpu) = cpus();
    let mut duration = bench.seconds.unwrap_or(scenario.duration_s);
    if let Some(at) = bench.restart_at {
        duration = duration.max(at + bench.after_restart_s);
    }
    let world_file = dir.path().join("world.json");
    let mut sandbox = sandbox_command(sandbox_cpu, &bench.scenario, &world_file, dir.path())?;
    sandbox.args(["--duration", &duration.to_string()]);
    sandbox.args(["--warmup", &bench.warmup_s.to_string()]);
    if let Some(rate) = bench.rate {
        sandbox.args(["--rate", &rate.to_string()]);
    }
    if let Some(at) = bench.restart_at {
        sandbox.args(["--window-from", &at.to_string()]);
        sandbox.args(["--window-s", &bench.after_restart_s.to_string()]);
    }
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
    if scenario.mix.join_request > 0.0 {
        // The groups decide join requests on subscriptions; their bot is each one's guard bot.
        scratch
            .store
            .put_setting(
                crate::enforce::policy::DEFAULTS_KEY,
                &json!({ "join_requests": "approve_subscribers" }),
                None,
            )
            .await?;
    }
    let product = Product {
        cpu: product_cpu,
        redis: bench.redis.clone(),
        webhook: bench.webhook,
        ..Product::new(&scratch.url, &plan.api_url, key, dir.path().to_path_buf())?
    };
    eprintln!(
        "world: {} bots, {} groups, {} channels; sandbox on CPU {sandbox_cpu:?}, product on CPU {product_cpu:?}; warming up for {} s once every bot polls",
        plan.bots.len(),
        plan.groups.len(),
        plan.channels.len(),
        bench.warmup_s
    );
    let mut running = product.start()?;
    // The sandbox says when the measured run begins, then prints its report.
    let mut measuring: Option<(Instant, u64, (u64, u64))> = None;
    let mut restarted = false;
    let mut spent_before_restart = 0u64;
    let report: Value = loop {
        let restart_due = match (measuring, bench.restart_at) {
            (Some((started, ..)), Some(at)) if !restarted => {
                Some(started + Duration::from_secs_f64(at))
            }
            _ => None,
        };
        let line = tokio::select! {
            line = lines.next_line() => line?,
            () = sleep_until(restart_due) => {
                restarted = true;
                eprintln!("restarting the product");
                spent_before_restart = stop(running).await?;
                running = product.start()?;
                continue;
            }
        };
        let Some(line) = line else {
            anyhow::bail!(
                "the sandbox ended without a report: {}",
                tail(&dir.path().join("sandbox.log"))
            );
        };
        let value: Value = serde_json::from_str(&line)
            .with_context(|| format!("the sandbox printed something unexpected: {line}"))?;
        if value["phase"] == "measuring" {
            let pid = running.id().context("the product exited")?;
            measuring = Some((
                Instant::now(),
                affinity::cpu_time_us(pid)?,
                product.cache_counts().await?,
            ));
            eprintln!("measuring for {duration} s");
        } else {
            break value;
        }
    };
    let (started, cpu_at_start, cache_at_start) =
        measuring.context("the sandbox reported without measuring")?;
    let wall = started.elapsed();
    let pid = running.id().context("the product exited")?;
    let (hits, misses) = product.cache_counts().await?;
    let (hits, misses) = if restarted {
        (hits, misses)
    } else {
        (hits - cache_at_start.0, misses - cache_at_start.1)
    };
    let cpu_now = affinity::cpu_time_us(pid)?;
    let cpu_us = if restarted {
        spent_before_restart - cpu_at_start + cpu_now
    } else {
        cpu_now - cpu_at_start
    };
    let rss_mb = affinity::rss_mib(pid)?;
    let peak_rss_mb = affinity::peak_rss_mib(pid)?;
    stop(running).await?;
    // The sandbox's report was read before; how its process ended adds nothing.
    let _ = sandbox.wait().await;
    // What the product warned about, so a slow figure comes with its cause.
    super::bench_chaos::report_service_log(&dir.path().join("serve.log"));
    if report["spec_violations"].as_u64().unwrap_or(0) > 0 {
        eprintln!(
            "the sandbox saw requests off the specification: {}",
            tail(&dir.path().join("sandbox.log"))
        );
    }
    let confirmed = report["updates_confirmed"].as_u64().unwrap_or(0);
    let round = |x: f64, places: i32| (x * 10f64.powi(places)).round() / 10f64.powi(places);
    let mut out = json!({
        "bench": "verify",
        "scenario": report["scenario"],
        "backend": scratch.store.backend().as_str(),
        "mode": if bench.webhook { "webhook" } else { "polling" },
        "redis": bench.redis.is_some(),
        "bots": plan.bots.len(),
        "groups": plan.groups.len(),
        "pinned": product_cpu.is_some(),
        "duration_s": report["duration_s"],
        "events": report["events"],
        "updates_confirmed": confirmed,
        "updates_per_s": report["updates_per_s"].as_f64().map(|x| round(x, 0)),
        "actions_measured": report["actions_measured"],
        "p50_ms": report["p50_ms"],
        "p90_ms": report["p90_ms"],
        "p99_ms": report["p99_ms"],
        "cache_hit": if hits + misses == 0 { 0.0 } else { round(hits as f64 / (hits + misses) as f64, 4) },
        "rate_limited": report["rate_limited"],
        "calls_by_method": report["calls_by_method"],
        "spec_violations": report["spec_violations"],
        // Messages Nezuko asked to delete that were gone already: a member's (one update acted on
        // twice) or one of its own warnings deleted by two of its paths; the sample tells which.
        "deleted_twice": report["deleted_twice"],
        "product_cpu_us_per_update": if confirmed == 0 { 0.0 } else { round(cpu_us as f64 / confirmed as f64, 1) },
        "product_cores": round(cpu_us as f64 / 1e6 / wall.as_secs_f64(), 2),
        "product_rss_mb": round(rss_mb, 1),
        "product_peak_rss_mb": round(peak_rss_mb, 1),
    });
    if let Some(window) = report.get("window") {
        out["after_restart"] = window.clone();
    }
    if report["deleted_twice"].as_u64().unwrap_or(0) > 0 {
        out["deleted_twice_sample"] = report["deleted_twice_sample"].clone();
    }
    Ok(out)
}

pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// `nezuko sandbox --scenario …` on its CPU, writing its world to `world_file`.
pub(super) fn sandbox_command(
    cpu: Option<usize>,
    scenario: &str,
    world_file: &Path,
    dir: &Path,
) -> anyhow::Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    if let Some(cpu) = cpu {
        command.args(["--cpu", &cpu.to_string()]);
    }
    command
        .arg("sandbox")
        .args(["--listen", "127.0.0.1:0", "--scenario", scenario])
        .arg("--world-file")
        .arg(world_file)
        .args(["--wait-for-bots", "120"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("sandbox.log"))?)
        .kill_on_drop(true);
    Ok(command)
}

/// Waits for the sandbox to write its world (it does so once, whole, by renaming).
pub(super) async fn read_world(
    path: &Path,
    sandbox: &mut Child,
    dir: &Path,
) -> anyhow::Result<WorldPlan> {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).context("the sandbox's world file");
        }
        if let Some(status) = sandbox.try_wait()? {
            anyhow::bail!(
                "the sandbox exited ({status}) before writing its world: {}",
                tail(&dir.join("sandbox.log"))
            );
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "the sandbox did not build its world within 300 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last lines of a log, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

pub(super) fn free_port() -> anyhow::Result<String> {
    let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(socket.local_addr()?.to_string())
}

/// The product: `nezuko serve` with its default configuration on a scratch database, as a child
/// process (its log in `data/serve.log`). `bench chaos` starts and kills it too.
pub(super) struct Product {
    pub(super) cpu: Option<usize>,
    pub(super) database_url: String,
    pub(super) api_url: String,
    pub(super) redis: Option<String>,
    pub(super) key: EncryptionKey,
    pub(super) data: PathBuf,
    pub(super) listen: String,
    /// Webhook mode (`telegram.mode = webhook`, its public URL its own address) instead of
    /// polling.
    pub(super) webhook: bool,
}

impl Product {
    /// The product on `database_url`, talking to Telegram at `api_url`, its files in `data`,
    /// listening on a free port; no Redis, not pinned, polling.
    pub(super) fn new(
        database_url: &str,
        api_url: &str,
        key: EncryptionKey,
        data: PathBuf,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            cpu: None,
            database_url: database_url.to_string(),
            api_url: api_url.to_string(),
            redis: None,
            key,
            data,
            listen: free_port()?,
            webhook: false,
        })
    }

    pub(super) fn start(&self) -> anyhow::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.join("serve.log"))?;
        let mut command = Command::new(std::env::current_exe()?);
        if let Some(cpu) = self.cpu {
            command.args(["--cpu", &cpu.to_string()]);
        }
        command
            .arg("serve")
            .env("NEZUKO_DATABASE__URL", &self.database_url)
            .env("NEZUKO_TELEGRAM__API_URL", &self.api_url)
            .env("NEZUKO_SERVER__LISTEN", &self.listen)
            .env("NEZUKO_SERVER__METRICS_TOKEN", METRICS_TOKEN)
            .env("NEZUKO_DATA_DIR", &self.data)
            .env("ENCRYPTION_KEY", self.key.expose())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if let Some(redis) = &self.redis {
            command.env("REDIS_URL", redis);
        }
        if self.webhook {
            command.env("NEZUKO_TELEGRAM__MODE", "webhook").env(
                "NEZUKO_SERVER__PUBLIC_URL",
                format!("http://{}", self.listen),
            );
        }
        command.spawn().context("cannot start `nezuko serve`")
    }

    /// The membership cache's (hits, misses) so far, from the product's `/metrics`.
    async fn cache_counts(&self) -> anyhow::Result<(u64, u64)> {
        let url = format!("http://{}/metrics", self.listen);
        let started = Instant::now();
        let text = loop {
            let response = reqwest::Client::new()
                .get(&url)
                .bearer_auth(METRICS_TOKEN)
                .send()
                .await;
            match response {
                Ok(response) if response.status().is_success() => break response.text().await?,
                _ if started.elapsed() < Duration::from_secs(30) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(response) => anyhow::bail!("/metrics answered {}", response.status()),
                Err(error) => return Err(error).context("cannot read the product's /metrics"),
            }
        };
        let value = |result: &str| {
            let series = format!("nezuko_membership_cache_total{{result=\"{result}\"}} ");
            text.lines()
                .find_map(|line| line.strip_prefix(series.as_str()))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0) as u64
        };
        Ok((value("hit"), value("miss")))
    }
}

/// SIGTERM, as an operator stops the service (SIGKILL after 15 s); returns the CPU time it used,
/// read while it is a zombie, so its shutdown counts too.
pub(super) async fn stop(mut child: Child) -> anyhow::Result<u64> {
    let pid = child.id().context("the product already exited")?;
    // If `kill` cannot run, the wait below ends in `start_kill`.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let started = Instant::now();
    let mut spent = affinity::cpu_time_us(pid)?;
    loop {
        match affinity::process_state(pid) {
            Some('Z') | None => break,
            _ if started.elapsed() > Duration::from_secs(15) => {
                // It may have exited meanwhile; either way it is gone after this.
                let _ = child.start_kill();
                break;
            }
            _ => {
                spent = affinity::cpu_time_us(pid).unwrap_or(spent);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    spent = affinity::cpu_time_us(pid).unwrap_or(spent);
    child.wait().await?;
    Ok(spent)
}

/// Stores the plan's bots, channels, groups and links, as `/protect` would have.
pub(super) async fn store_plan(
    store: &Store,
    vault: &Vault,
    plan: &WorldPlan,
) -> anyhow::Result<()> {
    let mut bot_rows = std::collections::HashMap::new();
    for bot in &plan.bots {
        let token =
            BotToken::parse(&bot.token).map_err(|e| anyhow::anyhow!("sandbox token: {e}"))?;
        let row = store
            .insert_bot(&NewBot {
                telegram_bot_id: bot.id,
                username: bot.username.clone(),
                display_name: bot.username.clone(),
                token_ciphertext: vault.encrypt_token(&token),
                owner_telegram_id: None,
                desired_state: DesiredState::Enabled,
            })
            .await?;
        bot_rows.insert(bot.id, row.id);
    }
    let mut channel_rows = std::collections::HashMap::new();
    for channel in &plan.channels {
        let row = store
            .upsert_channel(&NewChannel {
                chat_id: channel.chat_id,
                title: channel.username.clone(),
                username: Some(channel.username.clone()),
                invite_link: None,
                is_private: false,
            })
            .await?;
        channel_rows.insert(channel.chat_id, row.id);
    }
    for group in &plan.groups {
        let row = store
            .upsert_group(&NewGroup {
                bot_instance_id: bot_rows[&group.bot_id],
                chat_id: group.chat_id,
                title: group.title.clone(),
                username: None,
            })
            .await?;
        let links: Vec<(i64, serde_json::Value)> = group
            .channels
            .iter()
            .map(|c| (channel_rows[c], json!({ "administrator": true })))
            .collect();
        store.replace_channel_links(row.id, &links).await?;
        store.set_group_health(row.id, "ok", None).await?;
    }
    Ok(())
}
