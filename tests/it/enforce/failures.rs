//! What goes wrong: missing rights, unreadable channels, a removed bot, restarts with pending
//! timers, raids, Telegram's 429s and flaky answers.

use std::time::{Duration, Instant};

use nezuko_sandbox::faults::FaultKind;
use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use serde_json::json;

use super::{DEADLINE, Guarded, enforce_db_tests, enforce_tests, quick_options};
use crate::support::TestDb;
use crate::support::wait::{eventually, quiet_period};

enforce_tests!(
    a_lost_restrict_right_is_stored_published_and_announced_once,
    a_message_stays_when_its_writer_could_not_be_restricted,
    a_bot_that_is_not_channel_admin_fails_open_by_default,
    a_bot_that_is_not_channel_admin_fails_closed_when_asked,
    a_bot_removed_from_the_group_is_recorded,
    a_flaky_check_is_retried_before_deciding,
    a_429_is_waited_out_exactly_and_nothing_is_lost,
    a_server_error_is_retried_at_once_not_after_ten_seconds,
    an_update_waiting_to_be_retried_is_retried_on_time_without_polling_in_a_loop,
    a_join_handled_again_after_a_failure_is_announced_once,
    a_join_handled_again_after_the_member_left_does_not_stand_for_their_next_join,
    a_warning_whose_deletion_telegram_did_not_answer_is_deleted_later,
    a_warning_naming_nobody_is_deleted_later_when_telegram_did_not_answer,
    warnings_still_queued_when_the_service_stopped_are_sent_after_it_starts,
    a_warning_on_its_way_as_the_service_stops_is_recorded_and_not_sent_again,
    a_warning_answered_late_as_its_bot_restarts_is_not_sent_again,
    a_warning_held_back_when_its_bot_restarts_is_sent_once_by_the_next_runner,
    a_token_revoked_while_an_update_is_handled_stops_the_bot_and_leaves_the_update_to_its_next_start,
    a_raid_of_500_joins_restricts_everyone_without_a_429,
    a_deletion_held_up_in_one_group_holds_up_no_other_group,
);
enforce_db_tests!(pending_timers_are_carried_out_after_a_restart);

/// The group's owner takes the bot's right to restrict members (Ban users).
fn cannot_restrict(world: &Guarded) {
    let rights = AdminRights {
        can_restrict_members: false,
        ..AdminRights::force_subscribe()
    };
    world
        .sandbox
        .promote(world.group, world.bot.id, rights)
        .unwrap();
}

async fn a_lost_restrict_right_is_stored_published_and_announced_once(mut world: Guarded) {
    cannot_restrict(&world);
    let before = world.bot_messages(world.group).len();
    world.member("Rae", false);
    let event = world
        .wait_event("health", |p| p["health"] == "degraded")
        .await;
    assert!(
        event.payload["problems"][0]
            .as_str()
            .unwrap()
            .contains("restrict members"),
        "{}",
        event.payload
    );
    let announcement = world
        .wait_bot_message(world.group, before, "the announcement")
        .await;
    assert!(announcement.text.unwrap().contains("Administrators"));
    let group = world.group_row().await;
    assert_eq!(group.health, "degraded");
    assert!(
        group.health_detail.unwrap().0["summary"]
            .as_str()
            .unwrap()
            .contains("Ban users")
    );
    // A second refusal does not announce again.
    let second = world.member("Ros", false);
    world
        .eventually("the second restriction is refused", || {
            world
                .calls("restrictChatMember")
                .iter()
                .any(|c| c.params["user_id"].as_i64() == Some(second) && !c.ok)
        })
        .await;
    world.settle().await;
    quiet_period(
        Duration::from_millis(300),
        "an announcement follows the refusal at once",
    )
    .await;
    let announcements = world
        .bot_messages(world.group)
        .iter()
        .filter(|m| {
            m.text
                .as_deref()
                .unwrap_or_default()
                .contains("Administrators")
        })
        .count();
    assert_eq!(announcements, 1);
    // Restored: the periodic (here: immediate) check records it.
    world
        .sandbox
        .promote(world.group, world.bot.id, AdminRights::force_subscribe())
        .unwrap();
    world
        .enforcer()
        .check_health_now(world.row.id)
        .await
        .unwrap();
    world.wait_event("health", |p| p["health"] == "ok").await;
    assert!(
        world.calls("leaveChat").is_empty(),
        "the bot never leaves by itself"
    );
    world.finish().await;
}

