//! Telegram's failures, classified, and the restart policy acting on them.

use std::sync::atomic::Ordering;
use std::time::Duration;

use nezuko_sandbox::faults::{Fault, FaultKind};
use serde_json::json;

use super::{DEADLINE, FleetWorld, fleet_tests};
use crate::support::wait::quiet_period;

fleet_tests!(
    a_dropped_connection_backs_off_and_recovers,
    a_server_error_storm_backs_off_and_recovers,
    a_revoked_token_stops_the_bot_without_retrying,
    another_poller_on_the_token_is_a_conflict_with_backoff,
    a_flapping_bot_is_parked_as_failed_until_an_admin_starts_it,
);

mod weather {
    use super::super::fleet_tests;
    use super::{
        a_storm_of_429s_is_waited_out_however_long_it_lasts,
        another_poller_for_a_while_is_ridden_out_and_the_bot_comes_back,
        dropped_connections_never_park_the_bot,
    };
    fleet_tests!(
        a_storm_of_429s_is_waited_out_however_long_it_lasts,
        dropped_connections_never_park_the_bot,
        another_poller_for_a_while_is_ridden_out_and_the_bot_comes_back,
    );
}

/// Another process polling `token` without pause, until the returned task is aborted.
fn rival_poller(world: &FleetWorld, token: &str) -> tokio::task::JoinHandle<()> {
    let url = format!("{}/bot{token}/getUpdates", world.running.url());
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        loop {
            let _ = client
                .post(&url)
                .json(&json!({ "timeout": 1 }))
                .send()
                .await;
        }
    })
}

/// Waits until `n` calls of `method` (any, for `None`) by `bot` failed, then until the bot is running again, and
/// checks it was never parked on the way.
async fn ridden_out(world: &mut FleetWorld, bot: i64, row: i64, method: Option<&str>, n: usize) {
    let method = method.map(str::to_string);
    world
        .sandbox
        .wait_until(Duration::from_secs(60), "the weather to pass", |s| {
            let failed = s
                .calls(Some(bot), method.as_deref())
                .iter()
                .filter(|c| c.error_code.is_some())
                .count();
            (failed >= n).then_some(())
        })
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stored = world.db.store.bot(row).await.unwrap();
        assert_ne!(
            stored.run_state.as_str(),
            "failed",
            "weather parked the bot: {:?}",
            stored.run_reason
        );
        if stored.run_state.as_str() == "running" && world.sandbox.is_polling(bot) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bot did not come back: {:?}",
            world.stored_states(row).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let states = world.stored_states(row).await;
    assert!(
        !states.iter().any(|s| s == "failed"),
        "never parked: {states:?}"
    );
}

async fn a_storm_of_429s_is_waited_out_however_long_it_lasts(mut world: FleetWorld) {
    let (bot, row) = world.running_bot("Lima").await;
    // Twice the failures that park a flapping bot (max_failures 4), each waited out as told.
    world.sandbox.inject_fault(Fault {
        bot: Some(bot.id),
        method: Some("getUpdates".into()),
        kind: FaultKind::RetryAfter { seconds: 1 },
        times: Some(8),
    });
    world.sandbox.send(world.group, world.user, "wake").unwrap();
    let backoff = world.wait_state(row.id, "backoff", DEADLINE).await;
    assert!(
        backoff["reason"]
            .as_str()
            .unwrap()
            .contains("retry after 1s"),
        "{backoff}"
    );
    ridden_out(&mut world, bot.id, row.id, Some("getUpdates"), 8).await;
    // Each start after a 429 came at least the second Telegram asked for after it.
    let calls = world.sandbox.calls(Some(bot.id), None);
    let mut last_429 = None;
    for call in &calls {
        if call.error_code == Some(429) {
            last_429 = Some(call.at_ms);
        } else if call.method == "getMe"
            && let Some(at) = last_429
        {
            assert!(
                call.at_ms - at >= 950,
                "started again {} ms after a retry_after of 1 s",
                call.at_ms - at
            );
        }
    }
    world.finish().await;
}

