//! `nezuko bench fleet`: N bots against a sandbox in a process of its own (on a CPU of its own)
//! and a real database. Prints one JSON line: time until every bot runs, the fleet's resident
//! memory (the sandbox's world not included) then, at the peak and at rest once the bots' first
//! updates are done with, and start/stop latency from the database change to
//! the state event (the registry's reaction included).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

use warp::http::StatusCode;

use super::DeliveryMode;
use crate::actors::{Delivery, Fleet, FleetOptions, RestartPolicy};
use crate::db::{DatabaseUrl, NewBot, Store};
use crate::domain::{BotToken, DesiredState};
use crate::enforce::{EnforceOptions, Enforcer};
use crate::events::Event;
use crate::http::api::telegram::SECRET_HEADER;
use crate::settings::DatabaseSettings;
use crate::telegram::webhook::Arrivals;
use crate::vault::{EncryptionKey, Vault};
use crate::webhooks::{DeliveryError, Webhooks};
use nezuko_sandbox::driver::measure::quantile_ms;

pub async fn run(
    bots: usize,
    postgres: Option<String>,
    sample: usize,
    mode: DeliveryMode,
) -> anyhow::Result<()> {
    let scratch = Scratch::create(postgres.as_deref()).await?;
    let outcome = measure(&scratch.store, bots, sample.min(bots), mode).await;
    scratch.drop_all().await;
    println!("{}", outcome?);
    Ok(())
}