async fn a_message_stays_when_its_writer_could_not_be_restricted(world: Guarded) {
    // Deleting while restricting fails would look like the bot works while the member goes on
    // writing; the message stays and the group's health says what is wrong.
    cannot_restrict(&world);
    let user = world.member("Sal", false);
    world.wait_verification(user, "failed").await;
    let sent = world.sandbox.send(world.group, user, "still here").unwrap();
    world.wait_verifications(user, "failed", 2).await;
    world.settle().await;
    let message = world
        .sandbox
        .transcript(world.group)
        .into_iter()
        .find(|m| m.message_id == sent)
        .unwrap();
    assert!(!message.deleted, "the message stays");
    assert_eq!(world.group_row().await.health, "degraded");
    world.finish().await;
}

async fn a_bot_that_is_not_channel_admin_fails_open_by_default(world: Guarded) {
    world
        .sandbox
        .set_member(world.channel, world.bot.id, Status::Member)
        .unwrap();
    let user = world.member("Opa", false);
    world.wait_verification(user, "unknown_allowed").await;
    let asked = || {
        world
            .calls("getChatMember")
            .iter()
            .filter(|c| c.params["user_id"].as_i64() == Some(user))
            .count()
    };
    assert_eq!(asked(), 3, "the check is retried twice before deciding");
    world.settle().await;
    assert!(
        !world.acted_on(user),
        "an unreadable channel is not 'not subscribed'"
    );
    world.finish().await;
}

async fn a_bot_that_is_not_channel_admin_fails_closed_when_asked(world: Guarded) {
    world.set_policy(json!({ "fail_mode": "closed" })).await;
    world
        .sandbox
        .set_member(world.channel, world.bot.id, Status::Member)
        .unwrap();
    let user = world.member("Clo", true);
    world.wait_restricted(user).await;
    let group = world.group;
    let bot = world.bot.id;
    world
        .sandbox
        .wait_until(DEADLINE, "a warning saying the check failed", |s| {
            s.transcript(group).into_iter().find(|m| {
                m.from == bot
                    && m.text
                        .as_deref()
                        .unwrap_or_default()
                        .contains("could not confirm")
            })
        })
        .await
        .unwrap();
    world.finish().await;
}

async fn a_bot_removed_from_the_group_is_recorded(mut world: Guarded) {
    world
        .sandbox
        .admin_ban(world.group, world.owner.id, world.bot.id, None)
        .unwrap();
    let event = world
        .wait_event("health", |p| p["health"] == "degraded")
        .await;
    assert!(
        event.payload["problems"][0]
            .as_str()
            .unwrap()
            .contains("add the bot to the group again")
    );
    assert_eq!(world.group_row().await.health, "degraded");
    world.finish().await;
}

async fn a_flaky_check_is_retried_before_deciding(world: Guarded) {
    // Subscribed since before the bot was there: Nezuko has never heard of it (no update told it).
    let user = world.user("Fla");
    world
        .sandbox
        .set_member(world.channel, user, Status::Member)
        .unwrap();
    world.fault("getChatMember", FaultKind::DropConnection, Some(1));
    world.sandbox.join(world.group, user).unwrap();
    world.wait_verification(user, "passed").await;
    let asked = world
        .calls("getChatMember")
        .iter()
        .filter(|c| c.params["user_id"].as_i64() == Some(user))
        .count();
    assert_eq!(asked, 2, "one dropped answer, one retry");
    assert!(
        !world.acted_on(user),
        "a failed answer is not 'not subscribed'"
    );
    world.finish().await;
}

