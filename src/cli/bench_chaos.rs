//! `nezuko bench chaos`: does anything get lost or done twice when the weather turns? The product
//! runs as a real `nezuko serve` child process; this process is Telegram (the sandbox) and the
//! load: newcomers join (a share of them not subscribed), members write, held members subscribe
//! and press "I have joined". Meanwhile the service is killed with SIGKILL and started again
//! several times, the database is taken away (SQLite write-locked by another connection;
//! PostgreSQL closed to connections with its sessions cut), and Telegram answers a storm of 5xx
//! and 429s. When the load ends the run waits for the service to catch up, then compares
//! Telegram's final state with what each event required, and prints one JSON line:
//! `actions_needed`, `actions_missing`, `actions_doubled`, `warnings_missing`,
//! `records_missing`, `bots_parked` (all but the first should be 0).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use sqlx::Connection;

use super::bench_fleet::Scratch;
use super::bench_verify::{Product, stop, store_plan};
use crate::db::Store;
use crate::vault::{EncryptionKey, Vault};
use nezuko_sandbox::Sandbox;
use nezuko_sandbox::SandboxConfig;
use nezuko_sandbox::control::TranscriptEntry;
use nezuko_sandbox::driver::measure::Stopwatch;
use nezuko_sandbox::driver::{self, PlannedGroup, Scenario, WorldPlan};
use nezuko_sandbox::faults::{Fault, FaultKind};
use nezuko_sandbox::model::Status;

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosBench {
    pub postgres: Option<String>,
    /// Seconds of load.
    pub seconds: f64,
    /// Events per second.
    pub rate: f64,
    /// SIGKILLs spread over the run.
    pub kills: usize,
    /// Seconds the database is away.
    pub outage_s: f64,
}

/// How long the service may take to catch up after the load before what is left counts as lost.
const CATCH_UP: Duration = Duration::from_secs(90);

pub async fn run(bench: ChaosBench) -> anyhow::Result<()> {
    anyhow::ensure!(
        bench.seconds > 0.0 && bench.rate > 0.0 && bench.outage_s >= 0.0,
        "--seconds and --rate must be positive and --outage at least 0"
    );
    let scratch = Scratch::create(bench.postgres.as_deref()).await?;
    let outcome = measure(&scratch, &bench).await;
    scratch.drop_all().await;
    println!("{}", outcome?);
    Ok(())
}

/// What an event left a member owed, by Telegram's final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owed {
    /// Not subscribed and seen (joined or wrote): restricted, warned, recorded.
    Held,
    /// Subscribed after being held and pressed the button: free again.
    Released,
}

struct Load {
    rng: StdRng,
    next_name: u64,
    /// (group, user) → what the member is owed; every member the load touched.
    owed: HashMap<(i64, i64), Owed>,
    /// Display names of the members the load touched.
    names: HashMap<i64, String>,
    events: u64,
}

