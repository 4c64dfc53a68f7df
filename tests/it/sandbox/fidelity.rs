//! Where the sandbox once differed from Telegram, and the shapes Telegram sends today (Bot API
//! 10.1): restrictions that outlive leaving, unban without `only_if_banned`, other bots left out
//! of administrator lists, bodies without a length, malformed tokens, 10.1's fields per chat kind.

use nezuko_sandbox::Operation;
use nezuko_sandbox::control::ChatUser;
use nezuko_sandbox::faults::{Fault, FaultKind};
use nezuko_sandbox::model::{AdminRights, Status};
use serde_json::{Value, json};

use super::{Via, World, both_ways};

both_ways!(
    a_restricted_member_who_leaves_and_rejoins_is_still_restricted,
    unban_without_only_if_banned_leaves_every_non_administrator_left,
    administrator_lists_leave_other_bots_out_unless_asked,
);

fn muted(world: &World, user: i64) -> Value {
    json!({ "chat_id": world.group, "user_id": user, "permissions": { "can_send_messages": false } })
}

async fn a_restricted_member_who_leaves_and_rejoins_is_still_restricted(via: Via) {
    let world = World::new().await;
    let user = world.member_of(via, world.group, "Ret").await;
    world.ok("restrictChatMember", muted(&world, user.id)).await;
    let at = ChatUser {
        chat: world.group,
        user: user.id,
    };
    world.done(via, Operation::Leave(at)).await;
    let left = world.done(via, Operation::Member(at)).await;
    assert_eq!(
        (left["status"].as_str(), left["is_member"].as_bool()),
        (Some("restricted"), Some(false))
    );
    world.done(via, Operation::Join(at)).await;
    let back = world
        .ok(
            "getChatMember",
            json!({ "chat_id": world.group, "user_id": user.id }),
        )
        .await;
    assert_eq!(back["status"], "restricted");
    assert_eq!(back["is_member"], true);
    assert_eq!(back["can_send_messages"], false);
    let refused = world
        .refused(
            via,
            Operation::Send(nezuko_sandbox::control::Say::new(
                world.group,
                user.id,
                "I'm back",
            )),
        )
        .await;
    assert!(refused.contains("not delivered"), "{refused}");
    world.assert_no_violations();
}

async fn unban_without_only_if_banned_leaves_every_non_administrator_left(via: Via) {
    let world = World::new().await;
    let [present, restricted_away, restricted_here] = ["Pre", "Raw", "Rhe"].map(str::to_string);
    let present = world.member_of(via, world.group, &present).await;
    let away = world.member_of(via, world.group, &restricted_away).await;
    let here = world.member_of(via, world.group, &restricted_here).await;
    for user in [&away, &here] {
        world.ok("restrictChatMember", muted(&world, user.id)).await;
    }
    world
        .done(
            via,
            Operation::Leave(ChatUser {
                chat: world.group,
                user: away.id,
            }),
        )
        .await;
    for user in [&present, &away, &here] {
        world
            .ok(
                "unbanChatMember",
                json!({ "chat_id": world.group, "user_id": user.id }),
            )
            .await;
        assert_eq!(
            world.sandbox.member(world.group, user.id),
            Status::Left,
            "{}",
            user.first_name
        );
    }
    world.assert_no_violations();
}

async fn administrator_lists_leave_other_bots_out_unless_asked(via: Via) {
    let world = World::new().await;
    let other = world
        .done(
            via,
            Operation::CreateBot {
                first_name: "Other".into(),
                username: Some("other_bot".into()),
            },
        )
        .await;
    world
        .done(
            via,
            Operation::Promote {
                chat: world.group,
                user: other["id"].as_i64().unwrap(),
                rights: AdminRights::force_subscribe(),
            },
        )
        .await;
    let ids = |admins: Value| -> Vec<i64> {
        admins
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["user"]["id"].as_i64().unwrap())
            .collect()
    };
    let listed = world
        .ok("getChatAdministrators", json!({ "chat_id": world.group }))
        .await;
    assert_eq!(ids(listed), [world.owner.id, world.bot.id]);
    let with_bots = world
        .ok(
            "getChatAdministrators",
            json!({ "chat_id": world.group, "return_bots": true }),
        )
        .await;
    assert_eq!(ids(with_bots).len(), 3);
    world.assert_no_violations();
}

#[tokio::test]
async fn a_post_without_a_length_or_chunked_is_read_as_its_body() {
    let world = World::new().await;
    let token = &world.bot.token;
    let bare =
        format!("POST /bot{token}/getMe HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n\r\n");
    let (status, body) = raw_http(&world, &bare).await;
    assert_eq!(status, 200, "no body and no Content-Length: {body}");
    assert_eq!(body["result"]["id"], world.bot.id);

    let json = format!("{{\"chat_id\":{}}}", world.group);
    let (head, tail) = json.split_at(5);
    let chunked = format!(
        "POST /bot{token}/getChat HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{head}\r\n{:x}\r\n{tail}\r\n0\r\n\r\n",
        head.len(),
        tail.len()
    );
    let (status, body) = raw_http(&world, &chunked).await;
    assert_eq!(status, 200, "a chunked body: {body}");
    assert_eq!(body["result"]["id"], world.group);
    world.assert_no_violations();
}

