//! `nezuko sandbox` (the fake Telegram, optionally driving a load scenario) and `nezuko bench sandbox`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio::net::TcpListener;

use nezuko_sandbox::driver::measure::Stopwatch;
use nezuko_sandbox::driver::{self, Scenario};
use nezuko_sandbox::faults::RateLimits;
use nezuko_sandbox::model::{ChatKind, Status};
use nezuko_sandbox::{Sandbox, SandboxConfig};

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address to serve the Bot API and the control API (`/_sandbox/…`) on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Build a world and drive traffic: a built-in scenario (smoke, verify, raid) or a JSON file.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Where to write the world (tokens, chat ids) a bot deployment is set up from.
    #[arg(long, default_value = "sandbox-world.json")]
    pub world_file: PathBuf,
    /// Override the scenario's duration, in seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Override the scenario's rate, in events per second.
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long to wait for every bot to start polling (or set a webhook) before driving traffic.
    #[arg(long, default_value_t = 60.0)]
    pub wait_for_bots: f64,
}

pub async fn run(
    args: SandboxArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let sandbox = Sandbox::new(SandboxConfig::default());
    let url = format!("http://{addr}");
    let Some(name) = args.scenario.clone() else {
        tracing::info!(%addr, "sandbox Bot API at {url}/bot<token>/<method>, control API at {url}/_sandbox/<operation>");
        sandbox.serve(listener, shutdown).await;
        return Ok(());
    };
    let mut scenario = Scenario::load(&name)?;
    scenario.duration_s = args.duration.unwrap_or(scenario.duration_s);
    scenario.rate = args.rate.unwrap_or(scenario.rate);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let sandbox = sandbox.clone();
        tokio::spawn(async move {
            sandbox
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    let stopwatch = Arc::new(Stopwatch::default());
    sandbox.set_observer(stopwatch.clone());
    let mut plan = driver::build_world(&sandbox, &scenario, &url, &stopwatch)?;
    let world = serde_json::to_string_pretty(&plan)?;
    std::fs::write(&args.world_file, world)
        .with_context(|| format!("cannot write {}", args.world_file.display()))?;
    tracing::info!(world = %args.world_file.display(), bots = plan.bots.len(), groups = plan.groups.len(), "world ready; waiting for the bots");
    wait_for_bots(&sandbox, &plan, Duration::from_secs_f64(args.wait_for_bots)).await;
    let report = driver::drive(
        &sandbox,
        &mut plan,
        &scenario,
        stopwatch,
        Duration::from_secs(2),
    )
    .await;
    let _ = stop.send(());
    let _ = server.await;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn wait_for_bots(sandbox: &Sandbox, plan: &driver::WorldPlan, timeout: Duration) {
    let ids: Vec<i64> = plan.bots.iter().map(|b| b.id).collect();
    let ready = sandbox
        .wait_until(timeout, "every bot to poll", |s| {
            ids.iter()
                .all(|id| !s.calls(Some(*id), Some("getUpdates")).is_empty() || s.is_polling(*id))
                .then_some(())
        })
        .await;
    if ready.is_err() {
        tracing::warn!("not every bot connected within {timeout:?}; driving traffic anyway");
    }
}

/// Measures the sandbox alone: updates served through `getUpdates` and method calls answered, over
/// real HTTP on loopback, with simple clients in this process (so the figures include their cost).
pub async fn bench(bots: usize, clients: usize, seconds: f64) -> anyhow::Result<()> {
    let config = SandboxConfig {
        rate_limits: RateLimits {
            enabled: false,
            ..RateLimits::default()
        },
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(config);
    let running = sandbox.spawn_local().await?;
    let user = sandbox.create_user("Speaker", None);
    let mut setup = Vec::new();
    for n in 0..bots {
        let bot = sandbox.create_bot(&format!("Bench {n}"), &format!("bench{n}_bot"));
        let group = sandbox.create_chat(ChatKind::Supergroup, &format!("Bench {n}"), None);
        sandbox.set_member(group, bot.id, Status::Member)?;
        sandbox.join(group, user.id)?;
        setup.push((bot, group));
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients.max(bots) * 2)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);

    // Updates: a producer keeps every queue topped up while each bot long-polls and confirms.
    let producer = {
        let (sandbox, setup) = (sandbox.clone(), setup.clone());
        tokio::spawn(async move {
            while Instant::now() < deadline {
                for (bot, group) in &setup {
                    while sandbox.pending_updates(bot.id) < 2_000 {
                        let _ = sandbox.send(*group, user.id, "load");
                    }
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let confirmed_before = sandbox.counters().updates_confirmed;
    let started = Instant::now();
    let mut pollers = Vec::new();
    for (bot, _) in &setup {
        let url = format!("{}/bot{}/getUpdates", running.url(), bot.token);
        let http = http.clone();
        pollers.push(tokio::spawn(async move {
            let mut offset = 0i64;
            while Instant::now() < deadline {
                let body = json!({ "offset": offset, "limit": 100, "timeout": 1 });
                let Ok(reply) = http.post(&url).json(&body).send().await else {
                    continue;
                };
                let Ok(reply) = reply.json::<serde_json::Value>().await else {
                    continue;
                };
                if let Some(last) = reply["result"].as_array().and_then(|u| u.last()) {
                    offset = last["update_id"].as_i64().unwrap_or(offset) + 1;
                }
            }
            let _ = http
                .post(&url)
                .json(&json!({ "offset": offset, "timeout": 0 }))
                .send()
                .await;
        }));
    }
    for poller in pollers {
        poller.await?;
    }
    let update_seconds = started.elapsed().as_secs_f64();
    producer.await?;
    let updates = sandbox.counters().updates_confirmed - confirmed_before;

    // Method calls: concurrent clients asking getChatMember, the call a force-subscribe bot makes most.
    let calls_before = sandbox.counters().calls;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut callers = Vec::new();
    for n in 0..clients {
        let (bot, group) = setup[n % setup.len()].clone();
        let url = format!("{}/bot{}/getChatMember", running.url(), bot.token);
        let http = http.clone();
        let user = user.id;
        callers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                if let Ok(reply) = http
                    .post(&url)
                    .json(&json!({ "chat_id": group, "user_id": user }))
                    .send()
                    .await
                {
                    let _ = reply.bytes().await;
                }
            }
        }));
    }
    for caller in callers {
        caller.await?;
    }
    let call_seconds = started.elapsed().as_secs_f64();
    let calls = sandbox.counters().calls - calls_before;
    let report = json!({
        "bench": "sandbox",
        "bots": bots,
        "clients": clients,
        "updates_per_s": (updates as f64 / update_seconds).round(),
        "calls_per_s": (calls as f64 / call_seconds).round(),
        "spec_violations": sandbox.violations().len(),
    });
    println!("{report}");
    Ok(())
}
