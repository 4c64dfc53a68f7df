//! `nezuko bot …`: manage bot instances in the database. A running service picks every change up
//! through its registry (at once on PostgreSQL, within the poll interval on SQLite).

use std::io::Read;

use anyhow::{Context, bail};
use clap::Subcommand;
use teloxide::prelude::Requester;

use crate::app;
use crate::db::{NewBot, Store};
use crate::domain::{BotToken, DesiredState};
use crate::settings::Settings;
use crate::vault::{self, Vault};

#[derive(Debug, Subcommand)]
pub enum BotCommand {
    /// List every bot with its desired and observed state.
    List,
    /// Add a bot: the token is read from standard input (so it stays out of shell history),
    /// checked with getMe, and stored encrypted.
    Add {
        /// Add it disabled (it will not start until enabled).
        #[arg(long)]
        disabled: bool,
    },
    /// Enable a bot and start it, also after it was parked as failed or with an invalid token.
    Enable { id: i64 },
    /// Disable a bot: it stops gracefully.
    Disable { id: i64 },
    /// Restart a bot: a graceful stop, then a start.
    Restart { id: i64 },
}

pub async fn run(command: BotCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = app::open_store(settings).await?;
    let outcome = match command {
        BotCommand::List => list(&store).await,
        BotCommand::Add { disabled } => add(&store, settings, disabled).await,
        BotCommand::Enable { id } => {
            let before = store.bot(id).await?;
            let row = store.request_bot_start(id).await?;
            changed(&store, "bot.enable", &before, &row).await;
            if before.is_up() {
                report(
                    row,
                    "already running; nothing changes (`restart` starts it afresh)",
                )
            } else {
                report(row, "enabled; it starts shortly")
            }
        }
        BotCommand::Disable { id } => {
            let before = store.bot(id).await?;
            let row = store.set_desired_state(id, DesiredState::Disabled).await?;
            changed(&store, "bot.disable", &before, &row).await;
            // No running node may be left to do it (see `webhooks::delete_webhook_of`).
            let (keys, _) = crate::app::resolve_keys(settings)?;
            let deleted = crate::webhooks::delete_webhook_of(
                &store,
                &Vault::new(&keys),
                &crate::telegram::http_client(),
                &settings.telegram.api_url,
                id,
            )
            .await;
            report(
                row,
                if deleted {
                    "disabled (its webhook deleted); it stops shortly"
                } else {
                    "disabled; it stops shortly"
                },
            )
        }
        BotCommand::Restart { id } => {
            let before = store.bot(id).await?;
            let row = store.request_bot_restart(id).await?;
            changed(&store, "bot.restart", &before, &row).await;
            report(row, "restarting")
        }
    };
    store.close().await;
    outcome
}

/// Audits a change of one bot, as the dashboard's actions are (same action names).
async fn changed(
    store: &Store,
    action: &str,
    before: &crate::db::BotRow,
    after: &crate::db::BotRow,
) {
    super::audit::record(
        store,
        action,
        crate::domain::AuditTarget::Bot,
        Some(after.id.to_string()),
        Some(super::audit::bot(before)),
        Some(super::audit::bot(after)),
    )
    .await;
}

fn report(bot: crate::db::BotRow, what: &str) -> anyhow::Result<()> {
    say!("bot {} (@{}) {what}", bot.id, bot.username);
    Ok(())
}

async fn list(store: &Store) -> anyhow::Result<()> {
    let bots = store.bots().await?;
    if bots.is_empty() {
        say!("no bots yet: add one with `nezuko bot add` (token on standard input)");
        return Ok(());
    }
    // Which node runs each (`nezuko nodes` tells the nodes apart); "-" for none.
    let runners = store.bot_runners().await?;
    say!(
        "{:>4}  {:<24} {:<9} {:<9} {:>8}  {:<16}  reason",
        "id",
        "bot",
        "desired",
        "state",
        "restarts",
        "node"
    );
    for bot in bots {
        say!(
            "{:>4}  {:<24} {:<9} {:<9} {:>8}  {:<16}  {}",
            bot.id,
            format!("@{}", bot.username),
            bot.desired_state.as_str(),
            bot.run_state.as_str(),
            bot.restart_count,
            runners.get(&bot.id).map_or("-", String::as_str),
            bot.run_reason.unwrap_or_default()
        );
    }
    Ok(())
}

async fn add(store: &Store, settings: &Settings, disabled: bool) -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the token from standard input")?;
    let token = BotToken::parse(&input)
        .map_err(|e| anyhow::anyhow!("standard input does not hold a bot token: {e}"))?;
    let (keys, _) = crate::app::resolve_keys(settings)?;
    let vault = Vault::new(&keys);
    vault::check_store(&vault, store).await?;
    let api_url = settings
        .telegram
        .api_url
        .parse()
        .context("telegram.api_url is not a URL")?;
    let bot = teloxide::Bot::with_client(token.expose(), crate::telegram::http_client())
        .set_api_url(api_url);
    let me = match bot.get_me().await {
        Ok(me) => me,
        Err(error) => bail!(
            "Telegram did not accept the token ({})",
            crate::telegram::classify(&error)
        ),
    };
    let row = store
        .insert_bot(&NewBot {
            telegram_bot_id: token.bot_id(),
            username: me.username().to_string(),
            display_name: me.first_name.clone(),
            token_ciphertext: vault.encrypt_token(&token),
            owner_telegram_id: settings.auth.owner_telegram_id,
            desired_state: if disabled {
                DesiredState::Disabled
            } else {
                DesiredState::Enabled
            },
        })
        .await?;
    super::audit::record(
        store,
        "bot.add",
        crate::domain::AuditTarget::Bot,
        Some(row.id.to_string()),
        None,
        Some(super::audit::bot(&row)),
    )
    .await;
    say!(
        "added bot {} (@{}), {}",
        row.id,
        row.username,
        row.desired_state.as_str()
    );
    Ok(())
}
