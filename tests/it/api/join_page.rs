//! The Mini App check page of a guard bot (issue 20), over HTTP as Telegram and the person's app use
//! it: a guard query for someone not subscribed shows the page (`sendChatJoinRequestWebApp` with
//! `<server.public_url>/join/<id>`), the page is served with a policy Telegram Web can frame, and
//! its check approves the request once the person has subscribed. `initData` that is tampered
//! with, another bot's, or another person's is refused with a clear error and audited.

use nezuko_sandbox::control::sign_init_data;
use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use reqwest::Method;
use serde_json::json;

use super::ApiWorld;
use crate::support::TestDb;

const PUBLIC_URL: &str = "https://nezuko.example.org";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_page_approves_a_guard_query_once_subscribed_on_sqlite() {
    the_check_page_approves_a_guard_query_once_subscribed(TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_page_approves_a_guard_query_once_subscribed_on_postgres() {
    the_check_page_approves_a_guard_query_once_subscribed(TestDb::postgres().await).await;
}

async fn the_check_page_approves_a_guard_query_once_subscribed(db: TestDb) {
    let world = ApiWorld::start_with(db, &[("NEZUKO_SERVER__PUBLIC_URL", PUBLIC_URL)]).await;
    let sandbox = &world.sandbox;
    let bot = sandbox.create_bot("Guard", "guard_bot");
    let owner = sandbox.create_user("Owner", Some("owner"));
    let group = sandbox.create_chat(ChatKind::Supergroup, "Readers", None);
    let news = sandbox.create_chat(ChatKind::Channel, "News", Some("news"));
    for chat in [group, news] {
        sandbox.set_member(chat, owner.id, Status::Creator).unwrap();
        sandbox
            .promote(chat, bot.id, AdminRights::force_subscribe())
            .unwrap();
    }
    let added = world
        .post("/api/v1/bots", json!({ "token": bot.token }))
        .await;
    let bot_id = added.ok()["id"].as_i64().unwrap();
    world
        .wait_bot(bot_id, "running", |b| b["run_state"] == "running")
        .await;
    let sent = sandbox.send(group, owner.id, "/protect @news").unwrap();
    sandbox
        .wait_until(crate::enforce::DEADLINE, "the group is protected", |s| {
            s.transcript(group).into_iter().find(|m| {
                m.message_id > sent && m.text.as_deref().is_some_and(|t| t.contains("Protected"))
            })
        })
        .await
        .unwrap();
    let row = world
        .db
        .store
        .group_by_chat(bot_id, group)
        .await
        .unwrap()
        .expect("the group is stored");
    world
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{}/policy", row.id),
            Some(json!({ "join_requests": "approve_subscribers" })),
        )
        .await
        .ok();
    sandbox.set_join_guard(group, Some(bot.id)).unwrap();

    let user = sandbox.create_user("Mia", None);
    let query = sandbox.request_join(group, user.id).unwrap().unwrap();
    let shown = sandbox
        .wait_for_call(
            bot.id,
            "sendChatJoinRequestWebApp",
            0,
            crate::enforce::DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(shown.params["chat_join_request_query_id"], json!(query));
    let url = shown.params["web_app_url"].as_str().unwrap().to_string();
    let path = url
        .strip_prefix(PUBLIC_URL)
        .expect("the page is under the public URL");
    let id: i64 = path.strip_prefix("/join/").unwrap().parse().unwrap();

    // The page itself: framable by Telegram Web only.
    let page = world
        .client
        .get(format!("{}{path}", world.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        policy.contains("frame-ancestors https://web.telegram.org"),
        "{policy}"
    );
    assert!(page.text().await.unwrap().contains("/js/join.js"));

    let opened = sandbox.open_join_web_app(&query).unwrap();
    let check = |init_data: String| {
        let world = &world;
        async move {
            world
                .anon(
                    Method::POST,
                    &format!("/api/v1/join-requests/{id}/check"),
                    Some(json!({ "init_data": init_data })),
                )
                .await
        }
    };
    // Not subscribed yet: the page names the channel, and the query stays open.
    let missing = check(opened.init_data.clone()).await;
    assert_eq!(missing.ok()["status"], "missing", "{:?}", missing.body);
    assert_eq!(missing.body["channels"][0]["url"], "https://t.me/news");
    assert_eq!(missing.body["group"], "Readers");

    // Tampered, another bot's, another person's: refused, and each refusal audited.
    let tampered = opened.init_data.replace("Mia", "Max");
    check(tampered).await.problem(401, "unauthenticated");
    let user_json = json!({ "id": user.id, "first_name": "Mia" }).to_string();
    let now = (nezuko::db::now_ms() / 1000).to_string();
    let foreign = sign_init_data(
        vec![
            ("auth_date".into(), now.clone()),
            ("user".into(), user_json),
        ],
        "123:another-bots-token",
    );
    check(foreign).await.problem(401, "unauthenticated");
    let stranger = json!({ "id": owner.id, "first_name": "Owner" }).to_string();
    let someone_else = sign_init_data(
        vec![("auth_date".into(), now), ("user".into(), stranger)],
        &bot.token,
    );
    check(someone_else).await.problem(403, "not_your_request");
    let refused = world.audit_actions("join_request").await;
    assert_eq!(
        refused
            .iter()
            .filter(|a| *a == "join_request.check_refused")
            .count(),
        3,
        "{refused:?}"
    );
    world
        .anon(
            Method::POST,
            "/api/v1/join-requests/999999/check",
            Some(json!({ "init_data": opened.init_data })),
        )
        .await
        .problem(404, "not_found");

    // Subscribed: the check approves through the still-open query.
    sandbox.join(news, user.id).unwrap();
    let approved = check(opened.init_data.clone()).await;
    assert_eq!(approved.ok()["status"], "approved", "{:?}", approved.body);
    assert_eq!(sandbox.member(group, user.id), Status::Member);
    let answers = sandbox.calls(Some(bot.id), Some("answerChatJoinRequestQuery"));
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].params["result"], "approve");
    // Checked again later: already decided.
    assert_eq!(check(opened.init_data).await.ok()["status"], "approved");

    // An administrator decides the others from the dashboard's API, once each.
    let [kim, lee] = ["Kim", "Lee"].map(|name| sandbox.create_user(name, None).id);
    for user in [kim, lee] {
        sandbox.request_join(group, user).unwrap();
    }
    sandbox
        .wait_for_call(
            bot.id,
            "sendChatJoinRequestWebApp",
            2,
            crate::enforce::DEADLINE,
        )
        .await
        .unwrap();
    let listed = world
        .get(&format!("/api/v1/groups/{}/join-requests", row.id))
        .await;
    let items = listed.ok()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2, "{items:?}");
    let request_of = |user: i64| {
        items.iter().find(|r| r["user_id"] == user).unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let approved = world
        .post(
            &format!("/api/v1/join-requests/{}/approve", request_of(kim)),
            json!({}),
        )
        .await;
    assert_eq!(approved.ok()["status"], "approved");
    assert!(sandbox.member(group, kim).is_present());
    let declined = world
        .post(
            &format!("/api/v1/join-requests/{}/decline", request_of(lee)),
            json!({}),
        )
        .await;
    assert_eq!(declined.ok()["status"], "declined");
    assert_eq!(sandbox.member(group, lee), Status::Left);
    world
        .post(
            &format!("/api/v1/join-requests/{}/approve", request_of(lee)),
            json!({}),
        )
        .await
        .problem(409, "conflict");
    // The guard queries were answered by the administrator's decisions, inside their window.
    assert_eq!(
        sandbox
            .calls(Some(bot.id), Some("answerChatJoinRequestQuery"))
            .len(),
        3
    );
    assert_eq!(sandbox.violations(), vec![]);
    world.finish().await;
}