async fn a_429_is_waited_out_exactly_and_nothing_is_lost(mut world: Guarded) {
    world.fault(
        "restrictChatMember",
        FaultKind::RetryAfter { seconds: 2 },
        Some(1),
    );
    world.injected_429s = 1;
    let started = Instant::now();
    let user = world.member("Rat", false);
    world.wait_restricted(user).await;
    let calls = world.calls("restrictChatMember");
    assert_eq!(calls.len(), 2, "one refused, one retried");
    let gap = calls[1].at_ms - calls[0].at_ms;
    assert!(
        (2000..3000).contains(&gap),
        "retried after retry_after, not before: {gap} ms"
    );
    assert!(started.elapsed() < DEADLINE);
    world.finish().await;
}

async fn a_server_error_is_retried_at_once_not_after_ten_seconds(world: Guarded) {
    world.fault(
        "restrictChatMember",
        FaultKind::ServerError { status: 502 },
        Some(2),
    );
    let user = world.member("Srv", false);
    world.wait_restricted(user).await;
    let calls = world.calls("restrictChatMember");
    assert_eq!(calls.len(), 3, "two 502s, then the restriction");
    let cost = calls[2].at_ms - calls[0].at_ms;
    // teloxide's own sending sleeps 10 s after every 5xx; Nezuko's retries wait 100 and 200 ms.
    assert!(cost < 1000, "two 5xx cost {cost} ms");
    world.finish().await;
}

/// Telegram fails every restriction for a while: the join's handling fails after the join was
/// announced, and the update is handled again until it succeeds. It is still one join: one
/// `member_join` event. (Before, each try published it again, and the dashboard's charts counted
/// every one.)
async fn a_join_handled_again_after_a_failure_is_announced_once(world: Guarded) {
    world.fault(
        "restrictChatMember",
        FaultKind::ServerError { status: 502 },
        None,
    );
    let user = world.member("Jo", false);
    let bot = world.bot.id;
    // A handling makes a few attempts: more than one handling's worth have been refused.
    world
        .sandbox
        .wait_until(DEADLINE, "the join was handled again", |s| {
            (s.calls(Some(bot), Some("restrictChatMember")).len() >= 6).then_some(())
        })
        .await
        .unwrap();
    world.sandbox.clear_faults();
    world.wait_restricted(user).await;
    world.settle().await;
    let joins = world.stored_events("member_join", user).await;
    assert_eq!(joins, 1, "one join, one member_join");
    world.finish().await;
}

/// The first join's handling keeps failing; the member leaves, and the first join's update is
/// handled again after the leave; then the member joins again. The late first join is history,
/// and the second join is checked and announced. (Before, the late first join took the second's
/// place: the member was found gone, and their real second join was never checked.)
async fn a_join_handled_again_after_the_member_left_does_not_stand_for_their_next_join(
    world: Guarded,
) {
    world.fault(
        "restrictChatMember",
        FaultKind::ServerError { status: 502 },
        None,
    );
    let user = world.member("Ned", false);
    let bot = world.bot.id;
    world
        .sandbox
        .wait_until(DEADLINE, "the first join's handling failed", |s| {
            (!s.calls(Some(bot), Some("restrictChatMember")).is_empty()).then_some(())
        })
        .await
        .unwrap();
    // Telegram's dates are in seconds: the leave is a second later than the join.
    quiet_period(Duration::from_millis(1_100), "the join's second passes").await;
    world.sandbox.leave(world.group, user).unwrap();
    // The first join's update is handed out again 1 s, 2 s, 4 s after it failed.
    quiet_period(
        Duration::from_secs(6),
        "the first join is handled again after the leave",
    )
    .await;
    world.sandbox.clear_faults();
    world.sandbox.join(world.group, user).unwrap();
    world.wait_restricted(user).await;
    world.settle().await;
    let joins = world.stored_events("member_join", user).await;
    assert_eq!(joins, 2, "two joins, two member_join");
    world.finish().await;
}

/// Telegram does not answer the deletion of an expired warning (four 500s, one try's worth):
/// the deletion is tried again later, and the warning goes. (Before, it stayed up for good.)
async fn a_warning_whose_deletion_telegram_did_not_answer_is_deleted_later(world: Guarded) {
    world.set_policy(json!({ "warning_ttl_s": 1 })).await;
    world.fault(
        "deleteMessage",
        FaultKind::ServerError { status: 500 },
        Some(4),
    );
    let before = world.bot_messages(world.group).len();
    let user = world.member("Hal", false);
    world.wait_restricted(user).await;
    let warning = world
        .wait_bot_message(world.group, before, "the warning")
        .await;
    world
        .wait_deleted(
            world.group,
            warning.message_id,
            "the warning goes after all",
        )
        .await;
    assert!(
        world.calls("deleteMessage").len() >= 4,
        "one failed try, one more"
    );
    world.finish().await;
}

