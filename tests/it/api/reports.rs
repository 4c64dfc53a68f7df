//! Stats, charts, logs, metrics and the audit export, computed from rows the test wrote, so every
//! number can be checked exactly on both backends.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::types::Json;

use nezuko::db::{ApiCall, NewLog, Verification, now_ms};

use super::{ApiWorld, api_tests};

api_tests!(
    stats_and_every_chart_come_from_the_stored_rows,
    logs_are_queried_by_level_target_text_and_time,
    metrics_and_the_audit_export,
);

const HOUR: i64 = 3_600_000;

/// Verifications at known times: 6 in the hour two hours ago (4 passed, 2 restricted; latencies
/// 10..60 ms; 3 cached), 4 in the last hour (all passed, 100 ms, all cached).
async fn seed(world: &ApiWorld) -> i64 {
    let now = now_ms();
    let two_hours_ago = (now / HOUR - 2) * HOUR + 60_000;
    let last_hour = (now / HOUR) * HOUR + 1;
    let mut rows = Vec::new();
    for i in 0..6 {
        rows.push(Verification {
            bot_instance_id: 1,
            group_id: 7,
            chat_id: -7,
            user_id: 100 + i,
            channel_ids: Json(vec![-100]),
            outcome: if i < 4 { "passed" } else { "restricted" }.into(),
            cached: i % 2 == 0,
            latency_ms: 10 * (i + 1),
            created_at: two_hours_ago + i,
        });
    }
    for i in 0..4 {
        rows.push(Verification {
            bot_instance_id: 1,
            group_id: 8,
            chat_id: -8,
            user_id: 200 + i,
            channel_ids: Json(vec![-100]),
            outcome: "passed".into(),
            cached: true,
            latency_ms: 100,
            created_at: last_hour.min(now - 1),
        });
    }
    world.db.store.insert_verifications(&rows).await.unwrap();
    let calls: Vec<ApiCall> = (0..5)
        .map(|i| ApiCall {
            bot_instance_id: 1,
            method: if i < 3 {
                "getChatMember"
            } else {
                "restrictChatMember"
            }
            .into(),
            outcome: if i == 4 { "api_error" } else { "ok" }.into(),
            error_code: (i == 4).then_some(400),
            latency_ms: 5,
            created_at: now - 1000,
        })
        .collect();
    world.db.store.insert_api_calls(&calls).await.unwrap();
    two_hours_ago
}

fn count_of(items: &Value, key: &str) -> i64 {
    items
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == key)
        .map(|i| i["count"].as_i64().unwrap())
        .unwrap_or(0)
}

async fn stats_and_every_chart_come_from_the_stored_rows(world: &mut ApiWorld) {
    let early = seed(world).await;
    let stats = world.get("/api/v1/stats").await;
    let body = stats.ok();
    assert_eq!(body["verifications"]["week"], 10);
    assert_eq!(body["success_rate_7d"], 0.8);
    assert_eq!(body["cache_hit_rate_7d"], 0.7);
    assert_eq!(body["database"], world.db.store.backend().as_str());
    assert!(body["uptime_s"].is_number());
    let services = body["services"].as_array().expect("the tree's services");
    assert!(
        services
            .iter()
            .any(|s| s["service"] == "broadcaster" && s["running"] == true),
        "{services:?}"
    );

    let chart = |name: &str| format!("/api/v1/charts/{name}?period=24h");
    let outcomes = world.get(&chart("verification_outcomes")).await;
    assert_eq!(count_of(&outcomes.ok()["data"], "passed"), 8);
    assert_eq!(count_of(&outcomes.body["data"], "restricted"), 2);
    let cache = world.get(&chart("cache_vs_api")).await;
    assert_eq!(count_of(&cache.ok()["data"]["decisions"], "cache"), 7);
    assert_eq!(cache.body["data"]["get_chat_member_calls"], 3);
    let calls = world.get(&chart("telegram_calls")).await;
    assert_eq!(
        count_of(&calls.ok()["data"]["by_method"], "getChatMember"),
        3
    );
    assert_eq!(count_of(&calls.body["data"]["by_outcome"], "api_error"), 1);
    let hourly = world.get(&chart("hourly_activity")).await;
    let early_hour = ((early / HOUR) % 24) as usize;
    assert_eq!(hourly.ok()["data"][early_hour]["count"], 6);
    assert_eq!(hourly.body["data"].as_array().unwrap().len(), 24);
    let latency = world.get(&chart("latency_distribution")).await;
    let data = &latency.ok()["data"];
    assert_eq!(count_of(data, "10-50"), 4, "10, 20, 30, 40 ms");
    assert_eq!(count_of(data, "50-100"), 2, "50, 60 ms");
    assert_eq!(count_of(data, "100-250"), 4);
    let top = world.get(&chart("top_groups")).await;
    assert_eq!(top.ok()["data"][0]["group_id"], 7);
    assert_eq!(top.body["data"][0]["count"], 6);
    let trend = world.get(&chart("cache_hit_trend")).await;
    let first = &trend.ok()["data"][0];
    assert_eq!(first["bucket"], (early / HOUR) * HOUR);
    assert_eq!(first["cached"], 3);
    assert_eq!(first["hit_rate"], 0.5);
    let percentiles = world.get(&chart("latency_trend")).await;
    let first = &percentiles.ok()["data"][0];
    assert_eq!(
        (
            first["p50"].as_i64(),
            first["p95"].as_i64(),
            first["p99"].as_i64()
        ),
        (Some(30), Some(60), Some(60))
    );
    let trends = world.get(&chart("verification_trends")).await;
    assert_eq!(
        trends.ok()["data"].as_array().unwrap().len(),
        3,
        "two outcomes early, one late"
    );
    let overview = world.get(&chart("overview")).await;
    let data = &overview.ok()["data"];
    assert_eq!(data["verifications"], 10);
    assert_eq!(data["peak_hour_utc"], early_hour as i64);
    assert_eq!(data["peak_hour_count"], 6);
    assert_eq!(
        data["average_response_ms"], 61.0,
        "(10+20+…+60 + 4×100) / 10"
    );
    assert_eq!(data["p95_response_ms"], 100);
    for name in ["groups_by_status", "bot_health", "user_growth"] {
        world.get(&chart(name)).await.ok();
    }
    for period in ["7d", "30d"] {
        let overview = world
            .get(&format!("/api/v1/charts/overview?period={period}"))
            .await;
        assert_eq!(overview.ok()["data"]["verifications"], 10);
    }
    assert_eq!(
        world.get("/api/v1/charts").await.ok()["items"]
            .as_array()
            .unwrap()
            .len(),
        13
    );
}