async fn measure(scratch: &Scratch, bench: &ChaosBench) -> anyhow::Result<Value> {
    let sandbox = Sandbox::new(SandboxConfig {
        call_log_capacity: 1_000_000,
        ..SandboxConfig::default()
    });
    let telegram = sandbox.spawn_local().await?;
    let scenario = Scenario {
        name: "chaos".into(),
        bots: 3,
        groups: 12,
        channels: 3,
        channels_per_group: 1,
        members_per_group: 30,
        non_subscriber_share: 0.3,
        ..Scenario::default()
    };
    let plan = driver::build_world(&sandbox, &scenario, &telegram.url(), &Stopwatch::default())?;
    let key = EncryptionKey::generate();
    store_plan(
        &scratch.store,
        &Vault::new(std::slice::from_ref(&key)),
        &plan,
    )
    .await?;
    let data = tempfile::tempdir()?;
    let service = Product::new(
        &scratch.url,
        &telegram.url(),
        key,
        data.path().to_path_buf(),
    )?;
    let mut child = service.start()?;
    wait_polling(&sandbox, &plan, Duration::from_secs(60)).await?;
    eprintln!(
        "chaos: {} bots, {} groups; {} s of load at {} events/s, {} kills, a {} s database outage, a fault storm",
        plan.bots.len(),
        plan.groups.len(),
        bench.seconds,
        bench.rate,
        bench.kills,
        bench.outage_s
    );

    // The names `driver::build_world` gives the members it creates.
    let names = plan
        .groups
        .iter()
        .enumerate()
        .flat_map(|(g, group)| {
            group
                .members
                .iter()
                .enumerate()
                .map(move |(m, user)| (*user, format!("Member {g}-{m}")))
        })
        .collect();
    let mut load = Load {
        rng: StdRng::seed_from_u64(23),
        next_name: 0,
        owed: HashMap::new(),
        names,
        events: 0,
    };
    let total = Duration::from_secs_f64(bench.seconds);
    let kill_at: Vec<Duration> = (1..=bench.kills)
        .map(|k| total.mul_f64(k as f64 / (bench.kills + 1) as f64))
        .collect();
    let outage_at = total.mul_f64(0.4);
    let storm_at = total.mul_f64(0.7);
    let mut outage: Option<tokio::task::JoinHandle<anyhow::Result<()>>> = None;
    let mut storm_done = false;
    let mut kills_done = 0;
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    while started.elapsed() < total {
        ticker.tick().await;
        let now = started.elapsed();
        let due = (now.as_secs_f64() * bench.rate) as u64;
        while load.events < due {
            load.events += 1;
            play(&sandbox, &plan, &mut load);
        }
        if kills_done < kill_at.len() && now >= kill_at[kills_done] {
            kills_done += 1;
            child.start_kill().context("SIGKILL the service")?;
            child.wait().await?;
            eprintln!("chaos: killed the service ({kills_done}), starting it again");
            child = service.start()?;
        }
        if outage.is_none() && now >= outage_at {
            eprintln!("chaos: the database is away for {} s", bench.outage_s);
            outage = Some(tokio::spawn(take_database_away(
                scratch.url.clone(),
                bench.postgres.clone(),
                Duration::from_secs_f64(bench.outage_s),
            )));
        }
        if !storm_done && now >= storm_at {
            storm_done = true;
            eprintln!("chaos: Telegram answers a storm of 5xx and 429s");
            storm(&sandbox, &plan);
        }
    }
    if let Some(outage) = outage {
        outage.await??;
    }
    eprintln!(
        "chaos: {} events played; waiting up to {} s for the service to catch up",
        load.events,
        CATCH_UP.as_secs()
    );
    let settle_started = Instant::now();
    let mut tally = count(&sandbox, &plan, &load, &scratch.store).await?;
    while settle_started.elapsed() < CATCH_UP && !tally.settled() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tally = count(&sandbox, &plan, &load, &scratch.store).await?;
    }
    if let Err(error) = stop(child).await {
        eprintln!("chaos: the service could not be stopped cleanly: {error}");
    }
    if !tally.settled() {
        report_service_log(&data.path().join("serve.log"));
    }
    let bots_parked = scratch
        .store
        .bots()
        .await?
        .iter()
        .filter(|bot| bot.run_state.as_str() == "failed")
        .count();
    let doubled = doubled_restricts(&sandbox);
    Ok(json!({
        "bench": "chaos",
        "backend": if bench.postgres.is_some() { "postgres" } else { "sqlite" },
        "seconds": bench.seconds,
        "events": load.events,
        "kills": kills_done,
        "outage_s": bench.outage_s,
        "actions_needed": tally.needed,
        "actions_missing": tally.missing,
        "actions_doubled": doubled,
        "warnings_missing": tally.warnings_missing,
        "records_missing": tally.records_missing,
        "bots_parked": bots_parked,
        "caught_up_s": (settle_started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        "spec_violations": sandbox.violations().len(),
    }))
}

/// The child `nezuko serve` and what it needs to start again.
/// Shows the warnings and errors the service logged, when something was lost, so the figure comes
/// with its cause.
pub(super) fn report_service_log(path: &std::path::Path) {
    let Ok(log) = std::fs::read_to_string(path) else {
        return;
    };
    let notable: Vec<&str> = log
        .lines()
        .filter(|line| {
            line.contains(" WARN ") || line.contains(" ERROR ") || line.starts_with("error:")
        })
        .collect();
    eprintln!(
        "the service's warnings and errors (last 40 of {}):",
        notable.len()
    );
    for line in notable.iter().rev().take(40).rev() {
        eprintln!("  {line}");
    }
}