/// The only member a warning names verifies while Telegram does not answer its deletion: a timer
/// deletes it shortly after. (Before, a warning naming nobody stayed up for good.)
async fn a_warning_naming_nobody_is_deleted_later_when_telegram_did_not_answer(world: Guarded) {
    let before = world.bot_messages(world.group).len();
    let user = world.member("Ivo", false);
    world.wait_restricted(user).await;
    let warning = world
        .wait_bot_message(world.group, before, "the warning")
        .await;
    world.fault(
        "deleteMessage",
        FaultKind::ServerError { status: 500 },
        Some(4),
    );
    world.sandbox.join(world.channel, user).unwrap();
    world.wait_free(user).await;
    world
        .wait_deleted(
            world.group,
            warning.message_id,
            "the warning naming nobody goes",
        )
        .await;
    world.finish().await;
}

/// Telegram keeps failing a restriction (502s): the update is parked and handed out again 1 s, 2 s,
/// 4 s… later, while the bot long-polls as usual. Before, a retry waited for the long poll in
/// flight to end (up to its 10 s), and a retry due in less than a second made each `getUpdates`
/// ask with `timeout=0`, which comes back at once, so the bot polled in a loop until then.
async fn an_update_waiting_to_be_retried_is_retried_on_time_without_polling_in_a_loop(
    world: Guarded,
) {
    world.fault(
        "restrictChatMember",
        FaultKind::ServerError { status: 502 },
        None,
    );
    let user = world.member("Lupe", false);
    let bot = world.bot.id;
    // The journal keeps no polls; the counters count them (this world has one bot).
    let polled = |s: &nezuko_sandbox::Sandbox| s.counters().by_method.get("getUpdates").copied();
    let (first, polls_before) = world
        .sandbox
        .wait_until(DEADLINE, "the restriction was tried", |s| {
            let calls = s.calls(Some(bot), Some("restrictChatMember"));
            Some((calls.first()?.at_ms, polled(s).unwrap_or(0)))
        })
        .await
        .unwrap();
    // Long enough for the update to be parked (Telegram forgets it) and handed out again a few
    // times from memory, 1 s, 2 s, 4 s, then 5 s apart; the polls are counted over the same 12 s.
    quiet_period(
        Duration::from_secs(12),
        "a retry late by a long poll, or polls in a loop",
    )
    .await;
    let at: Vec<i64> = world
        .calls("restrictChatMember")
        .iter()
        .map(|c| c.at_ms - first)
        .collect();
    let longest = at.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(
        longest < 6_000,
        "a retry waited {longest} ms (restrictions at {at:?} ms)"
    );
    assert_eq!(world.sandbox.pending_updates(bot), 0, "parked meanwhile");
    let polls = polled(&world.sandbox).unwrap_or(0) - polls_before;
    assert!(
        polls <= 10,
        "{polls} getUpdates in 12 s (restrictions at {at:?} ms)"
    );
    world.sandbox.clear_faults();
    world.wait_restricted(user).await;
    world.finish().await;
}

/// Waits until Telegram has answered the bot's warning with a 429 (the test's fault).
async fn wait_warning_held_back(world: &Guarded) {
    let id = world.bot.id;
    world
        .sandbox
        .wait_until(DEADLINE, "the warning is held back", |s| {
            s.calls(Some(id), Some("sendMessage"))
                .iter()
                .any(|c| c.error_code == Some(429))
                .then_some(())
        })
        .await
        .unwrap();
}

