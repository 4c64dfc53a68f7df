//! Join requests under `join_requests: approve_subscribers` (issue 20): subscribers approved at
//! once, anyone else written to through `user_chat_id` and approved after "Check again", declined
//! by the durable timeout, a withdrawn request, a requester who blocked the bot; and a guard bot's
//! queries (Bot API 10.1) answered within their 10 s.

use nezuko_sandbox::faults::FaultKind;
use nezuko_sandbox::model::Status;
use serde_json::json;

use super::{DEADLINE, Guarded, enforce_tests};

enforce_tests!(
    a_subscribers_request_is_approved_at_once,
    a_non_subscriber_is_told_and_approved_after_check_again,
    an_unanswered_request_is_declined_after_the_timeout,
    a_withdrawn_request_is_recorded_as_withdrawn,
    joining_the_channel_approves_a_pending_request_without_check_again,
    a_requester_who_blocked_the_bot_waits_for_the_timeout,
    requests_are_left_alone_while_the_policy_is_off,
    a_guard_query_for_a_subscriber_is_approved,
    a_guard_query_for_a_non_subscriber_is_queued_and_the_requester_told,
    a_guard_query_for_a_non_subscriber_is_declined_by_policy,
    the_timeout_asks_telegram_again_and_approves_a_member_who_subscribed_unseen,
    a_guard_query_is_answered_in_time_while_telegram_is_slow_to_say_who_subscribed,
    a_requester_whose_name_holds_a_nul_is_told_and_recorded,
);

/// The world with join requests decided by Nezuko (timeout as given).
async fn gating(world: &Guarded, timeout_s: u64) {
    world
        .set_policy(
            json!({ "join_requests": "approve_subscribers", "join_request_timeout_s": timeout_s }),
        )
        .await;
}

/// Waits until the user is a member of the group (their request was approved).
async fn wait_member(world: &Guarded, user: i64) {
    world
        .wait_status(world.group, user, "a member", |s| *s == Status::Member)
        .await;
}

/// The message the bot wrote to `user` in private, once it is there.
async fn private_message(world: &Guarded, user: i64) -> nezuko_sandbox::control::TranscriptEntry {
    world
        .wait_bot_message(user, 0, "the message to the requester")
        .await
}

async fn a_subscribers_request_is_approved_at_once(world: Guarded) {
    gating(&world, 600).await;
    let user = world.user("Sam");
    world.sandbox.join(world.channel, user).unwrap();
    world.sandbox.request_join(world.group, user).unwrap();
    wait_member(&world, user).await;
    world.wait_verification(user, "join_approved").await;
    assert!(
        world
            .calls("sendMessage")
            .iter()
            .all(|c| c.params["chat_id"] != json!(user))
    );
    world.finish().await;
}

async fn a_non_subscriber_is_told_and_approved_after_check_again(world: Guarded) {
    gating(&world, 600).await;
    let user = world.user("Nia");
    world.sandbox.request_join(world.group, user).unwrap();
    let message = private_message(&world, user).await;
    let text = message.text.clone().unwrap_or_default();
    assert!(text.contains("Readers") && text.contains("@news"), "{text}");
    let buttons = message.reply_markup.clone().unwrap();
    assert_eq!(buttons["inline_keyboard"][0][0]["url"], "https://t.me/news");
    let data = buttons["inline_keyboard"][1][0]["callback_data"]
        .as_str()
        .unwrap()
        .to_string();
    world.wait_verification(user, "join_asked").await;
    // Still not subscribed: told what is missing, the request stays pending.
    let first = world
        .sandbox
        .press_button(user, message.message_id, user, &data)
        .unwrap();
    let answer = world
        .sandbox
        .wait_until(DEADLINE, "the press is answered", |s| {
            s.callback_answer(&first)
        })
        .await
        .unwrap();
    assert!(
        answer["text"].as_str().unwrap().contains("@news"),
        "{answer}"
    );
    assert_eq!(world.sandbox.join_requests(world.group).unwrap().len(), 1);
    world.sandbox.join(world.channel, user).unwrap();
    world
        .sandbox
        .press_button(user, message.message_id, user, &data)
        .unwrap();
    wait_member(&world, user).await;
    world.wait_verification(user, "join_approved").await;
    world
        .sandbox
        .wait_until(DEADLINE, "the message says they are in", |s| {
            s.transcript(user)
                .into_iter()
                .find(|m| m.edited && m.text.as_deref().is_some_and(|t| t.contains("You are in")))
        })
        .await
        .unwrap();
    world.finish().await;
}

