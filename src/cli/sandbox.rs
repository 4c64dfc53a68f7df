//! `nezuko sandbox`: the fake Telegram, optionally driving a load scenario.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;

use nezuko_sandbox::driver::measure::Stopwatch;
use nezuko_sandbox::driver::{self, Scenario};
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
