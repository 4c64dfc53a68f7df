//! Groups, channels and settings through the API, each change audited and applied to the store.

use reqwest::Method;
use serde_json::{Value, json};

use nezuko::db::{NewBot, NewGroup};
use nezuko::domain::DesiredState;

use super::{ApiWorld, api_tests};

api_tests!(
    groups_are_searched_filtered_sorted_and_paged,
    a_group_policy_channels_and_switch_are_edited,
    channels_are_added_updated_and_removed,
    global_settings_are_validated_and_stored,
    the_vocabulary_names_what_the_server_uses_and_every_policy_field_is_settable,
    a_policy_layer_valid_alone_but_invalid_over_the_other_is_refused,
);

/// A stored (disabled) bot with `n` groups titled "Group 00" …; returns the bot id.
async fn seed(world: &ApiWorld, n: i64) -> i64 {
    let bot = world
        .db
        .store
        .insert_bot(&NewBot {
            telegram_bot_id: 424_242,
            username: "seed_bot".into(),
            display_name: "Seed".into(),
            token_ciphertext: "x".into(),
            owner_telegram_id: None,
            desired_state: DesiredState::Disabled,
        })
        .await
        .unwrap();
    for i in 0..n {
        world
            .db
            .store
            .upsert_group(&NewGroup {
                bot_instance_id: bot.id,
                chat_id: -1_000 - i,
                title: format!("Group {i:02}"),
                username: (i % 2 == 0).then(|| format!("grp{i}")),
            })
            .await
            .unwrap();
    }
    bot.id
}

fn titles(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["title"].as_str().unwrap().to_string())
        .collect()
}

async fn groups_are_searched_filtered_sorted_and_paged(world: &mut ApiWorld) {
    let bot = seed(world, 12).await;
    let page = world.get("/api/v1/groups?limit=5&offset=5").await;
    assert_eq!(
        page.ok()["page"],
        json!({ "offset": 5, "limit": 5, "total": 12 })
    );
    assert_eq!(
        titles(&page.body),
        ["Group 05", "Group 06", "Group 07", "Group 08", "Group 09"]
    );
    let desc = world.get("/api/v1/groups?sort=-title&limit=2").await;
    assert_eq!(titles(desc.ok()), ["Group 11", "Group 10"]);
    let search = world.get("/api/v1/groups?search=grp1").await;
    assert_eq!(titles(search.ok()), ["Group 10"]);
    let search = world.get("/api/v1/groups?search=oup%200").await;
    assert_eq!(search.ok()["page"]["total"], 10);
    let groups = world
        .get(&format!(
            "/api/v1/groups?bot={bot}&health=unknown&enabled=true"
        ))
        .await;
    assert_eq!(groups.ok()["page"]["total"], 12);
    world
        .get(&format!("/api/v1/groups?bot={}", bot + 1))
        .await
        .ok();
    world
        .get("/api/v1/groups?health=sick")
        .await
        .problem(422, "invalid_field");
    world
        .get("/api/v1/groups?sort=secret")
        .await
        .problem(422, "invalid_field");
    world
        .get("/api/v1/groups?limit=0")
        .await
        .problem(422, "invalid_field");
    world
        .get("/api/v1/groups?limit=201")
        .await
        .problem(422, "invalid_field");
    world
        .get("/api/v1/groups?offset=-1")
        .await
        .problem(422, "invalid_field");
    world
        .get("/api/v1/groups?enabled=maybe")
        .await
        .problem(400, "invalid_query");
    world
        .get("/api/v1/groups?colour=red")
        .await
        .problem(400, "invalid_query");
    // A search with LIKE wildcards matches them literally.
    assert_eq!(
        world.get("/api/v1/groups?search=%25").await.body["page"]["total"],
        0
    );
    // A reply about one bot counts its groups as the list does (it said 0).
    let started = world
        .post(&format!("/api/v1/bots/{bot}/start"), json!({}))
        .await;
    assert_eq!(started.status, 202, "{:?}", started.body);
    assert_eq!(started.body["bot"]["group_count"], 12);
}

