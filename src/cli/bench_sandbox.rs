//! `nezuko bench sandbox`: the sandbox's own throughput, measured from another process.
//!
//! The sandbox runs as a child process (this binary, `bench sandbox --serve`); it builds its world,
//! keeps every bot's update queue topped up, and serves. This process is the load: one
//! long-polling connection per bot, then `--clients` connections asking `getChatMember` (the call
//! a force-subscribe bot makes most). The connections are plain hyper HTTP/1.1 clients, one
//! request at a time each as a bot's client sends them, so the load costs little and the figures
//! are the sandbox's. Throughput is read from the sandbox's own counters, its CPU time from
//! `/proc`. With `--pin` the sandbox and the load each run on a CPU of their own (the sandbox's
//! one-core capacity); without, they share the machine. One JSON line is printed.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::affinity;
use nezuko_sandbox::faults::RateLimits;
use nezuko_sandbox::model::{ChatKind, Status};
use nezuko_sandbox::{Sandbox, SandboxConfig};

/// How many updates the child keeps queued for each bot, so a poll never waits.
const QUEUE_DEPTH: usize = 2_000;

/// What the serving child tells the load: where it is and who its bots are.
#[derive(Debug, Serialize, Deserialize)]
struct Served {
    addr: String,
    user: i64,
    bots: Vec<(String, i64)>,
}

