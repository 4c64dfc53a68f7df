//! Each verification outcome has one colour, by what it means, the same in every chart (bars,
//! lines, legend) and in the live feed, in both themes; the line chart draws every outcome.

use std::collections::HashSet;

use serde_json::json;

use nezuko::domain::{EventKind, Outcome};

use super::{every_outcome, json_of};
use crate::api::ApiWorld;
use crate::browser::chromium::Chromium;
use crate::browser::{accessible, signed_in};
use crate::support::TestDb;

/// Per outcome of the server's vocabulary: the colour its class gives (`colour`; `tone` is empty
/// when app.css has none for it) and the colours of everything drawn for it on the page now: bars
/// and lines (within `SCOPE`: other charts have keys of their own, a bot state `failed` for one),
/// legend keys and feed words.
const COLOURS: &str = r#"(async (scope) => {
  const { outcomes } = await (await fetch('/api/v1/vocabulary')).json();
  const found = {};
  for (const outcome of outcomes) {
    const probe = document.createElement('span');
    probe.className = `outcome outcome-${outcome}`;
    document.body.append(probe);
    const style = getComputedStyle(probe);
    const all = (selector, property) => [...document.querySelectorAll(selector)].map((e) => getComputedStyle(e)[property]);
    found[outcome] = {
      tone: style.getPropertyValue('--tone').trim(), colour: style.color,
      bars: all(`${scope} svg.chart rect.bar[data-key="${outcome}"]`, 'fill'),
      lines: all(`${scope} svg.chart polyline.line[data-key="${outcome}"]`, 'stroke'),
      keys: all(`${scope} svg.chart g.key[data-key="${outcome}"] line`, 'stroke'),
      words: all(`.outcome[data-outcome="${outcome}"]`, 'color'),
    };
    probe.remove();
  }
  return JSON.stringify(found);
})(SCOPE)"#;

/// `rgb(r, g, b)` as numbers.
fn rgb(colour: &str) -> [u32; 3] {
    let numbers: Vec<u32> = colour
        .trim_start_matches("rgb(")
        .trim_end_matches(')')
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    [numbers[0], numbers[1], numbers[2]]
}

/// Checks the page's outcome colours in both themes: each outcome has its own colour, chosen by
/// meaning, and everything drawn for it has that colour. Charts are looked for in `scope` (a
/// selector); `drawn(outcome)` names which kinds of drawing must be there (`bars`, `lines`,
/// `keys`, `words`).
async fn one_colour_each(
    chromium: &Chromium,
    page: &str,
    scope: &str,
    drawn: impl Fn(&str) -> Vec<&'static str>,
) {
    for theme in ["light", "dark"] {
        chromium
            .run(&format!(
                "document.documentElement.dataset.theme = '{theme}'"
            ))
            .await;
        let found = json_of(chromium, &COLOURS.replace("SCOPE", &format!("{scope:?}"))).await;
        let found = found.as_object().unwrap();
        assert_eq!(found.len(), Outcome::ALL.len(), "the vocabulary's outcomes");
        let mut colours = HashSet::new();
        for (outcome, seen) in found {
            let colour = seen["colour"].as_str().unwrap();
            assert!(
                !seen["tone"].as_str().unwrap().is_empty(),
                "{outcome} has a colour in app.css"
            );
            assert!(
                colours.insert(colour.to_string()),
                "{outcome}'s colour {colour} is its own ({theme})"
            );
            for kind in drawn(outcome) {
                let drawings = seen[kind].as_array().unwrap();
                assert!(
                    !drawings.is_empty(),
                    "{page} ({theme}) draws {kind} for {outcome}"
                );
                for drawing in drawings {
                    assert_eq!(
                        drawing, colour,
                        "{page} ({theme}): {outcome}'s {kind} in its colour"
                    );
                }
            }
        }
        let [r, g, b] = rgb(found["passed"]["colour"].as_str().unwrap());
        assert!(g > r && g > b, "passed is green ({theme})");
        let [r, g, b] = rgb(found["restricted"]["colour"].as_str().unwrap());
        assert!(r > g && r > b, "restricted is red ({theme})");
        let [r, g, b] = rgb(found["unknown_allowed"]["colour"].as_str().unwrap());
        assert!(
            r > b && g > b && r >= g,
            "unknown_allowed is amber ({theme})"
        );
    }
    chromium
        .run("document.documentElement.dataset.theme = 'light'")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_has_one_colour_in_every_chart_and_in_the_feed() {
    let world = ApiWorld::start(TestDb::sqlite().await).await;
    every_outcome(&world, 1).await;
    let chromium = signed_in(&world).await;

    // The overview's bars, and the live feed's words for what happens now.
    chromium
        .wait_for(
            "every outcome on the overview",
            &format!(
                "document.querySelectorAll('svg.chart rect.bar').length === {}",
                Outcome::ALL.len()
            ),
        )
        .await;
    let live = ["passed", "restricted", "unknown_allowed", "banned"];
    for (n, outcome) in live.iter().enumerate() {
        world.publisher.publish(
            EventKind::Verification,
            None,
            json!({ "group_id": 1, "user_id": 9000 + n, "outcome": outcome }),
        );
    }
    chromium
        .wait_for(
            "the live verifications",
            &format!(
                "document.querySelectorAll('.feed .outcome').length === {}",
                live.len()
            ),
        )
        .await;
    one_colour_each(&chromium, "overview", "main", |outcome| {
        if live.contains(&outcome) {
            vec!["bars", "words"]
        } else {
            vec!["bars"]
        }
    })
    .await;
    accessible(&chromium, "overview").await;

    // Analytics: the outcome bars, and one line for every outcome with a legend that wraps.
    chromium.click("nav a[href='/analytics']").await;
    chromium
        .wait_for(
            "the verification charts",
            "document.querySelector('[data-chart=\"verification_trends\"] svg') && document.querySelector('[data-chart=\"verification_outcomes\"] svg')",
        )
        .await;
    let outcome_charts =
        ":is([data-chart=verification_outcomes], [data-chart=verification_trends])";
    one_colour_each(&chromium, "analytics", outcome_charts, |_| {
        vec!["bars", "lines", "keys"]
    })
    .await;
    let legend = json_of(
        &chromium,
        r#"(() => {
          const chart = document.querySelector('[data-chart="verification_trends"] svg');
          const box = chart.viewBox.baseVal;
          const keys = [...chart.querySelectorAll('g.key')];
          return JSON.stringify({
            lines: chart.querySelectorAll('polyline.line').length, keys: keys.length,
            rows: new Set(keys.map((k) => Math.round(k.getBBox().y))).size,
            outside: keys.map((k) => [k.dataset.key, k.getBBox()])
              .filter(([, b]) => b.x < 0 || b.x + b.width > box.width + 0.5 || b.y + b.height > box.height + 0.5)
              .map(([key]) => key),
          });
        })()"#,
    )
    .await;
    let outcomes = Outcome::ALL.len();
    assert_eq!(
        legend["lines"], outcomes,
        "a line for every outcome: {legend}"
    );
    assert_eq!(
        legend["keys"], outcomes,
        "a legend entry for every outcome: {legend}"
    );
    assert!(
        legend["rows"].as_u64().unwrap() >= 2,
        "the legend wraps: {legend}"
    );
    assert_eq!(
        legend["outside"],
        json!([]),
        "the legend stays inside the chart"
    );
    chromium.screenshot("truth-analytics").await;
    accessible(&chromium, "analytics").await;
    chromium.finish().await;
    world.finish().await;
}
