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
    let vault = Vault::new(&keys(settings, !original.bots.is_empty(), options.dry_run)?);
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
        resealed,
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
    let groups: Vec<i64> = original
        .groups
        .iter()
        .filter_map(|g| g.int("group_id"))
        .collect();
    let chosen = chosen_bots(&options.group_bots, &candidates, &groups)?;
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
    let mut channels: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for link in &original.links {
        if let (Some(group), Some(channel)) = (link.int("group_id"), link.int("channel_id")) {
            channels.entry(group).or_default().push(channel);
        }
    }
    let decided = owners::decide(
        &groups,
        &channels,
        &askable,
        &owners::Rules {
            chosen,
            standalone,
            names: candidates
                .iter()
                .map(|c| (c.telegram_bot_id, c.username.clone()))
                .collect(),
        },
        &api_url,
    )
    .await;
    let mut plan = plan::build(&original, bots, bot_skips, &decided, &options.choices, now);
    if resealed > 0 {
        plan.notes.push(format!(
            "{resealed} bot token(s) were encrypted again with the first key of ENCRYPTION_KEY (the original's key, configured after it, opened them); the original's key can be dropped after the import"
        ));
    }

    // What follows needs only the plan; a large history is not kept twice.
    let mut original = original;
    for rows in [
        &mut original.audit,
        &mut original.api_calls,
        &mut original.verifications,
    ] {
        *rows = Vec::new();
    }
    let target = settings.database.url.redacted();
    // A dry run of a SQLite target works on a copy, so even a migration or the first key check
    // leaves the real file as it was (or absent).
    let scratch = tempfile::tempdir().context("cannot make a scratch directory for the dry run")?;
    let mut settings = settings.clone();
    if options.dry_run
        && let DatabaseUrl::Sqlite { path } = &settings.database.url
        && path.as_os_str() != ":memory:"
    {
        let copy = scratch.path().join("dry-run.db");
        if path.exists() {
            crate::db::snapshot_sqlite(path, &copy).await?;
        }
        settings.database.url = DatabaseUrl::Sqlite { path: copy };
    }
    let store = crate::app::open_store(&settings).await?;
    let applied = write(&store, &vault, &plan, options.dry_run).await;
    let undecided: Vec<i64> = decided
        .iter()
        .filter(|(_, owner)| matches!(owner, owners::Owner::Undecided(_)))
        .map(|(chat, _)| *chat)
        .collect();
    let settled = store.protected_chats(&undecided).await;
    store.close().await;
    let mut applied = applied?;
    // A group left undecided this time that an earlier run (or an admin) put under a bot is no
    // longer the operator's to settle.
    for (chat, bot) in settled? {
        let prefix = format!("group {chat} ");
        plan.attention.retain(|line| !line.starts_with(&prefix));
        if let Some(skip) = plan
            .skipped
            .iter_mut()
            .find(|s| s.table == "protected_groups" && s.why.starts_with("left to you"))
        {
            skip.count -= 1;
        }
        applied.groups.present += 1;
        plan.notes.push(format!(
            "group {chat} is in Nezuko already, under @{bot}: left as it is"
        ));
    }
    plan.skipped.retain(|s| s.count > 0);
    settle(&mut plan, &applied);
    Ok(Report::new(
        &original,
        &plan,
        &decided,
        applied,
        target,
        options.dry_run,
    ))
}