/// The load side: starts the sandbox child, drives both phases, prints the report.
pub async fn run(bots: usize, clients: usize, seconds: f64, pin: bool) -> anyhow::Result<()> {
    let cpus = affinity::available_cpus();
    let (sandbox_cpu, load_cpu) = match cpus.as_slice() {
        [.., a, b] if pin => (Some(*a), Some(*b)),
        _ if pin => anyhow::bail!("--pin needs two CPUs; this process may use {cpus:?}"),
        _ => (None, None),
    };
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command.args(["bench", "sandbox", "--serve", "--bots", &bots.to_string()]);
    if let Some(cpu) = sandbox_cpu {
        command.args(["--cpu", &cpu.to_string()]);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the sandbox process")?;
    let pid = child.id().context("the sandbox process ended at once")?;
    let stdout = child.stdout.take().context("no stdout from the sandbox")?;
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).await?;
    let served: Served =
        serde_json::from_str(&first).with_context(|| format!("the sandbox said {first:?}"))?;
    if let Some(cpu) = load_cpu {
        affinity::pin_process(cpu)?;
    }
    let control = Control::connect(&served.addr).await?;

    let window = Duration::from_secs_f64(seconds);
    let (confirmed_before, cpu_before) = (
        control.counter("updates_confirmed").await?,
        affinity::cpu_time_us(pid)?,
    );
    let started = Instant::now();
    let pollers: Vec<_> = served
        .bots
        .iter()
        .map(|(token, _)| tokio::spawn(poll(served.addr.clone(), token.clone(), started + window)))
        .collect();
    for poller in pollers {
        poller.await??;
    }
    let update_seconds = started.elapsed().as_secs_f64();
    let updates = control.counter("updates_confirmed").await? - confirmed_before;
    let update_cpu_us = affinity::cpu_time_us(pid)? - cpu_before;

    let (calls_before, cpu_before) = (control.counter("calls").await?, affinity::cpu_time_us(pid)?);
    let started = Instant::now();
    let callers: Vec<_> = (0..clients)
        .map(|n| {
            let (token, group) = served.bots[n % served.bots.len()].clone();
            let body = json!({ "chat_id": group, "user_id": served.user }).to_string();
            tokio::spawn(ask(served.addr.clone(), token, body, started + window))
        })
        .collect();
    for caller in callers {
        caller.await??;
    }
    let call_seconds = started.elapsed().as_secs_f64();
    let calls = control.counter("calls").await? - calls_before;
    let call_cpu_us = affinity::cpu_time_us(pid)? - cpu_before;
    let violations = control.op("violations").await?;
    let rss = affinity::rss_mib(pid)?;
    drop(child.stdin.take());
    // The figures were read before the child was told to end.
    let _ = child.wait().await;

    let report = json!({
        "bench": "sandbox",
        "bots": bots,
        "clients": clients,
        "updates_per_s": (updates as f64 / update_seconds).round(),
        "calls_per_s": (calls as f64 / call_seconds).round(),
        "sandbox_cpu_us_per_update": round2(update_cpu_us as f64 / updates.max(1) as f64),
        "sandbox_cpu_us_per_call": round2(call_cpu_us as f64 / calls.max(1) as f64),
        "sandbox_cpu": sandbox_cpu,
        "load_cpu": load_cpu,
        "sandbox_rss_mb": rss.round(),
        "spec_violations": violations.as_array().map(Vec::len).unwrap_or(0),
    });
    println!("{report}");
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// One bot long-polling and confirming until `deadline`.
async fn poll(addr: String, token: String, deadline: Instant) -> anyhow::Result<()> {
    let mut connection = connect(&addr).await?;
    let path = format!("/bot{token}/getUpdates");
    let mut offset = 0i64;
    while Instant::now() < deadline {
        let body = format!(r#"{{"offset":{offset},"limit":100,"timeout":1}}"#);
        let reply = post(&mut connection, &path, body).await?;
        if let Some(last) = last_update_id(&reply) {
            offset = last + 1;
        }
    }
    // Confirm the last batch, as a bot's next poll would.
    post(
        &mut connection,
        &path,
        format!(r#"{{"offset":{offset},"timeout":0}}"#),
    )
    .await?;
    Ok(())
}

/// One client asking the same `getChatMember` until `deadline`.
async fn ask(addr: String, token: String, body: String, deadline: Instant) -> anyhow::Result<()> {
    let mut connection = connect(&addr).await?;
    let path = format!("/bot{token}/getChatMember");
    let body = Bytes::from(body);
    while Instant::now() < deadline {
        post(&mut connection, &path, body.clone()).await?;
    }
    Ok(())
}

/// The `update_id` of the last update in a `getUpdates` reply, found without parsing the batch.
fn last_update_id(reply: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"update_id\":";
    let at = reply.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let digits: Vec<u8> = reply[at..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

async fn connect(addr: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn post(
    connection: &mut SendRequest<Full<Bytes>>,
    path: &str,
    body: impl Into<Bytes>,
) -> anyhow::Result<Bytes> {
    let request = hyper::Request::post(path)
        .header("host", "sandbox")
        .header("content-type", "application/json")
        .body(Full::new(body.into()))?;
    connection.ready().await?;
    let response = connection.send_request(request).await?;
    Ok(response.into_body().collect().await?.to_bytes())
}

/// The sandbox's control API, for counters and violations.
struct Control {
    connection: tokio::sync::Mutex<SendRequest<Full<Bytes>>>,
}

impl Control {
    async fn connect(addr: &str) -> anyhow::Result<Self> {
        Ok(Self {
            connection: tokio::sync::Mutex::new(connect(addr).await?),
        })
    }

    async fn op(&self, name: &str) -> anyhow::Result<Value> {
        let mut connection = self.connection.lock().await;
        let reply = post(&mut connection, &format!("/_sandbox/{name}"), "{}").await?;
        let reply: Value = serde_json::from_slice(&reply)?;
        Ok(reply["result"].clone())
    }

    async fn counter(&self, name: &str) -> anyhow::Result<u64> {
        self.op("counters").await?[name]
            .as_u64()
            .with_context(|| format!("no counter {name}"))
    }
}

/// The serving side (`bench sandbox --serve`, pinned to its CPU before its runtime started):
/// builds the world, tops up every queue, serves until its standard input closes (the load
/// process ended).
pub async fn serve(bots: usize) -> anyhow::Result<()> {
    let sandbox = Sandbox::new(SandboxConfig {
        rate_limits: RateLimits {
            enabled: false,
            ..RateLimits::default()
        },
        ..SandboxConfig::default()
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let user = sandbox.create_user("Speaker", None);
    let mut served = Served {
        addr: addr.to_string(),
        user: user.id,
        bots: Vec::new(),
    };
    let mut setup = Vec::new();
    for n in 0..bots {
        let bot = sandbox.create_bot(&format!("Bench {n}"), &format!("bench{n}_bot"));
        let group = sandbox.create_chat(ChatKind::Supergroup, &format!("Bench {n}"), None);
        sandbox.set_member(group, bot.id, Status::Member)?;
        sandbox.join(group, user.id)?;
        served.bots.push((bot.token.clone(), group));
        setup.push((bot.id, group));
    }
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
    let producer = {
        let sandbox = sandbox.clone();
        tokio::spawn(async move {
            loop {
                for (bot, group) in &setup {
                    while sandbox.pending_updates(*bot) < QUEUE_DEPTH {
                        // A refused send (queue full) is retried by the loop itself.
                        let _ = sandbox.send(*group, user.id, "load");
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    println!("{}", serde_json::to_string(&served)?);
    // The load process holds our stdin; when it closes (it finished or died), stop.
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = String::new();
    while stdin.read_line(&mut line).await? > 0 {
        line.clear();
    }
    producer.abort();
    // The server may already have ended; either way it is told to stop.
    let _ = stop.send(());
    // How the server task ended does not change the figures.
    let _ = server.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::last_update_id;

    #[test]
    fn the_last_update_id_is_found_in_a_reply() {
        let reply = br#"{"ok":true,"result":[{"update_id":17,"message":{}},{"update_id":18,"message":{"text":"x"}}]}"#;
        assert_eq!(last_update_id(reply), Some(18));
        assert_eq!(last_update_id(br#"{"ok":true,"result":[]}"#), None);
    }
}
