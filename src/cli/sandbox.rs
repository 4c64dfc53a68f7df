//! `nezuko sandbox`: the fake Telegram, optionally driving a load scenario.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::net::TcpListener;

use nezuko_sandbox::driver::measure::{Stopwatch, quantile_ms};
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
    /// Seconds of traffic before measuring (not in the report). When it ends the line
    /// `{"phase":"measuring"}` is printed, so a benchmark driving this process knows when the
    /// measured stretch begins.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Also report the latencies of one stretch of the measured run: updates handed over from this
    /// many seconds into it, for `--window-s` seconds (the minute after a restart, say).
    #[arg(long)]
    pub window_from: Option<f64>,
    #[arg(long, default_value_t = 60.0)]
    pub window_s: f64,
    /// After the load, how long (s) to wait at most for the bots to act on what they were handed
    /// before an update still waiting counts as `unanswered`; the wait ends as soon as none is.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
}

pub async fn run(
    args: SandboxArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.settle.is_finite() && args.settle >= 0.0,
        "--settle must be a number of seconds, 0 or more"
    );
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
    scenario.validate()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let sandbox = sandbox.clone();
        tokio::spawn(async move {
            sandbox
                .serve(listener, async {
                    // Either signal or a dropped sender means stop.
                    let _ = stopped.await;
                })
                .await
        })
    };
    // SIGINT/SIGTERM end a scenario early too (the world and the server go with it, no report):
    // the handlers are installed for the whole process, so nothing else would.
    let scenario_run = async move {
        let stopwatch = Arc::new(Stopwatch::default());
        sandbox.set_observer(stopwatch.clone());
        let mut plan = driver::build_world(&sandbox, &scenario, &url, &stopwatch)?;
        let world = serde_json::to_string_pretty(&plan)?;
        // Written beside and renamed, so whoever waits for the file never reads half of it.
        let partial = args.world_file.with_extension("partial");
        std::fs::write(&partial, world)
            .and_then(|()| std::fs::rename(&partial, &args.world_file))
            .with_context(|| format!("cannot write {}", args.world_file.display()))?;
        tracing::info!(world = %args.world_file.display(), bots = plan.bots.len(), groups = plan.groups.len(), "world ready; waiting for the bots");
        wait_for_bots(&sandbox, &plan, Duration::from_secs_f64(args.wait_for_bots)).await;
        if args.warmup > 0.0 {
            let warmup = Scenario {
                duration_s: args.warmup,
                ..scenario.clone()
            };
            driver::drive(
                &sandbox,
                &mut plan,
                &warmup,
                stopwatch.clone(),
                Duration::ZERO,
            )
            .await;
            stopwatch.reset();
        }
        let calls_before = sandbox.counters().by_method;
        let measuring = std::time::Instant::now();
        println!("{}", serde_json::json!({ "phase": "measuring" }));
        let report = driver::drive(
            &sandbox,
            &mut plan,
            &scenario,
            stopwatch.clone(),
            Duration::from_secs_f64(args.settle),
        )
        .await;
        // The server may already have ended; either way it is told to stop.
        let _ = stop.send(());
        // How the server task ended is not part of the scenario's report.
        let _ = server.await;
        for violation in sandbox.violations().iter().take(10) {
            tracing::warn!(
                ?violation,
                "a request or reply off the Bot API specification"
            );
        }
        let mut report = serde_json::to_value(&report)?;
        report["calls_by_method"] = measured_calls(&calls_before, &report["calls_by_method"]);
        if let Some(from_s) = args.window_from {
            let from = measuring + Duration::from_secs_f64(from_s);
            let to = from + Duration::from_secs_f64(args.window_s);
            let latencies = stopwatch.latencies_between(Some(from), Some(to));
            report["window"] = serde_json::json!({
                "from_s": from_s,
                "seconds": args.window_s,
                "actions_measured": latencies.len(),
                "p50_ms": quantile_ms(&latencies, 0.50),
                "p99_ms": quantile_ms(&latencies, 0.99),
            });
        }
        println!("{report}");
        Ok(())
    };
    tokio::select! {
        result = scenario_run => result,
        () = shutdown => {
            tracing::info!("stopped before the scenario ended; no report");
            Ok(())
        }
    }
}

async fn wait_for_bots(sandbox: &Sandbox, plan: &driver::WorldPlan, timeout: Duration) {
    let ids: Vec<i64> = plan.bots.iter().map(|b| b.id).collect();
    let ready = sandbox
        .wait_until(timeout, "every bot to poll", |s| {
            ids.iter()
                .all(|id| {
                    s.is_polling(*id)
                        || !s.calls(Some(*id), Some("getUpdates")).is_empty()
                        || !s.calls(Some(*id), Some("setWebhook")).is_empty()
                })
                .then_some(())
        })
        .await;
    if ready.is_err() {
        tracing::warn!("not every bot connected within {timeout:?}; driving traffic anyway");
    }
}

/// Calls per method during the measured window only (the warm-up's are subtracted).
fn measured_calls(
    before: &std::collections::BTreeMap<String, u64>,
    after: &serde_json::Value,
) -> serde_json::Value {
    let mut measured = serde_json::Map::new();
    for (method, total) in after.as_object().into_iter().flatten() {
        let count = total.as_u64().unwrap_or(0) - before.get(method).copied().unwrap_or(0);
        if count > 0 {
            measured.insert(method.clone(), count.into());
        }
    }
    serde_json::Value::Object(measured)
}
