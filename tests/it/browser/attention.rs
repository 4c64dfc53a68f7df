//! Why did my bot restart, seen in the browser: the overview's "needs attention" panel following a
//! revoked token live, the bot page's restart history, last error and ticking uptime, the logs
//! page filtered to the bot, and the settings page's alerts (a refused value at its field, a test
//! message that arrives in the sandbox chat).

use serde_json::json;

use super::{accessible, protected_group, signed_in};
use crate::api::ApiWorld;
use crate::support::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sees_what_needs_attention_why_a_bot_restarted_and_sets_up_alerts() {
    let world = ApiWorld::start(TestDb::sqlite().await).await;
    let guarded = protected_group(&world, "watch_bot", "Watchers", "watch_news").await;
    let id = guarded.bot_id;
    let chromium = signed_in(&world).await;
    chromium
        .wait_for(
            "a calm attention panel",
            "document.querySelector('[data-attention=\"none\"]')",
        )
        .await;

    // Telegram refuses the token: the overview says so without a reload, linking to the bot.
    world.sandbox.revoke_token(guarded.bot_telegram_id).unwrap();
    let key = format!("invalid_token:{id}");
    chromium
        .wait_for(
            "the revoked bot needs attention",
            &format!(
                "document.querySelector('[data-attention-key=\"{key}\"] a[href=\"/bots/{id}\"]')"
            ),
        )
        .await;
    assert!(
        chromium
            .text(&format!(
                "document.querySelector('[data-attention-key=\"{key}\"]').innerText"
            ))
            .await
            .contains("invalid token")
    );
    chromium.screenshot("overview-attention").await;
    accessible(&chromium, "overview with attention").await;

    // The bot's page tells why: the history's newest step and the last error.
    chromium
        .click(&format!("[data-attention-key=\"{key}\"] a"))
        .await;
    chromium
        .wait_for(
            "the restart history",
            "document.querySelector('section[aria-label=\"Restart history\"] tr[data-history=\"stopped\"] [data-state=\"invalid token\"]')",
        )
        .await;
    assert!(
        chromium
            .text("document.querySelector('section[aria-label=\"Restart history\"] p').innerText")
            .await
            .starts_with("1 failure among"),
        "the revocation counts as a failure"
    );
    assert!(
        chromium
            .text("document.querySelector('[data-last-error]').innerText")
            .await
            .contains("invalid token")
    );

    // Restored and started again: the panel calms down, the uptime ticks.
    world
        .sandbox
        .restore_token(guarded.bot_telegram_id)
        .unwrap();
    chromium.press("section.panel", "Start").await;
    chromium.confirm().await;
    chromium
        .wait_for(
            "running again",
            "document.querySelector('.facts [data-state=\"running\"]') && document.querySelector('[data-uptime]')",
        )
        .await;
    let first = chromium
        .text("document.querySelector('[data-uptime]').innerText")
        .await;
    chromium
        .wait_for(
            "the uptime to tick",
            &format!("document.querySelector('[data-uptime]').innerText !== {first:?}"),
        )
        .await;
    chromium.screenshot("bot-history").await;
    accessible(&chromium, "bot with history").await;

    // The logs page, filtered to this bot: its own records only.
    let now = nezuko::db::now_ms();
    let records: Vec<nezuko::db::NewLog> = (0..5)
        .map(|n| nezuko::db::NewLog {
            level: "info".into(),
            target: "nezuko::actors".into(),
            message: format!(
                "record {n} of {}",
                if n < 3 { "this bot" } else { "the service" }
            ),
            fields: json!({}),
            bot_instance_id: (n < 3).then_some(id),
            created_at: now - 1_000 + n,
        })
        .collect();
    world.db.store.insert_logs(&records).await.unwrap();
    chromium.click("nav a[href='/logs']").await;
    chromium
        .wait_for("the bot filter", "document.querySelector('#log-bot')")
        .await;
    chromium.choose("#log-bot", &id.to_string()).await;
    chromium
        .wait_for(
            "the bot's records only",
            "!document.querySelector('tbody[data-loading]') && document.querySelectorAll('.log-line').length === 3 && [...document.querySelectorAll('.log-line')].every(r => r.innerText.includes('this bot'))",
        )
        .await;

    // Alerts: a refused chat id is explained at its field; a good one gets the test message.
    chromium.click("nav a[href='/settings']").await;
    chromium
        .wait_for(
            "the alerts form",
            "document.querySelector('form[aria-label=\"Alerts in Telegram\"]')",
        )
        .await;
    chromium.fill("#alerts-chat", "0").await;
    chromium.submit("Alerts in Telegram").await;
    chromium
        .wait_for(
            "the refusal at the chat field",
            "document.querySelector('#alerts-chat-error').innerText.includes('not a Telegram chat id') && document.querySelector('#alerts-chat').getAttribute('aria-invalid') === 'true'",
        )
        .await;
    let refused = chromium.take_failed_requests().await;
    assert!(
        refused.len() == 1 && refused[0].starts_with("422 "),
        "{refused:?}"
    );
    accessible(&chromium, "settings with a refused value").await;
    let chat = world.operators_chat(true);
    chromium.fill("#alerts-chat", &chat.to_string()).await;
    chromium.submit("Alerts in Telegram").await;
    chromium.toast_says("Alert settings saved").await;
    chromium
        .press("form[aria-label=\"Alerts in Telegram\"]", "Send a test")
        .await;
    chromium.toast_says("Test message sent").await;
    let texts: Vec<String> = world
        .sandbox
        .transcript(chat)
        .into_iter()
        .filter_map(|m| m.text)
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("alerts reach this chat")),
        "{texts:?}"
    );
    let stored = world.get("/api/v1/settings/alerts").await;
    assert_eq!(
        stored.ok(),
        &json!({ "chat_id": chat, "sender": "login", "source": "dashboard", "undelivered": null })
    );
    chromium.finish().await;
    world.finish().await;
}
