//! A headless Debian Chromium driven over the DevTools protocol, with one page. It collects what a
//! user would call a broken page: console errors, uncaught exceptions, browser log errors (a
//! content-policy violation, for one) and failed requests (HTTP 4xx/5xx or a network failure).
//! A test that provokes a failure on purpose takes it with [`Chromium::take_failed_requests`];
//! [`Chromium::finish`] fails the test on anything left.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::log::{
    self, EventEntryAdded, LogEntryLevel, LogEntrySource,
};
use chromiumoxide::cdp::browser_protocol::network::{EventLoadingFailed, EventResponseReceived};
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures_util::StreamExt;

use crate::support::wait::quiet_period;

const CHROMIUM: &str = "/usr/bin/chromium";

type Shared = Arc<Mutex<Vec<String>>>;

pub struct Chromium {
    browser: Browser,
    pub page: Page,
    base: String,
    problems: Shared,
    failed: Shared,
    _profile: tempfile::TempDir,
    handler: tokio::task::JoinHandle<()>,
}

/// Forwards every event of one kind to `note`, which may record it.
async fn watch<E, F>(page: &Page, shared: Shared, note: F)
where
    E: chromiumoxide::cdp::IntoEventKind + Unpin + std::fmt::Debug + Send + Sync + 'static,
    F: Fn(&E) -> Option<String> + Send + 'static,
{
    let mut events = page.event_listener::<E>().await.unwrap();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let Some(problem) = note(&event) {
                shared.lock().unwrap().push(problem);
            }
        }
    });
}

impl Chromium {
    /// A browser at `base` (the service's address), desktop-sized.
    pub async fn launch(base: &str) -> Self {
        Self::launch_sized(base, 1280, 900).await
    }

