//! The dashboard in a real headless Chromium (Debian's `chromium`, driven over the DevTools
//! protocol): sign in with a one-time link, watch the overview update live, add a bot, stop, start
//! and restart it and watch its badge follow. Every test fails on a console error or an uncaught
//! exception; screenshots of each page go to `target/browser-artifacts/`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures_util::StreamExt;

use crate::api::{ApiWorld, OWNER};
use crate::support::TestDb;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A browser with one page, collecting console errors and exceptions.
struct Chromium {
    browser: Browser,
    page: Page,
    problems: Arc<Mutex<Vec<String>>>,
    _profile: tempfile::TempDir,
    handler: tokio::task::JoinHandle<()>,
}

impl Chromium {
    async fn launch() -> Self {
        assert!(
            std::path::Path::new(CHROMIUM).exists(),
            "Chromium is required for the browser tests (apt-get install chromium; scripts/test installs it)"
        );
        let profile = tempfile::tempdir().unwrap();
        let config = BrowserConfig::builder()
            .chrome_executable(CHROMIUM)
            .user_data_dir(profile.path())
            .args([
                "no-sandbox",
                "disable-gpu",
                "disable-background-networking",
                "disable-component-update",
                "no-first-run",
            ])
            .window_size(1280, 900)
            .build()
            .unwrap();
        let (browser, mut events) = Browser::launch(config).await.expect("Chromium starts");
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        let page = browser.new_page("about:blank").await.unwrap();
        let problems = Arc::new(Mutex::new(Vec::new()));
        let mut console = page
            .event_listener::<EventConsoleApiCalled>()
            .await
            .unwrap();
        let seen = problems.clone();
        tokio::spawn(async move {
            while let Some(event) = console.next().await {
                if event.r#type == ConsoleApiCalledType::Error {
                    seen.lock()
                        .unwrap()
                        .push(format!("console error: {:?}", event.args));
                }
            }
        });
        let mut exceptions = page.event_listener::<EventExceptionThrown>().await.unwrap();
        let seen = problems.clone();
        tokio::spawn(async move {
            while let Some(event) = exceptions.next().await {
                seen.lock()
                    .unwrap()
                    .push(format!("exception: {:?}", event.exception_details));
            }
        });
        Self {
            browser,
            page,
            problems,
            _profile: profile,
            handler,
        }
    }

    /// Waits until `expression` (JavaScript) is truthy in the page.
    async fn wait_for(&self, what: &str, expression: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let value = self
                .page
                .evaluate(expression)
                .await
                .ok()
                .and_then(|v| v.into_value::<bool>().ok());
            if value == Some(true) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let body = self.text("document.body.innerText").await;
                panic!("{what}: `{expression}` never held; the page shows:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, expression: &str) -> String {
        self.page
            .evaluate(expression)
            .await
            .ok()
            .and_then(|v| v.into_value::<String>().ok())
            .unwrap_or_default()
    }

    async fn click(&self, selector: &str) {
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
            .click()
            .await
            .unwrap();
    }

    async fn screenshot(&self, name: &str) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        self.page
            .save_screenshot(
                ScreenshotParams::builder().full_page(true).build(),
                dir.join(format!("{name}.png")),
            )
            .await
            .unwrap();
    }

    async fn finish(mut self) {
        let problems = self.problems.lock().unwrap().clone();
        let _ = self.browser.close().await;
        self.handler.abort();
        assert!(
            problems.is_empty(),
            "the page reported problems: {problems:#?}"
        );
    }
}

/// The state word of bot `id`'s badge on the bots page.
fn badge_is(id: i64, state: &str) -> String {
    format!("document.querySelector('tr[data-bot=\"{id}\"] .badge')?.dataset.state === '{state}'")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_watches_the_overview_and_runs_a_bot_from_the_browser() {
    let world = ApiWorld::start(TestDb::sqlite().await).await;
    let chromium = Chromium::launch().await;
    let token = world.login_link(OWNER).await;
    chromium
        .page
        .goto(format!("{}/login#token={token}", world.base))
        .await
        .unwrap();
    chromium
        .wait_for(
            "signed in",
            "location.pathname === '/' && !!document.querySelector('[data-stat=\"Bots\"]')",
        )
        .await;
    assert!(
        !chromium.text("location.href").await.contains(&token),
        "the token leaves the address bar"
    );
    chromium.screenshot("overview").await;

    // Live: something happens elsewhere, the overview shows it without a reload.
    world
        .call(
            reqwest::Method::PUT,
            "/api/v1/settings/policy",
            Some(serde_json::json!({ "grace_s": 5 })),
        )
        .await
        .ok();
    chromium
        .wait_for(
            "live activity",
            "document.querySelector('.feed').innerText.includes('settings.policy')",
        )
        .await;

    // Add a bot through the form; a bad token is explained at the field.
    chromium.click("nav a[href='/bots']").await;
    chromium
        .wait_for(
            "bots page",
            "!!document.querySelector('form[aria-label=\"Add a bot\"]')",
        )
        .await;
    chromium
        .page
        .find_element("#token")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str("nonsense")
        .await
        .unwrap();
    chromium
        .click("form[aria-label='Add a bot'] button[type=submit]")
        .await;
    chromium
        .wait_for(
            "inline error",
            "document.querySelector('#token-error').innerText.includes('colon')",
        )
        .await;
    let bot = world.sandbox.create_bot("Browser", "browser_bot");
    chromium
        .page
        .evaluate("document.querySelector('#token').value = ''")
        .await
        .unwrap();
    chromium
        .page
        .find_element("#token")
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str(&bot.token)
        .await
        .unwrap();
    chromium
        .click("form[aria-label='Add a bot'] button[type=submit]")
        .await;
    chromium
        .wait_for("bot listed", "!!document.querySelector('tr[data-bot]')")
        .await;
    let id: i64 = chromium
        .text("document.querySelector('tr[data-bot]').dataset.bot")
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
        let script = format!(
            "[...document.querySelectorAll('tr[data-bot=\"{id}\"] button')].find(b => b.innerText === '{button}').click(); true"
        );
        chromium.page.evaluate(script.as_str()).await.unwrap();
        chromium
            .wait_for("confirmation", "!!document.querySelector('dialog[open]')")
            .await;
        chromium
            .page
            .evaluate("document.querySelector('dialog[open] button.primary').click(); true")
            .await
            .unwrap();
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
    let actions = world.audit_actions("bot").await;
    for action in ["bot.add", "bot.stop", "bot.start", "bot.restart"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} audited: {actions:?}"
        );
    }
    chromium.finish().await;
    world.finish().await;
}
