//! At a phone's width (390 × 844) chart text is drawn at 11 CSS px or more, and a bot's Start, Stop
//! and Restart are on screen, on the bots page and the bot's own, without scrolling sideways.

use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use serde_json::json;

use super::{every_outcome, json_of};
use crate::api::ApiWorld;
use crate::browser::chromium::Chromium;
use crate::browser::{accessible, protected_group, signed_in};
use crate::support::TestDb;
use crate::support::wait::eventually;

/// Chart text drawn smaller than 11 CSS px, as "text: size"; an error when there is none at all.
const SMALL_TEXT: &str = r#"(() => {
  const texts = [...document.querySelectorAll('svg.chart text')];
  if (!texts.length) return JSON.stringify(['no chart text yet']);
  return JSON.stringify(texts
    .map((t) => [t.textContent, parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a])
    .filter(([, size]) => size < 11).map(([text, size]) => `${text}: ${size}`));
})()"#;

/// Waits until every chart on the page is drawn with text of 11 CSS px or more.
async fn readable_charts(chromium: &Chromium, page: &str) {
    eventually(
        &format!("{page}: chart text of 11 px or more"),
        Duration::from_secs(20),
        async || {
            let small = json_of(chromium, SMALL_TEXT).await;
            if small == json!([]) {
                Ok(())
            } else {
                Err(small)
            }
        },
    )
    .await;
}

/// The page fits the phone's width, and the `at_least` or more buttons `buttons` names are all
/// within it.
async fn fits_with_buttons(chromium: &Chromium, page: &str, buttons: &str, at_least: u64) {
    let seen = json_of(
        chromium,
        &format!(
            r#"JSON.stringify({{
              width: innerWidth, scroll: document.documentElement.scrollWidth,
              buttons: document.querySelectorAll(`{buttons}`).length,
              outside: [...document.querySelectorAll(`{buttons}`)].map((b) => [b.innerText, b.getBoundingClientRect()])
                .filter(([, r]) => r.left < 0 || r.right > innerWidth).map(([text, r]) => `${{text}} at ${{r.left}}–${{r.right}}`),
            }})"#
        ),
    )
    .await;
    assert_eq!(seen["width"], 390, "{page}: a phone's width");
    assert!(
        seen["scroll"].as_i64() <= seen["width"].as_i64(),
        "{page} scrolls sideways: {seen}"
    );
    assert!(
        seen["buttons"].as_u64().unwrap() >= at_least,
        "{page}: the buttons: {seen}"
    );
    assert_eq!(seen["outside"], json!([]), "{page}: buttons off screen");
}

/// Shows the page as a 390 × 844 phone would (a window cannot be narrower than 500 px).
async fn as_a_phone(chromium: &Chromium) {
    chromium
        .page
        .execute(SetDeviceMetricsOverrideParams::new(390, 844, 2.0, true))
        .await
        .unwrap();
}

/// A screenshot of the phone's page; taking it drops the phone's metrics, so they are set again.
async fn phone_screenshot(chromium: &Chromium, name: &str) {
    chromium.screenshot(name).await;
    as_a_phone(chromium).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_chart_text_is_readable_and_bots_are_run_without_scrolling_sideways() {
    let world = ApiWorld::start(TestDb::sqlite().await).await;
    let guarded = protected_group(&world, "pocket_bot", "Pocket Readers", "pocketnews").await;
    every_outcome(&world, guarded.group_id).await;
    let chromium = signed_in(&world).await;
    as_a_phone(&chromium).await;
    chromium.open("/").await;
    chromium.wait_signed_in().await;

    chromium
        .wait_for(
            "the outcome chart",
            "document.querySelector('svg.chart rect.bar')",
        )
        .await;
    readable_charts(&chromium, "overview").await;
    phone_screenshot(&chromium, "truth-overview-phone").await;
    chromium.click("nav a[href='/analytics']").await;
    chromium
        .wait_for(
            "the charts",
            "document.querySelectorAll('[data-chart]').length === 13 && document.querySelector('[data-chart=\"hourly_activity\"] svg')",
        )
        .await;
    readable_charts(&chromium, "analytics").await;
    fits_with_buttons(&chromium, "analytics", "main button", 0).await;
    phone_screenshot(&chromium, "truth-analytics-phone").await;

    // The bots: each row a card, its Start, Stop and Restart on screen; Stop works from there.
    chromium.click("nav a[href='/bots']").await;
    let row = format!("tr[data-bot='{}']", guarded.bot_id);
    chromium
        .wait_for(
            "the bot's row",
            &format!("document.querySelector(\"{row} .badge[data-state='running']\")"),
        )
        .await;
    fits_with_buttons(&chromium, "bots", "tr[data-bot] button", 3).await;
    phone_screenshot(&chromium, "truth-bots-phone").await;
    accessible(&chromium, "bots on a phone").await;
    chromium.click(&format!("{row} button:nth-child(2)")).await;
    chromium.confirm().await;
    chromium
        .wait_for(
            "stopped",
            &format!("document.querySelector(\"{row} .badge[data-state='stopped']\")"),
        )
        .await;
    world
        .wait_bot(guarded.bot_id, "stopped", |b| {
            b["desired_state"] == "disabled"
        })
        .await;

    // The bot's own page.
    chromium.click(&format!("{row} a")).await;
    chromium
        .wait_for(
            "the bot's page",
            "document.querySelector('main .actions button') && document.querySelector('ul.feed')",
        )
        .await;
    // Start, Stop, Restart, and the page's other buttons (Replace token, Delete bot).
    fits_with_buttons(&chromium, "bot", "main button", 5).await;
    phone_screenshot(&chromium, "truth-bot-phone").await;
    chromium.finish().await;
    world.finish().await;
}