async fn a_group_policy_channels_and_switch_are_edited(world: &mut ApiWorld) {
    seed(world, 1).await;
    let group = world.get("/api/v1/groups").await.body["items"][0].clone();
    let id = group["id"].as_i64().unwrap();
    let channel = world
        .post(
            "/api/v1/channels",
            json!({ "chat_id": -100_777, "title": "News", "username": "@news_ch" }),
        )
        .await;
    let channel_id = channel.ok()["id"].as_i64().unwrap();

    let policy = world
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{id}/policy"),
            Some(json!({ "action": "kick", "grace_s": 60 })),
        )
        .await;
    policy.ok();
    let bad = world
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{id}/policy"),
            Some(json!({ "mute_for_s": 10 })),
        )
        .await;
    bad.problem(422, "invalid_field");
    assert!(bad.body["detail"].as_str().unwrap().contains("mute_for_s"));
    // The refusal names the key at fault, so the editor shows it at that field.
    assert_eq!(bad.body["field"], "mute_for_s");
    let typo = world
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{id}/policy"),
            Some(json!({ "action": "ban", "actoin": "ban" })),
        )
        .await;
    typo.problem(422, "invalid_field");
    assert_eq!(typo.body["field"], "actoin");
    world
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{id}/policy"),
            Some(json!([1])),
        )
        .await
        .problem(400, "invalid_body");

    let linked = world
        .post(
            &format!("/api/v1/groups/{id}/channels"),
            json!({ "channel_id": channel_id }),
        )
        .await;
    assert_eq!(linked.ok()["channels"][0]["username"], "news_ch");
    world
        .post(
            &format!("/api/v1/groups/{id}/channels"),
            json!({ "channel_id": 999_999 }),
        )
        .await
        .problem(404, "not_found");
    world
        .post(&format!("/api/v1/groups/{id}/disable"), json!({}))
        .await
        .ok();

    let detail = world.get(&format!("/api/v1/groups/{id}")).await;
    let body = detail.ok();
    assert_eq!(body["enabled"], false);
    assert_eq!(
        body["policy"]["overrides"],
        json!({ "action": "kick", "grace_s": 60 })
    );
    assert_eq!(body["policy"]["effective"]["action"], "kick");
    assert_eq!(
        body["policy"]["effective"]["require"], "all",
        "defaults fill the rest"
    );
    assert_eq!(body["channels"][0]["id"], channel_id);
    assert_eq!(body["stats"]["verifications_24h"]["total"], 0);
    assert_eq!(world.db.store.channels_of_group(id).await.unwrap().len(), 1);

    let unlinked = world
        .call(
            Method::DELETE,
            &format!("/api/v1/groups/{id}/channels/{channel_id}"),
            None,
        )
        .await;
    assert_eq!(unlinked.status, 200, "{:?}", unlinked.body);
    assert_eq!(unlinked.body["channels"], json!([]));
    assert!(unlinked.body["health"].is_string(), "{:?}", unlinked.body);
    world
        .call(
            Method::DELETE,
            &format!("/api/v1/groups/{id}/channels/{channel_id}"),
            None,
        )
        .await
        .problem(404, "not_found");
    assert!(
        world
            .db
            .store
            .channels_of_group(id)
            .await
            .unwrap()
            .is_empty()
    );
    world
        .get("/api/v1/groups/424242")
        .await
        .problem(404, "not_found");

    let actions = world.audit_actions("group").await;
    let audit = world.get("/api/v1/audit?target_type=group").await;
    assert_eq!(
        actions,
        [
            "group.unlink_channel",
            "group.disable",
            "group.link_channel",
            "group.policy"
        ]
    );
    let policy_entry = &audit.body["items"][3];
    assert_eq!(policy_entry["before"], json!({}));
    assert_eq!(policy_entry["after"]["action"], "kick");
}

