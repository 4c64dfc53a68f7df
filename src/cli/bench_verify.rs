//! `nezuko bench verify`: the whole enforcement path under load. The sandbox's load driver plays the
//! `verify` scenario (100 bots × 1,000 groups, Zipf speakers, 5 % non-subscribers) against a fleet
//! running the real `Enforcer` on a real database, with Telegram's flood limits switched on.
//! After a warm-up it measures, and prints one JSON line last: confirmed updates per second,
//! update-to-first-action latency (from the sandbox's side), the membership cache's hit rate,
//! 429s and spec violations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::bench_fleet::{Scratch, resident_mb};
use crate::actors::{Fleet, FleetOptions, RestartPolicy};
use crate::db::{NewBot, NewChannel, NewGroup, Store};
use crate::domain::{BotToken, DesiredState};
use crate::enforce::{EnforceOptions, Enforcer};
use crate::vault::{EncryptionKey, Vault};
use nezuko_sandbox::driver::measure::Stopwatch;
use nezuko_sandbox::driver::{self, Scenario, WorldPlan};
use nezuko_sandbox::{Sandbox, SandboxConfig};

/// What to run.
#[derive(Debug, Clone)]
pub struct VerifyBench {
    pub postgres: Option<String>,
    pub redis: Option<String>,
    pub scenario: String,
    pub seconds: Option<f64>,
    pub rate: Option<f64>,
    pub warmup_s: f64,
}

pub async fn run(bench: VerifyBench) -> anyhow::Result<()> {
    let scratch = Scratch::create(bench.postgres.as_deref()).await?;
    let outcome = measure(&scratch.store, &bench).await;
    scratch.drop_all().await;
    println!("{}", outcome?);
    Ok(())
}

async fn measure(store: &Store, bench: &VerifyBench) -> anyhow::Result<serde_json::Value> {
    let mut scenario = Scenario::load(&bench.scenario)?;
    if let Some(seconds) = bench.seconds {
        scenario.duration_s = seconds;
    }
    if let Some(rate) = bench.rate {
        scenario.rate = rate;
    }
    let sandbox = Sandbox::new(SandboxConfig {
        call_log_capacity: 10_000,
        ..SandboxConfig::default()
    });
    let running = sandbox.spawn_local().await?;
    let stopwatch = Arc::new(Stopwatch::default());
    sandbox.set_observer(stopwatch.clone());
    let mut plan = driver::build_world(&sandbox, &scenario, &running.url(), &stopwatch)?;
    let vault = Vault::new(&[EncryptionKey::generate()]);
    store_plan(store, &vault, &plan).await?;
    eprintln!(
        "world: {} bots, {} groups, {} channels; starting the fleet",
        plan.bots.len(),
        plan.groups.len(),
        plan.channels.len()
    );
    let options = EnforceOptions {
        redis_url: bench.redis.clone(),
        redis_namespace: format!("nezuko-bench-{}", std::process::id()),
        ..EnforceOptions::default()
    };
    let enforcer = Enforcer::start(store.clone(), options)?;
    let fleet = Fleet::start(
        store.clone(),
        vault,
        FleetOptions {
            api_url: running.url(),
            http: crate::telegram::http_client(),
            handler: Arc::new(enforcer.clone()),
            policy: RestartPolicy::default(),
            poll_interval: Duration::from_secs(1),
            full_interval: Duration::from_secs(30),
            event_capacity: 65_536,
        },
    )
    .await?;
    let started = Instant::now();
    for bot in &plan.bots {
        while !sandbox.is_polling(bot.id) {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(120),
                "not every bot polled within 120 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    eprintln!(
        "all bots polling after {:.1} s; warming up for {} s",
        started.elapsed().as_secs_f64(),
        bench.warmup_s
    );
    let warmup = Scenario {
        duration_s: bench.warmup_s,
        ..scenario.clone()
    };
    driver::drive(
        &sandbox,
        &mut plan,
        &warmup,
        stopwatch.clone(),
        Duration::from_secs(2),
    )
    .await;
    stopwatch.reset();
    let (hits_before, misses_before) = enforcer.cache_stats();
    let calls_before = sandbox.counters().by_method;
    eprintln!(
        "measuring for {} s at {} events/s",
        scenario.duration_s, scenario.rate
    );
    let report = driver::drive(
        &sandbox,
        &mut plan,
        &scenario,
        stopwatch,
        Duration::from_secs(3),
    )
    .await;
    let (hits, misses) = enforcer.cache_stats();
    let (hits, misses) = (hits - hits_before, misses - misses_before);
    let rss_mb = resident_mb();
    fleet.shutdown(Duration::from_secs(9)).await;
    enforcer.flush().await;
    let cache_hit = if hits + misses == 0 {
        0.0
    } else {
        hits as f64 / (hits + misses) as f64
    };
    let round = |x: f64, places: i32| (x * 10f64.powi(places)).round() / 10f64.powi(places);
    Ok(json!({
        "bench": "verify",
        "scenario": report.scenario,
        "backend": store.backend().as_str(),
        "redis": bench.redis.is_some(),
        "bots": plan.bots.len(),
        "groups": plan.groups.len(),
        "duration_s": round(report.duration_s, 2),
        "events": report.events,
        "updates_confirmed": report.updates_confirmed,
        "updates_per_s": round(report.updates_per_s, 0),
        "actions_measured": report.actions_measured,
        "p50_ms": round(report.p50_ms, 2),
        "p90_ms": round(report.p90_ms, 2),
        "p99_ms": round(report.p99_ms, 2),
        "cache_hit": round(cache_hit, 4),
        "rate_limited": report.rate_limited,
        "calls_by_method": measured_calls(&calls_before, &report.calls_by_method),
        "spec_violations": report.spec_violations,
        "rss_mb": round(rss_mb, 1),
    }))
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
