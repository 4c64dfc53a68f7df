//! Typed settings, loaded from `config/*.toml` and the environment.
//!
//! [`load`] layers the sources (see `config/base.toml` for the order) into [`raw::RawSettings`], whose
//! leaves are plain strings, then [`parse`](self::parse) turns each leaf into a typed value. Keeping the
//! two steps apart means every invalid value produces the same kind of message: the key, where it
//! came from, what is wrong and the accepted form ([`ConfigError`]).

mod error;
mod load;
mod parse;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use error::ConfigError;
pub use load::{Environment, load, load_from};

pub use crate::db::DatabaseSettings;
use crate::domain::{BotToken, Secret};
use crate::vault::EncryptionKey;

/// Every setting of the service, valid by construction.
#[derive(Debug, Clone)]
pub struct Settings {
    pub environment: Environment,
    pub data_dir: PathBuf,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub vault: VaultSettings,
    pub auth: AuthSettings,
    pub telegram: TelegramSettings,
    pub fleet: FleetSettings,
    pub enforce: EnforceSettings,
    pub alerts: AlertSettings,
    pub log: LogSettings,
}

/// Alerts in Telegram (`alerts.*`; see `actors::alerter`).
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// `alerts.chat_id`; `None`: no alerts until the dashboard sets a chat.
    pub chat_id: Option<i64>,
    /// `alerts.sender`: `login` or a fleet bot's `@username`.
    pub sender: String,
    /// `alerts.check_ms`.
    pub every: Duration,
    /// `alerts.settle_s`.
    pub settle: Duration,
}

#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// SQLite: how often the Registry looks for changes (`fleet.registry_poll_ms`).
    pub poll_interval: Duration,
    /// How often the Registry reconciles fully (`fleet.full_reconcile_s`).
    pub full_interval: Duration,
    pub restart: RestartSettings,
}

/// How a failing bot is restarted (`fleet.*`); `app` turns these into the fleet's `RestartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartSettings {
    /// The first pause before a restart (`fleet.backoff_initial_ms`).
    pub initial_backoff: Duration,
    /// The longest pause (`fleet.backoff_max_s`).
    pub max_backoff: Duration,
    /// Running this long resets the backoff (`fleet.stable_after_s`).
    pub stable_after: Duration,
    /// More failures than this within `window` park the bot in `failed` (`fleet.max_failures`,
    /// `fleet.failure_window_s`).
    pub max_failures: usize,
    pub window: Duration,
}

/// How enforcement runs (`enforce.*`); `app` turns these into `enforce::EnforceOptions`.
#[derive(Debug, Clone, PartialEq)]
pub struct EnforceSettings {
    /// How long a "subscribed" answer is trusted (`enforce.membership_ttl_s`).
    pub membership_ttl: Duration,
    /// How long a "not subscribed" answer is trusted (`enforce.negative_ttl_s`).
    pub negative_ttl: Duration,
    /// How long a group's policy and channels are trusted (`enforce.policy_refresh_ms`).
    pub policy_refresh: Duration,
    /// How long a group's administrator list is trusted (`enforce.admin_ttl_s`).
    pub admin_ttl: Duration,
    /// Retries of a check Telegram could not answer, and the pause between them.
    pub check_retries: u32,
    pub check_retry_delay: Duration,
    /// Messages a bot sends per second, all chats together (`enforce.sends_per_s`).
    pub sends_per_s: f64,
    /// Other Bot API calls per second and bot; 0: no ceiling, learned from 429s.
    pub calls_per_s: f64,
    /// Messages per second into one chat (`enforce.chat_sends_per_s`).
    pub chat_sends_per_s: f64,
    /// Messages per minute into one group (`enforce.group_sends_per_min`).
    pub group_sends_per_min: f64,
    /// How often due timers are looked for (`enforce.timer_poll_ms`).
    pub timer_poll: Duration,
    /// How often every protected group's permissions are checked again (`enforce.health_check_s`).
    pub health_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Where users reach the dashboard; `None` means `http://<listen>`.
    pub public_url: Option<String>,
    /// Bearer token that lets a scraper read `/metrics` without a session; `None`: sessions only.
    pub metrics_token: Option<Secret<String>>,
    /// What `serve` does unless `--role` says otherwise (`server.role`).
    pub role: Role,
    /// Reverse proxies whose `Forwarded`/`X-Forwarded-For`/`X-Forwarded-Proto` are believed
    /// (`server.trusted_proxies`); empty: none, the peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// What a `serve` process does (`server.role`, `nezuko serve --role …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Role {
    /// The admin API, the dashboard and the bots.
    #[default]
    All,
    /// The admin API and the dashboard; bots are run by other processes on the same database.
    Api,
    /// The bots, with `/healthz`, `/readyz` and `/metrics` only.
    Bots,
}

impl Role {
    pub fn runs_bots(self) -> bool {
        matches!(self, Role::All | Role::Bots)
    }

    pub fn serves_api(self) -> bool {
        matches!(self, Role::All | Role::Api)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Bots => "bots",
        }
    }
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `None`: events stay in this process.
    pub url: Option<Secret<String>>,
}

#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// The first key encrypts; every key decrypts. Empty when none was configured.
    pub keys: Vec<EncryptionKey>,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub owner_telegram_id: Option<i64>,
    pub login_bot_token: Option<BotToken>,
    pub session_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct TelegramSettings {
    /// Base URL without a trailing slash (teloxide would otherwise request `//bot…`).
    pub api_url: String,
    /// How bots receive their updates.
    pub mode: TelegramMode,
    /// Webhook mode: how often a bot's runner reads `getWebhookInfo`.
    pub webhook_check: Duration,
}

/// How bots receive their updates (`telegram.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelegramMode {
    /// Each bot's runner asks Telegram with `getUpdates` (long polling).
    Polling,
    /// Telegram posts updates to `<server.public_url>/telegram/<bot id>` (`setWebhook`).
    Webhook,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub filter: String,
    pub format: LogFormat,
    /// Records at this level and above also go to the `logs` table (and the live log stream).
    pub store_level: tracing::Level,
    /// Stored records older than this are deleted.
    pub retention: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Settings {
    /// The file a generated encryption key is kept in (local mode only).
    pub fn key_file(&self) -> PathBuf {
        self.data_dir.join("encryption.key")
    }

    /// The dashboard's public base URL, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.server.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}", self.server.listen),
        }
    }
}
