//! The API counts in UTC buckets; the charts show them in the browser's time zone (India, 5:30
//! ahead: hours start at half past) and name a day bucket by its UTC date (Honolulu, 10 hours
//! behind), saying which zone and when such a day starts there.

use chromiumoxide::cdp::browser_protocol::emulation::{
    SetLocaleOverrideParams, SetTimezoneOverrideParams,
};

use nezuko::db::now_ms;

use super::{DAY, HOUR, json_of, verifications};
use crate::api::ApiWorld;
use crate::browser::chromium::Chromium;
use crate::browser::signed_in_at;
use crate::support::TestDb;

/// Whether the chart `name` has an element `selector` whose text is exactly `text`.
fn chart_has(name: &str, selector: &str, text: &str) -> String {
    format!(
        "[...document.querySelectorAll('[data-chart=\"{name}\"] {selector}')].some((e) => e.textContent === {text:?})"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_times_are_shown_in_the_browsers_time_zone() {
    let world = ApiWorld::start(TestDb::sqlite().await).await;
    let now = now_ms();
    // Three kicks in the UTC hour two hours back; four bans on the UTC day two days back.
    let hour = (now / HOUR - 2) * HOUR;
    let day = (now / DAY - 2) * DAY;
    let mut rows = verifications(1, "kicked", 3, hour + 60_000);
    rows.extend(verifications(1, "banned", 4, day + 60_000));
    world.db.store.insert_verifications(&rows).await.unwrap();
    let chromium = Chromium::launch(&world.base).await;
    let zone = |name: &str| SetTimezoneOverrideParams::new(name);
    chromium.page.execute(zone("Asia/Kolkata")).await.unwrap();
    chromium
        .page
        .execute(SetLocaleOverrideParams::builder().locale("en_US").build())
        .await
        .unwrap();
    let chromium = signed_in_at(&world, chromium).await;

    // India is 5:30 ahead of UTC: a UTC hour starts at half past there.
    let india = chrono::FixedOffset::east_opt(5 * 3600 + 30 * 60).unwrap();
    let clock = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .with_timezone(&india)
            .format("%H:%M")
            .to_string()
    };
    let (start, end) = (clock(hour), clock(hour + HOUR));
    chromium.open("/analytics?period=24h").await;
    chromium
        .wait_for("the charts", "document.querySelector('[data-chart=\"verification_trends\"] svg') && document.querySelector('[data-chart=\"hourly_activity\"] svg')")
        .await;
    let note = chromium
        .text("document.querySelector('[data-zone]').innerText")
        .await;
    // Chromium's ICU may call the zone by its older name, Asia/Calcutta.
    assert!(
        note.contains("Asia/") && note.contains("(UTC+05:30)"),
        "{note}"
    );
    chromium
        .wait_for(
            "the hour on the line chart",
            &chart_has(
                "verification_trends",
                "circle title",
                &format!("kicked {start}: 3"),
            ),
        )
        .await;
    chromium
        .wait_for(
            "the hour of the day",
            &chart_has(
                "hourly_activity",
                "rect.bar title",
                &format!("{start}–{end}: 3"),
            ),
        )
        .await;
    let peak = chromium
        .text("[...document.querySelectorAll('[data-chart=\"overview\"] dt')].find((dt) => dt.innerText.startsWith('Peak hour')).nextElementSibling.innerText")
        .await;
    assert_eq!(peak, format!("{start}–{end} (3)"));
    let labels = json_of(
        &chromium,
        "JSON.stringify([...document.querySelectorAll('[data-chart=\"hourly_activity\"] text, [data-chart=\"verification_trends\"] text')].map((t) => t.textContent).filter((t) => /^\\d\\d:\\d\\d$/.test(t)))",
    )
    .await;
    let labels = labels.as_array().unwrap();
    assert!(
        !labels.is_empty() && labels.iter().all(|l| l.as_str().unwrap().ends_with(":30")),
        "hours start at half past in India: {labels:?}"
    );
    chromium.screenshot("truth-analytics-kolkata").await;

    // Honolulu is 10 hours behind: a UTC day starts at 14:00 the day before there, and is still
    // named by its UTC date.
    chromium
        .page
        .execute(zone("Pacific/Honolulu"))
        .await
        .unwrap();
    chromium.open("/analytics?period=7d").await;
    chromium
        .wait_for(
            "the charts",
            "document.querySelector('[data-chart=\"verification_trends\"] svg')",
        )
        .await;
    let date = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .format("%b %-d")
            .to_string()
    };
    let note = chromium
        .text("document.querySelector('[data-zone]').innerText")
        .await;
    assert!(note.contains("Pacific/Honolulu (UTC−10:00)"), "{note}");
    assert!(note.contains("starts at 14:00 your time"), "{note}");
    for (outcome, at, count) in [("banned", day, 4), ("kicked", hour, 3)] {
        chromium
            .wait_for(
                &format!("{outcome} on its UTC day"),
                &chart_has(
                    "verification_trends",
                    "circle title",
                    &format!("{outcome} {}: {count}", date(at)),
                ),
            )
            .await;
    }
    chromium.finish().await;
    world.finish().await;
}
