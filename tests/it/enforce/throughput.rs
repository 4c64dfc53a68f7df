//! A busy bot: no fixed cap below what Telegram accepts (a method's limit is learned from its 429s),
//! and no head-of-line blocking (a member whose action waits for Telegram holds up nobody else, and
//! an update held long enough is parked so the `getUpdates` offset moves on).

use std::time::Duration;

use nezuko_sandbox::faults::{FaultKind, RateLimits};

use super::{Guarded, enforce_tests};

enforce_tests!(
    a_method_telegram_limits_is_slowed_to_what_it_accepts_and_every_newcomer_is_still_held,
    a_member_waiting_for_telegram_holds_up_nobody_else_in_the_group,
);

/// Telegram's limit on one method, tighter than any Nezuko could assume; a burst of newcomers.
const ACCEPTED_PER_S: f64 = 5.0;
const NEWCOMERS: usize = 20;

async fn a_method_telegram_limits_is_slowed_to_what_it_accepts_and_every_newcomer_is_still_held(
    mut world: Guarded,
) {
    world.sandbox.set_rate_limits(RateLimits {
        per_method_per_s: Some(ACCEPTED_PER_S),
        ..RateLimits::default()
    });
    let newcomers: Vec<i64> = (0..NEWCOMERS)
        .map(|n| world.member(&format!("Newcomer {n}"), false))
        .collect();
    // Each newcomer costs two lookups and a restriction: seconds at 5 calls a second.
    let patience = Duration::from_secs(90);
    world
        .sandbox
        .wait_until(patience, "every newcomer is restricted", |s| {
            newcomers
                .iter()
                .all(|user| {
                    matches!(
                        s.member(world.group, *user),
                        nezuko_sandbox::model::Status::Restricted { .. }
                    )
                })
                .then_some(())
        })
        .await
        .unwrap();
    let limited = ["getChatMember", "restrictChatMember"];
    let mut calls: Vec<_> = limited.iter().flat_map(|m| world.calls(m)).collect();
    calls.sort_by_key(|c| c.seq);
    // The first calls meet the limit (that is how it is learned); once learned, calls go at the
    // rate Telegram accepts. Without learning, every call waiting out a 429 goes again when it
    // ends, and the herd keeps meeting 429s to the end.
    let later = &calls[calls.len() / 2..];
    let refused = later.iter().filter(|c| c.error_code == Some(429)).count();
    assert!(
        refused * 10 <= later.len(),
        "{refused} of the last {} calls met a 429: the limit was not learned",
        later.len()
    );
    world.injected_429s = world.sandbox.counters().too_many_requests;
    world.finish().await;
}

async fn a_member_waiting_for_telegram_holds_up_nobody_else_in_the_group(world: Guarded) {
    let held = world.member("Held", false);
    // The first restriction (the held member's) takes 20 s to be answered.
    world.fault(
        "restrictChatMember",
        FaultKind::Delay { ms: 20_000 },
        Some(1),
    );
    world.sandbox.send(world.group, held, "hello").unwrap();
    world
        .eventually("the held member's restriction reached Telegram", || {
            world.sandbox.faults_taken() >= 1
        })
        .await;
    // More than one `getUpdates` page of other members' messages, then other non-subscribers.
    for n in 0..150 {
        let user = world.member(&format!("Reader {n}"), true);
        world.sandbox.send(world.group, user, "hi").unwrap();
    }
    let others: Vec<i64> = (0..5)
        .map(|n| {
            let user = world.member(&format!("Other {n}"), false);
            world.sandbox.send(world.group, user, "hello").unwrap();
            user
        })
        .collect();
    for user in &others {
        world.wait_restricted(*user).await;
    }
    let bot = world.bot.id;
    world
        .sandbox
        .wait_until(super::DEADLINE, "every update confirmed to Telegram", |s| {
            (s.pending_updates(bot) == 0).then_some(())
        })
        .await
        .unwrap();
    assert!(
        !matches!(
            world.sandbox.member(world.group, held),
            nezuko_sandbox::model::Status::Restricted { .. }
        ),
        "the held member's restriction is still in flight: the others did not wait for it"
    );
    world
        .sandbox
        .wait_until(
            Duration::from_secs(30),
            "the held member is restricted once Telegram answers",
            |s| {
                matches!(
                    s.member(world.group, held),
                    nezuko_sandbox::model::Status::Restricted { .. }
                )
                .then_some(())
            },
        )
        .await
        .unwrap();
    world.finish().await;
}
