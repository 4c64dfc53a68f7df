//! Whole-service shutdown: bots stop gracefully, in-flight updates finish, nothing is lost.

use std::time::{Duration, Instant};

use super::{DEADLINE, FleetWorld, fleet_tests, quick_policy};

fleet_tests!(a_shutdown_mid_update_finishes_in_time_and_loses_nothing);

async fn a_shutdown_mid_update_finishes_in_time_and_loses_nothing(mut world: FleetWorld) {
    let (_, row) = world.add_bot("Juliet").await;
    world.fleet().reconcile_all();
    world.wait_state(row.id, "running", DEADLINE).await;
    for n in 0..3 {
        world
            .sandbox
            .send(world.group, world.user, &format!("slow {n}"))
            .unwrap();
    }
    let handled = world.recorder.handled.clone();
    let begun = world.recorder.started.clone();
    // Shut down while the first slow update is being handled.
    let in_flight = world
        .sandbox
        .wait_until(DEADLINE, "an update in flight", |_| {
            begun.lock().unwrap().first().copied()
        })
        .await
        .unwrap();
    let started = Instant::now();
    world
        .fleet
        .take()
        .unwrap()
        .shutdown(Duration::from_secs(9))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(
        handled
            .lock()
            .unwrap()
            .iter()
            .any(|(id, _)| *id == in_flight),
        "the update in flight was finished"
    );

    world.start_fleet(quick_policy()).await;
    world
        .sandbox
        .send(world.group, world.user, "after restart")
        .unwrap();
    world
        .sandbox
        .wait_until(Duration::from_secs(20), "every message handled", |_| {
            handled
                .lock()
                .unwrap()
                .iter()
                .any(|(_, t)| t == "after restart")
                .then_some(())
        })
        .await
        .unwrap();
    let all = handled.lock().unwrap().clone();
    for n in 0..3 {
        let text = format!("slow {n}");
        assert_eq!(
            all.iter().filter(|(_, t)| *t == text).count(),
            1,
            "`{text}` handled exactly once: {all:?}"
        );
    }
    let mut ids: Vec<u32> = all.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "no update handled twice");
    world.finish().await;
}