async fn measure(
    store: &Store,
    bots: usize,
    sample: usize,
    mode: DeliveryMode,
) -> anyhow::Result<serde_json::Value> {
    // The sandbox runs in a process of its own, on a CPU of its own: its world of N bots (and the
    // answers to N long polls) is not counted in the fleet's memory or CPU.
    let dir = tempfile::Builder::new()
        .prefix("nezuko-bench-fleet-")
        .tempdir()?;
    let (sandbox_cpu, fleet_cpu) = super::bench_verify::cpus();
    let scenario_file = dir.path().join("fleet.json");
    std::fs::write(&scenario_file, fleet_scenario(bots).to_string())?;
    let world_file = dir.path().join("world.json");
    let mut sandbox = super::bench_verify::sandbox_command(
        sandbox_cpu,
        &scenario_file.to_string_lossy(),
        &world_file,
        dir.path(),
    )?;
    // Alive until the benchmark ends (the child is killed when dropped); its trickle of traffic
    // (one event a second, in groups the fleet does not protect) only keeps the world moving.
    sandbox.args(["--duration", "86400"]);
    let mut sandbox = sandbox.spawn().context("cannot start `nezuko sandbox`")?;
    let plan = super::bench_verify::read_world(&world_file, &mut sandbox, dir.path()).await?;
    if let Some(cpu) = fleet_cpu {
        super::affinity::pin_process(cpu)?;
    }
    let key = EncryptionKey::generate();
    let vault = Vault::new(std::slice::from_ref(&key));
    let mut ids = Vec::with_capacity(bots);
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
        ids.push(row.id);
    }
    // Webhook mode: the product's delivery route on a port of its own, the address the bots
    // give `setWebhook`; aborted when the benchmark ends.
    let (delivery, _webhook_server) = match mode {
        DeliveryMode::Polling => (Delivery::Polling, None),
        DeliveryMode::Webhook => {
            let (webhooks, server) = serve_webhooks(store, &vault).await?;
            (Delivery::Webhook(webhooks), Some(server))
        }
    };
    let options = FleetOptions {
        api_url: plan.api_url.clone(),
        http: crate::telegram::http_client(),
        // The real handler, as `serve` runs it (each bot starts its periodic permission check).
        handler: Arc::new(Enforcer::start(store.clone(), EnforceOptions::default())?),
        policy: RestartPolicy::default(),
        poll_interval: Duration::from_secs(1),
        full_interval: Duration::from_secs(30),
        event_capacity: bots * 4 + 1024,
        runs_bots: true,
        leases: None,
        delivery,
        alerts: None,
    };
    let peak_rss_mb = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let _sampler = tokio_util::task::AbortOnDropHandle::new(tokio::spawn({
        let peak = peak_rss_mb.clone();
        async move {
            loop {
                peak.fetch_max(resident_mb() as u64, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }));
    let started = Instant::now();
    let fleet = Fleet::start(store.clone(), vault, options).await?;
    let mut events = fleet.subscribe();
    loop {
        let status = fleet.status().await?;
        if status.len() == bots && status.iter().all(|s| s.state.as_str() == "running") {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "not every bot was running after 120 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all_running_s = started.elapsed().as_secs_f64();
    let rss_mb = resident_mb();
    // The state events are written behind the supervisor's view; let them land before timing
    // single changes, so those are not measured queued behind the start-up's writes.
    let mut recorded = 0;
    while recorded < bots {
        match tokio::time::timeout(Duration::from_secs(60), events.recv()).await {
            Ok(Ok(event)) if event.kind == "bot_status" && event.payload["state"] == "running" => {
                recorded += 1
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => anyhow::bail!("while waiting for the start-up events: {error}"),
            Err(_) => {
                anyhow::bail!("only {recorded} of {bots} start-up events were recorded within 60 s")
            }
        }
    }

    // The bots' first updates (four a bot: its group's and channel's `my_chat_member`, the
    // member's two joins) are handled behind the database for a while after every bot runs.
    // Single changes are timed once nothing is in hand, so the figures are one change's latency,
    // not that backlog's drain time, which is reported on its own.
    let mut quiet = 0;
    while quiet < 10 {
        quiet = if crate::telegram::dispatch::in_hand() == 0 {
            quiet + 1
        } else {
            0
        };
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "the start-up's updates were still in hand after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained_s = started.elapsed().as_secs_f64() - 0.5;
    // The fleet at rest: every bot long-polling, nothing in hand. Read after the start-up's burst,
    // whose connections, caches and freed pages the figure at `all_running_s` does not yet hold.
    let settled_rss_mb = resident_mb();
    // Subscribed afresh: what the backlog published meanwhile is not read.
    let mut events = fleet.subscribe();
    let chosen = &ids[..sample];
    let stop = latencies(
        store,
        &mut events,
        chosen,
        "stopped",
        |store, id| async move {
            store
                .set_desired_state(id, DesiredState::Disabled)
                .await
                .map(|_| ())
        },
    )
    .await?;
    let start = latencies(
        store,
        &mut events,
        chosen,
        "running",
        |store, id| async move { store.request_bot_start(id).await.map(|_| ()) },
    )
    .await?;
    fleet.shutdown(Duration::from_secs(9)).await;
    Ok(json!({
        "bench": "fleet",
        "bots": bots,
        "all_running_s": (all_running_s * 1000.0).round() / 1000.0,
        "rss_mb": (rss_mb * 10.0).round() / 10.0,
        "first_updates_done_s": (drained_s * 1000.0).round() / 1000.0,
        "settled_rss_mb": (settled_rss_mb * 10.0).round() / 10.0,
        "peak_rss_mb": peak_rss_mb.load(std::sync::atomic::Ordering::Relaxed),
        "start_p99_ms": quantile_ms(&start, 0.99).round(),
        "stop_p99_ms": quantile_ms(&stop, 0.99).round(),
        "sample": sample,
        "mode": match mode {
            DeliveryMode::Polling => "polling",
            DeliveryMode::Webhook => "webhook",
        },
        "backend": store.backend().as_str(),
    }))
}

/// Serves `POST /telegram/{bot id}` alone on a loopback port, as `serve` does for webhook mode:
/// the same [`Webhooks::receive`] behind it (secret checked, update stored, then 200), without
/// the rest of the admin API, which the fleet benchmark does not measure.
async fn serve_webhooks(
    store: &Store,
    vault: &Vault,
) -> anyhow::Result<(Webhooks, tokio_util::task::AbortOnDropHandle<()>)> {
    use warp::Filter;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let webhooks = Webhooks::new(store.clone(), vault.clone(), &base_url, Arrivals::default());
    let route = warp::post()
        .and(warp::path!("telegram" / i64))
        .and(warp::header::optional::<String>(SECRET_HEADER))
        .and(warp::body::bytes())
        .then({
            let webhooks = webhooks.clone();
            move |id: i64, secret: Option<String>, body: bytes::Bytes| {
                let webhooks = webhooks.clone();
                async move {
                    match webhooks.receive(id, secret.as_deref(), &body).await {
                        Ok(_) => StatusCode::OK,
                        Err(DeliveryError::Unauthorized) => StatusCode::UNAUTHORIZED,
                        Err(DeliveryError::NotAnUpdate(_)) => StatusCode::BAD_REQUEST,
                        Err(DeliveryError::Store(_)) => StatusCode::SERVICE_UNAVAILABLE,
                    }
                }
            }
        });
    let server = tokio::spawn(warp::serve(route).incoming(listener).run());
    Ok((webhooks, tokio_util::task::AbortOnDropHandle::new(server)))
}

/// The sandbox's world for the fleet: `bots` bots, each with one small group (a scenario needs
/// one; the fleet is not told about it, so it is the bots alone that are measured), at the
/// slowest rate a scenario takes.
fn fleet_scenario(bots: usize) -> serde_json::Value {
    json!({
        "name": "fleet",
        "bots": bots,
        "groups": bots,
        "channels_per_group": 1,
        // A channel of its own per bot: one channel shared by all would make every member's
        // subscription an update for every bot (N² updates), which Telegram's 50-admin limit
        // per channel rules out, and the figure would be of that storm, not of the fleet.
        "channels": bots,
        "members_per_group": 1,
        "non_subscriber_share": 0.0,
        "zipf_exponent": 1.0,
        "rate": 1.0,
        "duration_s": 86400.0,
    })
}

/// Gap between two admin changes: changes are paced as an operator or the dashboard would make them,
/// so the figure is the latency of one change, not the drain time of a burst.
const PACE: Duration = Duration::from_millis(25);

/// Applies `change` to each bot, one every [`PACE`], timing each from the moment it is requested
/// until the bot's `state` event arrives.
async fn latencies<F, Fut>(
    store: &Store,
    events: &mut tokio::sync::broadcast::Receiver<Arc<Event>>,
    ids: &[i64],
    state: &str,
    change: F,
) -> anyhow::Result<Vec<Duration>>
where
    F: Fn(Store, i64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), crate::db::StoreError>> + Send,
{
    let requested: Arc<std::sync::Mutex<HashMap<i64, Instant>>> = Arc::default();
    let changer = {
        let (store, ids, requested) = (store.clone(), ids.to_vec(), requested.clone());
        tokio::spawn(async move {
            for id in ids {
                requested
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, Instant::now());
                change(store.clone(), id).await?;
                tokio::time::sleep(PACE).await;
            }
            Ok::<_, crate::db::StoreError>(())
        })
    };
    let mut samples = Vec::with_capacity(ids.len());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while samples.len() < ids.len() {
        let event = match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) => event,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                anyhow::bail!("missed {n} events; raise the capacity")
            }
            Ok(Err(error)) => anyhow::bail!("event stream closed: {error}"),
            Err(_) => anyhow::bail!(
                "only {} of {} bots reached `{state}` within 120 s",
                samples.len(),
                ids.len()
            ),
        };
        if event.kind == "bot_status"
            && event.payload["state"] == state
            && let Some(at) = event.bot_instance_id.and_then(|id| {
                requested
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id)
            })
        {
            samples.push(at.elapsed());
        }
    }
    changer.await??;
    samples.sort_unstable();
    Ok(samples)
}

/// Resident memory of this process, in MiB; 0 where `/proc` cannot tell.
pub(super) fn resident_mb() -> f64 {
    super::affinity::rss_mib(std::process::id()).unwrap_or(0.0)
}

/// A database that exists only for the benchmark.
pub(super) struct Scratch {
    pub(super) store: Store,
    /// Where the store is, for a service started on it.
    pub(super) url: String,
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Scratch {
    pub(super) async fn create(postgres: Option<&str>) -> anyhow::Result<Self> {
        let (url, postgres, dir) = match postgres {
            Some(admin) => {
                let name = format!("nezuko_bench_{}", std::process::id());
                let mut conn = PgConnection::connect(admin)
                    .await
                    .with_context(|| format!("cannot reach {}", crate::db::redact_url(admin)))?;
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await?;
                conn.close().await?;
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
                (
                    format!("{base}/{name}"),
                    Some((admin.to_string(), name)),
                    None,
                )
            }
            None => {
                let dir = tempfile::tempdir()?;
                (
                    format!("sqlite://{}", dir.path().join("bench.db").display()),
                    None,
                    Some(dir),
                )
            }
        };
        let settings = DatabaseSettings {
            url: DatabaseUrl::parse(&url.clone()).map_err(|e| anyhow::anyhow!("{}", e.problem))?,
            max_connections: 10,
            connect_timeout: Duration::from_secs(10),
        };
        let store = Store::connect(&settings).await?;
        store.migrate().await?;
        Ok(Self {
            store,
            url,
            postgres,
            _dir: dir,
        })
    }

    pub(super) async fn drop_all(self) {
        self.store.close().await;
        if let Some((admin, name)) = self.postgres
            && let Ok(mut conn) = PgConnection::connect(&admin).await
        {
            // Cleaning up a scratch database is best effort; it is named per run.
            let _ = conn
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
        }
    }
}