async fn dropped_connections_never_park_the_bot(mut world: FleetWorld) {
    let (bot, row) = world.running_bot("Mike").await;
    world.sandbox.inject_fault(Fault {
        bot: Some(bot.id),
        method: None,
        kind: FaultKind::DropConnection,
        times: Some(12),
    });
    world.sandbox.send(world.group, world.user, "wake").unwrap();
    ridden_out(&mut world, bot.id, row.id, None, 12).await;
    world.finish().await;
}

async fn another_poller_for_a_while_is_ridden_out_and_the_bot_comes_back(mut world: FleetWorld) {
    let (bot, row) = world.running_bot("November").await;
    let rogue = rival_poller(&world, &bot.token);
    // Long enough for many conflicts: a flapping bot would be parked after five.
    let id = bot.id;
    world
        .sandbox
        .wait_until(Duration::from_secs(30), "twelve conflicts", |s| {
            let conflicts = s
                .calls(Some(id), Some("getUpdates"))
                .iter()
                .filter(|c| c.error_code == Some(409))
                .count();
            (conflicts >= 12).then_some(())
        })
        .await
        .unwrap();
    rogue.abort();
    ridden_out(&mut world, bot.id, row.id, Some("getUpdates"), 1).await;
    world.finish().await;
}

async fn a_dropped_connection_backs_off_and_recovers(mut world: FleetWorld) {
    let (bot, row) = world.running_bot("Echo").await;
    world.sandbox.inject_fault(Fault {
        bot: Some(bot.id),
        method: Some("getUpdates".into()),
        kind: FaultKind::DropConnection,
        times: Some(1),
    });
    // Wake the waiting poll so the next one meets the fault.
    world.sandbox.send(world.group, world.user, "wake").unwrap();
    let backoff = world.wait_state(row.id, "backoff", DEADLINE).await;
    assert!(
        backoff["reason"].as_str().unwrap().contains("transient"),
        "{backoff}"
    );
    assert!(backoff["next_attempt_at"].as_i64().is_some());
    let running = world.wait_state(row.id, "running", DEADLINE).await;
    assert_eq!(running["restart_count"], 1);
    assert_eq!(world.db.store.bot(row.id).await.unwrap().restart_count, 1);
    world.finish().await;
}

async fn a_server_error_storm_backs_off_and_recovers(mut world: FleetWorld) {
    // Faulty before the bot exists: the registry's own poll may start a new bot before a nudge
    // (seen under load: the bot ran before the fault was in place).
    world.sandbox.inject_fault(Fault {
        bot: None,
        method: Some("getMe".into()),
        kind: FaultKind::ServerError { status: 502 },
        times: Some(2),
    });
    let (_, row) = world.add_bot("Foxtrot").await;
    world.fleet().reconcile_all();
    // teloxide waits about 10 s after a 5xx before it reports it.
    let backoff = world
        .wait_state(row.id, "backoff", std::time::Duration::from_secs(30))
        .await;
    assert!(
        backoff["reason"].as_str().unwrap().contains("Bad Gateway"),
        "{backoff}"
    );
    let running = world
        .wait_state(row.id, "running", std::time::Duration::from_secs(30))
        .await;
    assert!(running["restart_count"].as_i64().unwrap() >= 1);
    world.finish().await;
}

async fn a_revoked_token_stops_the_bot_without_retrying(mut world: FleetWorld) {
    let (bot, row) = world.running_bot("Golf").await;
    world.sandbox.revoke_token(bot.id).unwrap();
    let stopped = world.wait_state(row.id, "stopped", DEADLINE).await;
    assert!(
        stopped["reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid token"),
        "{stopped}"
    );
    assert_eq!(stopped["reason_code"], "invalid_token", "{stopped}");
    let calls = world.sandbox.calls(Some(bot.id), None).len();
    // The reconcile has run; a start it asked for would call getMe within milliseconds.
    world.fleet().reconcile().await.unwrap();
    quiet_period(
        Duration::from_millis(500),
        "a bot started again calls getMe",
    )
    .await;
    assert_eq!(
        world.sandbox.calls(Some(bot.id), None).len(),
        calls,
        "a revoked token is not retried"
    );
    let stored = world.db.store.bot(row.id).await.unwrap();
    assert_eq!(stored.run_state.as_str(), "stopped");
    assert!(stored.run_reason.unwrap().starts_with("invalid token"));
    assert_eq!(stored.run_reason_code.as_deref(), Some("invalid_token"));
    assert_eq!(stored.restart_count, 0);
    world.finish().await;
}

