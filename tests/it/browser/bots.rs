//! Signing in, the live overview, and running bots from the browser: add (with a bad token first),
//! stop, start, restart, the bot's own page, token rotation and deletion, each seen in the page,
//! through the API and in the audit log page.

use super::{assert_audited, protected_group, signed_in};
use crate::api::ApiWorld;
use crate::support::TestDb;

/// The state word of bot `id`'s badge on the bots page.
fn badge_is(id: i64, state: &str) -> String {
    format!("document.querySelector('tr[data-bot=\"{id}\"] .badge')?.dataset.state === '{state}'")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_watches_the_overview_and_runs_a_bot_from_the_browser() {
    let world = ApiWorld::start(TestDb::sqlite().await).await;
    let guarded = protected_group(&world, "guard_bot", "Readers", "news").await;
    let chromium = signed_in(&world).await;
    chromium.screenshot("overview").await;

    // Live: a newcomer who is not subscribed joins; the verification appears without a reload.
    let newcomer = world.sandbox.create_user("Newcomer", None);
    world.sandbox.join(guarded.group_chat, newcomer.id).unwrap();
    chromium
        .wait_for(
            "live verification",
            &format!(
                "[...document.querySelectorAll('.feed li')].some(li => li.innerText.includes('user {}: '))",
                newcomer.id
            ),
        )
        .await;

    // Add a bot through the form; a bad token is explained at the field.
    chromium.click("nav a[href='/bots']").await;
    chromium
        .wait_for(
            "bots page",
            "document.querySelector('form[aria-label=\"Add a bot\"]')",
        )
        .await;
    chromium.fill("#token", "nonsense").await;
    chromium.submit("Add a bot").await;
    chromium
        .wait_for(
            "inline error",
            "document.querySelector('#token-error').innerText.includes('colon')",
        )
        .await;
    let refused = chromium.take_failed_requests().await;
    assert!(
        refused.len() == 1
            && refused[0].starts_with("422 ")
            && refused[0].ends_with("/api/v1/bots"),
        "only the refused token failed: {refused:?}"
    );
    let bot = world.sandbox.create_bot("Browser", "browser_bot");
    chromium.fill("#token", &bot.token).await;
    chromium.submit("Add a bot").await;
    let rows = "[...document.querySelectorAll('tr[data-bot]')].find(r => r.innerText.includes('@browser_bot'))".to_string();
    chromium.wait_for("bot listed", &rows).await;
    let id: i64 = chromium
        .text(&format!("{rows}.dataset.bot"))
        .await
        .parse()
        .unwrap();
    chromium
        .wait_for("running badge", &badge_is(id, "running"))
        .await;
    chromium.screenshot("bots").await;

    // Stop, start, restart, each confirmed; the badge follows the bot.
    for (button, state) in [
        ("Stop", "stopped"),
        ("Start", "running"),
        ("Restart", "running"),
    ] {
        let started_before =
            world.get(&format!("/api/v1/bots/{id}")).await.body["started_at"].clone();
        chromium
            .press(&format!("tr[data-bot=\"{id}\"]"), button)
            .await;
        chromium.confirm().await;
        if button == "Restart" {
            // Stopping and starting again can pass between two renders; the new start is the proof.
            world
                .wait_bot(id, "started again", |b| {
                    b["run_state"] == "running" && b["started_at"] != started_before
                })
                .await;
        }
        chromium.wait_for(state, &badge_is(id, state)).await;
        let api_state = world.get(&format!("/api/v1/bots/{id}")).await.body["run_state"].clone();
        assert_eq!(api_state, state, "the API agrees after {button}");
    }

    // The guarding bot's page: its group and its recent events.
    chromium.open(&format!("/bots/{}", guarded.bot_id)).await;
    chromium
        .wait_for(
            "bot detail",
            &format!(
                "document.querySelector('tr[data-group=\"{}\"]') && document.querySelectorAll('.feed li:not(.empty)').length > 0",
                guarded.group_id
            ),
        )
        .await;
    chromium.screenshot("bot").await;

    // Rotate the browser bot's token, then delete the bot.
    let new_token = world
        .sandbox
        .rotate_token(bot.id)
        .expect("the sandbox knows the bot");
    chromium.open(&format!("/bots/{id}")).await;
    chromium
        .wait_for("rotate form", "document.querySelector('#new-token')")
        .await;
    chromium.fill("#new-token", &new_token).await;
    chromium.submit("Replace the token").await;
    chromium.toast_says("Token replaced").await;
    world
        .wait_bot(id, "running on the new token", |b| {
            b["run_state"] == "running"
        })
        .await;
    chromium.press("main", "Delete bot").await;
    chromium.confirm().await;
    chromium
        .wait_for(
            "back on the list without the bot",
            &format!("location.pathname === '/bots' && document.querySelector('tr[data-bot]') && !document.querySelector('tr[data-bot=\"{id}\"]')"),
        )
        .await;
    world
        .get(&format!("/api/v1/bots/{id}"))
        .await
        .problem(404, "not_found");

    // Each action is in the audit log, through the API and on the audit page.
    assert_audited(
        &world,
        &chromium,
        "bot",
        id,
        &[
            "bot.add",
            "bot.stop",
            "bot.start",
            "bot.restart",
            "bot.rotate_token",
            "bot.delete",
        ],
    )
    .await;
    chromium.screenshot("audit").await;
    chromium.finish().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_sign_in_returns_to_the_dashboard_and_sign_out_ends_the_session() {
    let world = ApiWorld::start(TestDb::sqlite().await).await;
    let chromium = super::chromium::Chromium::launch(&world.base).await;
    chromium.open("/").await;
    chromium
        .wait_for(
            "sent to sign in",
            "location.pathname === '/login' && document.querySelector('a.telegram-login')",
        )
        .await;
    // The /auth/me probe of a visitor without a session is the expected 401.
    let probe = chromium.take_failed_requests().await;
    assert!(
        probe.len() == 1 && probe[0].starts_with("401 ") && probe[0].ends_with("/api/v1/auth/me"),
        "{probe:?}"
    );
    let login_bot = world.login_token.split(':').next().unwrap().to_string();
    let href = chromium
        .text("document.querySelector('a.telegram-login').href")
        .await;
    assert!(
        href.starts_with("https://oauth.telegram.org/auth?")
            && href.contains(&format!("bot_id={login_bot}"))
            && href.contains("return_to=http%3A%2F%2F127.0.0.1"),
        "{href}"
    );
    chromium.screenshot("login").await;

    // What Telegram hands back: the signed fields, base64 JSON in the fragment.
    let mut fields = serde_json::json!({
        "id": crate::api::OWNER, "first_name": "Olga", "username": "olga",
        "auth_date": nezuko::db::now_ms() / 1000,
    })
    .as_object()
    .unwrap()
    .clone();
    let hash = nezuko::http::auth::widget::sign(&fields, &world.login_token);
    fields.insert("hash".into(), hash.into());
    use base64::Engine as _;
    let result =
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&fields).unwrap());
    // Telegram sends the browser back with a full page load, not a change of fragment.
    chromium.open_url("about:blank").await;
    chromium
        .open(&format!("/login#tgAuthResult={result}"))
        .await;
    chromium.wait_signed_in().await;
    assert!(
        !chromium
            .text("location.href")
            .await
            .contains("tgAuthResult")
    );
    let logins = world.get("/api/v1/audit?action=session.login").await;
    assert!(
        logins.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["after"]["method"] == "telegram_widget"),
        "the widget sign-in is audited"
    );

    // The theme toggle switches light and dark, and the choice survives a reload.
    let theme = "document.documentElement.dataset.theme";
    let before = chromium.text(theme).await;
    let background = "getComputedStyle(document.body).backgroundColor";
    let painted = chromium.text(background).await;
    chromium.click("#theme").await;
    let after = chromium.text(theme).await;
    assert!(
        ["light", "dark"].contains(&after.as_str()) && after != before,
        "{before} → {after}"
    );
    assert_ne!(
        chromium.text(background).await,
        painted,
        "the colours change"
    );
    chromium.open("/").await;
    chromium.wait_signed_in().await;
    assert_eq!(chromium.text(theme).await, after);
    chromium.screenshot(&format!("overview-{after}")).await;

    chromium.click("#logout").await;
    chromium
        .wait_for(
            "signed out",
            "location.pathname === '/login' && document.querySelector('#logout').hidden",
        )
        .await;
    chromium.open("/bots").await;
    chromium
        .wait_for("the session is gone", "location.pathname === '/login'")
        .await;
    let probe = chromium.take_failed_requests().await;
    assert!(
        probe
            .iter()
            .all(|p| p.starts_with("401 ") && p.ends_with("/api/v1/auth/me")),
        "{probe:?}"
    );
    chromium.finish().await;
    world.finish().await;
}
