//! `nezuko demo`: the whole platform on one machine with no Telegram account and no network. The
//! service runs as `serve` does, on a temporary SQLite store, against the sandbox Bot API in this
//! process; the load driver plays members of a few groups (joins, messages, button presses,
//! channel leaves) and one bot's token is revoked so the dashboard has a failure to show. It prints
//! a one-time login URL; Ctrl-C stops everything and deletes the temporary data.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::app::Application;
use crate::db::{DatabaseUrl, NewBot};
use crate::domain::{BotToken, DesiredState};
use crate::settings;
use crate::vault::EncryptionKey;
use nezuko_sandbox::driver::measure::Stopwatch;
use nezuko_sandbox::driver::{self, Mix, Scenario};
use nezuko_sandbox::{Sandbox, SandboxConfig};

/// The demo's owner: a Telegram user id no real account needs to have, as only login links are used.
const DEMO_OWNER: i64 = 1;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address of the dashboard (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Simulated member actions per second.
    #[arg(long, default_value_t = 4.0, value_parser = positive_rate)]
    pub rate: f64,
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate <= 1000.0 => Ok(rate),
        _ => Err("a number of actions per second above 0 and at most 1000".into()),
    }
}

/// A small world with enough non-subscribers that every flow shows up within a minute.
fn scenario(rate: f64) -> Scenario {
    Scenario {
        name: "demo".into(),
        bots: 3,
        groups: 6,
        channels_per_group: 1,
        channels: 3,
        members_per_group: 15,
        non_subscriber_share: 0.3,
        zipf_exponent: 1.0,
        rate,
        // The traffic runs until the demo is stopped.
        duration_s: f64::MAX,
        mix: Mix {
            message: 0.55,
            join: 0.2,
            channel_leave: 0.1,
            button: 0.15,
            join_request: 0.0,
        },
    }
}

pub async fn run(
    args: DemoArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("nezuko-demo-")
        .tempdir()
        .context("cannot create a temporary folder for the demo's database")?;
    let sandbox = Sandbox::new(SandboxConfig {
        call_log_capacity: 20_000,
        ..SandboxConfig::default()
    });
    let telegram = sandbox.spawn_local().await?;

    // Built-in defaults only: the demo must not pick up a production database or key.
    let mut settings = settings::load_from(scratch.path(), &HashMap::new())?;
    settings.data_dir = scratch.path().to_path_buf();
    let database = format!("sqlite://{}", scratch.path().join("demo.db").display());
    settings.database.url = DatabaseUrl::parse(&database)
        .map_err(|e| anyhow::anyhow!("{}: expected {}", e.problem, e.expected))?;
    settings.vault.keys = vec![EncryptionKey::generate()];
    settings.auth.owner_telegram_id = Some(DEMO_OWNER);
    settings.telegram.api_url = telegram.url();
    settings.server.listen = args.listen;
    crate::telemetry::init(&settings.log);

    let app = Application::build(&settings).await?;
    let stopwatch = Arc::new(Stopwatch::default());
    let plan_scenario = scenario(args.rate);
    let mut plan = driver::build_world(&sandbox, &plan_scenario, &telegram.url(), &stopwatch)?;
    super::bench_verify::store_plan(app.store(), app.vault(), &plan).await?;
    add_failing_bot(&app, &sandbox).await?;
    app.fleet().handle().reconcile_all();

    let url = format!("http://{}", app.local_addr());
    let login = crate::http::auth::create_login_link(app.store(), &url, DEMO_OWNER, 60).await?;
    println!(
        "\nNezuko demo: {} bots, {} groups, {} channels, simulated members at {}/s.\n\
         Sign in (one-time link, valid 60 minutes):\n\n    {login}\n\n\
         Ctrl-C stops the demo and deletes its data ({}).\n",
        plan.bots.len() + 1,
        plan.groups.len(),
        plan.channels.len(),
        args.rate,
        scratch.path().display(),
    );
    let traffic = {
        let sandbox = sandbox.clone();
        tokio::spawn(async move {
            driver::drive(
                &sandbox,
                &mut plan,
                &plan_scenario,
                stopwatch,
                Duration::ZERO,
            )
            .await
        })
    };
    let outcome = app.run_until_stopped(shutdown).await;
    traffic.abort();
    drop(telegram);
    outcome
}

/// A bot whose token Telegram no longer accepts: the fleet parks it as `invalid token`.
async fn add_failing_bot(app: &Application, sandbox: &Sandbox) -> anyhow::Result<()> {
    let bot = sandbox.create_bot("Retired Guard", "retired_guard_bot");
    let token = BotToken::parse(&bot.token).map_err(|e| anyhow::anyhow!("sandbox token: {e}"))?;
    app.store()
        .insert_bot(&NewBot {
            telegram_bot_id: bot.id,
            username: bot.username.clone(),
            display_name: "Retired Guard".into(),
            token_ciphertext: app.vault().encrypt_token(&token),
            owner_telegram_id: None,
            desired_state: DesiredState::Enabled,
        })
        .await?;
    sandbox.revoke_token(bot.id)?;
    Ok(())
}
