//! Telegram's failures, classified, and the restart policy acting on them.

use std::sync::Arc;

use nezuko_sandbox::faults::{Fault, FaultKind};
use serde_json::json;

use super::{DEADLINE, FleetWorld, fleet_tests};

fleet_tests!(
    a_dropped_connection_backs_off_and_recovers,
    a_server_error_storm_backs_off_and_recovers,
    a_revoked_token_stops_the_bot_without_retrying,
    another_poller_on_the_token_is_a_conflict_with_backoff,
    a_flapping_bot_is_parked_as_failed_until_an_admin_starts_it,
);

async fn a_dropped_connection_backs_off_and_recovers(mut world: FleetWorld) {
    let (bot, row) = world.add_bot("Echo").await;
    world.fleet().nudge();
    world.wait_state(row.id, "running", DEADLINE).await;
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
    world.fleet().nudge();
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
    let (bot, row) = world.add_bot("Golf").await;
    world.fleet().nudge();
    world.wait_state(row.id, "running", DEADLINE).await;
    world.sandbox.revoke_token(bot.id).unwrap();
    let stopped = world.wait_state(row.id, "stopped", DEADLINE).await;
    assert!(
        stopped["reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid token"),
        "{stopped}"
    );
    let calls = world.sandbox.calls(Some(bot.id), None).len();
    world.fleet().reconcile().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        world.sandbox.calls(Some(bot.id), None).len(),
        calls,
        "a revoked token is not retried"
    );
    let stored = world.db.store.bot(row.id).await.unwrap();
    assert_eq!(stored.run_state.as_str(), "stopped");
    assert!(stored.run_reason.unwrap().starts_with("invalid token"));
    assert_eq!(stored.restart_count, 0);
    world.finish().await;
}

async fn another_poller_on_the_token_is_a_conflict_with_backoff(mut world: FleetWorld) {
    let (bot, row) = world.add_bot("Hotel").await;
    world.fleet().nudge();
    world.wait_state(row.id, "running", DEADLINE).await;
    let id = bot.id;
    world
        .sandbox
        .wait_until(DEADLINE, "our poll to wait", |s| {
            s.is_polling(id).then_some(())
        })
        .await
        .unwrap();
    // Someone else polls with the same token until our poll is the one terminated: a newer poll
    // ends the waiting one with 409, so a rogue that lands between two of our polls is itself the
    // one ended, and only a later overlap shows the conflict to us.
    let url = format!("{}/bot{}/getUpdates", world.running.url(), bot.token);
    let rogue = tokio::spawn(async move {
        let client = reqwest::Client::new();
        loop {
            let _ = client
                .post(&url)
                .json(&json!({ "timeout": 1 }))
                .send()
                .await;
        }
    });
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
    // Faulty before the bot exists: the registry's own poll may start a new bot before a nudge.
    world.sandbox.inject_fault(Fault {
        bot: None,
        method: Some("getMe".into()),
        kind: FaultKind::DropConnection,
        times: None,
    });
    let (bot, row) = world.add_bot("India").await;
    world.fleet().nudge();
    let failed = world.wait_state(row.id, "failed", DEADLINE).await;
    assert!(
        failed["reason"].as_str().unwrap().starts_with("flapping"),
        "{failed}"
    );
    let attempts = world.sandbox.calls(Some(bot.id), Some("getMe")).len();
    assert_eq!(attempts, 5, "max_failures (4) + 1 attempts, then parked");
    world.fleet().reconcile().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        world.sandbox.calls(Some(bot.id), Some("getMe")).len(),
        attempts,
        "a parked bot stays parked"
    );
    assert_eq!(
        world.db.store.bot(row.id).await.unwrap().run_state.as_str(),
        "failed"
    );

    world.sandbox.clear_faults();
    world.db.store.request_bot_start(row.id).await.unwrap();
    world.fleet().nudge();
    world.wait_state(row.id, "running", DEADLINE).await;
    let _ = Arc::new(());
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
    world.fleet().nudge();
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
    let (bot, row) = world.add_bot("Lima").await;
    world.fleet().nudge();
    world.wait_state(row.id, "running", DEADLINE).await;
    world.db.store.delete_bot(row.id).await.unwrap();
    world.fleet().nudge();
    world.wait_state(row.id, "stopped", DEADLINE).await;
    assert!(!world.sandbox.is_polling(bot.id));
    assert!(world.fleet().status().await.unwrap().is_empty());
    world.finish().await;
}
