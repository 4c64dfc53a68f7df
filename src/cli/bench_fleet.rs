//! `nezuko bench fleet`: N bots against an in-process sandbox and a real database. Prints one JSON
//! line: time until every bot runs, resident memory, and start/stop latency from the database change
//! to the state event (the registry's reaction included).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

use crate::actors::{Event, Fleet, FleetOptions, RestartPolicy};
use crate::db::{DatabaseUrl, NewBot, Store};
use crate::domain::{BotToken, DesiredState};
use crate::enforce::{EnforceOptions, Enforcer};
use crate::settings::DatabaseSettings;
use crate::vault::{EncryptionKey, Vault};
use nezuko_sandbox::driver::measure::quantile_ms;
use nezuko_sandbox::faults::RateLimits;
use nezuko_sandbox::{Sandbox, SandboxConfig};

pub async fn run(bots: usize, postgres: Option<String>, sample: usize) -> anyhow::Result<()> {
    let scratch = Scratch::create(postgres.as_deref()).await?;
    let outcome = measure(&scratch.store, bots, sample.min(bots)).await;
    scratch.drop_all().await;
    println!("{}", outcome?);
    Ok(())
}

async fn measure(store: &Store, bots: usize, sample: usize) -> anyhow::Result<serde_json::Value> {
    let config = SandboxConfig {
        rate_limits: RateLimits {
            enabled: false,
            ..RateLimits::default()
        },
        call_log_capacity: 10_000,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::new(config);
    let running = sandbox.spawn_local().await?;
    let vault = Vault::new(&[EncryptionKey::generate()]);
    let mut ids = Vec::with_capacity(bots);
    for n in 0..bots {
        let bot = sandbox.create_bot(&format!("Fleet {n}"), &format!("fleet{n}_bot"));
        let token =
            BotToken::parse(&bot.token).map_err(|e| anyhow::anyhow!("sandbox token: {e}"))?;
        let row = store
            .insert_bot(&NewBot {
                telegram_bot_id: bot.id,
                username: bot.username,
                display_name: format!("Fleet {n}"),
                token_ciphertext: vault.encrypt_token(&token),
                owner_telegram_id: None,
                desired_state: DesiredState::Enabled,
            })
            .await?;
        ids.push(row.id);
    }
    let options = FleetOptions {
        api_url: running.url(),
        http: crate::telegram::http_client(),
        // The real handler, as `serve` runs it (each bot starts its periodic permission check).
        handler: Arc::new(Enforcer::start(store.clone(), EnforceOptions::default())?),
        policy: RestartPolicy::default(),
        poll_interval: Duration::from_secs(1),
        full_interval: Duration::from_secs(30),
        event_capacity: bots * 4 + 1024,
    };
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
        "start_p99_ms": quantile_ms(&start, 0.99).round(),
        "stop_p99_ms": quantile_ms(&stop, 0.99).round(),
        "sample": sample,
        "backend": store.backend().as_str(),
    }))
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

/// Resident memory of this process (sandbox included), in MiB; 0 where `/proc` cannot tell.
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
            let _ = conn
                .execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await;
        }
    }
}
