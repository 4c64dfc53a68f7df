//! Tracing set-up: an env filter, human-readable output locally and JSON in production.
//!
//! `log` records (teloxide, reqwest and sqlx log through the `log` crate) are bridged into tracing by
//! tracing-subscriber's `tracing-log` feature, which `try_init` installs. Records at
//! `log.store_level` also go to the `logs` table through [`crate::logstore`].

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::settings::{LogFormat, LogSettings};

/// Installs the global subscriber, writing to stderr. `RUST_LOG`, when set, wins over `log.filter`.
/// Calling it twice (as tests do) keeps the first subscriber.
pub fn init(settings: &LogSettings) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| EnvFilter::try_new(directives).ok());
    // Colour codes only for a person at a terminal, not for files and log collectors.
    install(
        settings,
        filter,
        std::io::stderr().is_terminal(),
        std::io::stderr,
    );
}

fn install<W>(settings: &LogSettings, filter: Option<EnvFilter>, ansi: bool, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = filter.unwrap_or_else(|| EnvFilter::new(&settings.filter));
    let store = crate::logstore::layer(settings.store_level);
    let registry = tracing_subscriber::registry().with(filter).with(store);
    // An error here means a subscriber is already installed, which is fine.
    let _ = match settings.format {
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(writer),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_ansi(ansi)
                    .with_writer(writer),
            )
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The only test in this binary that installs the global subscriber.
    #[test]
    fn log_records_from_teloxide_reach_tracing_as_json() {
        let captured = Captured::default();
        let writer = captured.clone();
        let settings = LogSettings {
            filter: "info".into(),
            format: LogFormat::Json,
            store_level: tracing::Level::INFO,
            retention: std::time::Duration::from_secs(86_400),
        };
        install(&settings, None, false, move || writer.clone());
        log::warn!(target: "teloxide::dispatching", "polling failed");
        log::debug!(target: "teloxide::dispatching", "filtered out");
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["message"], "polling failed");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["log.target"], "teloxide::dispatching");
        assert_eq!(text.lines().count(), 1, "{text}");
    }
}
