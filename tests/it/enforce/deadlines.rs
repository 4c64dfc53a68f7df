//! Deadlines are computed when the request leaves: a temporary restriction held up by a 429 or a
//! slow answer still goes out at least 30 s (plus a margin) ahead, never as "forever".

use nezuko_sandbox::faults::FaultKind;
use nezuko_sandbox::model::Status;
use serde_json::json;

use super::{Guarded, enforce_tests};

enforce_tests!(
    a_429_before_a_thirty_second_mute_does_not_make_it_forever,
    a_slow_answer_before_a_temporary_mute_does_not_shorten_it,
);

/// The `until_date` of the bot's last restriction of `user`, in seconds after the call arrived.
fn ahead_of_arrival(world: &Guarded, user: i64) -> i64 {
    let call = world
        .calls("restrictChatMember")
        .into_iter()
        .rfind(|c| c.ok && c.params["user_id"].as_i64() == Some(user))
        .expect("a restriction that went through");
    call.params["until_date"].as_i64().expect("an until_date") - call.at_ms / 1000
}

async fn a_429_before_a_thirty_second_mute_does_not_make_it_forever(mut world: Guarded) {
    world.set_policy(json!({ "mute_for_s": 30 })).await;
    world.fault(
        "restrictChatMember",
        FaultKind::RetryAfter { seconds: 3 },
        Some(1),
    );
    world.injected_429s += 1;
    let user = world.member("Sam", false);
    world.wait_restricted(user).await;
    let ahead = ahead_of_arrival(&world, user);
    assert!(
        ahead >= 30 + 5,
        "sent {ahead} s ahead: Telegram reads under 30 s as forever"
    );
    match world.sandbox.member(world.group, user) {
        Status::Restricted { until_date, .. } => {
            assert_ne!(until_date, 0, "a temporary restriction, not forever")
        }
        other => panic!("{other:?}"),
    }
    world.finish().await;
}

async fn a_slow_answer_before_a_temporary_mute_does_not_shorten_it(world: Guarded) {
    world.set_policy(json!({ "mute_for_s": 30 })).await;
    // Reading the member's standing (the last call before the restriction) takes 3 s.
    world.fault("getChatMember", FaultKind::Delay { ms: 3_000 }, Some(2));
    let user = world.member("Slo", false);
    world.wait_restricted(user).await;
    assert!(ahead_of_arrival(&world, user) >= 35);
    assert!(matches!(
        world.sandbox.member(world.group, user),
        Status::Restricted { until_date, .. } if until_date != 0
    ));
    world.finish().await;
}
