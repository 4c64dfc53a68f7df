//! Join requests as Bot API 10.1 has them: a guard bot's `query_id` and its 10 s, the answers and
//! the Mini App with signed `initData`, and the 5 minutes of `user_chat_id`.

use serde_json::json;

use super::World;
use nezuko_sandbox::model::Status;

async fn guarded() -> World {
    let world = World::new().await;
    world
        .sandbox
        .set_join_guard(world.channel, Some(world.bot.id))
        .unwrap();
    world.want_all().await;
    world
}

#[tokio::test]
async fn a_guard_query_not_answered_in_10_s_is_declined_and_recorded_as_a_violation() {
    let world = guarded().await;
    let user = world.user("Quinn");
    let query = world
        .sandbox
        .request_join(world.channel, user.id)
        .unwrap()
        .expect("the guard bot is asked");
    let requests = world.pending_of("chat_join_request").await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["query_id"], json!(query));
    assert_eq!(requests[0]["user_chat_id"], json!(user.id));
    world.sandbox.advance_clock(11);
    let violations = world.sandbox.violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].method, "answerChatJoinRequestQuery");
    assert!(violations[0].reason.contains("10 s"), "{violations:?}");
    assert!(
        world
            .sandbox
            .join_requests(world.channel)
            .unwrap()
            .is_empty()
    );
    let late = world
        .fails(
            "answerChatJoinRequestQuery",
            json!({ "chat_join_request_query_id": query, "result": "approve" }),
            400,
        )
        .await;
    assert_eq!(late, "Bad Request: QUERY_ID_INVALID");
    assert_eq!(world.sandbox.member(world.channel, user.id), Status::Left);
}

#[tokio::test]
async fn a_guard_bot_approves_declines_or_queues() {
    let world = guarded().await;
    let [approved, declined, queued] = ["Ada", "Dov", "Kit"].map(|n| world.user(n));
    let mut queries = Vec::new();
    for user in [&approved, &declined, &queued] {
        queries.push(
            world
                .sandbox
                .request_join(world.channel, user.id)
                .unwrap()
                .unwrap(),
        );
    }
    for (query, result) in queries.iter().zip(["approve", "decline", "queue"]) {
        world
            .ok(
                "answerChatJoinRequestQuery",
                json!({ "chat_join_request_query_id": query, "result": result }),
            )
            .await;
    }
    assert_eq!(
        world.sandbox.member(world.channel, approved.id),
        Status::Member
    );
    assert_eq!(
        world.sandbox.member(world.channel, declined.id),
        Status::Left
    );
    let pending = world.sandbox.join_requests(world.channel).unwrap();
    assert_eq!(
        pending.len(),
        1,
        "the queued request waits for an administrator"
    );
    assert_eq!(pending[0].user, queued.id);
    assert_eq!(pending[0].query, None);
    let bad = world
        .fails(
            "answerChatJoinRequestQuery",
            json!({ "chat_join_request_query_id": queries[2], "result": "maybe" }),
            400,
        )
        .await;
    assert!(bad.contains("approve, decline, queue"), "{bad}");
    // The queued request is decided the classic way.
    world
        .ok(
            "approveChatJoinRequest",
            json!({ "chat_id": world.channel, "user_id": queued.id }),
        )
        .await;
    assert_eq!(
        world.sandbox.member(world.channel, queued.id),
        Status::Member
    );
    world.sandbox.advance_clock(60);
    world.assert_no_violations();
}

#[tokio::test]
async fn a_mini_app_keeps_the_query_open_and_its_init_data_is_signed_as_telegram_signs_it() {
    let world = guarded().await;
    let user = world.user("Mia");
    let query = world
        .sandbox
        .request_join(world.channel, user.id)
        .unwrap()
        .unwrap();
    let plain = world
        .fails(
            "sendChatJoinRequestWebApp",
            json!({ "chat_join_request_query_id": query, "web_app_url": "http://example.org/check" }),
            400,
        )
        .await;
    assert_eq!(plain, "Bad Request: BUTTON_URL_INVALID");
    let url = "https://nezuko.example.org/join/1";
    world
        .ok(
            "sendChatJoinRequestWebApp",
            json!({ "chat_join_request_query_id": query, "web_app_url": url }),
        )
        .await;
    world.sandbox.advance_clock(11);
    let opened = world.sandbox.open_join_web_app(&query).unwrap();
    assert_eq!(opened.url, url);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 11;
    // Checked by the product's own implementation of Telegram's documented algorithm.
    let signed = nezuko::telegram::init_data::verify(&opened.init_data, &world.bot.token, now)
        .expect("initData signed with the bot's token");
    assert_eq!(signed.id, user.id);
    assert!(opened.init_data.contains("signature="));
    assert!(
        nezuko::telegram::init_data::verify(&opened.init_data, "1:another", now).is_err(),
        "another bot's token does not match"
    );
    world
        .ok(
            "answerChatJoinRequestQuery",
            json!({ "chat_join_request_query_id": query, "result": "approve" }),
        )
        .await;
    assert_eq!(world.sandbox.member(world.channel, user.id), Status::Member);
    world.assert_no_violations();
}

#[tokio::test]
async fn user_chat_id_may_be_written_to_for_5_minutes_while_the_request_is_pending() {
    let world = World::new().await;
    world.want_all().await;
    let [waiting, late, stranger] = ["Val", "Lou", "Sid"].map(|n| world.user(n));
    world
        .sandbox
        .request_join(world.channel, waiting.id)
        .unwrap();
    world
        .ok(
            "sendMessage",
            json!({ "chat_id": waiting.id, "text": "join @news first" }),
        )
        .await;
    let never_asked = world
        .fails(
            "sendMessage",
            json!({ "chat_id": stranger.id, "text": "hi" }),
            400,
        )
        .await;
    assert!(never_asked.contains("chat not found"), "{never_asked}");
    world.sandbox.request_join(world.channel, late.id).unwrap();
    world.sandbox.advance_clock(301);
    // Past its 5 minutes the private chat is as unknown to the bot as it was before.
    let expired = world
        .fails(
            "sendMessage",
            json!({ "chat_id": late.id, "text": "too late" }),
            400,
        )
        .await;
    assert_eq!(expired, "Bad Request: chat not found");
    // Decided, the window closes however young the request was.
    world
        .sandbox
        .request_join(world.channel, stranger.id)
        .unwrap();
    world
        .ok(
            "declineChatJoinRequest",
            json!({ "chat_id": world.channel, "user_id": stranger.id }),
        )
        .await;
    world
        .fails(
            "sendMessage",
            json!({ "chat_id": stranger.id, "text": "hi" }),
            400,
        )
        .await;
    // A chat once written to stays known: past the window the bot may not start a conversation.
    world.sandbox.advance_clock(301);
    let closed = world
        .fails(
            "sendMessage",
            json!({ "chat_id": waiting.id, "text": "again" }),
            403,
        )
        .await;
    assert_eq!(
        closed,
        "Forbidden: bot can't initiate conversation with a user"
    );
    world.assert_no_violations();
}