async fn channels_are_added_updated_and_removed(world: &mut ApiWorld) {
    let private = world
        .post(
            "/api/v1/channels",
            json!({ "chat_id": -1_001, "title": "Secret" }),
        )
        .await;
    private.problem(422, "invalid_field");
    assert_eq!(private.body["field"], "invite_link");
    let added = world
        .post(
            "/api/v1/channels",
            json!({ "chat_id": -1_001, "title": " Secret ", "invite_link": "https://t.me/+abc" }),
        )
        .await;
    assert_eq!(added.status, 201);
    assert_eq!(added.body["title"], "Secret");
    assert_eq!(added.body["is_private"], true);
    let id = added.body["id"].as_i64().unwrap();
    world
        .post(
            "/api/v1/channels",
            json!({ "chat_id": -1_001, "title": "Again", "invite_link": "https://t.me/+abc" }),
        )
        .await
        .problem(409, "conflict");
    world
        .post("/api/v1/channels", json!({ "chat_id": 5, "title": "User" }))
        .await
        .problem(422, "invalid_field");
    world
        .post(
            "/api/v1/channels",
            json!({ "chat_id": -5, "title": "x", "username": "a b" }),
        )
        .await
        .problem(422, "invalid_field");
    world
        .post(
            "/api/v1/channels",
            json!({ "chat_id": -5, "title": "x", "invite_link": "javascript:alert(1)" }),
        )
        .await
        .problem(422, "invalid_field");

    let patched = world
        .call(
            Method::PATCH,
            &format!("/api/v1/channels/{id}"),
            Some(json!({ "title": "Renamed", "username": "renamed_ch", "is_private": false })),
        )
        .await;
    assert_eq!(patched.ok()["title"], "Renamed");
    assert_eq!(
        patched.body["invite_link"], "https://t.me/+abc",
        "absent fields are kept"
    );
    let cleared = world
        .call(
            Method::PATCH,
            &format!("/api/v1/channels/{id}"),
            Some(json!({ "invite_link": null })),
        )
        .await;
    assert_eq!(cleared.ok()["invite_link"], Value::Null);
    world
        .call(
            Method::PATCH,
            &format!("/api/v1/channels/{id}"),
            Some(json!({ "is_private": true })),
        )
        .await
        .problem(422, "invalid_field");
    world
        .call(
            Method::PATCH,
            &format!("/api/v1/channels/{id}"),
            Some(json!({ "chat_id": -9 })),
        )
        .await
        .problem(422, "invalid_field");

    let list = world.get("/api/v1/channels").await;
    assert_eq!(list.ok()["items"][0]["group_count"], 0);
    let detail = world.get(&format!("/api/v1/channels/{id}")).await;
    assert_eq!(detail.ok()["groups"], json!([]));
    assert_eq!(
        world
            .call(Method::DELETE, &format!("/api/v1/channels/{id}"), None)
            .await
            .ok()["deleted"],
        id
    );
    world
        .get(&format!("/api/v1/channels/{id}"))
        .await
        .problem(404, "not_found");
    let audit = world.get("/api/v1/audit?target_type=channel").await;
    assert_eq!(
        audit.ok()["items"].as_array().unwrap().len(),
        4,
        "add, two updates, delete"
    );
}

async fn global_settings_are_validated_and_stored(world: &mut ApiWorld) {
    let settings = world.get("/api/v1/settings").await;
    assert_eq!(settings.ok()["policy"]["defaults"], json!({}));
    assert!(
        settings.body["text_names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "warning_join")
    );
    assert!(
        settings.body["texts"]["es"]["defaults"]["warning_join"]
            .as_str()
            .unwrap()
            .contains("únete a {channels}")
    );

    world
        .call(
            Method::PUT,
            "/api/v1/settings/policy",
            Some(json!({ "language": "es", "welcome": true })),
        )
        .await
        .ok();
    world
        .call(
            Method::PUT,
            "/api/v1/settings/policy",
            Some(json!({ "language": "fr" })),
        )
        .await
        .problem(422, "invalid_field");
    let texts = world
        .call(
            Method::PUT,
            "/api/v1/settings/texts/en",
            Some(json!({ "welcome": "Hi {users}!" })),
        )
        .await;
    texts.ok();
    world
        .call(
            Method::PUT,
            "/api/v1/settings/texts/en",
            Some(json!({ "greeting": "Hi" })),
        )
        .await
        .problem(422, "invalid_field");
    world
        .call(
            Method::PUT,
            "/api/v1/settings/texts/en",
            Some(json!({ "welcome": "" })),
        )
        .await
        .problem(422, "invalid_field");
    world
        .call(
            Method::PUT,
            "/api/v1/settings/texts/xx",
            Some(json!({ "welcome": "Hi" })),
        )
        .await
        .problem(404, "not_found");

    let stored = world
        .db
        .store
        .setting("policy.defaults")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, json!({ "language": "es", "welcome": true }));
    let after = world.get("/api/v1/settings").await;
    assert_eq!(after.ok()["policy"]["effective"]["language"], "es");
    assert_eq!(
        after.body["texts"]["en"]["overrides"]["welcome"],
        "Hi {users}!"
    );
    let audit = world.get("/api/v1/audit?target_type=settings").await;
    assert_eq!(audit.ok()["items"].as_array().unwrap().len(), 2);
}

