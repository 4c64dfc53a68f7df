//! Wiring only: builds the store, the vault and the HTTP server from settings, and runs them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::actors::alerter::{AlertConfig, AlertSender, AlerterArgs};
use crate::actors::heartbeat::{self, Heartbeat, RunsBots};
use crate::actors::leases::{self, LeaseKeeper, Leases};
use crate::actors::{Delivery, Fleet, FleetOptions, RestartPolicy};
use crate::db::{RunnerClaim, Store};
use crate::enforce::{CacheTtl, EnforceOptions, Enforcer, Limits};
use crate::http::{self, AuthConfig, HttpState};
use crate::settings::{RestartSettings, Settings, TelegramMode};
use crate::telegram::UpdateHandler;
use crate::telegram::webhook::Arrivals;
use crate::vault::{self, KeySource, Vault};

/// How long a stopping service gives its bots and the warnings they were sending: within the 10 s
/// a service manager (Docker, Kubernetes) gives after SIGTERM before SIGKILL.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(9);
use crate::webhooks::Webhooks;

pub use crate::settings::Role;

/// A service ready to run: listener bound, database migrated, key checked.
#[derive(Debug)]
pub struct Application {
    role: Role,
    /// Held while this process runs the bots of a SQLite database (see [`RunnerClaim`]).
    _runner: Option<RunnerClaim>,
    /// On PostgreSQL, what keeps this node's bot leases (`actors::leases`).
    leases: Option<LeaseKeeper>,
    /// This process's row in `nodes`.
    heartbeat: Heartbeat,
    listener: TcpListener,
    store: Store,
    vault: Vault,
    fleet: Fleet,
    enforcer: Enforcer,
    auth: AuthConfig,
    telegram_api_url: String,
    log_retention: Duration,
    /// Takes in webhook deliveries on every node, whatever its mode (see [`crate::webhooks`]).
    webhooks: Webhooks,
    /// Sends alerts (the Alerter's, and the settings page's test).
    alerts: AlertSender,
}

