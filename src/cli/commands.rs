//! One function per `nezuko` command.

use anyhow::Context;

use crate::app::{self, Application};
use crate::settings::{self, Settings};
use crate::telemetry;
use crate::vault::{self, EncryptionKey};

use super::{BenchTarget, Command, DeliveryMode};

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { role } => serve(role).await,
        Command::Migrate => migrate().await,
        Command::Backup { to } => backup(&to).await,
        Command::Keygen => keygen(),
        Command::CheckConfig => check_config(),
        Command::RotateKey => rotate_key().await,
        Command::LoginLink { user, minutes } => login_link(user, minutes).await,
        Command::Nodes => nodes().await,
        Command::Import(args) => {
            let settings = setup()?;
            super::import::run(args, &settings).await
        }
        Command::Bot(command) => {
            let settings = setup()?;
            super::bots::run(command, &settings).await
        }
        Command::Bench {
            target:
                BenchTarget::Fleet {
                    bots,
                    postgres,
                    sample,
                    mode,
                },
        } => {
            telemetry::init(&quiet_logs());
            super::bench_fleet::run(bots, postgres, sample, mode).await
        }
        Command::Bench {
            target:
                BenchTarget::Chaos {
                    postgres,
                    seconds,
                    rate,
                    kills,
                    outage,
                },
        } => {
            telemetry::init(&quiet_logs());
            let bench = super::bench_chaos::ChaosBench {
                postgres,
                seconds,
                rate,
                kills,
                outage_s: outage,
            };
            super::bench_chaos::run(bench).await
        }
        Command::Bench {
            target:
                BenchTarget::Verify {
                    postgres,
                    redis,
                    scenario,
                    seconds,
                    rate,
                    warmup,
                    restart_at,
                    after_restart,
                    keep,
                    mode,
                },
        } => {
            telemetry::init(&quiet_logs());
            let bench = super::bench_verify::VerifyBench {
                keep,
                postgres,
                redis,
                scenario,
                seconds,
                rate,
                warmup_s: warmup,
                restart_at,
                after_restart_s: after_restart,
                webhook: mode == DeliveryMode::Webhook,
            };
            super::bench_verify::run(bench).await
        }
        Command::Bench {
            target:
                BenchTarget::Failover {
                    postgres,
                    nodes,
                    scenario,
                    rate,
                    seconds,
                    warmup,
                    kill_at,
                    no_rolling,
                    settle,
                    keep,
                },
        } => {
            telemetry::init(&quiet_logs());
            let interrupted = shutdown_signal()?;
            super::bench_failover::run(
                super::bench_failover::FailoverBench {
                    postgres,
                    nodes,
                    scenario,
                    rate,
                    seconds,
                    warmup_s: warmup,
                    kill_at,
                    rolling: !no_rolling,
                    settle_s: settle,
                    keep,
                },
                interrupted,
            )
            .await
        }
        Command::Bench {
            target:
                BenchTarget::Api {
                    postgres,
                    rows,
                    samples,
                    sse_clients,
                    rate,
                    seconds,
                },
        } => {
            telemetry::init(&quiet_logs());
            let bench = super::bench_api::ApiBench {
                postgres,
                rows,
                samples,
                sse_clients,
                rate,
                seconds,
            };
            super::bench_api::run(bench).await
        }
        Command::Bench {
            target:
                BenchTarget::SseListen {
                    url,
                    cookie,
                    clients,
                    seconds,
                },
        } => super::bench_api::listen(url, cookie, clients, seconds).await,
        Command::Demo(args) => super::demo::run(args, shutdown_signal()?).await,
        Command::Sandbox(args) => {
            telemetry::init(&quiet_logs());
            super::sandbox::run(args, shutdown_signal()?).await
        }
        Command::Bench {
            target:
                BenchTarget::Sandbox {
                    bots,
                    clients,
                    seconds,
                    pin,
                    serve,
                    ..
                },
        } => {
            telemetry::init(&quiet_logs());
            if serve {
                super::bench_sandbox::serve(bots).await
            } else {
                super::bench_sandbox::run(bots, clients, seconds, pin).await
            }
        }
    }
}

