//! Each policy option, applied from the database without restarting the bot.

use std::time::Duration;

use nezuko_sandbox::faults::FaultKind;
use nezuko_sandbox::model::Status;
use serde_json::json;

use super::{DEADLINE, Guarded, enforce_tests};

enforce_tests!(
    require_any_accepts_one_channel_of_two,
    warn_only_deletes_and_warns_without_restricting,
    kick_bans_then_unbans_only_if_banned,
    a_kick_whose_unban_fails_still_runs_out_by_itself,
    ban_removes_for_good,
    escalation_applies_after_the_named_number_of_warnings,
    a_grace_period_delays_the_check,
    warnings_are_deleted_after_their_ttl,
    the_group_language_picks_the_texts,
    a_temporary_restriction_carries_its_until_date,
    a_policy_change_applies_without_a_restart,
    global_defaults_apply_to_groups_without_overrides,
);

async fn require_any_accepts_one_channel_of_two(world: Guarded) {
    let second = world.channel("Sports", Some("sports"));
    world.protect("/protect @news @sports").await;
    world.set_policy(json!({ "require": "any" })).await;
    let user = world.user("Ann");
    world.sandbox.join(second, user).unwrap();
    world.sandbox.join(world.group, user).unwrap();
    world.settle().await;
    assert!(!world.acted_on(user), "one of the two channels is enough");
    world.set_policy(json!({ "require": "all" })).await;
    let other = world.user("Ben");
    world.sandbox.join(second, other).unwrap();
    world.sandbox.join(world.group, other).unwrap();
    world.wait_restricted(other).await;
    world.finish().await;
}

async fn warn_only_deletes_and_warns_without_restricting(world: Guarded) {
    world.set_policy(json!({ "action": "warn" })).await;
    let before = world.bot_messages(world.group).len();
    let user = world.member("Wes", false);
    world
        .wait_bot_message(world.group, before, "the warning")
        .await;
    let message = world.sandbox.send(world.group, user, "still here").unwrap();
    let bot = world.bot.id;
    world
        .sandbox
        .wait_until(DEADLINE, "the message is deleted", |s| {
            s.calls(Some(bot), Some("deleteMessage"))
                .into_iter()
                .find(|c| c.params["message_id"].as_i64() == Some(message))
        })
        .await
        .unwrap();
    world.settle().await;
    assert!(world.calls("restrictChatMember").is_empty());
    assert!(world.sandbox.member(world.group, user).can_send_messages());
    world.finish().await;
}

async fn kick_bans_then_unbans_only_if_banned(world: Guarded) {
    world.set_policy(json!({ "action": "kick" })).await;
    let user = world.member("Kim", false);
    world
        .wait_status(world.group, user, "the member is removed", |s| {
            *s == Status::Left
        })
        .await;
    let unban = &world.calls("unbanChatMember")[0];
    assert_eq!(unban.params["only_if_banned"], true);
    // Kicked, not banned: they may come back (and are checked again).
    world.sandbox.join(world.group, user).unwrap();
    world.finish().await;
}

async fn a_kick_whose_unban_fails_still_runs_out_by_itself(world: Guarded) {
    world.set_policy(json!({ "action": "kick" })).await;
    world.fault(
        "unbanChatMember",
        FaultKind::ServerError { status: 500 },
        None,
    );
    let user = world.member("Kip", false);
    world.wait_verification(user, "kicked").await;
    world.sandbox.clear_faults();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let Status::Kicked { until_date } = world.sandbox.member(world.group, user) else {
        panic!("removed: {:?}", world.sandbox.member(world.group, user));
    };
    // A ban Telegram ends by itself (30 s to 366 days ahead), not one for good (0).
    assert!(
        (30..=120).contains(&(until_date - now)),
        "until_date {until_date}, now {now}"
    );
    assert!(
        world.sandbox.join(world.group, user).is_err(),
        "banned for now"
    );
    world.sandbox.advance_clock(until_date - now + 1);
    world.sandbox.join(world.group, user).unwrap();
    world.finish().await;
}

async fn ban_removes_for_good(world: Guarded) {
    world.set_policy(json!({ "action": "ban" })).await;
    let user = world.member("Bo", false);
    world
        .wait_status(world.group, user, "the member is banned", |s| {
            matches!(s, Status::Kicked { .. })
        })
        .await;
    assert!(world.calls("unbanChatMember").is_empty());
    assert!(world.sandbox.join(world.group, user).is_err());
    world.finish().await;
}