impl Application {
    /// [`Application::build_as`] with [`Role::All`].
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        Self::build_as(settings, Role::All).await
    }

    /// Connects and migrates the store, claims the bots where `role` runs them (SQLite: one process
    /// only, see [`RunnerClaim`]), resolves and checks the encryption keys, binds the listener.
    /// Every failure is returned with a one-line explanation; nothing is started half-way.
    pub async fn build_as(settings: &Settings, role: Role) -> anyhow::Result<Self> {
        // The original platform's database is refused before anything is written beside it.
        if let crate::db::DatabaseUrl::Sqlite { path } = &settings.database.url {
            crate::db::refuse_original_sqlite(path).await?;
        }
        // Before anything else: a second runner on a SQLite file is told so before it has
        // migrated, bound or polled anything.
        let runner = if role.runs_bots() {
            Some(RunnerClaim::take(&settings.database.url)?)
        } else {
            None
        };
        let store = open_store_waiting(settings).await?;
        let vault = open_vault(settings, &store).await?;
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
        let enforcer = Enforcer::start(store.clone(), enforce_options(settings))?;
        let handler = Arc::new(enforcer.clone());
        // On PostgreSQL each bot runs on the node holding its lease (see `actors::leases`); on
        // SQLite the claim above gives this process every bot.
        let on_postgres = store.postgres_pool().is_some();
        let held = (role.runs_bots() && on_postgres).then(Leases::default);
        let webhooks = Webhooks::new(
            store.clone(),
            vault.clone(),
            &settings.public_url(),
            Arrivals::default(),
        )
        .checked_every(settings.telegram.webhook_check);
        let alerts = alert_sender(settings, &store, &vault)?;
        let fleet = Fleet::start(
            store.clone(),
            vault.clone(),
            FleetOptions {
                runs_bots: role.runs_bots(),
                leases: held.clone(),
                delivery: match settings.telegram.mode {
                    TelegramMode::Polling => Delivery::Polling,
                    TelegramMode::Webhook => Delivery::Webhook(webhooks.clone()),
                },
                alerts: Some(AlerterArgs {
                    sender: alerts.clone(),
                    public_url: settings.public_url(),
                    every: settings.alerts.every,
                    settle: settings.alerts.settle,
                }),
                ..fleet_options(settings, handler)
            },
        )
        .await?;
        let runs_bots = RunsBots::default();
        runs_bots.set(role.runs_bots());
        let leases = held.and_then(|held| leases::start(&store, fleet.handle(), held));
        let heartbeat = heartbeat::start(store.clone(), role.as_str(), runs_bots);
        if let Some(url) = &settings.redis.url {
            let namespace = format!(
                "nezuko:{}",
                &crate::http::auth::hash_secret(store.location())[..12]
            );
            crate::actors::relay::start(
                url.expose(),
                &namespace,
                store.clone(),
                fleet.handle().event_sender(),
            )
            .await?;
            tracing::info!("events are shared with other processes through Redis");
        } else {
            crate::actors::relay::tail(store.clone(), fleet.handle().event_sender()).await;
        }
        Ok(Self {
            role,
            _runner: runner,
            leases,
            heartbeat,
            listener,
            store,
            vault,
            fleet,
            enforcer,
            auth: auth_config(settings),
            telegram_api_url: settings.telegram.api_url.clone(),
            log_retention: settings.log.retention,
            webhooks,
            alerts,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    pub fn enforcer(&self) -> &Enforcer {
        &self.enforcer
    }

    /// What the HTTP layer works with.
    pub fn http_state(&self) -> HttpState {
        HttpState {
            store: self.store.clone(),
            vault: self.vault.clone(),
            fleet: self.fleet.handle(),
            enforcer: self.enforcer.clone(),
            auth: Arc::new(self.auth.clone()),
            telegram_api_url: self.telegram_api_url.clone(),
            http_client: crate::telegram::http_client(),
            throttle: Arc::default(),
            started_at: std::time::Instant::now(),
            router: Arc::default(),
            closing: tokio::sync::watch::channel(false).1,
            webhooks: self.webhooks.clone(),
            alerts: self.alerts.clone(),
        }
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish and closes the store.
    pub async fn run_until_stopped(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let router = if self.role.serves_api() {
            tracing::info!(%addr, role = self.role.as_str(), "listening: the admin API under /api/v1, /healthz, /readyz, /metrics");
            http::router()
        } else {
            tracing::info!(%addr, role = self.role.as_str(), "listening: /healthz, /readyz, /metrics (the admin API is served by `--role api` or `all` processes)");
            http::probe_router()
        };
        if !self.role.runs_bots() {
            tracing::info!(
                "this process runs no bots (`--role api`): processes with `--role bots` or `all` on the same database do"
            );
        }
        let state = self.http_state();
        let log_writer = crate::logstore::start(
            self.store.clone(),
            self.fleet.publisher(),
            self.log_retention,
        );
        let pruner = tokio::spawn(self.webhooks.clone().prune_forever());
        http::serve_with(self.listener, state, router, shutdown).await;
        pruner.abort();
        // Within the 10 s a service manager gives after SIGTERM: in-flight updates finish,
        // unconfirmed ones stay with Telegram. The leases are still renewed meanwhile (so the
        // bots confirm what they handled), but no bot is taken.
        if let Some(leases) = &self.leases {
            leases.drain();
        }
        let stop_by = std::time::Instant::now() + SHUTDOWN_BUDGET;
        self.fleet.shutdown(SHUTDOWN_BUDGET).await;
        // Only now, with every bot stopped, may other nodes take them: at once, not when the
        // leases would have expired.
        if let Some(leases) = self.leases.take() {
            leases.stop().await;
        }
        self.heartbeat.stop().await;
        // Warnings whose sendMessage is on its way get their ids stored, and verification and API
        // call records still queued go to the database, before it closes; the warnings get what is
        // left of the stop's budget (the bots usually stop within a second).
        self.enforcer
            .flush_within(stop_by.saturating_duration_since(std::time::Instant::now()))
            .await;
        if let Some(writer) = log_writer {
            writer.stop(Duration::from_secs(2)).await;
        }
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// What sends alerts: the configured sender to the configured chat (the dashboard's choice, when
/// stored, wins over `alerts.*`).
fn alert_sender(settings: &Settings, store: &Store, vault: &Vault) -> anyhow::Result<AlertSender> {
    Ok(AlertSender {
        store: store.clone(),
        vault: vault.clone(),
        http: crate::telegram::http_client(),
        api_url: settings
            .telegram
            .api_url
            .parse()
            .with_context(|| format!("`{}` is not a Bot API URL", settings.telegram.api_url))?,
        login_token: settings.auth.login_bot_token.clone(),
        defaults: AlertConfig {
            chat_id: settings.alerts.chat_id,
            sender: settings.alerts.sender.clone(),
        },
        undelivered: Default::default(),
    })
}

/// Authentication as configured: cookies are `Secure` in production or behind an https URL.
pub fn auth_config(settings: &Settings) -> AuthConfig {
    let public_url = settings.public_url();
    AuthConfig {
        owner: settings.auth.owner_telegram_id,
        login_bot_token: settings.auth.login_bot_token.clone(),
        session_ttl: settings.auth.session_ttl,
        secure_cookies: settings.environment == crate::settings::Environment::Production
            || public_url.starts_with("https://"),
        public_url,
        metrics_token: settings.server.metrics_token.clone(),
        trusted_proxies: crate::http::forwarded::TrustedProxies::new(
            settings.server.trusted_proxies.clone(),
        ),
    }
}

/// Enforcement as configured, with the shared cache tier when `REDIS_URL` is set.
pub fn enforce_options(settings: &Settings) -> EnforceOptions {
    let enforce = &settings.enforce;
    EnforceOptions {
        cache_ttl: CacheTtl {
            positive: enforce.membership_ttl,
            negative: enforce.negative_ttl,
        },
        policy_refresh: enforce.policy_refresh,
        admin_ttl: enforce.admin_ttl,
        check_retries: enforce.check_retries,
        check_retry_delay: enforce.check_retry_delay,
        limits: Limits {
            bot_sends_per_s: enforce.sends_per_s,
            bot_calls_per_s: enforce.calls_per_s,
            chat_sends_per_s: enforce.chat_sends_per_s,
            group_sends_per_min: enforce.group_sends_per_min,
            ..Limits::default()
        },
        timer_poll: enforce.timer_poll,
        health_interval: enforce.health_interval,
        redis_url: settings.redis.url.as_ref().map(|url| url.expose().clone()),
        check_page: settings
            .server
            .public_url
            .clone()
            .filter(|url| url.starts_with("https://")),
        ..EnforceOptions::default()
    }
}

/// The vault's keys as configured (see [`vault::resolve_keys`]): required in production, else
/// from (or generated into) the data directory's key file.
pub fn resolve_keys(settings: &Settings) -> anyhow::Result<(Vec<vault::EncryptionKey>, KeySource)> {
    vault::resolve_keys(
        &settings.vault.keys,
        settings.environment == crate::settings::Environment::Production,
        &settings.key_file(),
    )
}

/// The restart policy as configured (`fleet.*`); the jitter is the policy's own.
pub fn restart_policy(restart: &RestartSettings) -> RestartPolicy {
    RestartPolicy {
        initial_backoff: restart.initial_backoff,
        max_backoff: restart.max_backoff,
        stable_after: restart.stable_after,
        max_failures: restart.max_failures,
        window: restart.window,
        ..RestartPolicy::default()
    }
}

/// The fleet as configured: the shared HTTP client, the Bot API URL, the restart policy.
pub fn fleet_options(settings: &Settings, handler: Arc<dyn UpdateHandler>) -> FleetOptions {
    FleetOptions {
        api_url: settings.telegram.api_url.clone(),
        http: crate::telegram::http_client(),
        handler,
        policy: restart_policy(&settings.fleet.restart),
        poll_interval: settings.fleet.poll_interval,
        full_interval: settings.fleet.full_interval,
        event_capacity: 1024,
        runs_bots: true,
        leases: None,
        delivery: Delivery::Polling,
        alerts: None,
    }
}

/// Connects to the configured database and applies pending migrations.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    tracing::info!(
        backend = store.backend().as_str(),
        location = store.location(),
        "data is stored in {}",
        store.location()
    );
    Ok(store)
}

/// Like [`open_store`], but while the database answers that it cannot take connections for now
/// ([`crate::db::StoreError::is_passing`]: closed to connections, starting up, out of connections,
/// locked), waits and tries again (1 s doubling to 30 s) instead of exiting: a service restarted
/// during an outage comes up when the database does. Anything else fails at once.
pub async fn open_store_waiting(settings: &Settings) -> anyhow::Result<Store> {
    let mut pause = Duration::from_secs(1);
    loop {
        let opened = match Store::connect(&settings.database).await {
            Ok(store) => store.migrate().await.map(|()| store),
            Err(error) => Err(error),
        };
        match opened {
            Ok(store) => {
                tracing::info!(
                    backend = store.backend().as_str(),
                    location = store.location(),
                    "data is stored in {}",
                    store.location()
                );
                return Ok(store);
            }
            Err(error) if error.is_passing() => {
                tracing::warn!(%error, retry_in_s = pause.as_secs(), "the database cannot take connections yet; waiting for it");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Resolves the keys (generating one in local mode) and checks them against the store.
pub async fn open_vault(settings: &Settings, store: &Store) -> anyhow::Result<Vault> {
    let (keys, source) = resolve_keys(settings)?;
    match &source {
        KeySource::Configured => {
            tracing::info!(keys = keys.len(), "encryption keys from the configuration")
        }
        KeySource::KeyFile(path) => {
            tracing::info!(path = %path.display(), "encryption key from the key file")
        }
        KeySource::Generated(path) => tracing::warn!(
            path = %path.display(),
            "no encryption key configured: generated a new one into {}; back it up, stored bot tokens \
             cannot be decrypted without it (set ENCRYPTION_KEY in production)",
            path.display()
        ),
    }
    let vault = Vault::new(&keys);
    vault::check_store(&vault, store).await?;
    Ok(vault)
}