/// Logging for tools that do not read the service's configuration.
fn quiet_logs() -> settings::LogSettings {
    // warp reports connections cut at shutdown as errors; for a tool that stops its server on purpose they are noise.
    settings::LogSettings {
        filter: "info,warp::server=off".into(),
        format: settings::LogFormat::Pretty,
        store_level: tracing::Level::INFO,
        retention: std::time::Duration::from_secs(14 * 86_400),
    }
}

/// Loads the settings and installs logging, the start of every command that touches the service.
fn setup() -> anyhow::Result<Settings> {
    let settings = settings::load()?;
    telemetry::init(&settings.log);
    Ok(settings)
}

async fn serve(role: Option<crate::app::Role>) -> anyhow::Result<()> {
    let settings = setup()?;
    let role = role.unwrap_or(settings.server.role);
    let shutdown = shutdown_signal()?;
    tracing::info!(
        environment = settings.environment.as_str(),
        role = role.as_str(),
        "starting nezuko {}",
        env!("CARGO_PKG_VERSION")
    );
    let app = Application::build_as(&settings, role).await?;
    if role.serves_api() {
        explain_first_sign_in(&settings, app.store()).await;
    }
    app.run_until_stopped(shutdown).await
}

/// On a service nobody can sign in to yet (no owner configured, no admin stored), says exactly
/// how to get in; with an owner but no other way in, points at `nezuko login-link`.
async fn explain_first_sign_in(settings: &Settings, store: &crate::db::Store) {
    let admins = match store.admins().await {
        Ok(admins) => admins.len(),
        // Not knowing, say nothing: the service itself reports the database's trouble.
        Err(_) => return,
    };
    let dashboard = settings.public_url();
    match settings.auth.owner_telegram_id {
        None if admins == 0 => tracing::warn!(
            "nobody can sign in to the dashboard yet: set BOT_OWNER_TELEGRAM_ID (auth.owner_telegram_id) \
             to your numeric Telegram user id (@userinfobot tells it) and restart, then run \
             `nezuko login-link` with the same configuration and open the one-time URL it prints \
             (it leads to {dashboard}/login)"
        ),
        Some(owner) if settings.auth.login_bot_token.is_none() => tracing::info!(
            owner,
            "to sign in to the dashboard at {dashboard}, run `nezuko login-link` with the same \
             configuration and open the one-time URL it prints (or set LOGIN_BOT_TOKEN for the \
             Telegram Login Widget)"
        ),
        _ => {}
    }
}

/// The nodes table as a table: one line a node, the gone ones marked.
async fn nodes() -> anyhow::Result<()> {
    let settings = setup()?;
    let store = app::open_store(&settings).await?;
    let nodes = store.nodes().await?;
    let bots = store.bots_per_node().await?;
    let location = store.location().to_string();
    store.close().await;
    if nodes.is_empty() {
        // The database is named: a missing DATABASE_URL reads the default SQLite file instead.
        say!("no nodes: no `nezuko serve` is running on {location}");
        return Ok(());
    }
    let now = crate::db::now_ms();
    say!(
        "{:<16}  {:<20} {:>8}  {:<5} {:<9} {:>5} {:<8} {:>10}  heartbeat",
        "node",
        "host",
        "pid",
        "role",
        "runs bots",
        "bots",
        "version",
        "up"
    );
    for node in nodes {
        let beat = (now - node.heartbeat_at).max(0) / 1000;
        say!(
            "{:<16}  {:<20} {:>8}  {:<5} {:<9} {:>5} {:<8} {:>9}s  {}",
            node.id,
            node.host,
            node.pid,
            node.role,
            match (node.runs_bots, node.alive(now)) {
                (true, true) => "yes",
                (true, false) => "-",
                (false, _) => "no",
            },
            bots.get(&node.id).copied().unwrap_or(0),
            node.version,
            (node.heartbeat_at - node.started_at).max(0) / 1000,
            if node.alive(now) {
                format!("{beat} s ago")
            } else {
                format!("{beat} s ago: gone")
            }
        );
    }
    Ok(())
}

async fn migrate() -> anyhow::Result<()> {
    let settings = setup()?;
    let store = app::open_store(&settings).await?;
    say!("migrations applied to {}", store.location());
    store.close().await;
    Ok(())
}