async fn another_poller_on_the_token_is_a_conflict_with_backoff(mut world: FleetWorld) {
    let (bot, row) = world.running_bot("Hotel").await;
    let id = bot.id;
    world.sandbox.wait_polling(id, DEADLINE).await.unwrap();
    // Someone else polls with the same token until our poll is the one terminated: a newer poll
    // ends the waiting one with 409, so a rogue that lands between two of our polls is itself the
    // one ended, and only a later overlap shows the conflict to us.
    let rogue = rival_poller(&world, &bot.token);
    let backoff = world.wait_state(row.id, "backoff", DEADLINE).await;
    rogue.abort();
    assert!(
        backoff["reason"].as_str().unwrap().starts_with("conflict"),
        "{backoff}"
    );
    world.wait_state(row.id, "running", DEADLINE).await;
    world.finish().await;
}

async fn a_flapping_bot_is_parked_as_failed_until_an_admin_starts_it(mut world: FleetWorld) {
    // A fault of Nezuko's own: starting the bot panics, with Telegram answering fine.
    world.recorder.crash_on_start.store(true, Ordering::SeqCst);
    let (bot, row) = world.add_bot("India").await;
    world.fleet().reconcile_all();
    let failed = world.wait_state(row.id, "failed", DEADLINE).await;
    assert!(
        failed["reason"].as_str().unwrap().starts_with("flapping"),
        "{failed}"
    );
    let attempts = world.sandbox.calls(Some(bot.id), Some("getMe")).len();
    assert_eq!(attempts, 5, "max_failures (4) + 1 attempts, then parked");
    // The reconcile has run; a start it asked for would call getMe within milliseconds.
    world.fleet().reconcile().await.unwrap();
    quiet_period(
        Duration::from_millis(500),
        "a bot started again calls getMe",
    )
    .await;
    assert_eq!(
        world.sandbox.calls(Some(bot.id), Some("getMe")).len(),
        attempts,
        "a parked bot stays parked"
    );
    assert_eq!(
        world.db.store.bot(row.id).await.unwrap().run_state.as_str(),
        "failed"
    );

    world.recorder.crash_on_start.store(false, Ordering::SeqCst);
    world.db.store.request_bot_start(row.id).await.unwrap();
    world.fleet().reconcile_all();
    world.wait_state(row.id, "running", DEADLINE).await;
    world.finish().await;
}

mod more {
    use super::super::fleet_tests;
    use super::{an_undecryptable_token_parks_the_bot_as_failed, deleting_a_bot_stops_it};
    fleet_tests!(
        an_undecryptable_token_parks_the_bot_as_failed,
        deleting_a_bot_stops_it
    );
}

async fn an_undecryptable_token_parks_the_bot_as_failed(mut world: FleetWorld) {
    let foreign = nezuko::vault::Vault::new(&[nezuko::vault::EncryptionKey::generate()]);
    let (bot, row) = world.add_bot_sealed_by("Kilo", &foreign).await;
    world.fleet().reconcile_all();
    let failed = world.wait_state(row.id, "failed", DEADLINE).await;
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be decrypted"),
        "{failed}"
    );
    let calls: Vec<String> = world
        .sandbox
        .calls(Some(bot.id), None)
        .iter()
        .map(|c| format!("{} {}", c.method, c.params))
        .collect();
    assert!(
        calls.is_empty(),
        "nothing reaches Telegram without a token: {calls:?}"
    );
    world.finish().await;
}

async fn deleting_a_bot_stops_it(mut world: FleetWorld) {
    let (bot, row) = world.running_bot("Lima").await;
    world.db.store.delete_bot(row.id).await.unwrap();
    world.fleet().reconcile_all();
    world.wait_state(row.id, "stopped", DEADLINE).await;
    assert!(!world.sandbox.is_polling(bot.id));
    assert!(world.fleet().status().await.unwrap().is_empty());
    world.finish().await;
}
