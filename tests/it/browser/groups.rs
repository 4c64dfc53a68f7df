//! Groups, channels, settings, logs, analytics and audit pages in the browser: search and open a
//! group, change its policy, unlink its channel and disable it; add a channel; change the global
//! defaults; filter the logs; switch the analytics period. Each change is checked through the API
//! and read back from the audit page.

use nezuko::db::NewLog;

use super::{assert_audited, protected_group, signed_in};
use crate::api::ApiWorld;
use crate::support::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_groups_channels_and_settings_and_reads_logs_and_audit() {
    let world = ApiWorld::start(TestDb::sqlite().await).await;
    let guarded = protected_group(&world, "shelf_bot", "Book Club", "bookshelf").await;
    let other = protected_group(&world, "garden_bot", "Gardeners", "seeds").await;
    let chromium = signed_in(&world).await;

    // Search the groups, open one.
    chromium.click("nav a[href='/groups']").await;
    chromium
        .wait_for(
            "groups",
            "document.querySelectorAll('tr[data-group]').length === 2",
        )
        .await;
    chromium.fill("#group-search", "book").await;
    chromium.submit("Filter groups").await;
    chromium
        .wait_for(
            "searched",
            &format!(
                "location.search.includes('search=book') && document.querySelectorAll('tr[data-group]').length === 1 && document.querySelector('tr[data-group=\"{}\"]')",
                guarded.group_id
            ),
        )
        .await;
    chromium.screenshot("groups").await;
    chromium
        .click(&format!("tr[data-group='{}'] a", guarded.group_id))
        .await;
    chromium
        .wait_for(
            "group page",
            &format!("document.querySelector('form[aria-label=\"Policy\"]') && document.querySelector('tr[data-channel=\"{}\"]')", guarded.channel_id),
        )
        .await;
    assert_eq!(
        chromium
            .text("document.querySelector('[data-health]').dataset.health")
            .await,
        "ok"
    );
    chromium.screenshot("group").await;

    // Change the policy: ban after a 120 s grace.
    chromium.choose("#policy-action", "ban").await;
    chromium.fill("#policy-grace_s", "120").await;
    chromium.submit("Policy").await;
    chromium.toast_says("Policy saved").await;
    let group = world
        .get(&format!("/api/v1/groups/{}", guarded.group_id))
        .await;
    assert_eq!(
        group.ok()["policy"]["overrides"],
        serde_json::json!({ "action": "ban", "grace_s": 120 })
    );
    assert_eq!(group.body["policy"]["effective"]["action"], "ban");
    chromium
        .wait_for(
            "form shows the override",
            "document.querySelector('#policy-action').value === 'ban'",
        )
        .await;

    // A value the enforcer refuses is explained in the form.
    chromium.fill("#policy-mute_for_s", "10").await;
    chromium.submit("Policy").await;
    chromium
        .wait_for(
            "policy refused",
            "document.querySelector('form[aria-label=\"Policy\"] .error').innerText.includes('mute_for_s')",
        )
        .await;
    assert_eq!(
        chromium.take_failed_requests().await.len(),
        1,
        "the refused policy is the only failure"
    );

    // Unlink the channel, then disable enforcement, each confirmed.
    chromium
        .click(&format!("tr[data-channel='{}'] button", guarded.channel_id))
        .await;
    chromium.confirm().await;
    chromium
        .wait_for("unlinked", "!document.querySelector('tr[data-channel]')")
        .await;
    let group = world
        .get(&format!("/api/v1/groups/{}", guarded.group_id))
        .await;
    assert_eq!(group.ok()["channels"], serde_json::json!([]));
    chromium.press("main", "Disable enforcement").await;
    chromium.confirm().await;
    chromium
        .wait_for(
            "disabled",
            "document.querySelector('[data-enabled=\"false\"]')",
        )
        .await;
    let group = world
        .get(&format!("/api/v1/groups/{}", guarded.group_id))
        .await;
    assert_eq!(group.ok()["enabled"], false);
    // Link it again from the list of known channels.
    chromium
        .choose("#link-channel", &guarded.channel_id.to_string())
        .await;
    chromium.submit("Link a channel").await;
    chromium
        .wait_for(
            "relinked",
            &format!(
                "document.querySelector('tr[data-channel=\"{}\"]')",
                guarded.channel_id
            ),
        )
        .await;
    // And enforce there again.
    chromium.press("main", "Enable enforcement").await;
    chromium.confirm().await;
    chromium
        .wait_for(
            "enabled",
            "document.querySelector('[data-enabled=\"true\"]')",
        )
        .await;
    let group = world
        .get(&format!("/api/v1/groups/{}", guarded.group_id))
        .await;
    assert_eq!(group.ok()["enabled"], true);

    // Channels: the list, one channel's groups, and a new channel.
    chromium.click("nav a[href='/channels']").await;
    chromium
        .wait_for(
            "channels",
            &format!(
                "document.querySelector('tr[data-channel=\"{}\"]')",
                other.channel_id
            ),
        )
        .await;
    chromium.fill("#channel-chat-id", "-1009876543210").await;
    chromium.fill("#channel-title", "Announcements").await;
    chromium.fill("#channel-username", "announce").await;
    chromium.submit("Add a channel").await;
    chromium
        .wait_for("channel added", "[...document.querySelectorAll('tr[data-channel]')].some(r => r.innerText.includes('Announcements'))")
        .await;
    chromium.screenshot("channels").await;
    chromium
        .run("[...document.querySelectorAll('tr[data-channel]')].find(r => r.innerText.includes('Announcements')).querySelector('a').click()")
        .await;
    chromium.press("main", "Remove channel").await;
    chromium.confirm().await;
    chromium
        .wait_for("channel removed", "location.pathname === '/channels' && document.querySelector('tr[data-channel]') && ![...document.querySelectorAll('tr[data-channel]')].some(r => r.innerText.includes('Announcements'))")
        .await;
    let channels = world.get("/api/v1/channels").await;
    assert!(
        !channels.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["title"] == "Announcements")
    );
    chromium
        .click(&format!("tr[data-channel='{}'] a", other.channel_id))
        .await;
    chromium
        .wait_for(
            "channel page",
            &format!(
                "document.querySelector('tr[data-group=\"{}\"]')",
                other.group_id
            ),
        )
        .await;
    chromium.screenshot("channel").await;
    chromium.fill("#channel-title", "Seeds and Bulbs").await;
    chromium.submit("Edit the channel").await;
    chromium
        .wait_for(
            "channel renamed",
            "document.querySelector('main h1').innerText.startsWith('Seeds and Bulbs')",
        )
        .await;
    let channel = world
        .get(&format!("/api/v1/channels/{}", other.channel_id))
        .await;
    assert_eq!(channel.ok()["title"], "Seeds and Bulbs");

    // The bot loses its admin rights in that channel: the group's page says exactly what to fix.
    chromium
        .click(&format!("tr[data-group='{}'] a", other.group_id))
        .await;
    chromium
        .wait_for(
            "other group",
            "document.querySelector('[data-health=\"ok\"]')",
        )
        .await;
    world
        .sandbox
        .demote(other.channel_chat, other.bot_telegram_id)
        .unwrap();
    chromium
        .wait_for(
            "health with the fix, live",
            "document.querySelector('[data-health=\"degraded\"]') && document.querySelector('.health-fix').innerText.includes('make the bot an administrator of @seeds')",
        )
        .await;
    chromium.screenshot("group-degraded").await;

    // Settings: the global defaults and the signed-in account.
    chromium.click("nav a[href='/settings']").await;
    chromium
        .wait_for("settings", "document.querySelector('form[aria-label=\"Policy defaults\"]') && document.querySelector('[data-account-name]')")
        .await;
    chromium.fill("#policy-warning_ttl_s", "300").await;
    chromium.submit("Policy defaults").await;
    chromium.toast_says("Defaults saved").await;
    let settings = world.get("/api/v1/settings").await;
    assert_eq!(settings.ok()["policy"]["defaults"]["warning_ttl_s"], 300);
    chromium.screenshot("settings").await;

    // A message text, then an admin added and removed.
    let text = chromium
        .text("document.querySelector('form[aria-label=\"Message texts\"] textarea').id")
        .await;
    let name = text.trim_start_matches("text-").to_string();
    chromium
        .fill(&format!("#{text}"), "Welcome to the club!")
        .await;
    chromium.submit("Message texts").await;
    chromium.toast_says("Texts saved").await;
    let settings = world.get("/api/v1/settings").await;
    assert_eq!(
        settings.ok()["texts"]["en"]["overrides"][&name],
        "Welcome to the club!"
    );
    chromium.fill("#admin-id", "4242").await;
    chromium.fill("#admin-name", "Mika").await;
    chromium.submit("Add an admin").await;
    chromium
        .wait_for("admin added", "[...document.querySelectorAll('table[aria-label=\"Admins\"] tr')].some(r => r.innerText.includes('4242'))")
        .await;
    let admins = world.get("/api/v1/admins").await;
    assert!(
        admins.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["telegram_user_id"] == 4242)
    );
    chromium.press("table[aria-label='Admins']", "Remove").await;
    chromium.confirm().await;
    chromium
        .wait_for("admin removed", "![...document.querySelectorAll('table[aria-label=\"Admins\"] tr')].some(r => r.innerText.includes('4242'))")
        .await;
    let admins = world.get("/api/v1/admins").await;
    assert!(admins.ok()["items"].as_array().unwrap().is_empty());

    // Logs: stored records by level and text, older pages, and new records arriving live.
    let now = nezuko::db::now_ms();
    let records: Vec<NewLog> = (0..60)
        .map(|n| NewLog {
            level: if n % 3 == 0 { "warn" } else { "info" }.into(),
            target: "nezuko::enforce::flows".into(),
            message: format!("record {n:02} about the book club"),
            fields: serde_json::json!({ "n": n }),
            bot_instance_id: Some(guarded.bot_id),
            created_at: now - 60_000 + n,
        })
        .collect();
    world.db.store.insert_logs(&records).await.unwrap();
    chromium.click("nav a[href='/logs']").await;
    chromium
        .wait_for(
            "logs",
            "document.querySelectorAll('tr.log-line').length === 50",
        )
        .await;
    chromium.click(".pager button").await;
    chromium
        .wait_for("older records", "document.querySelectorAll('tr.log-line').length === 60 && document.querySelector('.pager button').disabled")
        .await;
    chromium.choose("#log-level", "warn").await;
    chromium.fill("#log-text", "book club").await;
    chromium.submit("Filter logs").await;
    chromium
        .wait_for(
            "filtered logs",
            "!document.querySelector('tbody[data-loading]') && document.querySelectorAll('tr.log-line').length === 20 && [...document.querySelectorAll('tr.log-line')].every(r => r.dataset.level === 'warn')",
        )
        .await;
    for (level, message) in [
        ("info", "an info line the filter hides"),
        ("warn", "a live book club warning"),
    ] {
        world.publisher.publish(
            nezuko::domain::EventKind::Log,
            None,
            serde_json::json!({ "level": level, "target": "nezuko::fleet", "message": message, "fields": {}, "created_at": now }),
        );
    }
    chromium
        .wait_for(
            "live tail",
            "document.querySelector('tr.log-line').innerText.includes('a live book club warning')",
        )
        .await;
    assert!(
        !chromium
            .text("document.body.innerText")
            .await
            .contains("an info line the filter hides")
    );
    chromium.screenshot("logs").await;
    chromium.fill("#log-text", "no record says this").await;
    chromium.submit("Filter logs").await;
    chromium
        .wait_for("no match", "document.querySelectorAll('tr.log-line').length === 0 && document.querySelector('.empty-row')")
        .await;

    // Analytics: every chart, for another period.
    chromium.click("nav a[href='/analytics']").await;
    chromium
        .wait_for(
            "charts",
            "document.querySelectorAll('[data-chart]').length === 13",
        )
        .await;
    chromium.choose("#period", "7d").await;
    chromium
        .wait_for("7 days", "location.search === '?period=7d' && document.querySelectorAll('[data-chart]').length === 13")
        .await;
    chromium.screenshot("analytics").await;

    // The audit page shows every group action, as the API does.
    assert_audited(
        &world,
        &chromium,
        "group",
        guarded.group_id,
        &[
            "group.policy",
            "group.unlink_channel",
            "group.disable",
            "group.link_channel",
            "group.enable",
        ],
    )
    .await;
    for action in [
        "channel.add",
        "channel.update",
        "channel.delete",
        "settings.policy",
        "settings.texts",
        "admin.add",
        "admin.remove",
    ] {
        chromium.fill("#audit-action", action).await;
        chromium.choose("#audit-target", "").await;
        chromium
            .wait_for(action, &format!("document.querySelectorAll('tr[data-action]').length > 0 && [...document.querySelectorAll('tr[data-action]')].every(r => r.dataset.action === '{action}')"))
            .await;
    }
    let csv = chromium
        .text("document.querySelector('a[download]').getAttribute('href')")
        .await;
    assert_eq!(csv, "/api/v1/audit.csv?action=admin.remove");
    chromium.finish().await;
    world.finish().await;
}
