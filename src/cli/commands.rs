//! One function per `nezuko` command.

use crate::app::{self, Application};
use crate::settings::{self, Settings};
use crate::telemetry;
use crate::vault::{self, EncryptionKey};

use super::Command;

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::Keygen => keygen(),
        Command::CheckConfig => check_config(),
        Command::RotateKey => rotate_key().await,
    }
}

/// Loads the settings and installs logging, the start of every command that touches the service.
fn setup() -> anyhow::Result<Settings> {
    let settings = settings::load()?;
    telemetry::init(&settings.log);
    Ok(settings)
}

async fn serve() -> anyhow::Result<()> {
    let settings = setup()?;
    tracing::info!(
        environment = settings.environment.as_str(),
        "starting nezuko {}",
        env!("CARGO_PKG_VERSION")
    );
    let app = Application::build(&settings).await?;
    app.run_until_stopped(shutdown_signal()).await
}

async fn migrate() -> anyhow::Result<()> {
    let settings = setup()?;
    let store = app::open_store(&settings).await?;
    println!("migrations applied to {}", store.location());
    store.close().await;
    Ok(())
}

fn keygen() -> anyhow::Result<()> {
    println!("{}", EncryptionKey::generate().expose());
    Ok(())
}

fn check_config() -> anyhow::Result<()> {
    let settings = settings::load()?;
    println!(
        "configuration is valid (environment: {})",
        settings.environment.as_str()
    );
    println!("{settings:#?}");
    Ok(())
}

async fn rotate_key() -> anyhow::Result<()> {
    let settings = setup()?;
    if settings.vault.keys.is_empty() && settings.environment == settings::Environment::Production {
        anyhow::bail!("no encryption key configured: set ENCRYPTION_KEY=NEW,OLD before rotating");
    }
    let store = app::open_store(&settings).await?;
    let (keys, _) = vault::resolve_keys(&settings)?;
    let vault = vault::Vault::new(&keys);
    let report = vault::rotate(&vault, &store).await?;
    store.close().await;
    println!(
        "re-encrypted {} bot token(s) with the first key; keys after the first may now be removed",
        report.tokens
    );
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM; only Ctrl-C will stop the service");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => tracing::info!("interrupted: shutting down"),
            _ = terminate.recv() => tracing::info!("terminated: shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