/// The lists the dashboard decides with come from the server's own enums, and the policy editor's
/// fields are exactly what the settings route takes: each field's first choice (or a number, a
/// flag, a list) is accepted.
async fn the_vocabulary_names_what_the_server_uses_and_every_policy_field_is_settable(
    world: &mut ApiWorld,
) {
    let words = world.get("/api/v1/vocabulary").await;
    let words = words.ok().clone();
    let kinds: Vec<&str> = words["event_kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    for kind in nezuko::domain::EventKind::ALL {
        assert!(kinds.contains(&kind.as_str()), "{kind}");
    }
    assert!(
        words["reason_codes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["code"] == "invalid_token" && r["parks"] == true),
        "{words}"
    );
    // The dashboard's router, period buckets and audit filter come from here too.
    assert!(
        words["pages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["path"] == "/bots/:id" && p["module"] == "bot" && p["section"] == "/bots"),
        "{words}"
    );
    assert_eq!(
        words["periods"][0],
        json!({ "period": "24h", "bucket_ms": 3_600_000, "buckets": 24 })
    );
    assert_eq!(
        words["audit_targets"].as_array().unwrap().len(),
        nezuko::domain::AuditTarget::ALL.len()
    );
    world
        .get("/api/v1/audit?target_type=bogus")
        .await
        .problem(422, "invalid_field");
    let mut layer = serde_json::Map::new();
    for field in words["policy_fields"].as_array().unwrap() {
        let key = field["key"].as_str().unwrap().to_string();
        let value = match field["kind"].as_str().unwrap() {
            "choice" => field["choices"][0].clone(),
            "number" => json!(60),
            "bool" => json!(true),
            "list" => json!([42]),
            other => panic!("unknown kind {other}"),
        };
        layer.insert(key, value);
    }
    assert!(layer.contains_key("channel_senders"), "{layer:?}");
    world
        .call(
            Method::PUT,
            "/api/v1/settings/policy",
            Some(Value::Object(layer)),
        )
        .await
        .ok();
}

/// The defaults and a group's overrides are each checked with the other: `escalate_to: warn` is
/// harmless alone, but with `escalate_after` set anywhere it makes no policy, and neither layer may
/// be stored so that a group ends up with none (enforcement would silently stop there).
async fn a_policy_layer_valid_alone_but_invalid_over_the_other_is_refused(world: &mut ApiWorld) {
    seed(world, 1).await;
    let groups = world.get("/api/v1/groups").await;
    let group = groups.ok()["items"][0]["id"].as_i64().unwrap();
    world
        .call(
            Method::PUT,
            "/api/v1/settings/policy",
            Some(json!({ "escalate_to": "warn" })),
        )
        .await
        .ok();
    let refused = world
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{group}/policy"),
            Some(json!({ "escalate_after": 2 })),
        )
        .await;
    refused.problem(422, "invalid_field");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("over the global defaults"),
        "{}",
        refused.body
    );
    assert_eq!(refused.body["field"], "escalate_after");
    world
        .call(Method::PUT, "/api/v1/settings/policy", Some(json!({})))
        .await
        .ok();
    world
        .call(
            Method::PUT,
            &format!("/api/v1/groups/{group}/policy"),
            Some(json!({ "escalate_after": 2 })),
        )
        .await
        .ok();
    let refused = world
        .call(
            Method::PUT,
            "/api/v1/settings/policy",
            Some(json!({ "escalate_to": "warn" })),
        )
        .await;
    refused.problem(422, "invalid_field");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("group {group}")),
        "{}",
        refused.body
    );
    let shown = world.get(&format!("/api/v1/groups/{group}")).await;
    assert!(
        shown.ok()["policy"]["effective"].is_object(),
        "the group kept a valid policy: {}",
        shown.body
    );
}
