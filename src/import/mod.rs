//! `nezuko import`: brings the original Python platform's database over into Nezuko's, read-only
//! on the original, in one transaction on Nezuko's, idempotently (the seed's
//! `original-schema.md` describes the original database, its shapes and its pitfalls).
//!
//! Everything that can refuse the import is checked before Nezuko's database is opened: the
//! original can be read and is the original's ([`source`]), the configured encryption key opens
//! its bot tokens, the operator's choices name real bots. Then the owner of each group is decided
//! ([`owners`]), the rows are mapped ([`plan`]) and written ([`crate::db::Store::apply_import`]).

mod owners;
mod plan;
mod report;
mod source;
mod times;

use std::collections::BTreeMap;

use anyhow::Context;
use teloxide::prelude::Requester;

use crate::db::import::{Applied, ImportBot};
use crate::db::{DatabaseUrl, Store};
use crate::domain::BotToken;
use crate::settings::Settings;
use crate::vault::{self, KeyProblem, Vault, VaultError};

pub use plan::{Choices, Skip};
pub use report::Report;
pub use source::SourceError;

/// What `nezuko import` was asked to do.
#[derive(Debug)]
pub struct ImportOptions {
    /// The original database (its SQLite file or PostgreSQL database; SQLAlchemy URLs accepted).
    pub from: DatabaseUrl,
    /// Do everything in a transaction that is rolled back: the report says what an import would do.
    pub dry_run: bool,
    /// The original's standalone `BOT_TOKEN`: the bot that served every group.
    pub bot_token_for_groups: Option<BotToken>,
    /// Groups whose bot the operator chose: chat id → a bot's Telegram id or @username.
    pub group_bots: Vec<(i64, String)>,
    pub choices: Choices,
}

/// Imports as `options` say into the database `settings` configure, and reports what it did.
///
/// Errors (nothing written): the original unreachable, missing or not the original's
/// ([`SourceError`]); a key that does not open its bot tokens ([`KeyProblem`]); a
/// `--bot-token-for-groups` Telegram refuses; a `--group-bot` naming no bot; Nezuko's database
/// unreachable or holding data another key encrypted.
pub async fn run(settings: &Settings, options: ImportOptions) -> anyhow::Result<Report> {
    let original = source::read(&options.from, settings.database.connect_timeout).await?;
    let vault = Vault::new(&keys(settings, !original.bots.is_empty())?);
    let api_url: reqwest::Url = settings
        .telegram
        .api_url
        .parse()
        .context("telegram.api_url is not a URL")?;
    let now = crate::db::now_ms();

    let CheckedBots {
        mut bots,
        mut tokens,
        skips: bot_skips,
    } = checked_bots(&original, &vault, now)?;
    let standalone = match &options.bot_token_for_groups {
        Some(token) => {
            let id = standalone_bot(token, &vault, &api_url, &mut bots, now).await?;
            tokens.insert(id, token.clone());
            Some(id)
        }
        None => None,
    };
    let mut candidates: Vec<owners::Candidate> = Vec::new();
    for bot in &bots {
        if let Some(token) = tokens.get(&bot.telegram_bot_id) {
            candidates.push(owners::Candidate {
                telegram_bot_id: bot.telegram_bot_id,
                username: bot.username.clone(),
                token: token.clone(),
            });
        }
    }
    let chosen = chosen_bots(&options.group_bots, &candidates)?;
    // §5: the only bot, or the only active one; otherwise the active bots are asked about.
    let active: Vec<owners::Candidate> = candidates
        .iter()
        .filter(|c| {
            bots.iter()
                .any(|b| b.telegram_bot_id == c.telegram_bot_id && b.enabled)
        })
        .cloned()
        .collect();
    let askable = if candidates.len() > 1 && !active.is_empty() {
        active
    } else {
        candidates.clone()
    };
    let groups: Vec<i64> = original
        .groups
        .iter()
        .filter_map(|g| g.int("group_id"))
        .collect();
    let decided = owners::decide(
        &groups,
        &askable,
        &owners::Rules { chosen, standalone },
        &api_url,
    )
    .await;
    let plan = plan::build(&original, bots, bot_skips, &decided, &options.choices, now);

    let store = crate::app::open_store(settings).await?;
    let applied = write(&store, &vault, &plan, options.dry_run).await;
    let target = store.location().to_string();
    store.close().await;
    let applied = applied?;
    Ok(Report::new(
        &original,
        &plan,
        &decided,
        applied,
        target,
        options.dry_run,
    ))
}

async fn write(
    store: &Store,
    vault: &Vault,
    plan: &plan::Plan,
    dry_run: bool,
) -> anyhow::Result<Applied> {
    vault::check_store(vault, store).await?;
    Ok(store.apply_import(&plan.set, dry_run).await?)
}

/// The keys to open the original's tokens with: the configured ones, else the key file of a
/// local Nezuko. A key is never generated while the original holds tokens (a new key cannot
/// open them, and the generated file would be a write before the refusal).
fn keys(
    settings: &Settings,
    original_has_tokens: bool,
) -> anyhow::Result<Vec<vault::EncryptionKey>> {
    if settings.vault.keys.is_empty() && original_has_tokens && !settings.key_file().exists() {
        return Err(KeyProblem(
            "no encryption key is configured, and the original's bot tokens are encrypted: set ENCRYPTION_KEY \
             to the original platform's ENCRYPTION_KEY (its apps/api/.env or root .env)"
                .into(),
        )
        .into());
    }
    Ok(crate::app::resolve_keys(settings)?.0)
}

