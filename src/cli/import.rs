//! `nezuko import --from URL`: the original platform's database into Nezuko's (see
//! [`crate::import`]); prints the report, as text or one JSON object.

use std::io::Read;

use anyhow::Context;

use crate::db::DatabaseUrl;
use crate::domain::{AuditTarget, BotToken};
use crate::import::{Choices, ImportOptions};
use crate::settings::Settings;

/// `nezuko import`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The original database, read only: its SQLite file (`sqlite:///abs/path/nezuko.db`, or as
    /// SQLAlchemy writes it, `sqlite+aiosqlite:///relative.db` / `sqlite+aiosqlite:////abs.db`)
    /// or PostgreSQL database (`postgresql+asyncpg://…`).
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Do it all and roll it back (on a copy of a SQLite target): the report says what an import
    /// would do, and nothing is written.
    #[arg(long)]
    pub dry_run: bool,
    /// The original bot's BOT_TOKEN (its apps/bot/.env) if it ran standalone: every group is that
    /// bot's. `-` reads it from standard input, which keeps it out of shell history.
    #[arg(long, value_name = "TOKEN|-")]
    pub bot_token_for_groups: Option<String>,
    /// Which bot enforces a group the import cannot decide: CHAT_ID=@username or =BOT_ID.
    /// Repeatable.
    #[arg(long, value_name = "CHAT=BOT", value_parser = group_bot, allow_hyphen_values = true)]
    pub group_bot: Vec<(i64, String)>,
    /// Let groups fail open (Nezuko's default) instead of keeping the original's fail-closed.
    #[arg(long)]
    pub fail_open: bool,
    /// Bring the original's admin users too: each can then sign in to the dashboard with full access.
    #[arg(long)]
    pub include_admins: bool,
    /// Bring the original's verification_log (usually synthetic: its bot never wrote it).
    #[arg(long)]
    pub include_verifications: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn group_bot(input: &str) -> Result<(i64, String), String> {
    let (chat, bot) = input
        .split_once('=')
        .ok_or_else(|| format!("`{input}` is not CHAT_ID=BOT (e.g. -1001234567890=@my_bot)"))?;
    let chat = chat
        .trim()
        .parse::<i64>()
        .map_err(|_| format!("`{chat}` is not a chat id (e.g. -1001234567890)"))?;
    let bot = bot.trim();
    if bot.trim_start_matches('@').is_empty() {
        return Err(format!("`{input}` names no bot"));
    }
    Ok((chat, bot.to_string()))
}

pub async fn run(args: ImportArgs, settings: &Settings) -> anyhow::Result<()> {
    let from = DatabaseUrl::parse(&args.from)
        .map_err(|e| anyhow::anyhow!("--from: {}; expected {}", e.problem, e.expected))?;
    let token = match args.bot_token_for_groups.as_deref() {
        None => None,
        Some(given) => {
            let text = if given == "-" {
                let mut input = String::new();
                std::io::stdin()
                    .read_to_string(&mut input)
                    .context("cannot read the token from standard input")?;
                input
            } else {
                given.to_string()
            };
            Some(BotToken::parse(&text).map_err(|e| {
                anyhow::anyhow!("--bot-token-for-groups does not hold a bot token: {e}")
            })?)
        }
    };
    let options = ImportOptions {
        from,
        dry_run: args.dry_run,
        bot_token_for_groups: token,
        group_bots: args.group_bot,
        choices: Choices {
            fail_open: args.fail_open,
            include_admins: args.include_admins,
            include_verifications: args.include_verifications,
        },
    };
    let report = crate::import::run(settings, options).await?;
    if !report.dry_run && report.added > 0 {
        let store = crate::app::open_store(settings).await?;
        super::audit::record(
            &store,
            "import.original",
            AuditTarget::Import,
            None,
            None,
            Some(serde_json::json!({ "source": report.source, "tables": report.tables })),
        )
        .await;
        store.close().await;
    }
    if args.json {
        say!("{}", serde_json::to_string(&report)?);
    } else {
        for line in report.lines() {
            say!("{line}");
        }
    }
    Ok(())
}