async fn logs_are_queried_by_level_target_text_and_time(world: &mut ApiWorld) {
    let now = now_ms();
    let log = |level: &str, target: &str, message: &str, at: i64| NewLog {
        level: level.into(),
        target: target.into(),
        message: message.into(),
        fields: json!({}),
        bot_instance_id: None,
        created_at: at,
    };
    world
        .db
        .store
        .insert_logs(&[
            log("info", "nezuko::actors::bot", "bot 3 started", now - 5000),
            log(
                "warn",
                "nezuko::enforce::calls",
                "Telegram said 429 (100%)",
                now - 4000,
            ),
            log("error", "nezuko::db", "connection lost", now - 3000),
            log("debug", "teloxide::dispatching", "poll", now - 2000),
        ])
        .await
        .unwrap();
    let messages = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["message"].as_str().unwrap().to_string())
            .collect()
    };
    let warn_up = world.get("/api/v1/logs?min_level=warn").await;
    assert_eq!(
        messages(warn_up.ok()),
        ["connection lost", "Telegram said 429 (100%)"]
    );
    let by_target = world.get("/api/v1/logs?target=nezuko::actors").await;
    assert_eq!(messages(by_target.ok()), ["bot 3 started"]);
    let by_text = world.get("/api/v1/logs?text=100%25").await;
    assert_eq!(messages(by_text.ok()), ["Telegram said 429 (100%)"]);
    let by_time = world
        .get(&format!(
            "/api/v1/logs?from={}&to={}",
            now - 4500,
            now - 2500
        ))
        .await;
    assert_eq!(by_time.ok()["items"].as_array().unwrap().len(), 2);
    let page = world.get("/api/v1/logs?limit=2").await;
    let cursor = page.ok()["next_cursor"].as_i64().unwrap();
    let rest = world
        .get(&format!("/api/v1/logs?limit=2&before={cursor}"))
        .await;
    assert_eq!(
        messages(rest.ok()),
        ["Telegram said 429 (100%)", "bot 3 started"]
    );
    assert_eq!(rest.body["next_cursor"], cursor - 2);
}

async fn metrics_and_the_audit_export(world: &mut ApiWorld) {
    let metrics = world.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = world
        .client
        .get(format!("{}/metrics", world.base))
        .header("cookie", format!("nezuko_session={}", world.session.cookie))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("nezuko_bots{state=\"running\"} 0"), "{text}");
    assert!(text.contains("# TYPE nezuko_http_request_duration_seconds histogram"));
    assert!(
        text.contains("route=\"/api/v1/auth/link\""),
        "sign-in was measured"
    );
    assert!(text.contains("nezuko_updates_handled_total"));

    world
        .post(
            "/api/v1/channels",
            json!({ "chat_id": -42, "title": "=cmd, \"quoted\"", "username": "quoted_ch" }),
        )
        .await
        .ok();
    let csv = world
        .client
        .get(format!(
            "{}/api/v1/audit.csv?action=channel.add",
            world.base
        ))
        .header("cookie", format!("nezuko_session={}", world.session.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("id,created_at,actor_id"));
    assert!(lines[1].contains(",channel.add,channel,"), "{text}");
    assert!(
        lines[1].contains("\"\"title\"\":"),
        "quotes inside a field are doubled: {text}"
    );

    // What the command line did is found by its actor, `cli`; a name that is neither is refused.
    world
        .db
        .store
        .append_audit(&nezuko::db::NewAuditEntry {
            actor_id: None,
            actor_name: "cli".into(),
            action: "bot.restart".into(),
            target_type: "bot".into(),
            target_id: Some("7".into()),
            before: None,
            after: None,
            ip: None,
        })
        .await
        .unwrap();
    let by_cli = world.get("/api/v1/audit?actor=cli").await;
    let actions: Vec<&str> = by_cli.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["bot.restart"]);
    let owner = world
        .get(&format!("/api/v1/audit?actor={}", super::OWNER))
        .await;
    assert!(
        owner.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor_name"] != "cli")
    );
    let nobody = world.get("/api/v1/audit?actor=bob").await;
    nobody.problem(422, "invalid_field");
    assert_eq!(nobody.body["field"], "actor");
    let _ = Method::GET;
}