/// What needs the operator as Nezuko holds the import's groups after it (not as the original
/// had them): a re-run finds groups and bots already there, perhaps in another state.
fn settle(plan: &mut plan::Plan, applied: &Applied) {
    let listed = |groups: &[(i64, String)]| {
        groups
            .iter()
            .map(|(chat, title)| format!("{chat} {}", plan::shown(title)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !applied.added_disabled.is_empty() {
        plan.attention.push(format!(
            "{} group(s) arrive disabled as the original recorded ({}); the original still enforced disabled groups on joins and messages, so enable them in the dashboard to keep that",
            applied.added_disabled.len(),
            listed(&applied.added_disabled)
        ));
    }
    let mut by_bot: BTreeMap<&str, Vec<(i64, String)>> = BTreeMap::new();
    for (chat, title, bot) in &applied.under_disabled_bot {
        by_bot.entry(bot).or_default().push((*chat, title.clone()));
    }
    for (bot, groups) in by_bot {
        plan.attention.push(format!(
            "{} group(s) are under @{bot}, which is disabled, so they are not protected until you enable it: {}",
            groups.len(),
            listed(&groups)
        ));
    }
    if !applied.requiring_nothing.is_empty() {
        plan.attention.push(format!(
            "{} group(s) require no channel, so nothing is enforced there until one is added: {}",
            applied.requiring_nothing.len(),
            listed(&applied.requiring_nothing)
        ));
    }
    for (chat, bot) in &applied.kept_elsewhere {
        plan.notes.push(format!(
            "group {chat} is in Nezuko already, under @{bot}: left as it is"
        ));
    }
    if applied.calls_unattributed > 0 {
        plan.notes.push(format!(
            "{} API call(s) name a chat no imported group or channel tells the bot of (the original kept no bot id): they count in the charts' totals under no bot, until a run that can tell their bot (--bot-token-for-groups, --group-bot, Telegram answering) moves them",
            applied.calls_unattributed
        ));
    }
}

async fn write(
    store: &Store,
    vault: &Vault,
    plan: &plan::Plan,
    dry_run: bool,
) -> anyhow::Result<Applied> {
    if dry_run {
        vault::check_store_unrecorded(vault, store).await?;
    } else {
        vault::check_store(vault, store).await?;
        // A running service would wait on the import's write lock (SQLite) and start what it
        // brings half way through; the guide says to import first, then start.
        let running = store.live_nodes().await?;
        if !running.is_empty() {
            anyhow::bail!(
                "stop the service first: {} running on {} ({}); import, then start it; nothing was imported",
                if running.len() == 1 {
                    "a node is"
                } else {
                    "nodes are"
                },
                store.location(),
                running.join(", ")
            );
        }
    }
    Ok(store.apply_import(&plan.set, dry_run).await?)
}

/// The keys to open the original's tokens with: the configured ones, else the key file of a
/// local Nezuko. A key is never generated while the original holds tokens (a new key cannot
/// open them, and the generated file would be a write before the refusal).
fn keys(
    settings: &Settings,
    original_has_tokens: bool,
    dry_run: bool,
) -> anyhow::Result<Vec<vault::EncryptionKey>> {
    let unconfigured = settings.vault.keys.is_empty() && !settings.key_file().exists();
    if unconfigured && dry_run && !original_has_tokens {
        // What the real run would generate; a dry run writes no key file.
        return Ok(vec![vault::EncryptionKey::generate()]);
    }
    if unconfigured && original_has_tokens {
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
    let mut resealed = 0;
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
                skips.push(format!(
                    "@{username} ({bot_id}): its token decrypts, but not to a bot token"
                ));
                continue;
            }
        };
        if token.bot_id() != bot_id {
            skips.push(format!(
                "@{username} ({bot_id}): its token belongs to bot {}, not to its bot_id",
                token.bot_id()
            ));
            continue;
        }
        bots.push(ImportBot {
            telegram_bot_id: bot_id,
            display_name: row
                .text("bot_name")
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| username.clone()),
            username,
            // Kept as the original wrote it when the first key opens it; otherwise sealed again
            // with the first key, so the original's key, configured after it, can be dropped later.
            token_ciphertext: if vault.opens_with_first(&ciphertext) {
                ciphertext.trim().to_string()
            } else {
                resealed += 1;
                vault.encrypt_token(&token)
            },
            owner_telegram_id: row.int("owner_telegram_id"),
            enabled: row.flag("is_active", true),
            created_at: row
                .text("created_at")
                .and_then(|t| times::parse_ms(&t))
                .unwrap_or(now),
        });
        tokens.insert(bot_id, token);
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
        resealed,
    })
}

/// The original's bots whose tokens opened, their tokens by Telegram id, and why others did not
/// come along.
struct CheckedBots {
    bots: Vec<ImportBot>,
    tokens: BTreeMap<i64, BotToken>,
    skips: Vec<String>,
    /// Tokens the first key did not open, encrypted again with it.
    resealed: usize,
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
    let me = bot.get_me().await.map_err(|error| match error {
        teloxide::RequestError::Api(_) => anyhow::anyhow!(
            "Telegram did not accept the token of --bot-token-for-groups ({}); nothing was imported",
            crate::telegram::classify(&error)
        ),
        _ => anyhow::anyhow!(
            "cannot ask Telegram ({api_url}) about the token of --bot-token-for-groups: {}; nothing was imported",
            crate::telegram::classify(&error)
        ),
    })?;
    let id = token.bot_id();
    // It ran every group: it runs them here too, even if the dashboard listed it inactive (as it
    // had to, or the two would have polled one token).
    if let Some(listed) = bots.iter_mut().find(|b| b.telegram_bot_id == id) {
        listed.enabled = true;
    } else {
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
/// @username among the bots imported, CHAT one of the original's `groups`, each named once.
fn chosen_bots(
    specs: &[(i64, String)],
    candidates: &[owners::Candidate],
    groups: &[i64],
) -> anyhow::Result<BTreeMap<i64, i64>> {
    let mut chosen = BTreeMap::new();
    for (chat, bot) in specs {
        if !groups.contains(chat) {
            anyhow::bail!(
                "--group-bot {chat}={bot}: the original protects no group {chat}; nothing was imported"
            );
        }
        if chosen.contains_key(chat) {
            anyhow::bail!(
                "--group-bot names group {chat} twice; one bot per group; nothing was imported"
            );
        }
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
