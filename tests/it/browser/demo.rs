//! `nezuko demo`, the real binary, seen by a newcomer in Chromium: the printed link signs in, the
//! overview shows live verifications within 60 s, and every page shows the demo's data (also at
//! phone width). Ctrl-C stops the demo and removes its temporary data.

use std::process::Stdio;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::accessible;
use super::chromium::Chromium;

/// The demo's login URL and the temporary folder it names, from its banner.
async fn banner(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> (String, String) {
    let mut url = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, lines.next_line()).await {
        let line = line.trim().to_string();
        if line.contains("/login#token=") {
            url = Some(line);
        } else if let Some(rest) = line.split("deletes its data (").nth(1) {
            let folder = rest.trim_end_matches(").").to_string();
            return (url.expect("the URL comes before the folder"), folder);
        }
    }
    panic!("nezuko demo printed no login URL within 60 s");
}

/// Opens `path` and waits for `ready`; then a screenshot named `demo-<name>`.
async fn visit(chromium: &Chromium, path: &str, name: &str, ready: &str) {
    chromium.open(path).await;
    chromium.wait_for(path, ready).await;
    // Nothing unfilled leaks into the page.
    chromium
        .wait_for(
            &format!("{path} without placeholders"),
            "!/\\b(null|undefined|NaN)\\b/.test(document.querySelector('main').innerText)",
        )
        .await;
    chromium.screenshot(&format!("demo-{name}")).await;
    accessible(chromium, name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_live_traffic_and_every_page_has_its_data() {
    let home = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_nezuko"))
        .args(["demo", "--listen", "127.0.0.1:0", "--rate", "8"])
        .current_dir(home.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("nezuko demo starts");
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let (url, folder) = banner(&mut lines).await;
    let base = url.split("/login").next().unwrap().to_string();
    assert!(
        std::path::Path::new(&folder).exists(),
        "the demo keeps its data in {folder}"
    );

    let chromium = Chromium::launch(&base).await;
    // The sign-in page as a stranger sees it.
    chromium.open("/login").await;
    chromium
        .wait_for("the sign-in page", "document.querySelector('main h1')")
        .await;
    accessible(&chromium, "sign-in").await;
    // From /login the link would only change the fragment (no new document): leave the page first.
    chromium.open("/healthz").await;
    chromium.open(url.trim_start_matches(&base)).await;
    chromium.wait_signed_in().await;
    chromium
        .wait_for_within(
            "live verifications on the overview",
            "[...document.querySelectorAll('.feed li')].some(li => /user \\d+: /.test(li.innerText)) && Number(document.querySelector('[data-stat=\"Verifications today\"]').innerText) > 0",
            Duration::from_secs(60),
        )
        .await;
    assert_eq!(
        chromium
            .text("String([...document.querySelectorAll('.feed li')].filter(li => /(trace|debug|info|warn|error): /.test(li.innerText)).length)")
            .await,
        "0",
        "log records stay on the logs page"
    );
    chromium.screenshot("demo-overview").await;
    accessible(&chromium, "overview").await;

    let rows =
        |selector: &str, n: usize| format!("document.querySelectorAll('{selector}').length >= {n}");
    visit(
        &chromium,
        "/bots",
        "bots",
        &format!("{} && document.querySelector('.badge[data-state=\"invalid token\"]') && document.querySelector('.badge[data-state=\"running\"]')", rows("tr[data-bot]", 4)),
    )
    .await;
    let bot = chromium
        .text("document.querySelector('tr[data-bot]').dataset.bot")
        .await;
    visit(
        &chromium,
        &format!("/bots/{bot}"),
        "bot",
        "document.querySelector('main h1') && document.querySelector('ul.feed')",
    )
    .await;
    visit(&chromium, "/groups", "groups", &rows("tr[data-group]", 6)).await;
    let group = chromium
        .text("document.querySelector('tr[data-group]').dataset.group")
        .await;
    visit(
        &chromium,
        &format!("/groups/{group}"),
        "group",
        "document.querySelector('tr[data-channel]') && document.querySelector('form[aria-label=\"Policy\"]')",
    )
    .await;
    visit(
        &chromium,
        "/channels",
        "channels",
        &rows("tr[data-channel]", 3),
    )
    .await;
    let channel = chromium
        .text("document.querySelector('tr[data-channel]').dataset.channel")
        .await;
    visit(
        &chromium,
        &format!("/channels/{channel}"),
        "channel",
        &rows("tr[data-group]", 1),
    )
    .await;
    visit(
        &chromium,
        "/analytics",
        "analytics",
        "document.querySelectorAll('[data-chart]').length === 13 && document.querySelectorAll('[data-chart] svg').length >= 8",
    )
    .await;
    visit(&chromium, "/logs", "logs", &rows("tr.log-line", 1)).await;
    // The demo's own records: its bots' state changes, found by text.
    chromium.fill("#log-text", "bot state").await;
    chromium.submit("Filter logs").await;
    chromium
        .wait_for(
            "the bots' state records",
            "document.querySelectorAll('tr.log-line').length >= 4 && [...document.querySelectorAll('tr.log-line')].every(r => r.innerText.includes('bot state'))",
        )
        .await;
    visit(
        &chromium,
        "/audit",
        "audit",
        "document.querySelector('tr[data-action=\"session.login\"]')",
    )
    .await;
    visit(
        &chromium,
        "/settings",
        "settings",
        "document.querySelector('[data-account-name]')",
    )
    .await;

    // Phone width: the page fits without sideways scrolling (wide tables scroll inside their panel).
    // A full-page screenshot drops the phone's metrics: they are set again before each look.
    let phone = SetDeviceMetricsOverrideParams::new(390, 844, 2.0, true);
    for (path, name) in [("/", "overview-phone"), ("/groups", "groups-phone")] {
        chromium.page.execute(phone.clone()).await.unwrap();
        visit(&chromium, path, name, "document.querySelector('main h1')").await;
        chromium.page.execute(phone.clone()).await.unwrap();
        chromium
            .wait_for(
                "fits a phone",
                "window.innerWidth === 390 && document.documentElement.scrollWidth <= window.innerWidth + 1",
            )
            .await;
    }
    chromium.finish().await;

    let pid = demo.id().expect("still running").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(15), demo.wait())
        .await
        .expect("the demo stops within 15 s of Ctrl-C")
        .unwrap();
    assert!(status.success(), "the demo exits cleanly: {status}");
    assert!(
        !std::path::Path::new(&folder).exists(),
        "the demo removed {folder}"
    );
}