async fn an_unanswered_request_is_declined_after_the_timeout(world: Guarded) {
    gating(&world, 1).await;
    let user = world.user("Tom");
    world.sandbox.request_join(world.group, user).unwrap();
    private_message(&world, user).await;
    world.wait_verification(user, "join_declined").await;
    assert!(world.sandbox.join_requests(world.group).unwrap().is_empty());
    assert!(!world.sandbox.member(world.group, user).is_present());
    assert_eq!(world.calls("declineChatJoinRequest").len(), 1);
    world.finish().await;
}

async fn a_withdrawn_request_is_recorded_as_withdrawn(world: Guarded) {
    gating(&world, 1).await;
    let user = world.user("Wen");
    world.sandbox.request_join(world.group, user).unwrap();
    private_message(&world, user).await;
    world
        .sandbox
        .withdraw_join_request(world.group, user)
        .unwrap();
    world.wait_verification(user, "join_withdrawn").await;
    let row = world
        .db
        .store
        .pending_join_request(world.row.id, world.group, user)
        .await
        .unwrap();
    assert!(row.is_none(), "no longer pending: {row:?}");
    world.finish().await;
}

async fn a_requester_who_blocked_the_bot_waits_for_the_timeout(world: Guarded) {
    gating(&world, 1).await;
    let user = world.user("Bea");
    world.sandbox.block_bot(user, world.bot.id).unwrap();
    world.sandbox.request_join(world.group, user).unwrap();
    world.wait_verification(user, "join_unreachable").await;
    assert!(world.bot_messages(user).is_empty(), "nothing reached them");
    // Nobody could tell them: the timeout still ends the request.
    world.wait_verification(user, "join_declined").await;
    world.finish().await;
}

async fn requests_are_left_alone_while_the_policy_is_off(world: Guarded) {
    let user = world.user("Oli");
    world.sandbox.request_join(world.group, user).unwrap();
    world.settle().await;
    assert_eq!(world.sandbox.join_requests(world.group).unwrap().len(), 1);
    assert!(world.calls("approveChatJoinRequest").is_empty());
    assert!(world.calls("declineChatJoinRequest").is_empty());
    assert!(world.bot_messages(user).is_empty());
    world.finish().await;
}

async fn a_guard_query_for_a_subscriber_is_approved(world: Guarded) {
    gating(&world, 600).await;
    world
        .sandbox
        .set_join_guard(world.group, Some(world.bot.id))
        .unwrap();
    let user = world.user("Gus");
    world.sandbox.join(world.channel, user).unwrap();
    let query = world.sandbox.request_join(world.group, user).unwrap();
    assert!(query.is_some());
    let answer = world.wait_call("answerChatJoinRequestQuery", 0).await;
    assert_eq!(answer.params["result"], "approve");
    assert_eq!(answer.params["chat_join_request_query_id"], json!(query));
    wait_member(&world, user).await;
    let answers = world.calls("answerChatJoinRequestQuery");
    assert_eq!(answers.len(), 1, "{answers:?}");
    world.wait_verification(user, "join_approved").await;
    world.finish().await;
}

async fn a_guard_query_for_a_non_subscriber_is_queued_and_the_requester_told(world: Guarded) {
    gating(&world, 600).await;
    world
        .sandbox
        .set_join_guard(world.group, Some(world.bot.id))
        .unwrap();
    let user = world.user("Quin");
    world.sandbox.request_join(world.group, user).unwrap();
    let message = private_message(&world, user).await;
    let answers = world.calls("answerChatJoinRequestQuery");
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].params["result"], "queue");
    world.wait_verification(user, "join_queued").await;
    // Queued: still pending, and Nezuko approves it through the classic method once subscribed.
    let pending = world.sandbox.join_requests(world.group).unwrap();
    assert_eq!(pending.len(), 1);
    assert!(pending[0].query.is_none(), "the query is answered");
    world.sandbox.join(world.channel, user).unwrap();
    let data = message.reply_markup.unwrap()["inline_keyboard"][1][0]["callback_data"]
        .as_str()
        .unwrap()
        .to_string();
    world
        .sandbox
        .press_button(user, message.message_id, user, &data)
        .unwrap();
    world.wait_call("approveChatJoinRequest", 0).await;
    wait_member(&world, user).await;
    assert_eq!(world.calls("approveChatJoinRequest").len(), 1);
    assert_eq!(
        world.calls("answerChatJoinRequestQuery").len(),
        1,
        "the answered query is not asked about again"
    );
    world.finish().await;
}

