//! The load driver behind `nezuko sandbox --scenario`: builds a world from a [`Scenario`], writes it
//! to a file a bot deployment can be set up from, plays its users at the scenario's rate, and reports
//! what it measured at the sandbox's edge ([`measure`]).

pub mod measure;
pub mod scenario;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use self::measure::{Stopwatch, quantile_ms};
pub use self::scenario::{Mix, Scenario};
use super::Sandbox;
use super::control::SandboxBot;
use super::model::{AdminRights, ChatKind, Status};

/// The world a scenario built: what a bot deployment needs to serve it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorldPlan {
    pub api_url: String,
    pub bots: Vec<SandboxBot>,
    pub channels: Vec<PlannedChannel>,
    pub groups: Vec<PlannedGroup>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedChannel {
    pub chat_id: i64,
    pub username: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlannedGroup {
    pub chat_id: i64,
    pub title: String,
    pub bot_id: i64,
    pub channels: Vec<i64>,
    #[serde(skip)]
    pub members: Vec<i64>,
}

/// Creates the scenario's bots, channels, groups and members. Non-subscribers are members of a
/// group but not of its channels; the stopwatch watches them.
pub fn build_world(
    sandbox: &Sandbox,
    scenario: &Scenario,
    api_url: &str,
    stopwatch: &Stopwatch,
) -> Result<WorldPlan, super::control::ControlError> {
    let mut rng = StdRng::seed_from_u64(7);
    let owner = sandbox.create_user("Owner", Some("owner"));
    let bots: Vec<SandboxBot> = (0..scenario.bots)
        .map(|n| sandbox.create_bot(&format!("Guard {n}"), &format!("guard{n}_bot")))
        .collect();
    let channels: Vec<PlannedChannel> = (0..scenario.channels)
        .map(|n| {
            let username = format!("channel{n}");
            let chat_id =
                sandbox.create_chat(ChatKind::Channel, &format!("Channel {n}"), Some(&username));
            PlannedChannel { chat_id, username }
        })
        .collect();
    for channel in &channels {
        sandbox.set_member(channel.chat_id, owner.id, Status::Creator)?;
    }
    let mut groups = Vec::with_capacity(scenario.groups);
    for g in 0..scenario.groups {
        let bot = &bots[g % bots.len()];
        let title = format!("Group {g}");
        let chat_id = sandbox.create_chat(ChatKind::Supergroup, &title, None);
        sandbox.set_member(chat_id, owner.id, Status::Creator)?;
        sandbox.promote(chat_id, bot.id, AdminRights::force_subscribe())?;
        if scenario.mix.join_request > 0.0 {
            sandbox.set_join_guard(chat_id, Some(bot.id))?;
        }
        let linked: Vec<i64> = (0..scenario.channels_per_group)
            .map(|k| channels[(g + k) % channels.len()].chat_id)
            .collect();
        for channel in &linked {
            sandbox.promote(*channel, bot.id, AdminRights::force_subscribe())?;
        }
        let mut members = Vec::with_capacity(scenario.members_per_group);
        for m in 0..scenario.members_per_group {
            let user = sandbox.create_user(&format!("Member {g}-{m}"), None);
            sandbox.join(chat_id, user.id)?;
            if rng.random_bool(scenario.non_subscriber_share) {
                stopwatch.watch(chat_id, user.id);
            } else {
                for channel in &linked {
                    sandbox.join(*channel, user.id)?;
                }
            }
            members.push(user.id);
        }
        groups.push(PlannedGroup {
            chat_id,
            title,
            bot_id: bot.id,
            channels: linked,
            members,
        });
    }
    Ok(WorldPlan {
        api_url: api_url.to_string(),
        bots,
        channels,
        groups,
    })
}

/// What a run measured; printed as one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub duration_s: f64,
    pub events: Value,
    pub updates_confirmed: u64,
    pub updates_per_s: f64,
    pub actions_measured: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub calls_by_method: Value,
    pub rate_limited: u64,
    pub spec_violations: usize,
    /// Updates that called for an action (in the measured run) and got none, after the settle.
    pub unanswered: usize,
    /// Up to ten of those: `{bot, chat, user, handed_at_s}` (seconds into the measured run).
    pub unanswered_sample: Vec<Value>,
    /// Seconds from the end of the load until no update was waiting for its action (the bound
    /// `settle` when some never got one): how long the bots took to catch up.
    pub caught_up_s: f64,
    /// Messages deleted more than once: a member's is one update acted on twice (a redelivery after
    /// a crash); a bot's own is one of its messages deleted by two of its paths.
    pub deleted_twice: usize,
    /// Up to five of those, each with its sender, the start of its text and every call that asked:
    /// `{chat, message_id, from, text, calls: [{bot, method, at_ms, ok, error_code, description}]}`,
    /// to tell a retry, a bot deleting its own message twice and a second handling apart.
    pub deleted_twice_sample: Vec<Value>,
    /// `getUpdates` calls ended with 409: two pollers of one token met.
    pub conflicts_409: usize,
}