fn keygen() -> anyhow::Result<()> {
    say!("{}", EncryptionKey::generate().expose());
    Ok(())
}

fn check_config() -> anyhow::Result<()> {
    let settings = settings::load()?;
    say!(
        "configuration is valid (environment: {})",
        settings.environment.as_str()
    );
    say!("{settings:#?}");
    Ok(())
}

/// `nezuko backup --to FILE`: see [`super::Command::Backup`].
async fn backup(to: &std::path::Path) -> anyhow::Result<()> {
    let settings = setup()?;
    if to.exists() {
        anyhow::bail!(
            "{} exists already; a backup never overwrites a file, choose a new name",
            to.display()
        );
    }
    // Not migrated: a backup taken before an upgrade must be the database as it was.
    let store = crate::db::Store::connect(&settings.database).await?;
    if store.backend() == crate::db::Backend::Postgres {
        anyhow::bail!(
            "{} is PostgreSQL: back it up with `pg_dump --format=custom --file FILE \"$DATABASE_URL\"` \
             (restore with pg_restore), and keep ENCRYPTION_KEY with it",
            store.location()
        );
    }
    // The key must exist before the copy is worth anything; never make one up here.
    if settings.vault.keys.is_empty() && !settings.key_file().exists() {
        return Err(vault::KeyProblem(format!(
            "no encryption key: ENCRYPTION_KEY is unset and {} does not exist, so no backup of \
             this database could be read back",
            settings.key_file().display()
        ))
        .into());
    }
    let (keys, source) = crate::app::resolve_keys(&settings)?;
    store.copy_sqlite_to(to).await?;
    store.close().await;
    let copy = crate::db::Store::connect(&crate::db::DatabaseSettings {
        url: crate::db::DatabaseUrl::parse(&format!("sqlite://{}", to.display()))
            .map_err(|error| anyhow::anyhow!("{}: {}", to.display(), error.problem))?,
        ..settings.database.clone()
    })
    .await?;
    let integrity = copy.sqlite_integrity().await?;
    let checked = vault::check_store(&vault::Vault::new(&keys), &copy).await;
    let bots = copy.bot_ciphertexts().await.map(|tokens| tokens.len());
    copy.close().await;
    if integrity != "ok" {
        anyhow::bail!(
            "the copy at {} failed SQLite's integrity check: {integrity}",
            to.display()
        );
    }
    checked
        .with_context(|| format!("the copy at {} is not readable with the key", to.display()))?;
    let bots = bots?;
    say!(
        "backed up {} to {} ({bots} bot token(s), integrity ok)",
        settings.database.url,
        to.display()
    );
    match source {
        vault::KeySource::KeyFile(path) | vault::KeySource::Generated(path) => {
            let kept = key_copy_path(to);
            vault::replace_key_file(&kept, &keys)?;
            say!(
                "the key that decrypts it (from {}) is in {}: keep the two together, and apart from \
                 anyone who should not read the bot tokens",
                path.display(),
                kept.display()
            );
        }
        vault::KeySource::Configured => say!(
            "the key that decrypts it is ENCRYPTION_KEY (checked against the copy): keep it with \
             the backup, which is unreadable without it"
        ),
    }
    Ok(())
}

/// Where `backup` keeps a copy of the key file: `FILE.key` beside the backup.
fn key_copy_path(backup: &std::path::Path) -> std::path::PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".key");
    std::path::PathBuf::from(name)
}

async fn login_link(user: Option<i64>, minutes: u64) -> anyhow::Result<()> {
    let settings = setup()?;
    let store = app::open_store(&settings).await?;
    let Some(user) = user.or(settings.auth.owner_telegram_id) else {
        // Nobody to sign in as is a missing setting: exit 78 like any other.
        return Err(settings::ConfigError {
            key: "auth.owner_telegram_id".into(),
            origin: "BOT_OWNER_TELEGRAM_ID".into(),
            problem: "is not set and no --user was given, so there is nobody to sign in as".into(),
            expected:
                "your numeric Telegram user id (@userinfobot tells it), or --user ID of an admin"
                    .into(),
        }
        .into());
    };
    let allowed =
        settings.auth.owner_telegram_id == Some(user) || store.admin(user).await?.is_some();
    if !allowed {
        anyhow::bail!(
            "Telegram user {user} is neither the owner nor an admin; the owner can add admins in the dashboard"
        );
    }
    let url =
        crate::http::auth::create_login_link(&store, &settings.public_url(), user, minutes).await?;
    // A way in was made: the log says for whom and for how long, never the link itself.
    super::audit::record(
        &store,
        "session.login_link",
        crate::domain::AuditTarget::Session,
        Some(user.to_string()),
        None,
        Some(serde_json::json!({ "user": user, "valid_minutes": minutes })),
    )
    .await;
    store.close().await;
    say!("{url}");
    eprintln!("valid for {minutes} minute(s), once");
    Ok(())
}

