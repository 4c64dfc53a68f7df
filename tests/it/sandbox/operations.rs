//! The control API as one set of operations: every operation carried out through the Rust API
//! and over HTTP, the README's example of each read back into the type, and refusals explained.

use std::cell::RefCell;
use std::collections::BTreeSet;

use nezuko_sandbox::Operation;
use nezuko_sandbox::control::{AdminRestrict, ChatUser, Forward, NewChat, Say, operation_names};
use nezuko_sandbox::faults::{Fault, FaultKind, RateLimits};
use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use serde_json::{Value, json};

use super::{Via, World, both_ways};

both_ways!(every_operation_is_carried_out);

/// Runs operations and remembers their names.
struct Tour<'a> {
    world: &'a World,
    via: Via,
    used: RefCell<BTreeSet<String>>,
}

impl Tour<'_> {
    async fn run(&self, operation: Operation) -> Value {
        let name = serde_json::to_value(&operation).unwrap()["op"]
            .as_str()
            .unwrap()
            .to_string();
        self.used.borrow_mut().insert(name);
        self.world.done(self.via, operation).await
    }

    async fn id(&self, operation: Operation, field: &str) -> i64 {
        self.run(operation).await[field].as_i64().unwrap()
    }
}

async fn every_operation_is_carried_out(via: Via) {
    let world = World::new().await;
    let tour = Tour {
        world: &world,
        via,
        used: RefCell::default(),
    };
    let (owner, bot, group, channel) = (world.owner.id, world.bot.id, world.group, world.channel);
    let second = tour
        .id(
            Operation::CreateBot {
                first_name: "Second".into(),
                username: Some("second_bot".into()),
            },
            "id",
        )
        .await;
    let ann = tour
        .id(
            Operation::CreateUser {
                first_name: "Ann".into(),
                last_name: Some("Lee".into()),
                username: Some("ann".into()),
            },
            "id",
        )
        .await;
    let new_chat = |kind, title: &str, is_forum| {
        Operation::CreateChat(NewChat {
            kind,
            title: title.into(),
            username: None,
            is_forum,
        })
    };
    let forum = tour
        .id(new_chat(ChatKind::Supergroup, "Forum", true), "id")
        .await;
    tour.run(Operation::SetMember {
        chat: forum,
        user: owner,
        status: Status::Creator,
    })
    .await;
    for user in [bot, second] {
        tour.run(Operation::Promote {
            chat: forum,
            user,
            rights: AdminRights::force_subscribe(),
        })
        .await;
    }
    tour.run(Operation::Demote(ChatUser {
        chat: forum,
        user: second,
    }))
    .await;
    let thread = tour
        .id(
            Operation::CreateTopic {
                chat: forum,
                user: owner,
                name: "Rules".into(),
            },
            "message_thread_id",
        )
        .await;
    let basic = tour
        .id(new_chat(ChatKind::Group, "Basic", false), "id")
        .await;
    tour.run(Operation::SetMember {
        chat: basic,
        user: owner,
        status: Status::Creator,
    })
    .await;
    let upgraded = tour
        .id(
            Operation::UpgradeGroup(ChatUser {
                chat: basic,
                user: owner,
            }),
            "id",
        )
        .await;
    assert_ne!(upgraded, basic);
    tour.run(Operation::LinkDiscussion { channel, group }).await;

    let at = ChatUser {
        chat: group,
        user: ann,
    };
    tour.run(Operation::Join(at)).await;
    let said = tour
        .id(Operation::Send(Say::new(group, ann, "hi")), "message_id")
        .await;
    tour.run(Operation::Edit {
        chat: group,
        message_id: said,
        user: ann,
        text: "hi!".into(),
    })
    .await;
    let post = tour
        .id(
            Operation::Post {
                chat: channel,
                text: "news".into(),
            },
            "message_id",
        )
        .await;
    tour.run(Operation::Forward(Forward {
        chat: group,
        user: ann,
        from_chat: channel,
        message_id: post,
        thread: None,
    }))
    .await;
    tour.run(Operation::SendPrivate {
        bot,
        user: ann,
        text: "/start".into(),
    })
    .await;
    tour.run(Operation::BlockBot { user: ann, bot }).await;
    tour.run(Operation::UnblockBot { user: ann, bot }).await;
    let asking = ChatUser {
        chat: forum,
        user: ann,
    };
    tour.run(Operation::RequestJoin(asking)).await;
    tour.run(Operation::WithdrawJoinRequest(asking)).await;
    tour.run(Operation::SetJoinGuard {
        chat: forum,
        bot: Some(bot),
    })
    .await;
    let asked = tour.run(Operation::RequestJoin(asking)).await;
    let query = asked["query_id"].as_str().unwrap().to_string();
    let page = "https://example.org/check";
    world
        .ok(
            "sendChatJoinRequestWebApp",
            json!({ "chat_join_request_query_id": query, "web_app_url": page }),
        )
        .await;
    let pending = tour.run(Operation::JoinRequests { chat: forum }).await;
    assert_eq!(pending[0]["web_app_url"], page);
    let opened = tour
        .run(Operation::OpenJoinWebApp {
            query: query.clone(),
        })
        .await;
    assert!(opened["init_data"].as_str().unwrap().contains("hash="));
    world
        .ok(
            "answerChatJoinRequestQuery",
            json!({ "chat_join_request_query_id": query, "result": "decline" }),
        )
        .await;
    tour.run(Operation::Leave(at)).await;
    tour.run(Operation::Join(at)).await;

    let keyboard =
        json!({ "inline_keyboard": [[{ "text": "I have joined", "callback_data": "check" }]] });
    let button = world
        .ok(
            "sendMessage",
            json!({ "chat_id": group, "text": "join first", "reply_markup": keyboard }),
        )
        .await["message_id"]
        .as_i64()
        .unwrap();
    let latest = tour.run(Operation::LatestButton { chat: group }).await;
    assert_eq!(latest["message_id"], button);
    let callback = tour
        .run(Operation::PressButton {
            chat: group,
            message_id: button,
            user: ann,
            data: "check".into(),
        })
        .await["callback_id"]
        .as_str()
        .unwrap()
        .to_string();
    let answered = tour.run(Operation::CallbackAnswer { id: callback }).await;
    assert_eq!(answered, Value::Null, "not answered yet");

    tour.run(Operation::AdminRestrict(AdminRestrict {
        chat: group,
        admin: owner,
        user: ann,
        permissions: Default::default(),
        until_date: None,
    }))
    .await;
    assert_eq!(
        tour.run(Operation::Member(at)).await["status"],
        "restricted"
    );
    let refused = world
        .refused(via, Operation::Send(Say::new(group, ann, "muted?")))
        .await;
    assert!(refused.contains("not delivered"), "{refused}");
    assert_eq!(
        tour.run(Operation::Blocked { chat: group }).await,
        json!([[ann, "muted?"]])
    );
    tour.run(Operation::AdminLift {
        chat: group,
        admin: owner,
        user: ann,
    })
    .await;
    tour.run(Operation::AdminBan {
        chat: group,
        admin: owner,
        user: ann,
        until_date: None,
    })
    .await;
    tour.run(Operation::AdminUnban {
        chat: group,
        admin: owner,
        user: ann,
    })
    .await;
    assert_eq!(tour.run(Operation::Chat { chat: group }).await["id"], group);
    let transcript = tour.run(Operation::Transcript { chat: group }).await;
    assert!(
        transcript
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"] == "hi!" && m["edited"] == true)
    );

    let sent = tour
        .run(Operation::Calls {
            bot: Some(bot),
            method: Some("sendMessage".into()),
        })
        .await;
    assert_eq!(sent.as_array().unwrap().len(), 1);
    let waited = tour
        .run(Operation::WaitForCall {
            bot,
            method: "sendMessage".into(),
            after: 0,
            timeout_ms: 1_000,
        })
        .await;
    assert_eq!(waited["params"]["text"], "join first");
    assert_eq!(tour.run(Operation::Violations).await, json!([]));
    assert!(tour.run(Operation::Counters).await["by_method"]["sendMessage"] == 1);
    assert!(
        tour.run(Operation::PendingUpdates { bot })
            .await
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(tour.run(Operation::IsPolling { bot }).await, json!(false));

    tour.run(Operation::InjectFault(Fault {
        bot: Some(second),
        method: Some("getMe".into()),
        kind: FaultKind::ServerError { status: 502 },
        times: Some(1),
    }))
    .await;
    tour.run(Operation::ClearFaults).await;
    tour.run(Operation::RevokeToken { bot: second }).await;
    tour.run(Operation::RestoreToken { bot: second }).await;
    let token = tour.run(Operation::RotateToken { bot: second }).await;
    let (status, _) = world
        .call_as(token["token"].as_str().unwrap(), "getMe", json!({}))
        .await;
    assert_eq!(status, 200, "the fault was cleared and the new token works");
    tour.run(Operation::AdvanceClock { seconds: 1 }).await;
    tour.run(Operation::SetRateLimits(RateLimits::default()))
        .await;
    tour.run(Operation::DeleteTopic {
        chat: forum,
        thread,
    })
    .await;
    tour.run(Operation::DeleteAccount { user: ann }).await;

    let missing: Vec<&str> = operation_names()
        .iter()
        .copied()
        .filter(|name| !tour.used.borrow().contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "operations the tour left out: {missing:?}"
    );
    world.assert_no_violations();
}

#[test]
fn the_readme_shows_every_operation_with_an_example_that_is_one() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("### Control API")
        .nth(1)
        .expect("the README has a Control API section");
    let mut documented = BTreeSet::new();
    for row in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let (Some(name), Some(example)) = (cells.first(), cells.get(1)) else {
            continue;
        };
        let name = name.trim_start_matches("| ").trim_matches('`');
        if !operation_names().contains(&name) {
            continue;
        }
        let json = &example[example.find('{').unwrap()..=example.find("}`").unwrap()];
        let body: Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("the example of {name} is not JSON ({e}): {json}"));
        if let Err(error) = Operation::parse(name, body) {
            panic!("the README's example of {name} is not an operation: {error}");
        }
        documented.insert(name.to_string());
    }
    let undocumented: Vec<&str> = operation_names()
        .iter()
        .copied()
        .filter(|name| !documented.contains(*name))
        .collect();
    assert!(
        undocumented.is_empty(),
        "operations without a README example: {undocumented:?}"
    );
}