/// The original's bots as Nezuko's, each token opened with `vault` (and kept as it is: the vault
/// reads Fernet ciphertexts as Python's `cryptography` wrote them). Returns the bots, their tokens
/// by Telegram id, and why others were left out.
///
/// Errors: [`KeyProblem`] when any token does not decrypt: a wrong key is never half-imported.
fn checked_bots(
    original: &source::Original,
    vault: &Vault,
    now: i64,
) -> anyhow::Result<CheckedBots> {
    let mut bots = Vec::new();
    let mut tokens = BTreeMap::new();
    let mut skips = Vec::new();
    let mut locked = Vec::new();
    for row in &original.bots {
        let (Some(bot_id), Some(ciphertext)) = (row.int("bot_id"), row.text("token_encrypted"))
        else {
            skips.push("no bot_id or token".to_string());
            continue;
        };
        let username = row
            .text("bot_username")
            .map(|u| u.trim().trim_start_matches('@').to_string())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| format!("bot{bot_id}"));
        let token = match vault.decrypt_token(&ciphertext) {
            Ok(token) => token,
            Err(VaultError::WrongKey) => {
                locked.push(format!("@{username}"));
                continue;
            }
            Err(VaultError::NotAToken) => {
                skips.push("its token decrypts, but not to a bot token".to_string());
                continue;
            }
        };
        if token.bot_id() != bot_id {
            skips.push("its token belongs to another bot than its bot_id".to_string());
            continue;
        }
        tokens.insert(bot_id, token);
        bots.push(ImportBot {
            telegram_bot_id: bot_id,
            display_name: row
                .text("bot_name")
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| username.clone()),
            username,
            token_ciphertext: ciphertext.trim().to_string(),
            owner_telegram_id: row.int("owner_telegram_id"),
            enabled: row.flag("is_active", true),
            created_at: row
                .text("created_at")
                .and_then(|t| times::parse_ms(&t))
                .unwrap_or(now),
        });
    }
    if !locked.is_empty() {
        return Err(KeyProblem(format!(
            "the configured encryption key does not open the original's bot tokens ({} of {}: {}): it is not the \
             ENCRYPTION_KEY the original platform encrypted them with. Set ENCRYPTION_KEY to the original's key \
             (its apps/api/.env or root .env), or, if this Nezuko already keeps tokens under its own key, to both \
             (ENCRYPTION_KEY=NEZUKO_KEY,ORIGINAL_KEY); nothing was imported",
            locked.len(),
            original.bots.len(),
            locked.join(", ")
        ))
        .into());
    }
    Ok(CheckedBots {
        bots,
        tokens,
        skips,
    })
}

/// The original's bots whose tokens opened, their tokens by Telegram id, and why others did not
/// come along.
struct CheckedBots {
    bots: Vec<ImportBot>,
    tokens: BTreeMap<i64, BotToken>,
    skips: Vec<String>,
}

/// The bot of the original's standalone `BOT_TOKEN` (getMe says who it is): a bot of the
/// original already listed, or a new one, encrypted with `vault`. Returns its Telegram id.
async fn standalone_bot(
    token: &BotToken,
    vault: &Vault,
    api_url: &reqwest::Url,
    bots: &mut Vec<ImportBot>,
    now: i64,
) -> anyhow::Result<i64> {
    let bot = teloxide::Bot::with_client(token.expose(), crate::telegram::http_client())
        .set_api_url(api_url.clone());
    let me = bot.get_me().await.map_err(|error| {
        anyhow::anyhow!(
            "Telegram did not accept the token of --bot-token-for-groups ({}); nothing was imported",
            crate::telegram::classify(&error)
        )
    })?;
    let id = token.bot_id();
    if !bots.iter().any(|b| b.telegram_bot_id == id) {
        bots.push(ImportBot {
            telegram_bot_id: id,
            username: me.username().to_string(),
            display_name: me.first_name.clone(),
            token_ciphertext: vault.encrypt_token(token),
            owner_telegram_id: None,
            enabled: true,
            created_at: now,
        });
    }
    Ok(id)
}

/// `--group-bot CHAT=BOT` as chat id → Telegram bot id, BOT being a bot's Telegram id or
/// @username among the bots imported.
fn chosen_bots(
    specs: &[(i64, String)],
    candidates: &[owners::Candidate],
) -> anyhow::Result<BTreeMap<i64, i64>> {
    let mut chosen = BTreeMap::new();
    for (chat, bot) in specs {
        let wanted = bot.trim().trim_start_matches('@');
        let found = candidates.iter().find(|c| {
            c.username.eq_ignore_ascii_case(wanted) || c.telegram_bot_id.to_string() == wanted
        });
        let Some(found) = found else {
            let known: Vec<String> = candidates
                .iter()
                .map(|c| format!("@{}", c.username))
                .collect();
            anyhow::bail!(
                "--group-bot {chat}={bot}: no such bot among those imported ({}); nothing was imported",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        };
        chosen.insert(*chat, found.telegram_bot_id);
    }
    Ok(chosen)
}
