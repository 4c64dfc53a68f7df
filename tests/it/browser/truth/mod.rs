//! Charts and pages that tell the truth (issue 19, item 5): each verification outcome in one colour
//! everywhere, every outcome on the line chart (`colours`); times in the browser's own zone
//! (`times`); chart text and bot actions usable on a phone (`phone`); no navigation for a
//! signed-out visitor, the dashboard's own not-found page, no column the API cannot fill, and a
//! refused policy value shown at its field (`pages`).

mod colours;
mod pages;
mod phone;
mod times;

use serde_json::Value;
use sqlx::types::Json;

use nezuko::db::{Verification, now_ms};
use nezuko::domain::Outcome;

use super::chromium::Chromium;
use crate::api::ApiWorld;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// `count` verifications of `outcome` in group `group_id`, at `at` (Unix ms).
fn verifications(group_id: i64, outcome: &str, count: i64, at: i64) -> Vec<Verification> {
    (0..count)
        .map(|n| Verification {
            bot_instance_id: 1,
            group_id,
            chat_id: -group_id,
            user_id: 7000 + n,
            channel_ids: Json(vec![-100]),
            outcome: outcome.into(),
            cached: n % 2 == 0,
            latency_ms: 20,
            created_at: at + n,
        })
        .collect()
}

/// Every outcome of the vocabulary, the n-th of them n + 1 times, two hours ago.
async fn every_outcome(world: &ApiWorld, group_id: i64) {
    let two_hours_ago = (now_ms() / HOUR - 2) * HOUR + 60_000;
    let rows: Vec<Verification> = Outcome::ALL
        .iter()
        .zip(1..)
        .flat_map(|(outcome, count)| {
            verifications(group_id, outcome.as_str(), count, two_hours_ago)
        })
        .collect();
    world.db.store.insert_verifications(&rows).await.unwrap();
}

/// The value of `expression` (JavaScript, may be a promise of a JSON string), parsed.
async fn json_of(chromium: &Chromium, expression: &str) -> Value {
    let text = chromium.text(expression).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{expression}: {e}: {text:?}"))
}
