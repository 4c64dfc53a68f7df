//! Process-wide counters and the HTTP latency histogram, rendered in Prometheus' text format by
//! `GET /metrics`. A small module of our own: the handful of series Nezuko exports does not need a
//! metrics framework, and the hot path (updates) is a single atomic add.
//!
//! Gauges that the database knows better (bots by state, restart counts) are read at scrape time by
//! the HTTP layer and rendered with [`Exposition`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Upper bounds of the HTTP latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

static UPDATES_HANDLED: AtomicU64 = AtomicU64::new(0);
static UPDATES_FAILED: AtomicU64 = AtomicU64::new(0);

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Registry {
    counters: Mutex<BTreeMap<(&'static str, Labels), u64>>,
    http: Mutex<BTreeMap<(String, &'static str, u16), Histogram>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

/// One update reached the handler; `failed` when the handler returned an error or panicked.
pub fn update_handled(failed: bool) {
    UPDATES_HANDLED.fetch_add(1, Ordering::Relaxed);
    if failed {
        UPDATES_FAILED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Adds `by` to the counter `name` with `labels` (a bounded set: methods, outcomes, codes).
pub fn count(name: &'static str, labels: &[(&'static str, &str)], by: u64) {
    let key = (
        name,
        labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect(),
    );
    if let Ok(mut counters) = REGISTRY.counters.lock() {
        *counters.entry(key).or_default() += by;
    }
}

/// Records one HTTP request under its route template (never the raw path: ids would explode the
/// number of series).
pub fn http_request(method: &str, route: &'static str, status: u16, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    if let Ok(mut http) = REGISTRY.http.lock() {
        let histogram = http.entry((method.to_string(), route, status)).or_default();
        histogram.count += 1;
        histogram.sum += seconds;
        for (slot, bound) in histogram.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *slot += 1;
            }
        }
    }
}

/// Builds the text exposition: `# HELP`/`# TYPE` once per family, then samples.
#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let _ = writeln!(self.text, "{name}{} {value}", render_labels(labels));
        self
    }

    /// Appends the process's own counters and histogram.
    pub fn finish(mut self) -> String {
        self.family(
            "nezuko_updates_handled_total",
            "counter",
            "Telegram updates handed to the handler.",
        )
        .sample(
            "nezuko_updates_handled_total",
            &[],
            UPDATES_HANDLED.load(Ordering::Relaxed) as f64,
        );
        self.family(
            "nezuko_updates_failed_total",
            "counter",
            "Updates whose handling failed or panicked.",
        )
        .sample(
            "nezuko_updates_failed_total",
            &[],
            UPDATES_FAILED.load(Ordering::Relaxed) as f64,
        );
        if let Ok(counters) = REGISTRY.counters.lock() {
            let mut last = "";
            for ((name, labels), value) in counters.iter() {
                if *name != last {
                    self.family(name, "counter", help(name));
                    last = name;
                }
                let labels: Vec<(&str, &str)> =
                    labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                self.sample(name, &labels, *value as f64);
            }
        }
        if let Ok(http) = REGISTRY.http.lock() {
            let name = "nezuko_http_request_duration_seconds";
            self.family(name, "histogram", "HTTP request latency by route template.");
            for ((method, route, status), histogram) in http.iter() {
                let status = status.to_string();
                let base = [
                    ("method", method.as_str()),
                    ("route", *route),
                    ("status", status.as_str()),
                ];
                for (bound, count) in LATENCY_BUCKETS.iter().zip(histogram.buckets) {
                    let le = bound.to_string();
                    let mut labels = base.to_vec();
                    labels.push(("le", &le));
                    self.sample(&format!("{name}_bucket"), &labels, count as f64);
                }
                let mut labels = base.to_vec();
                labels.push(("le", "+Inf"));
                self.sample(&format!("{name}_bucket"), &labels, histogram.count as f64);
                self.sample(&format!("{name}_sum"), &base, histogram.sum);
                self.sample(&format!("{name}_count"), &base, histogram.count as f64);
            }
        }
        self.text
    }
}

fn help(name: &str) -> &'static str {
    match name {
        "nezuko_verifications_total" => "Verification decisions by outcome.",
        "nezuko_telegram_calls_total" => "Bot API calls by method and outcome.",
        "nezuko_telegram_errors_total" => "Bot API calls that failed, by method and error code.",
        _ => "Nezuko counter.",
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
        count(
            "nezuko_telegram_calls_total",
            &[("method", "sendMessage"), ("outcome", "ok")],
            2,
        );
        http_request("GET", "/api/v1/test-only", 200, Duration::from_millis(3));
        let text = Exposition::default().finish();
        assert!(
            text.contains("nezuko_telegram_calls_total{method=\"sendMessage\",outcome=\"ok\"} "),
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