async fn a_guard_query_for_a_non_subscriber_is_declined_by_policy(world: Guarded) {
    world
        .set_policy(
            json!({ "join_requests": "approve_subscribers", "join_query_fallback": "decline" }),
        )
        .await;
    world
        .sandbox
        .set_join_guard(world.group, Some(world.bot.id))
        .unwrap();
    let user = world.user("Dee");
    world.sandbox.request_join(world.group, user).unwrap();
    world.wait_verification(user, "join_declined").await;
    let answers = world.calls("answerChatJoinRequestQuery");
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].params["result"], "decline");
    assert!(world.sandbox.join_requests(world.group).unwrap().is_empty());
    world.finish().await;
}

async fn joining_the_channel_approves_a_pending_request_without_check_again(world: Guarded) {
    gating(&world, 600).await;
    let user = world.user("Ray");
    world.sandbox.request_join(world.group, user).unwrap();
    private_message(&world, user).await;
    world.wait_verification(user, "join_asked").await;
    // The bot administers @news, so Telegram tells it of the join at once.
    world.sandbox.join(world.channel, user).unwrap();
    wait_member(&world, user).await;
    world.wait_verification(user, "join_approved").await;
    assert_eq!(world.calls("approveChatJoinRequest").len(), 1);
    world.finish().await;
}

async fn the_timeout_asks_telegram_again_and_approves_a_member_who_subscribed_unseen(
    world: Guarded,
) {
    gating(&world, 1).await;
    let user = world.user("Una");
    world.sandbox.request_join(world.group, user).unwrap();
    private_message(&world, user).await;
    // Subscribed without the bot hearing of it (a missed `chat_member` update).
    world
        .sandbox
        .set_member(world.channel, user, Status::Member)
        .unwrap();
    wait_member(&world, user).await;
    world.wait_verification(user, "join_approved").await;
    assert!(world.calls("declineChatJoinRequest").is_empty());
    world.finish().await;
}

async fn a_guard_query_is_answered_in_time_while_telegram_is_slow_to_say_who_subscribed(
    mut world: Guarded,
) {
    gating(&world, 600).await;
    world
        .sandbox
        .set_join_guard(world.group, Some(world.bot.id))
        .unwrap();
    // Telegram asks the bot to wait 11 s before reading membership: longer than the query's 10 s.
    world.fault(
        "getChatMember",
        FaultKind::RetryAfter { seconds: 11 },
        Some(1),
    );
    world.injected_429s += 1;
    let user = world.user("Sol");
    world.sandbox.request_join(world.group, user).unwrap();
    let bot = world.bot.id;
    let answer = world
        .sandbox
        .wait_for_call(bot, "answerChatJoinRequestQuery", 0, DEADLINE)
        .await
        .unwrap();
    assert_eq!(answer.params["result"], "queue");
    assert!(answer.ok, "answered inside the 10 s: {answer:?}");
    world.wait_verification(user, "join_asked").await;
    world.finish().await;
}

async fn a_requester_whose_name_holds_a_nul_is_told_and_recorded(world: Guarded) {
    gating(&world, 600).await;
    let user = world.sandbox.create_user("Nul\u{0}x", None).id;
    world.sandbox.request_join(world.group, user).unwrap();
    private_message(&world, user).await;
    world.wait_verification(user, "join_asked").await;
    let row = world
        .db
        .store
        .pending_join_request(world.row.id, world.group, user)
        .await
        .unwrap()
        .expect("filed");
    assert_eq!(row.name, "Nulx");
    world.finish().await;
}