#[tokio::test]
async fn refused_operations_say_why_over_http() {
    let world = World::new().await;
    let client = reqwest::Client::new();
    let post = |op: &str, body: String| {
        let request = client
            .post(format!("{}/_sandbox/{op}", world.running.url()))
            .header("content-type", "application/json")
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let reply: Value = response.json().await.unwrap();
            assert_eq!(reply["ok"], false);
            (status, reply["error"].as_str().unwrap().to_string())
        }
    };
    let (status, error) = post("teleport", "{}".into()).await;
    assert_eq!(status, 404);
    assert!(
        error.contains("unknown control operation `teleport`"),
        "{error}"
    );
    assert!(
        error.contains("admin_ban") && error.contains("create_topic"),
        "{error}"
    );

    let (status, error) = post("join", r#"{"chat": "x", "user": 1}"#.into()).await;
    assert_eq!(status, 400);
    assert!(error.contains("bad arguments for `join`"), "{error}");
    let (status, error) = post(
        "send",
        format!(
            r#"{{"chat": {}, "user": {}, "text": "x", "sender": 1}}"#,
            world.group, world.owner.id
        ),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        error.contains("unknown field `sender`"),
        "a misspelt field is not dropped: {error}"
    );
    let (status, error) = post("join", "{not json".into()).await;
    assert_eq!(status, 400);
    assert!(error.contains("not JSON"), "{error}");
    let (status, error) = post(
        "join",
        format!(r#"{{"chat": 42, "user": {}}}"#, world.owner.id),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error, "no chat 42");
    let (status, error) = post("revoke_token", r#"{"bot": 5}"#.into()).await;
    assert_eq!((status, error.as_str()), (400, "no account 5"));
}
