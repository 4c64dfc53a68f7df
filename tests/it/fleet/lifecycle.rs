//! Starting, stopping and restarting bots through the database.

use std::time::{Duration, Instant};

use nezuko::domain::DesiredState;

use super::{DEADLINE, FleetWorld, fleet_tests};
use crate::support::wait::quiet_period;

fleet_tests!(
    an_enabled_bot_row_starts_polling_promptly,
    disabling_a_bot_stops_its_polling,
    a_restart_is_one_stop_and_one_start,
    a_panicking_update_is_skipped_and_the_bot_keeps_running,
    a_slow_stop_asked_for_again_and_again_is_reported_once,
);

/// SQLite notices within its poll interval (1 s), PostgreSQL at once through NOTIFY.
fn start_deadline(world: &FleetWorld) -> Duration {
    match world.db.store.backend() {
        nezuko::db::Backend::Sqlite => Duration::from_secs(2),
        nezuko::db::Backend::Postgres => Duration::from_millis(500),
    }
}

async fn an_enabled_bot_row_starts_polling_promptly(mut world: FleetWorld) {
    // Let the first reconcile (an empty fleet) pass, so the next one is triggered by our insert.
    world.fleet().status().await.unwrap();
    let added = Instant::now();
    let (bot, row) = world.add_bot("Alpha").await;
    let within = start_deadline(&world);
    world
        .sandbox
        .wait_polling(bot.id, within)
        .await
        .unwrap_or_else(|e| panic!("{e} (after {:?})", added.elapsed()));
    world.wait_state(row.id, "running", DEADLINE).await;
    let stored = world.db.store.bot(row.id).await.unwrap();
    assert_eq!(stored.run_state.as_str(), "running");
    assert!(stored.started_at.is_some());
    world.finish().await;
}

async fn disabling_a_bot_stops_its_polling(mut world: FleetWorld) {
    let (bot, row) = world.add_bot("Beta").await;
    world.fleet().reconcile_all();
    world.wait_state(row.id, "running", DEADLINE).await;
    world
        .db
        .store
        .set_desired_state(row.id, DesiredState::Disabled)
        .await
        .unwrap();
    world.fleet().reconcile_all();
    world.wait_state(row.id, "stopping", DEADLINE).await;
    world.wait_state(row.id, "stopped", DEADLINE).await;
    assert!(!world.sandbox.is_polling(bot.id));
    let polls = world.sandbox.calls(Some(bot.id), Some("getUpdates"));
    // Stopped and not polling (above): a bot still running would poll again at once.
    quiet_period(Duration::from_millis(300), "a running bot polls again").await;
    assert_eq!(
        world.sandbox.calls(Some(bot.id), Some("getUpdates")).len(),
        polls.len(),
        "no polling after the stop"
    );
    assert_eq!(
        world.db.store.bot(row.id).await.unwrap().run_state.as_str(),
        "stopped"
    );
    assert!(world.fleet().status().await.unwrap().is_empty());
    world.finish().await;
}

async fn a_restart_is_one_stop_and_one_start(mut world: FleetWorld) {
    let (bot, row) = world.add_bot("Gamma").await;
    world.fleet().reconcile_all();
    world.wait_state(row.id, "running", DEADLINE).await;
    let id = bot.id;
    world.sandbox.wait_polling(id, DEADLINE).await.unwrap();
    let get_me_before = world.sandbox.calls(Some(bot.id), Some("getMe")).len();
    world.db.store.request_bot_restart(row.id).await.unwrap();
    world.fleet().reconcile_all();
    world.wait_state(row.id, "stopping", DEADLINE).await;
    world.wait_state(row.id, "running", DEADLINE).await;
    world.sandbox.wait_polling(id, DEADLINE).await.unwrap();
    let states = world.stored_states(row.id).await;
    let tail: Vec<&str> = states
        .iter()
        .map(String::as_str)
        .skip_while(|s| *s != "stopping")
        .collect();
    assert_eq!(tail, ["stopping", "starting", "running"], "{states:?}");
    // One getMe per start: the token check (the dispatcher asks for nothing of its own).
    assert_eq!(
        world.sandbox.calls(Some(bot.id), Some("getMe")).len(),
        get_me_before + 1
    );
    assert!(
        world
            .sandbox
            .calls(Some(bot.id), None)
            .iter()
            .all(|c| c.error_code != Some(409)),
        "never two pollers"
    );
    // An admin's restart counts as one, and reads as `restarting` until the bot runs again.
    let status = world.fleet().status().await.unwrap();
    assert_eq!(
        (status[0].restart_count, status[0].state.as_str()),
        (1, "running")
    );
    assert_eq!(world.db.store.bot(row.id).await.unwrap().restart_count, 1);
    world.finish().await;
}

async fn a_panicking_update_is_skipped_and_the_bot_keeps_running(mut world: FleetWorld) {
    let (_, row) = world.add_bot("Delta").await;
    world.fleet().reconcile_all();
    world.wait_state(row.id, "running", DEADLINE).await;
    world
        .sandbox
        .send(world.group, world.user, "panic")
        .unwrap();
    world
        .sandbox
        .send(world.group, world.user, "after the panic")
        .unwrap();
    let handled = world.recorder.handled.clone();
    world
        .sandbox
        .wait_until(DEADLINE, "the next update to be handled", |_| {
            handled
                .lock()
                .unwrap()
                .iter()
                .any(|(_, text)| text == "after the panic")
                .then_some(())
        })
        .await
        .unwrap();
    world
        .sandbox
        .send(world.group, world.user, "later still")
        .unwrap();
    world
        .sandbox
        .wait_until(DEADLINE, "the chat's worker to live on", |_| {
            handled
                .lock()
                .unwrap()
                .iter()
                .any(|(_, text)| text == "later still")
                .then_some(())
        })
        .await
        .unwrap();
    let status = world.fleet().status().await.unwrap();
    assert_eq!(
        (status[0].state.as_str(), status[0].restart_count),
        ("running", 0)
    );
    world.finish().await;
}

async fn a_slow_stop_asked_for_again_and_again_is_reported_once(mut world: FleetWorld) {
    let (_, row) = world.add_bot("Kilo").await;
    world.fleet().reconcile_all();
    world.wait_state(row.id, "running", DEADLINE).await;
    world
        .sandbox
        .send(world.group, world.user, "slow 1")
        .unwrap();
    let begun = world.recorder.started.clone();
    world
        .sandbox
        .wait_until(DEADLINE, "the slow update in flight", |_| {
            begun.lock().unwrap().first().copied()
        })
        .await
        .unwrap();
    world
        .db
        .store
        .set_desired_state(row.id, DesiredState::Disabled)
        .await
        .unwrap();
    // The stop waits for the slow update; meanwhile every reconcile still sees the bot managed
    // and wants it stopped (as SQLite's poll does once a second).
    world.fleet().reconcile_all();
    world.wait_state(row.id, "stopping", DEADLINE).await;
    for _ in 0..5 {
        world.fleet().reconcile_all();
        world.fleet().status().await.unwrap();
    }
    world.wait_state(row.id, "stopped", DEADLINE).await;
    let states = world.stored_states(row.id).await;
    let tail: Vec<&str> = states
        .iter()
        .map(String::as_str)
        .skip_while(|s| *s != "stopping")
        .collect();
    assert_eq!(tail, ["stopping", "stopped"], "{states:?}");
    world.finish().await;
}
