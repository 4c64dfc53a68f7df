//! `POST /api/v1/groups` (issue 20): a channel is protected from the dashboard's API, since
//! channels send no commands. The bot checks its rights first and every missing one comes back as
//! a fix, nothing stored; once protected, the channel's join requests are decided by subscription.
//! Bad addresses, unknown bots and bots that do not run here get clear, specific answers.

use nezuko_sandbox::faults::{Fault, FaultKind};
use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use reqwest::Method;
use serde_json::json;

use super::{ApiWorld, api_tests};

api_tests!(
    a_channel_is_protected_over_the_api_and_lets_in_its_subscribers,
    protecting_refuses_what_cannot_be_protected_with_a_clear_answer,
    a_protected_channel_stays_guarded_and_has_one_bot,
);

/// A running bot, @news (administered) and @premium, where the bot holds `rights`; returns
/// (bot instance id, sandbox bot id, @news, @premium).
async fn channels(world: &ApiWorld, rights: AdminRights) -> (i64, i64, i64, i64) {
    let sandbox = &world.sandbox;
    let bot = sandbox.create_bot("Guard", "guard_bot");
    let owner = sandbox.create_user("Owner", Some("owner"));
    let news = sandbox.create_chat(ChatKind::Channel, "News", Some("news"));
    let premium = sandbox.create_chat(ChatKind::Channel, "Premium", Some("premium"));
    for chat in [news, premium] {
        sandbox.set_member(chat, owner.id, Status::Creator).unwrap();
    }
    sandbox
        .promote(news, bot.id, AdminRights::force_subscribe())
        .unwrap();
    sandbox.promote(premium, bot.id, rights).unwrap();
    let id = world.add_running_bot(&bot.token).await;
    (id, bot.id, news, premium)
}

/// A chat `@username` of `kind` someone else created, where bot `bot` holds `rights`.
fn owned_chat(
    world: &ApiWorld,
    kind: ChatKind,
    username: &str,
    bot: i64,
    rights: AdminRights,
) -> i64 {
    let chat = world.sandbox.create_chat(kind, username, Some(username));
    let founder = world.sandbox.create_user("Founder", None).id;
    world
        .sandbox
        .set_member(chat, founder, Status::Creator)
        .unwrap();
    world.sandbox.promote(chat, bot, rights).unwrap();
    chat
}