async fn escalation_applies_after_the_named_number_of_warnings(world: Guarded) {
    world
        .set_policy(json!({ "action": "warn", "escalate_after": 2, "escalate_to": "restrict" }))
        .await;
    let user = world.member("Eli", false);
    world.settle().await;
    assert!(
        world.sandbox.member(world.group, user).can_send_messages(),
        "first offence: a warning"
    );
    world.sandbox.send(world.group, user, "two").unwrap();
    world.settle().await;
    assert!(
        world.sandbox.member(world.group, user).can_send_messages(),
        "second offence: a warning"
    );
    world.sandbox.send(world.group, user, "three").unwrap();
    world.wait_restricted(user).await;
    world.finish().await;
}

async fn a_grace_period_delays_the_check(world: Guarded) {
    world.set_policy(json!({ "grace_s": 2 })).await;
    let user = world.member("Gus", false);
    world.settle().await;
    world
        .sandbox
        .send(world.group, user, "in my grace period")
        .unwrap();
    world.settle().await;
    assert!(
        !world.acted_on(user),
        "nothing happens during the grace period"
    );
    world.wait_restricted(user).await;
    world.finish().await;
}

async fn warnings_are_deleted_after_their_ttl(world: Guarded) {
    world.set_policy(json!({ "warning_ttl_s": 1 })).await;
    let before = world.bot_messages(world.group).len();
    let user = world.member("Tia", false);
    world.wait_restricted(user).await;
    let warning = world
        .wait_bot_message(world.group, before, "the warning")
        .await;
    world
        .wait_deleted(world.group, warning.message_id, "the warning is deleted")
        .await;
    world.finish().await;
}

async fn the_group_language_picks_the_texts(world: Guarded) {
    world.set_policy(json!({ "language": "es" })).await;
    let before = world.bot_messages(world.group).len();
    let user = world.member("Sol", false);
    let warning = world
        .wait_bot_message(world.group, before, "the warning")
        .await;
    assert!(
        warning.text.clone().unwrap().contains("Ya me uní"),
        "{:?}",
        warning.text
    );
    assert!(super::buttons(&warning).0.ends_with(&user.to_string()));
    world.finish().await;
}

async fn a_temporary_restriction_carries_its_until_date(world: Guarded) {
    world.set_policy(json!({ "mute_for_s": 600 })).await;
    let user = world.member("Tom", false);
    world.wait_restricted(user).await;
    let call = &world.calls("restrictChatMember")[0];
    let until = call.params["until_date"].as_i64().expect("an until_date");
    let now = nezuko::db::now_ms() / 1000;
    assert!(until >= now + 590 && until <= now + 610, "{until} vs {now}");
    // The timer follows the date actually sent, so it is written once the call returned.
    let deadline = tokio::time::Instant::now() + super::DEADLINE;
    loop {
        let timers = world.db.store.pending_timers(world.row.id).await.unwrap();
        if let Some(timer) = timers
            .iter()
            .find(|t| t.kind == "restriction_expired" && t.user_id == Some(user))
        {
            assert_eq!(
                timer.due_at,
                until * 1000,
                "the timer ends with the date sent"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no restriction_expired timer: {timers:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    world.finish().await;
}

async fn a_policy_change_applies_without_a_restart(world: Guarded) {
    let first = world.member("One", false);
    world.wait_restricted(first).await;
    // Changed in the database only: the bot picks it up within policy_refresh (200 ms here), so
    // a member who joins before then is still restricted. Members join one after another until
    // one is banned, for far longer than that.
    let group = world.group_row().await;
    world
        .db
        .store
        .set_group_policy(group.id, &json!({ "action": "ban" }))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    for n in 2.. {
        let next = world.member(&format!("Member {n}"), false);
        let status = world
            .wait_status(
                world.group,
                next,
                "the member is restricted or banned",
                |s| matches!(s, Status::Restricted { .. } | Status::Kicked { .. }),
            )
            .await;
        if matches!(status, Status::Kicked { .. }) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "members still restricted, not banned, {DEADLINE:?} after the change: {status:?}"
        );
    }
    world.finish().await;
}

async fn global_defaults_apply_to_groups_without_overrides(world: Guarded) {
    world
        .db
        .store
        .put_setting("policy.defaults", &json!({ "action": "kick" }), None)
        .await
        .unwrap();
    world.enforcer().invalidate_all();
    let user = world.member("Gil", false);
    world
        .wait_status(world.group, user, "the member is removed", |s| {
            *s == Status::Left
        })
        .await;
    world.finish().await;
}
