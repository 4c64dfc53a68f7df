//! `nezuko bench api`: the admin API under data. Seeds `verification_log` (1,000,000 rows by
//! default, spread over seven days) and `api_call_log`, starts the real service on it, signs in,
//! and times `GET /api/v1/stats` and every chart in every period (7d and 30d cover every row).
//! Then a second process (`nezuko bench sse-listen`, so client work does not share the server's
//! runtime) opens the SSE clients while this one publishes events at a fixed rate; delivery latency
//! is the client's receive time minus the event's stored `created_at`. Prints one JSON line last.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::Rng;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::bench_fleet::Scratch;
use crate::app::Application;
use crate::db::{ApiCall, Verification, now_ms};
use crate::http::api::charts::CHARTS;

const OWNER: i64 = 1;
const OUTCOMES: [(&str, u32); 6] = [
    ("passed", 70),
    ("restricted", 12),
    ("warned", 8),
    ("verified", 5),
    ("exempt", 4),
    ("unknown_allowed", 1),
];

pub struct ApiBench {
    pub postgres: Option<String>,
    pub rows: usize,
    pub samples: usize,
    pub sse_clients: usize,
    pub rate: f64,
    pub seconds: f64,
}

pub async fn run(bench: ApiBench) -> anyhow::Result<()> {
    let scratch = Scratch::create(bench.postgres.as_deref()).await?;
    let backend = scratch.store.backend().as_str();
    let started = Instant::now();
    seed(&scratch, bench.rows).await?;
    eprintln!(
        "seeded {} verification rows in {:.1} s on {backend}",
        bench.rows,
        started.elapsed().as_secs_f64()
    );

    let data = tempfile::tempdir()?;
    let env = std::collections::HashMap::from([
        ("NEZUKO_DATABASE__URL".to_string(), scratch.url.clone()),
        (
            "NEZUKO_SERVER__LISTEN".to_string(),
            "127.0.0.1:0".to_string(),
        ),
        (
            "NEZUKO_DATA_DIR".to_string(),
            data.path().display().to_string(),
        ),
        (
            "NEZUKO_AUTH__OWNER_TELEGRAM_ID".to_string(),
            OWNER.to_string(),
        ),
    ]);
    let settings = crate::settings::load_from(Path::new("/nonexistent"), &env)?;
    let app = Application::build(&settings).await?;
    let base = format!("http://{}", app.local_addr());
    let publisher = app.fleet().publisher();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        // Either signal or a dropped sender means stop.
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let cookie = sign_in(&client, &scratch, &base).await?;

    let stats = time_requests(&client, &base, &cookie, "/api/v1/stats", bench.samples).await?;
    let mut worst = ("", 0.0);
    for chart in CHARTS {
        for period in ["24h", "7d", "30d"] {
            let path = format!("/api/v1/charts/{chart}?period={period}");
            let p95 = time_requests(&client, &base, &cookie, &path, bench.samples).await?;
            eprintln!("{:<40} p95 {p95:>8.1} ms", format!("{chart} ({period})"));
            if p95 > worst.1 {
                worst = (chart, p95);
            }
        }
    }
    eprintln!("{:<40} p95 {stats:>8.1} ms", "stats");

    let sse = if bench.sse_clients > 0 {
        Some(sse_run(&bench, &base, &cookie, &publisher).await?)
    } else {
        None
    };
    // The server may already have ended; either way it is told to stop.
    let _ = stop.send(());
    // Bounded wait at the end of a benchmark: a late stop does not change the figures.
    let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
    scratch.drop_all().await;
    let report = json!({
        "backend": backend,
        "rows": bench.rows,
        "stats_p95_ms": round(stats),
        "charts_p95_ms": round(worst.1),
        "slowest_chart": worst.0,
        "sse_clients": sse.as_ref().map(|s| s["clients"].clone()),
        "sse_events_per_s": bench.rate,
        "sse_delivered": sse.as_ref().map(|s| s["delivered"].clone()),
        "sse_expected": sse.as_ref().map(|s| s["expected"].clone()),
        "sse_p50_ms": sse.as_ref().map(|s| s["p50_ms"].clone()),
        "sse_p99_ms": sse.as_ref().map(|s| s["p99_ms"].clone()),
    });
    println!("{report}");
    Ok(())
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// Verifications over the last seven days (Zipf-ish over 1,000 groups), and one API call per
/// three verifications.
async fn seed(scratch: &Scratch, rows: usize) -> anyhow::Result<()> {
    let now = now_ms();
    let week = 7 * 86_400_000;
    let total_weight: u32 = OUTCOMES.iter().map(|(_, w)| w).sum();
    let mut rng = rand::rng();
    let mut batch = Vec::with_capacity(10_000);
    let mut calls = Vec::with_capacity(4_000);
    for i in 0..rows {
        let mut pick = rng.random_range(0..total_weight);
        let outcome = OUTCOMES.iter().find(|(_, w)| {
            let hit = pick < *w;
            pick = pick.saturating_sub(*w);
            hit
        });
        let group = (rng.random_range(1.0f64..1000.0).powf(1.5) / 31.6) as i64 + 1;
        let cached = rng.random_bool(0.9);
        let latency = if cached {
            rng.random_range(0..15)
        } else {
            rng.random_range(20..400)
        };
        let created_at = now - rng.random_range(0..week);
        batch.push(Verification {
            bot_instance_id: group % 100 + 1,
            group_id: group,
            chat_id: -group,
            user_id: rng.random_range(1..200_000),
            channel_ids: sqlx::types::Json(vec![-1_000_000 - group % 50]),
            outcome: outcome.map(|(o, _)| *o).unwrap_or("passed").to_string(),
            cached,
            latency_ms: latency,
            created_at,
        });
        if i % 3 == 0 {
            calls.push(ApiCall {
                bot_instance_id: group % 100 + 1,
                method: [
                    "getChatMember",
                    "restrictChatMember",
                    "deleteMessage",
                    "sendMessage",
                ][i % 4]
                    .to_string(),
                outcome: if i % 97 == 0 { "api_error" } else { "ok" }.to_string(),
                error_code: (i % 97 == 0).then_some(400),
                latency_ms: rng.random_range(1..80),
                created_at,
            });
        }
        if batch.len() == 10_000 {
            scratch.store.insert_verifications(&batch).await?;
            scratch.store.insert_api_calls(&calls).await?;
            batch.clear();
            calls.clear();
        }
    }
    scratch.store.insert_verifications(&batch).await?;
    scratch.store.insert_api_calls(&calls).await?;
    scratch.store.analyze().await?;
    Ok(())
}

async fn sign_in(
    client: &reqwest::Client,
    scratch: &Scratch,
    base: &str,
) -> anyhow::Result<String> {
    let url = crate::http::auth::create_login_link(&scratch.store, base, OWNER, 5).await?;
    let token = url
        .split("#token=")
        .nth(1)
        .context("the login URL carries a token")?;
    let answer = client
        .post(format!("{base}/api/v1/auth/link"))
        .json(&json!({ "token": token }))
        .send()
        .await?;
    let cookie = answer
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("signing in returned no cookie")?
        .to_string();
    Ok(cookie)
}

/// p95 of `samples` sequential GETs, in milliseconds (after one warm-up request).
async fn time_requests(
    client: &reqwest::Client,
    base: &str,
    cookie: &str,
    path: &str,
    samples: usize,
) -> anyhow::Result<f64> {
    let mut times = Vec::with_capacity(samples);
    for i in 0..=samples {
        let started = Instant::now();
        let answer = client
            .get(format!("{base}{path}"))
            .header("cookie", cookie)
            .send()
            .await?;
        let status = answer.status();
        // The body is read only so the connection is reused; its content is not measured.
        let _ = answer.bytes().await?;
        anyhow::ensure!(status.is_success(), "{path} answered {status}");
        if i > 0 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok(percentile(&mut times, 0.95))
}

fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// Runs the listener process, publishes at `rate` for `seconds`, returns its report.
async fn sse_run(
    bench: &ApiBench,
    base: &str,
    cookie: &str,
    publisher: &crate::events::Publisher,
) -> anyhow::Result<Value> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["bench", "sse-listen", "--url", base, "--cookie", cookie])
        .args([
            "--clients",
            &bench.sse_clients.to_string(),
            "--seconds",
            &(bench.seconds + 3.0).to_string(),
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the SSE listener process")?;
    let stdout = child.stdout.take().context("listener stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await??;
    anyhow::ensure!(
        ready.as_deref() == Some("ready"),
        "the listener did not get ready: {ready:?}"
    );
    let interval = Duration::from_secs_f64(1.0 / bench.rate);
    let mut tick = tokio::time::interval(interval);
    let count = (bench.rate * bench.seconds) as u64;
    for n in 0..count {
        tick.tick().await;
        publisher.publish(
            crate::domain::EventKind::Activity,
            None,
            json!({ "bench": n }),
        );
    }
    let mut last = None;
    while let Some(line) = lines.next_line().await? {
        last = Some(line);
    }
    // The listener printed its report (read above); its exit status adds nothing.
    let _ = child.wait().await;
    let mut report: Value = serde_json::from_str(&last.context("the listener printed no report")?)?;
    report["expected"] = (count * bench.sse_clients as u64).into();
    Ok(report)
}

/// The listener process: `clients` SSE connections; prints `ready` once all are open, then one JSON line.
pub async fn listen(
    url: String,
    cookie: String,
    clients: usize,
    seconds: f64,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(clients);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, url, cookie, ready) = (
            client.clone(),
            url.clone(),
            cookie.clone(),
            ready_tx.clone(),
        );
        let mut stopping = stopping.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let Ok(mut response) = client
                .get(format!("{url}/api/v1/events/stream?type=activity"))
                .header("cookie", cookie)
                .send()
                .await
            else {
                return latencies;
            };
            // The receiver gone means the run is over.
            let _ = ready.send(()).await;
            drop(ready);
            let mut buffer = String::new();
            loop {
                let chunk = tokio::select! {
                    chunk = response.chunk() => chunk,
                    _ = stopping.wait_for(|s| *s) => break,
                };
                let Ok(Some(chunk)) = chunk else { break };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:"))
                        && let Ok(event) = serde_json::from_str::<Value>(data)
                        && let Some(created) = event["created_at"].as_i64()
                    {
                        latencies.push((now_ms() - created) as f64);
                    }
                }
            }
            latencies
        }));
    }
    drop(ready_tx);
    let mut connected = 0;
    while connected < clients && ready_rx.recv().await.is_some() {
        connected += 1;
    }
    println!("ready");
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    // No receivers left means every worker already stopped.
    let _ = stop.send(true);
    let mut all = Vec::new();
    for task in tasks {
        if let Ok(latencies) = task.await {
            all.extend(latencies);
        }
    }
    let delivered = all.len();
    println!(
        "{}",
        json!({
            "clients": connected,
            "delivered": delivered,
            "p50_ms": percentile(&mut all, 0.50),
            "p99_ms": percentile(&mut all, 0.99),
            "max_ms": all.last().copied().unwrap_or(0.0),
        })
    );
    Ok(())
}