async fn warnings_still_queued_when_the_service_stopped_are_sent_after_it_starts(
    mut world: Guarded,
) {
    // Telegram holds the warning back long enough for the service to stop with it queued.
    world.fault(
        "sendMessage",
        FaultKind::RetryAfter { seconds: 20 },
        Some(1),
    );
    world.injected_429s = 1;
    let before = world.bot_messages(world.group).len();
    let held = world.member("Kim", false);
    let gone = world.member("Lou", false);
    world.wait_restricted(held).await;
    world.wait_restricted(gone).await;
    wait_warning_held_back(&world).await;
    let also = world.member("Max", false);
    world.wait_restricted(also).await;
    world.stop().await;
    // While the service is down, one of them leaves: the warning owed to them is not sent.
    world.sandbox.leave(world.group, gone).unwrap();
    world.start().await;
    let warning = world
        .wait_bot_message(world.group, before, "the owed warning")
        .await;
    let text = warning.text.unwrap_or_default();
    // The members still owed a warning are named by one message, not one each.
    assert!(text.contains("Kim") && text.contains("Max"), "{text}");
    assert!(
        !text.contains("Lou"),
        "a member who left is not named: {text}"
    );
    world.settle().await;
    assert_eq!(
        world.bot_messages(world.group).len(),
        before + 1,
        "one warning, sent once"
    );
    world.finish().await;
}

async fn a_warning_on_its_way_as_the_service_stops_is_recorded_and_not_sent_again(
    mut world: Guarded,
) {
    // Telegram posts the warning at once, but its answer (the message's id) is slow on its way
    // back, and the service stops meanwhile.
    world.fault("sendMessage", FaultKind::SlowReply { ms: 1_500 }, Some(1));
    let before = world.bot_messages(world.group).len();
    warned_on_the_way(&world, "Kim").await;
    world.stop().await;
    world.start().await;
    world.settle().await;
    // Past the answer's delay and the next runner's look at what is owed.
    quiet_period(
        Duration::from_secs(3),
        "the next runner sends the warning again",
    )
    .await;
    assert_eq!(sends_naming(&world, "Kim"), 1, "one warning, sent once");
    let warnings = world.bot_messages(world.group);
    assert_eq!(warnings.len(), before + 1, "{warnings:?}");
    assert!(
        !warnings[before].deleted,
        "the warning stays while Kim is held"
    );
    world.finish().await;
}

async fn a_warning_answered_late_as_its_bot_restarts_is_not_sent_again(mut world: Guarded) {
    // Telegram posts the warning at once and answers 12 s later; the bot is restarted meanwhile
    // (the dashboard's restart: the same process, a new runner).
    world.fault("sendMessage", FaultKind::SlowReply { ms: 12_000 }, Some(1));
    warned_on_the_way(&world, "Kim").await;
    restart_bot(&mut world).await;
    world
        .wait_event("bot_status", |p| p["state"] == "running")
        .await;
    // Past the late answer and the next runner's look at what is owed.
    quiet_period(
        Duration::from_secs(14),
        "the next runner sends the warning again",
    )
    .await;
    assert_eq!(sends_naming(&world, "Kim"), 1, "one warning, sent once");
    world.finish().await;
}

async fn a_warning_held_back_when_its_bot_restarts_is_sent_once_by_the_next_runner(
    mut world: Guarded,
) {
    // Telegram holds the warning back while the bot is restarted (the dashboard's restart: the
    // same process, a new runner).
    world.fault("sendMessage", FaultKind::RetryAfter { seconds: 4 }, Some(1));
    world.injected_429s = 1;
    let before = world.bot_messages(world.group).len();
    let held = world.member("Kim", false);
    world.wait_restricted(held).await;
    wait_warning_held_back(&world).await;
    restart_bot(&mut world).await;
    // The first runner has ended (a restart starts the next one only then).
    let stopped_at = world.calls("sendMessage").len();
    world
        .wait_event("bot_status", |p| p["state"] == "running")
        .await;
    assert_eq!(
        world.calls("sendMessage").len(),
        stopped_at,
        "the stopped runner sent nothing more"
    );
    let warning = world
        .wait_bot_message(world.group, before, "the owed warning")
        .await;
    assert!(warning.text.unwrap_or_default().contains("Kim"));
    // Past the 429's end and a retry's pause: the first runner's warning would have gone by now.
    quiet_period(
        Duration::from_secs(4),
        "the stopped runner sends its held-back warning too",
    )
    .await;
    assert_eq!(
        world.bot_messages(world.group).len(),
        before + 1,
        "one warning, sent once"
    );
    world.finish().await;
}