    pub async fn launch_sized(base: &str, width: u32, height: u32) -> Self {
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
            .window_size(width, height)
            // The page gets the window's size (the default emulates 800 × 600).
            .viewport(None)
            // The whole suite shares two cores with this browser; a slow answer is not a failure.
            .request_timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let (browser, mut events) = Browser::launch(config).await.expect("Chromium starts");
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        let page = browser.new_page("about:blank").await.unwrap();
        page.execute(log::EnableParams::default()).await.unwrap();
        let problems = Shared::default();
        let failed = Shared::default();
        watch::<EventConsoleApiCalled, _>(&page, problems.clone(), |e| {
            (e.r#type == ConsoleApiCalledType::Error)
                .then(|| format!("console error: {:?}", e.args))
        })
        .await;
        watch::<EventExceptionThrown, _>(&page, problems.clone(), |e| {
            Some(format!("exception: {:?}", e.exception_details))
        })
        .await;
        // Network entries are the failed requests below, counted there once.
        watch::<EventEntryAdded, _>(&page, problems.clone(), |e| {
            (e.entry.level == LogEntryLevel::Error && e.entry.source != LogEntrySource::Network)
                .then(|| format!("browser log: {}", e.entry.text))
        })
        .await;
        watch::<EventResponseReceived, _>(&page, failed.clone(), |e| {
            (e.response.status >= 400).then(|| format!("{} {}", e.response.status, e.response.url))
        })
        .await;
        // A request cut off by leaving the page (the event stream, mostly) is not a failure.
        watch::<EventLoadingFailed, _>(&page, failed.clone(), |e| {
            (e.canceled != Some(true) && e.error_text != "net::ERR_ABORTED")
                .then(|| format!("network failure: {}", e.error_text))
        })
        .await;
        Self {
            browser,
            page,
            base: base.trim_end_matches('/').to_string(),
            problems,
            failed,
            _profile: profile,
            handler,
        }
    }

    /// Loads `path` of the service (a full page load, as typing the address would).
    pub async fn open(&self, path: &str) {
        self.open_url(&format!("{}{path}", self.base)).await;
    }

    /// Loads `url` from the page itself and waits for the new document. Not `Page.navigate`: its
    /// wait for the load could miss it when the page rewrites its own address while loading (as
    /// the sign-in redirect does) and then hang until the request timed out.
    pub async fn open_url(&self, url: &str) {
        // The old document may be gone before the evaluation answers; that is the point.
        let _ = self
            .page
            .evaluate(format!(
                "window.__left = true; location.assign({url:?}); true"
            ))
            .await;
        self.wait_for(
            &format!("{url} loaded"),
            "!window.__left && document.readyState !== 'loading'",
        )
        .await;
    }

    /// Waits until `expression` (JavaScript) is truthy in the page.
    pub async fn wait_for(&self, what: &str, expression: &str) {
        self.wait_for_within(what, expression, Duration::from_secs(30))
            .await
    }

    pub async fn wait_for_within(&self, what: &str, expression: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let value = self
                .page
                .evaluate(format!("!!({expression})"))
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

    /// The string value of `expression`, or "" when it is not one.
    pub async fn text(&self, expression: &str) -> String {
        self.page
            .evaluate(expression)
            .await
            .ok()
            .and_then(|v| v.into_value::<String>().ok())
            .unwrap_or_default()
    }

    /// The serious and critical accessibility violations axe-core finds in the page as it is now,
    /// one line each: rule, impact, what it asks, and the first elements at fault.
    pub async fn accessibility_violations(&self) -> Vec<String> {
        static AXE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let axe = AXE.get_or_init(|| {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/target/axe/node_modules/axe-core/axe.min.js"
            );
            std::fs::read_to_string(path).unwrap_or_else(|error| {
                panic!("{path}: {error}; scripts/test installs axe-core (ensure_axe in scripts/services.sh)")
            })
        });
        if self.text("typeof window.axe").await != "object" {
            self.page
                .evaluate(axe.as_str())
                .await
                .unwrap_or_else(|e| panic!("axe-core loads: {e}"));
        }
        let found = self
            .page
            .evaluate(
                "axe.run(document, { resultTypes: ['violations'] }).then(r => JSON.stringify(\
                 r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')\
                 .map(v => `${v.id} (${v.impact}): ${v.help}: ` + v.nodes.slice(0, 4)\
                 .map(n => n.target.join(' ') + (n.any[0] ? ` [${n.any[0].message}]` : '')).join('; '))))",
            )
            .await
            .unwrap_or_else(|e| panic!("axe-core runs: {e}"))
            .into_value::<String>()
            .expect("axe-core answers with text");
        serde_json::from_str(&found).expect("a JSON list")
    }

    /// Runs a statement in the page.
    pub async fn run(&self, script: &str) {
        self.page
            .evaluate(format!("(() => {{ {script}; return true; }})()"))
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"));
    }

    /// Clicks the element `selector` names. A page re-rendering by a live event can replace the
    /// element between finding and clicking it; then the new one is clicked.
    pub async fn click(&self, selector: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let clicked = match self.page.find_element(selector).await {
                Ok(element) => element.click().await.map(|_| ()),
                Err(error) => Err(error),
            };
            match clicked {
                Ok(()) => return,
                Err(error) if tokio::time::Instant::now() > deadline => {
                    panic!("{selector}: {error}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Submits the form named `label` with its submit button, as a user would.
    pub async fn submit(&self, label: &str) {
        self.click(&format!("form[aria-label='{label}'] button[type=submit]"))
            .await;
    }

    /// Waits for the notice at the bottom of the page to say `text`.
    pub async fn toast_says(&self, text: &str) {
        self.wait_for(
            text,
            &format!("document.getElementById('toast').innerText.includes(`{text}`)"),
        )
        .await;
    }

    /// Waits for the overview a signed-in session starts on.
    pub async fn wait_signed_in(&self) {
        self.wait_for(
            "signed in",
            "location.pathname === '/' && document.querySelector('[data-stat=\"Bots\"]')",
        )
        .await;
    }

    /// Clicks the button inside `scope` whose text is `label`.
    pub async fn press(&self, scope: &str, label: &str) {
        self.wait_for(
            &format!("button {label}"),
            &format!("[...document.querySelectorAll(`{scope} button`)].some(b => b.innerText === `{label}` && !b.disabled)"),
        )
        .await;
        self.run(&format!(
            "[...document.querySelectorAll(`{scope} button`)].find(b => b.innerText === `{label}` && !b.disabled).click()"
        ))
        .await;
    }

    /// Confirms the open confirmation dialog.
    pub async fn confirm(&self) {
        self.wait_for("confirmation", "document.querySelector('dialog[open]')")
            .await;
        self.run("document.querySelector('dialog[open] button.primary').click()")
            .await;
    }

    /// Replaces the value of the field `selector` by typing `text` into it.
    pub async fn fill(&self, selector: &str, text: &str) {
        self.run(&format!("document.querySelector(`{selector}`).value = ''"))
            .await;
        self.click(selector).await;
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
            .type_str(text)
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"));
    }

    /// Chooses `value` in the <select> `selector`, as a user would (a change event follows).
    pub async fn choose(&self, selector: &str, value: &str) {
        self.run(&format!(
            "const s = document.querySelector(`{selector}`); s.value = `{value}`; s.dispatchEvent(new Event('change', {{ bubbles: true }}))"
        ))
        .await;
    }

    /// Saves a full-page screenshot to `target/browser-artifacts/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
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

    /// The failed requests so far, forgotten once taken.
    pub async fn take_failed_requests(&self) -> Vec<String> {
        // Events arrive on tasks of their own, with no sign of when the last one has: the browser
        // sends each within milliseconds of what caused it.
        quiet_period(
            Duration::from_millis(200),
            "the page's last events reach the watchers",
        )
        .await;
        std::mem::take(&mut *self.failed.lock().unwrap())
    }

    /// Closes the browser; fails on any problem or failed request the page had.
    pub async fn finish(mut self) {
        // As in `take_failed_requests`: a problem the page had last may still be on its way.
        quiet_period(
            Duration::from_millis(200),
            "the page's last events reach the watchers",
        )
        .await;
        let problems = self.problems.lock().unwrap().clone();
        let failed = self.failed.lock().unwrap().clone();
        let _ = self.browser.close().await;
        self.handler.abort();
        assert!(
            problems.is_empty(),
            "the page reported problems: {problems:#?}"
        );
        assert!(failed.is_empty(), "requests failed: {failed:#?}");
    }
}