async fn a_channel_is_protected_over_the_api_and_lets_in_its_subscribers(world: &mut ApiWorld) {
    let no_invite = AdminRights {
        can_manage_chat: true,
        can_post_messages: true,
        ..AdminRights::default()
    };
    let (id, bot, news, premium) = channels(world, no_invite).await;
    let body = json!({ "bot_instance_id": id, "chat": "@premium", "channels": ["@news"] });
    let refused = world.post("/api/v1/groups", body.clone()).await;
    refused.problem(422, "missing_rights");
    let fixes = refused.body["problems"].as_array().unwrap();
    assert_eq!(fixes.len(), 1, "{}", refused.body);
    assert!(
        fixes[0].as_str().unwrap().contains("Invite users"),
        "{}",
        refused.body
    );
    let groups = world.get("/api/v1/groups").await;
    assert_eq!(groups.ok()["page"]["total"], 0, "nothing was stored");

    let invite = AdminRights {
        can_manage_chat: true,
        can_invite_users: true,
        ..AdminRights::default()
    };
    world.sandbox.promote(premium, bot, invite).unwrap();
    let created = world.post("/api/v1/groups", body).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let group = &created.body["group"];
    assert_eq!(group["chat_type"], "channel");
    assert_eq!(group["chat_id"], premium);
    assert_eq!(group["title"], "Premium");
    assert_eq!(group["health"], "ok");
    assert_eq!(created.body["channels"][0]["chat_id"], news);
    let group_id = group["id"].as_i64().unwrap();
    let detail = world.get(&format!("/api/v1/groups/{group_id}")).await;
    assert_eq!(
        detail.ok()["policy"]["effective"]["join_requests"],
        "approve_subscribers"
    );
    assert!(
        world
            .audit_actions("group")
            .await
            .contains(&"group.protect".to_string())
    );

    // A reader who follows @news is let in; one who does not is asked, and let in on joining it.
    let sam = world.sandbox.create_user("Sam", None).id;
    world.sandbox.join(news, sam).unwrap();
    world.sandbox.request_join(premium, sam).unwrap();
    let ned = world.sandbox.create_user("Ned", None).id;
    world.sandbox.request_join(premium, ned).unwrap();
    world
        .sandbox
        .wait_until(crate::enforce::DEADLINE, "Sam is a reader", |s| {
            (s.member(premium, sam) == Status::Member).then_some(())
        })
        .await
        .unwrap();
    world
        .sandbox
        .wait_until(crate::enforce::DEADLINE, "Ned is told", |s| {
            s.transcript(ned).into_iter().find(|m| m.from == bot)
        })
        .await
        .unwrap();
    assert_eq!(world.sandbox.join_requests(premium).unwrap().len(), 1);
    world.sandbox.join(news, ned).unwrap();
    world
        .sandbox
        .wait_until(crate::enforce::DEADLINE, "Ned is a reader", |s| {
            (s.member(premium, ned) == Status::Member).then_some(())
        })
        .await
        .unwrap();
    // Telegram lets Ned in before Nezuko has written down its decision: wait for the record.
    let path = format!("/api/v1/groups/{group_id}/join-requests");
    let deadline = tokio::time::Instant::now() + crate::enforce::DEADLINE;
    loop {
        let pending = world.get(&path).await;
        if pending.ok()["items"] == json!([]) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still pending: {}",
            pending.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn protecting_refuses_what_cannot_be_protected_with_a_clear_answer(world: &mut ApiWorld) {
    let (id, bot, _, _) = channels(world, AdminRights::force_subscribe()).await;
    let basic = owned_chat(
        world,
        ChatKind::Group,
        "basic_chat",
        bot,
        AdminRights::force_subscribe(),
    );
    let post = |body: serde_json::Value| {
        let world = &*world;
        async move { world.post("/api/v1/groups", body).await }
    };
    let cases = [
        (
            json!({ "bot_instance_id": id, "chat": "premium channel", "channels": ["@news"] }),
            "chat",
            "is not a chat's address",
        ),
        (
            json!({ "bot_instance_id": id, "chat": "@nobody_here", "channels": ["@news"] }),
            "chat",
            "cannot see",
        ),
        (
            json!({ "bot_instance_id": id, "chat": basic.to_string(), "channels": ["@news"] }),
            "chat",
            "basic group",
        ),
        (
            json!({ "bot_instance_id": id, "chat": "@premium", "channels": [] }),
            "channels",
            "at least one channel",
        ),
        (
            json!({ "bot_instance_id": id, "chat": "@premium", "channels": ["news"] }),
            "channels",
            "channel \"news\" is not a chat's address",
        ),
        (
            json!({ "bot_instance_id": id, "chat": "@premium", "channels": vec!["@news"; 21] }),
            "channels",
            "at most 20",
        ),
    ];
    for (body, field, words) in cases {
        let answer = post(body.clone()).await;
        answer.problem(422, "invalid_field");
        assert_eq!(answer.body["field"], field, "{body}: {}", answer.body);
        let detail = answer.body["detail"].as_str().unwrap();
        assert!(detail.contains(words), "{body}: {detail}");
    }
    post(json!({ "bot_instance_id": 9999, "chat": "@premium", "channels": ["@news"] }))
        .await
        .problem(404, "not_found");
    post(json!({ "bot_instance_id": id, "chat": "@premium" }))
        .await
        .problem(400, "invalid_body");
    world
        .call(Method::POST, &format!("/api/v1/bots/{id}/stop"), None)
        .await
        .ok();
    world
        .wait_bot(id, "stopped", |b| b["run_state"] == "stopped")
        .await;
    post(json!({ "bot_instance_id": id, "chat": "@premium", "channels": ["@news"] }))
        .await
        .problem(409, "bot_not_running");
    assert_eq!(world.get("/api/v1/groups").await.ok()["page"]["total"], 0);
}

async fn a_protected_channel_stays_guarded_and_has_one_bot(world: &mut ApiWorld) {
    let (id, bot, news, premium) = channels(world, AdminRights::force_subscribe()).await;
    // A supergroup is protected the same way; turning its join requests on checks at once that
    // the bot may decide them.
    let no_invite = AdminRights {
        can_invite_users: false,
        ..AdminRights::force_subscribe()
    };
    owned_chat(world, ChatKind::Supergroup, "club", bot, no_invite);
    let protected = world
        .post(
            "/api/v1/groups",
            json!({ "bot_instance_id": id, "chat": "@club", "channels": ["@news"] }),
        )
        .await;
    assert_eq!(protected.status, 201, "{}", protected.body);
    assert_eq!(protected.body["group"]["chat_type"], "supergroup");
    let club_id = protected.body["group"]["id"].as_i64().unwrap();
    let gating = world
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{club_id}/policy"),
            Some(json!({ "join_requests": "approve_subscribers" })),
        )
        .await;
    assert_eq!(gating.ok()["health"], "degraded", "{}", gating.body);
    assert!(
        gating.body["health_detail"]["summary"]
            .as_str()
            .unwrap()
            .contains("Invite users"),
        "{}",
        gating.body
    );
    // Telegram not answering the check that follows a change: the change stands (stored, audited,
    // 200) and the health stays as it was, with no fixes made up.
    world.sandbox.inject_fault(Fault {
        bot: Some(bot),
        method: Some("getChatMember".into()),
        kind: FaultKind::ServerError { status: 502 },
        times: None,
    });
    let audited = world.audit_actions("group").await.len();
    let ungated = world
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{club_id}/policy"),
            Some(json!({ "join_requests": "off" })),
        )
        .await;
    world.sandbox.clear_faults();
    assert_eq!(ungated.ok()["health"], "degraded", "{}", ungated.body);
    assert_eq!(world.audit_actions("group").await.len(), audited + 1);
    let detail = world.get(&format!("/api/v1/groups/{club_id}")).await;
    assert_eq!(detail.ok()["policy"]["effective"]["join_requests"], "off");

    // Named twice (by name and by id): required once.
    let created = world
        .post(
            "/api/v1/groups",
            json!({ "bot_instance_id": id, "chat": "@premium", "channels": ["@news", "@NEWS", news.to_string()] }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["channels"].as_array().unwrap().len(), 1);
    let group_id = created.body["group"]["id"].as_i64().unwrap();

    // Requiring itself is named as such, through either path.
    let itself = world
        .post(
            "/api/v1/groups",
            json!({ "bot_instance_id": id, "chat": "@premium", "channels": ["@premium"] }),
        )
        .await;
    itself.problem(422, "missing_rights");
    assert!(
        itself.body["detail"]
            .as_str()
            .unwrap()
            .contains("cannot require itself"),
        "{}",
        itself.body
    );
    let own = world
        .post(
            "/api/v1/channels",
            json!({ "chat_id": premium, "title": "Premium", "username": "premium" }),
        )
        .await;
    let own_id = own.ok()["id"].as_i64().unwrap();
    world
        .post(
            &format!("/api/v1/groups/{group_id}/channels"),
            json!({ "channel_id": own_id }),
        )
        .await
        .problem(422, "invalid_field");

    // Its join requests stay on: a policy without the key keeps them, turning them off is refused.
    let path = format!("/api/v1/groups/{group_id}/policy");
    world
        .call(
            Method::PUT,
            &path,
            Some(json!({ "join_request_timeout_s": 5 })),
        )
        .await
        .ok();
    let detail = world.get(&format!("/api/v1/groups/{group_id}")).await;
    assert_eq!(
        detail.ok()["policy"]["effective"]["join_requests"],
        "approve_subscribers"
    );
    let off = world
        .call(Method::PUT, &path, Some(json!({ "join_requests": "off" })))
        .await;
    off.problem(422, "invalid_field");
    assert_eq!(off.body["field"], "join_requests");
    let sam = world.sandbox.create_user("Sam", None).id;
    world.sandbox.join(news, sam).unwrap();
    world.sandbox.request_join(premium, sam).unwrap();
    world
        .sandbox
        .wait_until(crate::enforce::DEADLINE, "Sam is a reader", |s| {
            (s.member(premium, sam) == Status::Member).then_some(())
        })
        .await
        .unwrap();

    // One chat, one enforcing bot.
    let second = world.sandbox.create_bot("Second", "second_bot");
    world
        .sandbox
        .promote(premium, second.id, AdminRights::force_subscribe())
        .unwrap();
    world
        .sandbox
        .promote(news, second.id, AdminRights::force_subscribe())
        .unwrap();
    let second_id = world.add_running_bot(&second.token).await;
    let taken = world
        .post(
            "/api/v1/groups",
            json!({ "bot_instance_id": second_id, "chat": "@premium", "channels": ["@news"] }),
        )
        .await;
    taken.problem(409, "chat_taken");
    assert!(
        taken.body["detail"]
            .as_str()
            .unwrap()
            .contains("@guard_bot"),
        "{}",
        taken.body
    );
    let mine = world.get(&format!("/api/v1/groups?bot={second_id}")).await;
    assert_eq!(mine.ok()["page"]["total"], 0);
    // Handed over: once the first bot's row is disabled the second may protect the chat, and the
    // first cannot be enabled again beside it.
    world
        .post(&format!("/api/v1/groups/{group_id}/disable"), json!({}))
        .await
        .ok();
    let handed = world
        .post(
            "/api/v1/groups",
            json!({ "bot_instance_id": second_id, "chat": "@premium", "channels": ["@news"] }),
        )
        .await;
    assert_eq!(handed.status, 201, "{}", handed.body);
    world
        .post(&format!("/api/v1/groups/{group_id}/enable"), json!({}))
        .await
        .problem(409, "chat_taken");

    // Two bots asked at once: one protects the chat, the other is told it is taken.
    let duo = owned_chat(
        world,
        ChatKind::Channel,
        "duo",
        bot,
        AdminRights::force_subscribe(),
    );
    world
        .sandbox
        .promote(duo, second.id, AdminRights::force_subscribe())
        .unwrap();
    let ask = |bot_instance_id: i64| {
        world.post(
            "/api/v1/groups",
            json!({ "bot_instance_id": bot_instance_id, "chat": "@duo", "channels": ["@news"] }),
        )
    };
    let (first, other) = tokio::join!(ask(id), ask(second_id));
    let mut statuses = [first.status, other.status];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{} / {}", first.body, other.body);
}
