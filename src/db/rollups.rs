//! Keeping the hourly rollups (`migrations/*/0002_rollups.sql`) in step with the record tables:
//! each batch of records is aggregated here and added to its rollup rows in the same transaction,
//! so the rollups and the raw rows never disagree.
//!
//! The statements are built as text: every value is an integer or one of Nezuko's own outcome and
//! method words, quoted with `'` doubled, and a batch becomes a handful of rows.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{ApiCall, Verification};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

fn hour(at: i64) -> i64 {
    at.div_euclid(HOUR_MS) * HOUR_MS
}

fn day(at: i64) -> i64 {
    at.div_euclid(DAY_MS) * DAY_MS
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Statements adding `rows` to the verification rollups.
pub(super) fn verification_statements(rows: &[Verification]) -> Vec<String> {
    let mut outcomes: BTreeMap<(i64, &str, bool), (i64, i64)> = BTreeMap::new();
    let mut latencies: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let mut groups: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let mut daily_latencies: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    let mut daily_groups: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for row in rows {
        *daily_latencies
            .entry((day(row.created_at), row.latency_ms))
            .or_default() += 1;
        *daily_groups
            .entry((day(row.created_at), row.group_id))
            .or_default() += 1;
        let h = hour(row.created_at);
        let entry = outcomes
            .entry((h, row.outcome.as_str(), row.cached))
            .or_default();
        entry.0 += 1;
        entry.1 += row.latency_ms;
        *latencies.entry((h, row.latency_ms)).or_default() += 1;
        *groups.entry((h, row.group_id)).or_default() += 1;
    }
    let mut statements = Vec::new();
    if !outcomes.is_empty() {
        let values: Vec<String> = outcomes
            .iter()
            .map(|((h, outcome, cached), (count, sum))| {
                format!("({h}, {}, {cached}, {count}, {sum})", quoted(outcome))
            })
            .collect();
        statements.push(format!(
            "INSERT INTO verification_hourly (hour, outcome, cached, count, latency_sum) VALUES {} \
             ON CONFLICT (hour, outcome, cached) DO UPDATE SET count = verification_hourly.count + excluded.count, \
             latency_sum = verification_hourly.latency_sum + excluded.latency_sum",
            values.join(", ")
        ));
    }
    push_counts(
        &mut statements,
        ("verification_latency_hourly", "hour"),
        "latency_ms",
        &latencies,
    );
    push_counts(
        &mut statements,
        ("verification_group_hourly", "hour"),
        "group_id",
        &groups,
    );
    push_counts(
        &mut statements,
        ("verification_latency_daily", "day"),
        "latency_ms",
        &daily_latencies,
    );
    push_counts(
        &mut statements,
        ("verification_group_daily", "day"),
        "group_id",
        &daily_groups,
    );
    statements
}

/// `(table, time column)`, keyed by `column`.
fn push_counts(
    statements: &mut Vec<String>,
    (table, time): (&str, &str),
    column: &str,
    counts: &BTreeMap<(i64, i64), i64>,
) {
    if counts.is_empty() {
        return;
    }
    let mut values = String::new();
    for ((h, key), count) in counts {
        if !values.is_empty() {
            values.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = write!(values, "({h}, {key}, {count})");
    }
    statements.push(format!(
        "INSERT INTO {table} ({time}, {column}, count) VALUES {values} \
         ON CONFLICT ({time}, {column}) DO UPDATE SET count = {table}.count + excluded.count"
    ));
}

/// The statement adding `rows` to the API call rollup.
pub(super) fn api_call_statements(rows: &[ApiCall]) -> Vec<String> {
    let mut counts: BTreeMap<(i64, &str, &str), i64> = BTreeMap::new();
    for row in rows {
        *counts
            .entry((
                hour(row.created_at),
                row.method.as_str(),
                row.outcome.as_str(),
            ))
            .or_default() += 1;
    }
    if counts.is_empty() {
        return Vec::new();
    }
    let values: Vec<String> = counts
        .iter()
        .map(|((h, method, outcome), count)| {
            format!("({h}, {}, {}, {count})", quoted(method), quoted(outcome))
        })
        .collect();
    vec![format!(
        "INSERT INTO api_call_hourly (hour, method, outcome, count) VALUES {} \
         ON CONFLICT (hour, method, outcome) DO UPDATE SET count = api_call_hourly.count + excluded.count",
        values.join(", ")
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_becomes_one_row_per_hour_and_key() {
        let row = |outcome: &str, at: i64, latency: i64| Verification {
            bot_instance_id: 1,
            group_id: 9,
            chat_id: -9,
            user_id: 1,
            channel_ids: sqlx::types::Json(vec![]),
            outcome: outcome.into(),
            cached: true,
            latency_ms: latency,
            created_at: at,
        };
        let statements = verification_statements(&[
            row("passed", 10, 5),
            row("passed", 20, 7),
            row("it's", HOUR_MS, 5),
        ]);
        assert_eq!(statements.len(), 5);
        assert!(
            statements[0].contains("(0, 'passed', true, 2, 12)"),
            "{}",
            statements[0]
        );
        assert!(statements[0].contains("'it''s'"), "quotes are doubled");
        assert!(
            statements[1].contains("(0, 5, 1), (0, 7, 1), (3600000, 5, 1)"),
            "{}",
            statements[1]
        );
    }
}