#[derive(Debug, Default)]
struct Tally {
    message: u64,
    blocked: u64,
    join: u64,
    channel_leave: u64,
    button: u64,
    join_request: u64,
    skipped: u64,
}

/// Plays the scenario's users for its duration, then waits for the bots to catch up: until no
/// update is waiting for its action, `settle` at most.
pub async fn drive(
    sandbox: &Sandbox,
    plan: &mut WorldPlan,
    scenario: &Scenario,
    stopwatch: Arc<Stopwatch>,
    settle: Duration,
) -> Report {
    let mut rng = StdRng::seed_from_u64(11);
    let zipf = Zipf::new(
        scenario.members_per_group.max(1) as f64,
        scenario.zipf_exponent,
    )
    .expect("valid Zipf parameters");
    let weights = [
        scenario.mix.message,
        scenario.mix.join,
        scenario.mix.channel_leave,
        scenario.mix.button,
        scenario.mix.join_request,
    ];
    let total_weight: f64 = weights.iter().sum();
    let confirmed_before = sandbox.counters().updates_confirmed;
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut done = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(5));
    while started.elapsed().as_secs_f64() < scenario.duration_s {
        ticker.tick().await;
        let due = (started.elapsed().as_secs_f64() * scenario.rate) as u64;
        while done < due {
            done += 1;
            let group = rng.random_range(0..plan.groups.len());
            let mut pick = rng.random_range(0.0..total_weight);
            let kind = weights.iter().position(|w| {
                pick -= w;
                pick < 0.0
            });
            let share = scenario.non_subscriber_share;
            play(
                sandbox,
                &mut plan.groups[group],
                kind.unwrap_or(0),
                share,
                &zipf,
                &mut rng,
                &stopwatch,
                &mut tally,
            );
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let load_ended = Instant::now();
    while stopwatch.unanswered() > 0 && load_ended.elapsed() < settle {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let caught_up_s = load_ended.elapsed().min(settle).as_secs_f64();
    if scenario.mix.join_request > 0.0 {
        // A guard query still unanswered counts once its 10 s are over (declined, a violation):
        // the report waits that long past the last request.
        let past_deadline = Duration::from_millis(crate::world::QUERY_DEADLINE_MS as u64 + 500);
        tokio::time::sleep(past_deadline.saturating_sub(load_ended.elapsed())).await;
    }
    let counters = sandbox.counters();
    let confirmed = counters.updates_confirmed - confirmed_before;
    let latencies = stopwatch.latencies();
    let (twice, twice_sample) = deleted_twice(sandbox, 5);
    Report {
        scenario: scenario.name.clone(),
        duration_s: elapsed,
        events: json!({
            "message": tally.message, "blocked": tally.blocked, "join": tally.join,
            "channel_leave": tally.channel_leave, "button": tally.button,
            "join_request": tally.join_request, "skipped": tally.skipped,
        }),
        updates_confirmed: confirmed,
        updates_per_s: confirmed as f64 / elapsed,
        actions_measured: latencies.len(),
        p50_ms: quantile_ms(&latencies, 0.50),
        p90_ms: quantile_ms(&latencies, 0.90),
        p99_ms: quantile_ms(&latencies, 0.99),
        calls_by_method: serde_json::to_value(&counters.by_method).unwrap_or(Value::Null),
        rate_limited: counters.too_many_requests,
        spec_violations: sandbox.violations().len(),
        unanswered: stopwatch.unanswered(),
        unanswered_sample: stopwatch
            .unanswered_sample(10)
            .into_iter()
            .map(|(bot, chat, user, handed)| {
                let at = handed.saturating_duration_since(started).as_secs_f64();
                json!({"bot": bot, "chat": chat, "user": user, "handed_at_s": (at * 10.0).round() / 10.0})
            })
            .collect(),
        caught_up_s: (caught_up_s * 10.0).round() / 10.0,
        deleted_twice: twice,
        deleted_twice_sample: twice_sample,
        conflicts_409: sandbox
            .calls(None, Some("getUpdates"))
            .iter()
            .filter(|c| c.error_code == Some(409))
            .count(),
    }
}

/// How many messages the bots asked to delete more than once (`deleteMessage`, and each id of a
/// `deleteMessages`), whatever Telegram answered the second time, and the first `sample` of them
/// (oldest message first) each with the calls that asked.
fn deleted_twice(sandbox: &Sandbox, sample: usize) -> (usize, Vec<Value>) {
    let mut asked: std::collections::BTreeMap<(i64, i64), Vec<Value>> = Default::default();
    let mut note = |chat: i64, id: i64, call: &crate::journal::CallRecord| {
        asked.entry((chat, id)).or_default().push(json!({
            "bot": call.bot,
            "method": call.method,
            "at_ms": call.at_ms,
            "ok": call.ok,
            "error_code": call.error_code,
            "description": call.description,
        }));
    };
    for call in sandbox.calls(None, Some("deleteMessage")) {
        if let (Some(chat), Some(id)) = (
            call.params["chat_id"].as_i64(),
            call.params["message_id"].as_i64(),
        ) {
            note(chat, id, &call);
        }
    }
    for call in sandbox.calls(None, Some("deleteMessages")) {
        let chat = call.params["chat_id"].as_i64();
        for id in call.params["message_ids"].as_array().into_iter().flatten() {
            if let (Some(chat), Some(id)) = (chat, id.as_i64()) {
                note(chat, id, &call);
            }
        }
    }
    asked.retain(|_, calls| calls.len() > 1);
    let described = asked
        .iter()
        .take(sample)
        .map(|(&(chat, id), calls)| {
            // Whose message it was: a bot's own (a warning deleted by two of its paths) or a
            // member's (one update handled twice). Only the sample's chats are read: a
            // transcript is copied whole.
            let message = sandbox
                .transcript(chat)
                .into_iter()
                .find(|m| m.message_id == id);
            json!({
                "chat": chat,
                "message_id": id,
                "from": message.as_ref().map(|m| m.from),
                "text": message.and_then(|m| m.text).map(|t| t.chars().take(60).collect::<String>()),
                "calls": calls,
            })
        })
        .collect();
    (asked.len(), described)
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename the same values
fn play(
    sandbox: &Sandbox,
    group: &mut PlannedGroup,
    kind: usize,
    non_subscriber_share: f64,
    zipf: &Zipf<f64>,
    rng: &mut StdRng,
    stopwatch: &Stopwatch,
    tally: &mut Tally,
) {
    match kind {
        0 => {
            let rank = (zipf.sample(rng) as usize)
                .saturating_sub(1)
                .min(group.members.len() - 1);
            tally.message += 1;
            if sandbox
                .send(group.chat_id, group.members[rank], "hello")
                .is_err()
            {
                tally.blocked += 1;
            }
        }
        1 => {
            let user = sandbox.create_user("Newcomer", None);
            tally.join += 1;
            // Newcomers are non-subscribers as often as the scenario says.
            if rng.random_bool(non_subscriber_share) {
                stopwatch.watch(group.chat_id, user.id);
            } else {
                for channel in &group.channels {
                    let _ = sandbox.join(*channel, user.id);
                }
            }
            if sandbox.join(group.chat_id, user.id).is_ok() {
                group.members.push(user.id);
            }
        }
        2 => {
            let user = group.members[rng.random_range(0..group.members.len())];
            let channel = group.channels[0];
            if sandbox.member(channel, user).is_present() && sandbox.leave(channel, user).is_ok() {
                stopwatch.watch(group.chat_id, user);
                tally.channel_leave += 1;
            } else {
                tally.skipped += 1;
            }
        }
        4 => {
            let user = sandbox.create_user("Requester", None);
            tally.join_request += 1;
            if !rng.random_bool(non_subscriber_share) {
                for channel in &group.channels {
                    let _ = sandbox.join(*channel, user.id);
                }
            }
            if sandbox.request_join(group.chat_id, user.id).is_err() {
                tally.skipped += 1;
            }
        }
        _ => match sandbox.latest_button(group.chat_id) {
            Some((message_id, data, addressed)) => {
                let user = addressed.unwrap_or(group.members[0]);
                for channel in &group.channels {
                    let _ = sandbox.join(*channel, user);
                }
                stopwatch.unwatch(group.chat_id, user);
                tally.button += 1;
                if sandbox
                    .press_button(group.chat_id, message_id, user, &data)
                    .is_err()
                {
                    tally.skipped += 1;
                }
            }
            None => tally.skipped += 1,
        },
    }
}