/// Sends `request` as written and reads the status and JSON body of the answer.
async fn raw_http(world: &World, request: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(world.running.addr)
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let json = body
        .find('{')
        .map(|start| &body[start..=body.rfind('}').unwrap()]);
    (
        status,
        serde_json::from_str(json.unwrap_or("null")).unwrap(),
    )
}

#[tokio::test]
async fn malformed_tokens_are_refused_as_the_bot_api_server_refuses_them() {
    let world = World::new().await;
    for (token, code, description) in [
        (
            "no-colon-at-all",
            401,
            "Unauthorized: invalid token specified",
        ),
        ("0123:AAAA", 401, "Unauthorized: invalid token specified"),
        ("-5:AAAA", 401, "Unauthorized: invalid token specified"),
        (
            "abc:AAAA",
            421,
            "Misdirected Request: unallowed token specified",
        ),
        ("12345:AAwrongsecret", 401, "Unauthorized"),
    ] {
        let (status, body) = world.call_as(token, "getMe", json!({})).await;
        assert_eq!(
            (status, body["description"].as_str()),
            (code, Some(description)),
            "{token}"
        );
        assert_eq!(body["error_code"], code);
    }
    let long = format!("1:{}", "A".repeat(80));
    assert_eq!(world.call_as(&long, "getMe", json!({})).await.0, 401);
}

#[tokio::test]
async fn member_objects_carry_bot_api_10_1_fields_for_each_chat_kind() {
    let world = World::new().await;
    let user = world.user("Tag");
    world.sandbox.join(world.group, user.id).unwrap();
    world.ok("restrictChatMember", muted(&world, user.id)).await;
    let restricted = world
        .ok(
            "getChatMember",
            json!({ "chat_id": world.group, "user_id": user.id }),
        )
        .await;
    for field in ["can_edit_tag", "can_react_to_messages", "can_manage_topics"] {
        assert_eq!(restricted[field], false, "{field} in {restricted}");
    }

    let admin_in = |chat: i64| {
        let world = &world;
        async move {
            world
                .ok(
                    "getChatMember",
                    json!({ "chat_id": chat, "user_id": world.bot.id }),
                )
                .await
        }
    };
    let in_group = admin_in(world.group).await;
    for field in ["can_manage_topics", "can_manage_tags", "can_pin_messages"] {
        assert!(in_group[field].is_boolean(), "{field} in {in_group}");
    }
    for field in [
        "can_post_messages",
        "can_edit_messages",
        "can_manage_direct_messages",
    ] {
        assert!(in_group.get(field).is_none(), "{field} in {in_group}");
    }
    let in_channel = admin_in(world.channel).await;
    for field in [
        "can_post_messages",
        "can_edit_messages",
        "can_manage_direct_messages",
    ] {
        assert!(in_channel[field].is_boolean(), "{field} in {in_channel}");
    }
    for field in ["can_manage_topics", "can_manage_tags", "can_pin_messages"] {
        assert!(in_channel.get(field).is_none(), "{field} in {in_channel}");
    }

    let chat = world.ok("getChat", json!({ "chat_id": world.group })).await;
    assert_eq!(chat["accepted_gift_types"]["gifts_from_channels"], false);
    assert!(chat["permissions"]["can_edit_tag"].is_boolean());
    assert!(chat["permissions"]["can_react_to_messages"].is_boolean());
    assert_eq!(chat["active_usernames"], json!(["readers"]));
    world.assert_no_violations();
}

#[tokio::test]
async fn an_older_clients_fourteen_permissions_lift_a_restriction_wholly() {
    let world = World::new().await;
    let user = world.user("Old");
    world.sandbox.join(world.group, user.id).unwrap();
    world.ok("restrictChatMember", muted(&world, user.id)).await;
    let nine_one: serde_json::Map<String, Value> = [
        "can_send_messages",
        "can_send_audios",
        "can_send_documents",
        "can_send_photos",
        "can_send_videos",
        "can_send_video_notes",
        "can_send_voice_notes",
        "can_send_polls",
        "can_send_other_messages",
        "can_add_web_page_previews",
        "can_change_info",
        "can_invite_users",
        "can_pin_messages",
        "can_manage_topics",
    ]
    .iter()
    .map(|name| (name.to_string(), json!(true)))
    .collect();
    world
        .ok(
            "restrictChatMember",
            json!({ "chat_id": world.group, "user_id": user.id, "permissions": nine_one }),
        )
        .await;
    assert_eq!(
        world.sandbox.member(world.group, user.id),
        Status::Member,
        "can_edit_tag follows can_pin_messages and can_react_to_messages follows can_send_messages"
    );
}

