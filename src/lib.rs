//! Nezuko: many force-subscribe Telegram bots under one supervised service.
//!
//! Map of the modules, following a request from the edge inwards:
//!
//! - [`cli`]: the `nezuko` command line (`serve`, `migrate`, `keygen`, `check-config`, `rotate-key`).
//! - [`settings`]: typed configuration from `config/*.toml` and `NEZUKO_*` / legacy variables.
//! - [`telemetry`]: tracing set-up (pretty or JSON), with `log` records bridged in.
//! - [`app`]: wiring; builds the store, vault and HTTP server and runs them until a signal.
//! - [`actors`]: the supervision tree: Supervisor, Registry, Broadcaster, one BotActor per bot.
//! - [`http`]: the admin API under `/api/v1` (route table, sessions, SSE), `/healthz`, `/readyz`, `/metrics`.
//! - [`logstore`]: the tracing layer that stores log records and publishes them as events.
//! - [`metrics`]: process counters and the HTTP latency histogram for `/metrics`.
//! - [`enforce`]: force-subscribe enforcement, the handler every bot runs: flows, policies,
//!   commands, membership cache, rate limits, durable timers, records.
//! - [`telegram`]: what a bot does with Telegram: shared client, error classification, dispatch schema.
//! - [`webhooks`]: webhook mode: each bot's secret and URL, and taking in Telegram's deliveries.
//! - [`import`]: `nezuko import`, the original Python platform's database brought over.
//! - [`vault`]: Fernet encryption of bot tokens, key files, the key check and rotation.
//! - The fake Telegram (tests, demo, benchmarks) is the `nezuko_sandbox` crate in `crates/sandbox/`;
//!   it imports nothing from here.
//! - [`db`]: the store, one interface over native SQLite and PostgreSQL, with embedded migrations.
//! - [`events`]: the event vocabulary every layer publishes in (`Event`, `Publisher`); the tree's
//!   Broadcaster stores and fans out what is published.
//! - [`domain`]: parsed types that are valid by construction (`BotToken`, `Secret`, bot states).

pub mod actors;
pub mod app;
pub mod cli;
pub mod db;
pub mod domain;
pub mod enforce;
pub mod events;
pub mod http;
pub mod import;
pub mod logstore;
pub mod metrics;
pub mod settings;
pub mod telegram;
pub mod telemetry;
pub mod vault;
pub mod webhooks;