async fn wait_polling(sandbox: &Sandbox, plan: &WorldPlan, within: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while !plan.bots.iter().all(|bot| sandbox.is_polling(bot.id)) {
        anyhow::ensure!(
            started.elapsed() < within,
            "the service did not poll every bot within {} s",
            within.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// One event: a newcomer joins (half of them), a member writes (four in ten), or a held member
/// subscribes and presses the group's latest button.
fn play(sandbox: &Sandbox, plan: &WorldPlan, load: &mut Load) {
    let group = &plan.groups[load.rng.random_range(0..plan.groups.len())];
    let pick: f64 = load.rng.random();
    if pick < 0.5 {
        join(sandbox, group, load);
    } else if pick < 0.9 {
        let user = group.members[load.rng.random_range(0..group.members.len())];
        if sandbox.send(group.chat_id, user, "hello").is_ok() {
            let owed = if subscribed(sandbox, group, user) {
                None
            } else {
                Some(Owed::Held)
            };
            if let Some(owed) = owed {
                load.owed.insert((group.chat_id, user), owed);
            }
        }
    } else {
        press(sandbox, group, load);
    }
}

fn join(sandbox: &Sandbox, group: &PlannedGroup, load: &mut Load) {
    load.next_name += 1;
    // Names no other name contains (`N1Z` is not inside `N11Z`), so a warning's text tells who it names.
    let name = format!("N{}Z", load.next_name);
    let user = sandbox.create_user(&name, None).id;
    let held = load.rng.random_bool(0.4);
    if !held {
        for channel in &group.channels {
            // Joining a channel the member is already in is refused and changes nothing.
            let _ = sandbox.join(*channel, user);
        }
    }
    if sandbox.join(group.chat_id, user).is_ok() {
        load.names.insert(user, name);
        if held {
            load.owed.insert((group.chat_id, user), Owed::Held);
        }
    }
}

fn press(sandbox: &Sandbox, group: &PlannedGroup, load: &mut Load) {
    let Some((message_id, data, addressed)) = sandbox.latest_button(group.chat_id) else {
        return;
    };
    let held: Vec<i64> = load
        .owed
        .iter()
        .filter(|((chat, user), owed)| {
            *chat == group.chat_id
                && **owed == Owed::Held
                && matches!(sandbox.member(*chat, *user), Status::Restricted { .. })
        })
        .map(|((_, user), _)| *user)
        .collect();
    let user = match addressed {
        Some(user) if held.contains(&user) => user,
        Some(_) => return,
        None if held.is_empty() => return,
        None => held[load.rng.random_range(0..held.len())],
    };
    for channel in &group.channels {
        // Joining a channel the member is already in is refused and changes nothing.
        let _ = sandbox.join(*channel, user);
    }
    if sandbox
        .press_button(group.chat_id, message_id, user, &data)
        .is_ok()
    {
        load.owed.insert((group.chat_id, user), Owed::Released);
    }
}

fn subscribed(sandbox: &Sandbox, group: &PlannedGroup, user: i64) -> bool {
    group
        .channels
        .iter()
        .all(|channel| sandbox.member(*channel, user).is_present())
}

/// The database goes away for `length`: SQLite is write-locked by another connection (every write
/// waits out its busy timeout and fails); PostgreSQL's database refuses new connections and its
/// sessions are cut.
async fn take_database_away(
    url: String,
    postgres: Option<String>,
    length: Duration,
) -> anyhow::Result<()> {
    match postgres {
        None => {
            let mut locker = sqlx::SqliteConnection::connect(&url).await?;
            sqlx::query("BEGIN IMMEDIATE").execute(&mut locker).await?;
            tokio::time::sleep(length).await;
            sqlx::query("ROLLBACK").execute(&mut locker).await?;
            locker.close().await?;
        }
        Some(admin) => {
            let name = url.rsplit('/').next().unwrap_or_default().to_string();
            let mut conn = sqlx::PgConnection::connect(&admin).await?;
            let refuse = format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false");
            sqlx::query(sqlx::AssertSqlSafe(refuse))
                .execute(&mut conn)
                .await?;
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(&name)
            .execute(&mut conn)
            .await?;
            tokio::time::sleep(length).await;
            let allow = format!("ALTER DATABASE {name} WITH ALLOW_CONNECTIONS true");
            sqlx::query(sqlx::AssertSqlSafe(allow))
                .execute(&mut conn)
                .await?;
            conn.close().await?;
        }
    }
    Ok(())
}

/// Telegram has a bad minute: 5xx on the calls enforcement makes, 429s on polling.
fn storm(sandbox: &Sandbox, plan: &WorldPlan) {
    for bot in &plan.bots {
        for method in ["restrictChatMember", "getChatMember", "sendMessage"] {
            sandbox.inject_fault(Fault {
                bot: Some(bot.id),
                method: Some(method.into()),
                kind: FaultKind::ServerError { status: 502 },
                times: Some(10),
            });
        }
        sandbox.inject_fault(Fault {
            bot: Some(bot.id),
            method: Some("getUpdates".into()),
            kind: FaultKind::RetryAfter { seconds: 3 },
            times: Some(3),
        });
    }
}

/// Telegram's final state against what the load required.
#[derive(Debug, Default)]
struct Tally {
    needed: usize,
    missing: usize,
    warnings_missing: usize,
    records_missing: usize,
}

impl Tally {
    fn settled(&self) -> bool {
        self.missing == 0 && self.warnings_missing == 0 && self.records_missing == 0
    }
}

async fn count(
    sandbox: &Sandbox,
    plan: &WorldPlan,
    load: &Load,
    store: &Store,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let bot_rows: HashMap<i64, i64> = store
        .bots()
        .await?
        .into_iter()
        .map(|bot| (bot.telegram_bot_id, bot.id))
        .collect();
    for group in &plan.groups {
        let said = bot_texts(sandbox.transcript(group.chat_id), group.bot_id);
        let bot = bot_rows[&group.bot_id];
        let Some(row) = store.group_by_chat(bot, group.chat_id).await? else {
            continue;
        };
        let verified: HashSet<i64> = store
            .recent_verifications(row.id, 1_000_000)
            .await?
            .into_iter()
            .map(|v| v.user_id)
            .collect();
        for ((chat, user), owed) in &load.owed {
            if *chat != group.chat_id {
                continue;
            }
            tally.needed += 1;
            let status = sandbox.member(*chat, *user);
            let done = match owed {
                Owed::Held => matches!(status, Status::Restricted { .. }),
                Owed::Released => status.can_send_messages(),
            };
            if !done {
                tally.missing += 1;
            }
            if *owed == Owed::Held {
                let name = &load.names[user];
                if !names(&said, name) {
                    tally.warnings_missing += 1;
                }
                let recorded = store.active_restriction(bot, *chat, *user).await?;
                if recorded.is_none() || !verified.contains(user) {
                    tally.records_missing += 1;
                }
            }
        }
    }
    Ok(tally)
}

fn bot_texts(transcript: Vec<TranscriptEntry>, bot: i64) -> String {
    transcript
        .into_iter()
        .filter(|m| m.from == bot)
        .filter_map(|m| m.text)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `text` names `name` (not as the start of a longer name: `Member 1-1` is not in `Member 1-10`).
fn names(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(at, _)| {
        !text[at + name.len()..]
            .chars()
            .next()
            .is_some_and(|next| next.is_ascii_digit())
    })
}

/// Restrictions sent twice: per member, every successful mute beyond the first.
fn doubled_restricts(sandbox: &Sandbox) -> usize {
    let mut mutes: HashMap<(String, i64), usize> = HashMap::new();
    for call in sandbox.calls(None, Some("restrictChatMember")) {
        let muted = call.params["permissions"]
            .as_object()
            .is_some_and(|p| p.values().all(|v| v == &Value::Bool(false)));
        if call.ok && muted {
            let chat = call.params["chat_id"].to_string();
            let user = call.params["user_id"].as_i64().unwrap_or_default();
            *mutes.entry((chat, user)).or_default() += 1;
        }
    }
    mutes.values().map(|n| n.saturating_sub(1)).sum()
}

#[cfg(test)]
mod tests {
    use super::names;

    #[test]
    fn a_name_is_found_only_whole() {
        assert!(names("👋 Member 1-1, Member 1-10, welcome", "Member 1-1"));
        assert!(!names("👋 Member 1-10, welcome", "Member 1-1"));
        assert!(names("N11Z and N1Z", "N1Z"));
        assert!(!names("N11Z", "N1Z"));
    }
}