/// With `ENCRYPTION_KEY=NEW,OLD`: every token to `NEW` (and, in local mode, the key file too, so
/// the service still starts once `ENCRYPTION_KEY` is unset). With only the local key file: a new
/// key in the file and every token moved to it.
async fn rotate_key() -> anyhow::Result<()> {
    let settings = setup()?;
    if settings.vault.keys.is_empty() && settings.environment == settings::Environment::Production {
        return Err(vault::KeyProblem(
            "no encryption key configured: set ENCRYPTION_KEY=NEW,OLD before rotating".into(),
        )
        .into());
    }
    let store = app::open_store(&settings).await?;
    // A running service holds the old keys in memory: a token it stores after the rotation (a bot
    // added, a token replaced) would be encrypted with a key no longer kept anywhere, and a bot it
    // starts would not decrypt its rotated token. So: only on a database no service runs on.
    let running = store.live_nodes().await?;
    if !running.is_empty() {
        store.close().await;
        anyhow::bail!(
            "stop the service first: {} running on this database ({}) keep the old key in memory and would store tokens no key opens",
            if running.len() == 1 {
                "a node is"
            } else {
                "nodes are"
            },
            running.join(", ")
        );
    }
    let (keys, source) = crate::app::resolve_keys(&settings)?;
    let result = match source {
        vault::KeySource::Configured => rotate_to_configured(&settings, &store, &keys).await,
        vault::KeySource::KeyFile(path) | vault::KeySource::Generated(path) => {
            rotate_in_key_file(&store, &path, &keys).await
        }
    };
    if result.is_ok() {
        super::audit::record(
            &store,
            "settings.rotate_key",
            crate::domain::AuditTarget::Settings,
            Some("encryption_key".into()),
            None,
            None,
        )
        .await;
    }
    store.close().await;
    result
}

/// Local mode without `ENCRYPTION_KEY`: a new key in the key file, every token moved to it.
async fn rotate_in_key_file(
    store: &crate::db::Store,
    path: &std::path::Path,
    keys: &[vault::EncryptionKey],
) -> anyhow::Result<()> {
    let (_, report) = vault::rotate_key_file(store, path, keys).await?;
    say!(
        "re-encrypted {} bot token(s) with a new key, now the only key in {}; back that file up \
         again (the old key is gone from it)",
        report.tokens,
        path.display()
    );
    Ok(())
}

/// Re-encrypts with the first configured key. In local mode a key file, if there is one, is what
/// `serve` falls back to without `ENCRYPTION_KEY`: it is made to hold the new key, or the next
/// start without the variable would refuse the rotated data.
async fn rotate_to_configured(
    settings: &settings::Settings,
    store: &crate::db::Store,
    keys: &[vault::EncryptionKey],
) -> anyhow::Result<()> {
    let report = vault::rotate(&vault::Vault::new(keys), store).await?;
    say!(
        "re-encrypted {} bot token(s) with the first key; keys after the first may now be removed",
        report.tokens
    );
    let key_file = settings.key_file();
    if settings.environment == settings::Environment::Local && key_file.exists() {
        vault::replace_key_file(&key_file, &keys[..1])?;
        say!(
            "{} now holds the new key too (the service reads it when ENCRYPTION_KEY is unset)",
            key_file.display()
        );
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed now, not when the future is first
/// polled, so a signal that arrives while the service is still starting is not lost (and does not
/// kill the process with the default action).
pub(super) fn shutdown_signal()
-> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("interrupted: shutting down"),
            _ = terminate.recv() => tracing::info!("terminated: shutting down"),
        }
    })
}