#[tokio::test]
async fn a_429_repeats_retry_after_as_a_header() {
    let world = World::new().await;
    world.sandbox.inject_fault(Fault {
        bot: Some(world.bot.id),
        method: Some("getMe".into()),
        kind: FaultKind::RetryAfter { seconds: 7 },
        times: Some(1),
    });
    let response = reqwest::Client::new()
        .post(format!(
            "{}/bot{}/getMe",
            world.running.url(),
            world.bot.token
        ))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["parameters"]["retry_after"], 7);
}

/// What a newcomer found wrong in a black-box session, each now as Telegram does it.
#[tokio::test]
async fn the_finer_rules_of_administrators_usernames_links_and_requests() {
    let world = World::new().await;
    let via = Via::Http;
    // Every administrator can manage the chat.
    let mod_ = world.member_of(via, world.group, "Mod").await;
    world
        .done(
            via,
            Operation::Promote {
                chat: world.group,
                user: mod_.id,
                rights: AdminRights {
                    can_restrict_members: true,
                    ..AdminRights::default()
                },
            },
        )
        .await;
    let member = world
        .ok(
            "getChatMember",
            json!({ "chat_id": world.group, "user_id": mod_.id }),
        )
        .await;
    assert_eq!(member["can_manage_chat"], true);
    // The creator's standing is not the creator's to lose.
    let demote = world
        .refused(
            via,
            Operation::Demote(ChatUser {
                chat: world.group,
                user: world.owner.id,
            }),
        )
        .await;
    assert!(demote.contains("creator"), "{demote}");
    // Strings in a JSON body are read as the parameter's type, as the server reads them.
    let read = world
        .ok(
            "getChatMember",
            json!({ "chat_id": world.group.to_string(), "user_id": mod_.id.to_string() }),
        )
        .await;
    assert_eq!(read["status"], "administrator");
    // Usernames are one namespace.
    let taken = world
        .refused(
            via,
            Operation::CreateChat(nezuko_sandbox::control::NewChat {
                kind: nezuko_sandbox::model::ChatKind::Supergroup,
                title: "Copy".into(),
                username: Some("readers".into()),
                is_forum: false,
            }),
        )
        .await;
    assert!(taken.contains("already taken"), "{taken}");
    let unnamed = world
        .done(
            via,
            Operation::CreateBot {
                first_name: "Anon".into(),
                username: None,
            },
        )
        .await;
    assert_ne!(unnamed["username"], "sandbox_bot");
    // A channel discusses in one group: relinking undoes the earlier link.
    let other = world
        .done(
            via,
            Operation::CreateChat(nezuko_sandbox::control::NewChat {
                kind: nezuko_sandbox::model::ChatKind::Supergroup,
                title: "Other".into(),
                username: None,
                is_forum: false,
            }),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    for group in [world.group, other] {
        world
            .done(
                via,
                Operation::LinkDiscussion {
                    channel: world.channel,
                    group,
                },
            )
            .await;
    }
    let first = world.ok("getChat", json!({ "chat_id": world.group })).await;
    assert!(first.get("linked_chat_id").is_none(), "{first}");
    // A member has nothing to request, and a request is made once.
    let asked = world
        .refused(
            via,
            Operation::RequestJoin(ChatUser {
                chat: world.group,
                user: mod_.id,
            }),
        )
        .await;
    assert!(asked.contains("nothing to request"), "{asked}");
    let newcomer = world.user("New");
    let request = Operation::RequestJoin(ChatUser {
        chat: world.group,
        user: newcomer.id,
    });
    world.done(via, request.clone()).await;
    assert!(
        world
            .refused(via, request)
            .await
            .contains("already pending")
    );
    world.want_all().await;
    world
        .ok(
            "approveChatJoinRequest",
            json!({ "chat_id": world.group, "user_id": newcomer.id }),
        )
        .await;
    let updates = world.ok("getUpdates", json!({})).await;
    let joined = updates
        .as_array()
        .unwrap()
        .iter()
        .find_map(|u| {
            u["message"]["new_chat_members"]
                .as_array()
                .map(|_| &u["message"])
        })
        .unwrap();
    assert_eq!(
        joined["from"]["id"], newcomer.id,
        "the join is the member's own"
    );
    let change = updates
        .as_array()
        .unwrap()
        .iter()
        .find_map(|u| u.get("chat_member"))
        .unwrap();
    assert_eq!(change["via_join_request"], true);
    // Buttons must do something; private chats have no administrators.
    let text_only = json!({ "inline_keyboard": [[{ "text": "nothing" }]] });
    let refused = world
        .fails(
            "sendMessage",
            json!({ "chat_id": world.group, "text": "x", "reply_markup": text_only }),
            400,
        )
        .await;
    assert!(refused.contains("Text buttons are unallowed"), "{refused}");
    world
        .done(
            via,
            Operation::SendPrivate {
                bot: world.bot.id,
                user: newcomer.id,
                text: "/start".into(),
            },
        )
        .await;
    let private = world
        .fails(
            "getChatAdministrators",
            json!({ "chat_id": newcomer.id }),
            400,
        )
        .await;
    assert!(private.contains("no administrators in the private chat"));
    world.assert_no_violations();
}