async fn a_token_revoked_while_an_update_is_handled_stops_the_bot_and_leaves_the_update_to_its_next_start(
    world: Guarded,
) {
    // The membership check of a newcomer is on its way to Telegram when the owner revokes the
    // token in BotFather: Telegram answers it 401, as it does every call from then on.
    let taken = world.sandbox.faults_taken();
    world.fault("getChatMember", FaultKind::Delay { ms: 1_500 }, Some(1));
    let newcomer = world.member("Ivo", false);
    world.wait_fault_taken(taken).await;
    world.sandbox.revoke_token(world.bot.id).unwrap();
    let stopped = eventually("the bot stops as invalid_token", DEADLINE, async || {
        let row = world.db.store.bot(world.row.id).await.unwrap();
        match row.run_reason_code.as_deref() {
            Some("invalid_token") if row.run_state.as_str() == "stopped" => Ok(row),
            _ => Err((row.run_state, row.run_reason)),
        }
    })
    .await;
    // Past the held call's answer: whatever the runner would do with it is done.
    quiet_period(
        Duration::from_secs(2),
        "the refused check is read as an answer",
    )
    .await;
    // Nothing was decided on an answer Telegram never gave: no pass assumed by the fail-open
    // default, no record, no "missing rights" for the group (the 401 is about the token).
    assert!(
        world
            .verifications()
            .await
            .iter()
            .all(|v| v.user_id != newcomer),
        "a verification was recorded on a refused check: {:?}",
        world.verifications().await
    );
    assert_eq!(world.group_row().await.health, "ok");
    assert!(matches!(
        world.sandbox.member(world.group, newcomer),
        Status::Member
    ));
    // The owner puts the token back and starts the bot: the join is handled then.
    world.sandbox.restore_token(world.bot.id).unwrap();
    assert_eq!(stopped.restart_count, 0, "a refused token is not retried");
    world
        .db
        .store
        .request_bot_start(world.row.id)
        .await
        .unwrap();
    world.wait_restricted(newcomer).await;
    world
        .sandbox
        .wait_until(DEADLINE, "the newcomer's warning", |s| {
            s.transcript(world.group).into_iter().find(|m| {
                m.from == world.bot.id && m.text.as_deref().is_some_and(|t| t.contains("Ivo"))
            })
        })
        .await
        .unwrap();
    world.finish().await;
}

async fn a_raid_of_500_joins_restricts_everyone_without_a_429(world: Guarded) {
    let users: Vec<i64> = (0..500)
        .map(|n| world.user(&format!("Raider {n}")))
        .collect();
    for user in &users {
        world.sandbox.join(world.group, *user).unwrap();
    }
    let group = world.group;
    let pending = users.clone();
    world
        .sandbox
        .wait_until(Duration::from_secs(60), "every raider is restricted", |s| {
            pending
                .iter()
                .all(|u| matches!(s.member(group, *u), Status::Restricted { .. }))
                .then_some(())
        })
        .await
        .unwrap();
    world.settle().await;
    let warnings = world.bot_messages(world.group).len();
    assert!(
        warnings < 100,
        "warnings are grouped: {warnings} messages for 500 joins"
    );
    world.finish().await;
}

