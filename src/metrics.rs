//! Process-wide metrics through the `metrics` facade, kept and rendered in Prometheus' text format
//! by `metrics-exporter-prometheus` for `GET /metrics` (well-kept crates: the exposition format,
//! escaping and histograms are theirs, not ours).
//!
//! The hot path never looks anything up: the handles of the series counted per update (updates
//! handled, Bot API calls by method and outcome, verifications by outcome) are registered once, at
//! first use, and counting is one atomic add, with no lock and no label allocation per call. A
//! series outside the registered set (a method Nezuko does not call today) is registered when it
//! first occurs. The recorder is this module's own, not installed globally, so a library embedding
//! Nezuko keeps its own.
//!
//! Gauges that the database knows better (bots by state, restart counts) are read at scrape time by
//! the HTTP layer and rendered with [`Exposition`].

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::LazyLock;
use std::time::Duration;

use metrics::{Counter, Key, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use crate::domain::Outcome;

/// Upper bounds of the HTTP latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

const HTTP_DURATION: &str = "nezuko_http_request_duration_seconds";
const CALLS: &str = "nezuko_telegram_calls_total";
const ERRORS: &str = "nezuko_telegram_errors_total";
const VERIFICATIONS: &str = "nezuko_verifications_total";

/// The methods Nezuko calls on the update path, and how a call can end (see `enforce::calls`).
const METHODS: [&str; 12] = [
    "answerCallbackQuery",
    "banChatMember",
    "createChatInviteLink",
    "deleteMessage",
    "editMessageText",
    "getChat",
    "getChatAdministrators",
    "getChatMember",
    "restrictChatMember",
    "sendMessage",
    "unbanChatMember",
    "deleteMessages",
];
const CALL_OUTCOMES: [&str; 5] = ["ok", "rate_limited", "api_error", "network_error", "error"];

struct Registry {
    recorder: PrometheusRecorder,
    updates_handled: Counter,
    updates_failed: Counter,
    calls: HashMap<(&'static str, &'static str), Counter>,
    verifications: HashMap<Outcome, Counter>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

impl Registry {
    fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), &LATENCY_BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let describe = |name: &'static str, help: &'static str| {
            recorder.describe_counter(
                name.into(),
                Some(Unit::Count),
                SharedString::const_str(help),
            );
        };
        describe(
            "nezuko_updates_handled_total",
            "Telegram updates handed to the handler.",
        );
        describe(
            "nezuko_updates_failed_total",
            "Updates whose handling failed or panicked.",
        );
        describe(CALLS, "Bot API calls by method and outcome.");
        describe(
            ERRORS,
            "Bot API calls that failed, by method and error code.",
        );
        describe(VERIFICATIONS, "Verification decisions by outcome.");
        describe(
            "nezuko_events_dropped_total",
            "Events dropped because the database stayed away too long.",
        );
        recorder.describe_histogram(
            HTTP_DURATION.into(),
            Some(Unit::Seconds),
            SharedString::const_str("HTTP request latency by route template."),
        );
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &metadata())
        };
        let mut calls = HashMap::new();
        for method in METHODS {
            for outcome in CALL_OUTCOMES {
                let labels = vec![Label::new("method", method), Label::new("outcome", outcome)];
                calls.insert((method, outcome), counter(CALLS, labels));
            }
        }
        let verifications = Outcome::ALL
            .iter()
            .map(|outcome| {
                let labels = vec![Label::new("outcome", outcome.as_str())];
                (*outcome, counter(VERIFICATIONS, labels))
            })
            .collect();
        Self {
            updates_handled: counter("nezuko_updates_handled_total", Vec::new()),
            updates_failed: counter("nezuko_updates_failed_total", Vec::new()),
            calls,
            verifications,
            recorder,
        }
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &metadata())
    }
}

/// One update reached the handler; `failed` when the handler returned an error or panicked.
pub fn update_handled(failed: bool) {
    let registry = &*REGISTRY;
    registry.updates_handled.increment(1);
    if failed {
        registry.updates_failed.increment(1);
    }
}

/// One Bot API call of `method` ended with `outcome` (`ok`, `rate_limited`, `api_error`,
/// `network_error` or `error`).
pub fn telegram_call(method: &'static str, outcome: &'static str) {
    let registry = &*REGISTRY;
    match registry.calls.get(&(method, outcome)) {
        Some(counter) => counter.increment(1),
        None => registry
            .counter(
                CALLS,
                vec![Label::new("method", method), Label::new("outcome", outcome)],
            )
            .increment(1),
    }
}

/// One Bot API call of `method` failed with `code` (an HTTP status or Telegram's error code).
/// Failures are rare, so the series is looked up when it happens.
pub fn telegram_error(method: &'static str, code: i64) {
    REGISTRY
        .counter(
            ERRORS,
            vec![
                Label::new("method", method),
                Label::new("code", code.to_string()),
            ],
        )
        .increment(1);
}

/// One verification decided `outcome`.
pub fn verification(outcome: Outcome) {
    if let Some(counter) = REGISTRY.verifications.get(&outcome) {
        counter.increment(1);
    }
}

/// Events dropped because the database stayed away too long.
pub fn events_dropped(count: u64) {
    REGISTRY
        .counter("nezuko_events_dropped_total", Vec::new())
        .increment(count);
}

/// Records one HTTP request under its route template (never the raw path: ids would explode the
/// number of series).
pub fn http_request(method: &str, route: &'static str, status: u16, elapsed: Duration) {
    let key = Key::from_parts(
        HTTP_DURATION,
        vec![
            Label::new("method", method.to_string()),
            Label::new("route", route),
            Label::new("status", status.to_string()),
        ],
    );
    REGISTRY
        .recorder
        .register_histogram(&key, &metadata())
        .record(elapsed.as_secs_f64());
}

/// Builds the text exposition: the gauges the caller adds (`# HELP`/`# TYPE` once per family,
/// then samples), then the process's own counters and histograms.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "{name}{} {value}", render_labels(labels));
        self
    }

    /// Appends the process's own series.
    pub fn finish(mut self) -> String {
        self.text.push_str(&REGISTRY.recorder.handle().render());
        self.text
    }
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect();
    format!("{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_text_format() {
        telegram_call("sendMessage", "ok");
        telegram_call("sendMessage", "ok");
        telegram_call("someNewMethod", "ok");
        http_request("GET", "/api/v1/test-only", 200, Duration::from_millis(3));
        let text = Exposition::default().finish();
        assert!(
            text.contains("nezuko_telegram_calls_total{method=\"sendMessage\",outcome=\"ok\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("nezuko_telegram_calls_total{method=\"someNewMethod\",outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "nezuko_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/test-only\",status=\"200\",le=\"0.005\"} 1"
        ), "{text}");
        assert!(text.contains("# TYPE nezuko_http_request_duration_seconds histogram"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(render_labels(&[("a", "x\"y\\z")]), "{a=\"x\\\"y\\\\z\"}");
    }
}