async fn pending_timers_are_carried_out_after_a_restart(db: TestDb) {
    let mut world = Guarded::unprotected(db, quick_options()).await;
    world.protect("/protect @news").await;
    world.set_policy(json!({ "warning_ttl_s": 2 })).await;
    let before = world.bot_messages(world.group).len();
    let user = world.member("Tim", false);
    world.wait_restricted(user).await;
    let warning = world
        .wait_bot_message(world.group, before, "the warning")
        .await;
    // The timer is stored right after the warning is sent.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let due_at = loop {
        let pending = world.db.store.pending_timers(world.row.id).await.unwrap();
        if let Some(timer) = pending
            .iter()
            .find(|t| t.kind == "delete_message" && t.message_id == Some(warning.message_id))
        {
            break timer.due_at;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the auto-delete timer was never stored"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    world.stop().await;
    // The warning's 2 s TTL runs out while the service is down, so its timer is overdue when the
    // service starts again.
    eventually("the auto-delete timer to fall due", DEADLINE, async || {
        let now = nezuko::db::now_ms();
        if now >= due_at {
            Ok(())
        } else {
            Err(format!("due in {} ms", due_at - now))
        }
    })
    .await;
    assert!(
        !world
            .sandbox
            .transcript(world.group)
            .iter()
            .any(|m| m.message_id == warning.message_id && m.deleted)
    );
    world.start().await;
    let (group, id) = (world.group, warning.message_id);
    world
        .sandbox
        .wait_until(
            DEADLINE,
            "the overdue warning is deleted after the restart",
            |s| {
                s.transcript(group)
                    .into_iter()
                    .find(|m| m.message_id == id && m.deleted)
            },
        )
        .await
        .unwrap();
    world.finish().await;
}

async fn a_deletion_held_up_in_one_group_holds_up_no_other_group(world: Guarded) {
    world.set_policy(json!({ "warning_ttl_s": 1 })).await;
    // A second group guarded by the same bot, its warnings expiring too.
    let second = world.chat(ChatKind::Supergroup, "Second", None);
    world.settle().await;
    let sent = world
        .sandbox
        .send(second, world.owner.id, "/protect @news")
        .unwrap();
    world
        .wait_bot_text(second, sent, "the answer to /protect", |_| true)
        .await;
    let row = world
        .db
        .store
        .group_by_chat(world.row.id, second)
        .await
        .unwrap()
        .expect("the second group is stored");
    world
        .db
        .store
        .set_group_policy(row.id, &json!({ "warning_ttl_s": 1 }))
        .await
        .unwrap();
    world.enforcer().invalidate_group(world.row.id, second);
    world.settle().await;
    // The first group's warning expires, and Telegram holds its deletion up.
    let taken = world.sandbox.faults_taken();
    world.fault("deleteMessage", FaultKind::Delay { ms: 8_000 }, Some(1));
    let first_before = world.bot_messages(world.group).len();
    let first = world.member("Uma", false);
    world.wait_restricted(first).await;
    let held = world
        .wait_bot_message(world.group, first_before, "the first warning")
        .await;
    // Its deletion is held up.
    world.wait_fault_taken(taken).await;
    // Meanwhile a warning in the second group expires and goes.
    let before = world.bot_messages(second).len();
    let newcomer = world.user("Vic");
    world.sandbox.join(second, newcomer).unwrap();
    let warning = world
        .wait_bot_message(second, before, "the second warning")
        .await;
    world
        .wait_deleted(second, warning.message_id, "the second warning expires")
        .await;
    assert!(
        !world.bot_messages(world.group)[first_before].deleted,
        "the first warning's deletion is still held up"
    );
    world
        .wait_deleted(world.group, held.message_id, "the first warning goes too")
        .await;
    world.finish().await;
}

/// A newcomer `name`, not subscribed, is restricted and their warning is in the group (whether or
/// not Telegram has answered the `sendMessage` yet).
async fn warned_on_the_way(world: &Guarded, name: &str) {
    let before = world.bot_messages(world.group).len();
    let held = world.member(name, false);
    world.wait_restricted(held).await;
    world
        .wait_bot_message(world.group, before, "the warning")
        .await;
}

/// How many `sendMessage` calls of the bot named `name`.
fn sends_naming(world: &Guarded, name: &str) -> usize {
    world
        .calls("sendMessage")
        .iter()
        .filter(|c| c.params["text"].as_str().is_some_and(|t| t.contains(name)))
        .count()
}

/// Restarts the bot as the dashboard does (the same process, a new runner) and waits until its
/// first runner has ended (a restart starts the next one only then).
async fn restart_bot(world: &mut Guarded) {
    world
        .db
        .store
        .request_bot_restart(world.row.id)
        .await
        .unwrap();
    world
        .wait_event("bot_status", |p| p["state"] == "starting")
        .await;
}
