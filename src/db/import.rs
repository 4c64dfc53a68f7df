//! Writing what `nezuko import` (`src/import/`) brings over from the original platform, in one
//! transaction: all of it lands, or none of it.
//!
//! Every row is matched before it is added, so a second import of the same database adds nothing:
//! bots by Telegram bot id, groups by (bot, chat id), channels by chat id, links by both ends,
//! admins by Telegram user id; the history tables (audit log, API calls, verifications), which
//! have no natural key, by the original's own row id recorded in `imported_rows`. A dry run does
//! the same work and rolls it back, so what it reports is what an import would do.

use std::collections::{HashMap, HashSet};

use sqlx::QueryBuilder;
use sqlx::types::Json;

use super::{
    ApiCall, BeginWrite, NewAuditEntry, Store, StoreError, Verification, now_ms, with_pool,
};

/// A bot, in Nezuko's terms, with the original's ciphertext (already checked to decrypt).
#[derive(Debug, Clone)]
pub struct ImportBot {
    pub telegram_bot_id: i64,
    pub username: String,
    pub display_name: String,
    pub token_ciphertext: String,
    pub owner_telegram_id: Option<i64>,
    pub enabled: bool,
    /// ms since the Unix epoch.
    pub created_at: i64,
}

/// A protected group and the bot that enforces it (by Telegram bot id).
#[derive(Debug, Clone)]
pub struct ImportGroup {
    pub telegram_bot_id: i64,
    pub chat_id: i64,
    pub title: String,
    pub enabled: bool,
    pub policy: serde_json::Value,
    pub member_count: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct ImportChannel {
    pub chat_id: i64,
    pub title: String,
    pub username: Option<String>,
    pub invite_link: Option<String>,
    pub is_private: bool,
    pub created_at: i64,
}

/// A requirement: the group `group_chat_id` of bot `telegram_bot_id` requires `channel_chat_id`.
#[derive(Debug, Clone)]
pub struct ImportLink {
    pub telegram_bot_id: i64,
    pub group_chat_id: i64,
    pub channel_chat_id: i64,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct ImportAdmin {
    pub telegram_user_id: i64,
    pub display_name: String,
    pub created_at: i64,
}

/// A history row and the original's id for it (`imported_rows.source_id`).
#[derive(Debug, Clone)]
pub struct Sourced<T> {
    pub source_id: String,
    pub row: T,
}

/// An audit entry as the original recorded it, mapped, at its own time (ms since the epoch).
#[derive(Debug, Clone)]
pub struct ImportAudit {
    pub entry: NewAuditEntry,
    pub created_at: i64,
}

/// An API call; `telegram_bot_id` is `None` when no bot can be told (stored under bot 0).
#[derive(Debug, Clone)]
pub struct ImportApiCall {
    pub telegram_bot_id: Option<i64>,
    pub method: String,
    pub outcome: String,
    pub error_code: Option<i64>,
    pub latency_ms: i64,
    pub created_at: i64,
}

/// A verification of one member against one channel in a group of bot `telegram_bot_id`.
#[derive(Debug, Clone)]
pub struct ImportVerification {
    pub telegram_bot_id: i64,
    pub group_chat_id: i64,
    pub user_id: i64,
    pub channel_chat_id: i64,
    pub outcome: String,
    pub cached: bool,
    pub latency_ms: i64,
    pub created_at: i64,
}

/// Everything one import brings, in dependency order.
#[derive(Debug, Clone, Default)]
pub struct ImportSet {
    pub bots: Vec<ImportBot>,
    pub groups: Vec<ImportGroup>,
    pub channels: Vec<ImportChannel>,
    pub links: Vec<ImportLink>,
    pub admins: Vec<ImportAdmin>,
    pub audit: Vec<Sourced<ImportAudit>>,
    pub api_calls: Vec<Sourced<ImportApiCall>>,
    pub verifications: Vec<Sourced<ImportVerification>>,
}

/// What an import added to one table, and what it found there already.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub added: usize,
    pub present: usize,
}

/// Per table, what [`Store::apply_import`] did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// API calls an earlier run stored under no bot, now given theirs.
    pub calls_attributed: usize,
    /// API calls added under no bot (no group or channel of theirs tells it).
    pub calls_unattributed: usize,
    /// Chats added as groups by this import.
    pub groups_added: Vec<i64>,
    /// Chats of the import Nezuko protects already under another bot than the import chose,
    /// with that bot's @username: left as they are.
    pub kept_elsewhere: Vec<(i64, String)>,
    /// The import's groups as Nezuko holds them afterwards that will not be enforced: enabled,
    /// but under a disabled bot (chat, title, bot's @username)…
    pub under_disabled_bot: Vec<(i64, String, String)>,
    /// …or requiring no channel (chat, title).
    pub requiring_nothing: Vec<(i64, String)>,
    /// Groups added disabled, as the original recorded them (chat, title).
    pub added_disabled: Vec<(i64, String)>,
    pub bots: Tally,
    pub groups: Tally,
    pub channels: Tally,
    pub links: Tally,
    pub admins: Tally,
    pub audit: Tally,
    pub api_calls: Tally,
    pub verifications: Tally,
}

impl Applied {
    /// Rows added across all tables, and calls given their bot: what changed.
    pub fn added(&self) -> usize {
        self.calls_attributed
            + [
                self.bots,
                self.groups,
                self.channels,
                self.links,
                self.admins,
                self.audit,
                self.api_calls,
                self.verifications,
            ]
            .iter()
            .map(|tally| tally.added)
            .sum::<usize>()
    }
}

/// `imported_rows.source_table` of each history table.
const AUDIT: &str = "admin_audit_log";
const API_CALLS: &str = "api_call_log";
const VERIFICATIONS: &str = "verification_log";

/// Rows per multi-row INSERT, under both backends' bind limits.
const ROWS_PER_STATEMENT: usize = 500;

/// The rows of `$rows` whose source id `imported_rows` does not hold for `$table` yet (and,
/// within `$rows`, the first of any repeated id). A macro: its body is compiled per backend.
macro_rules! fresh {
    ($tx:expr, $table:expr, $rows:expr) => {{
        let rows = $rows;
        let done: Vec<String> = if rows.is_empty() {
            Vec::new()
        } else {
            sqlx::query_scalar("SELECT source_id FROM imported_rows WHERE source_table = $1")
                .bind($table)
                .fetch_all(&mut *$tx)
                .await?
        };
        let mut seen: HashSet<String> = done.into_iter().collect();
        rows.iter()
            .filter(|row| seen.insert(row.source_id.clone()))
            .collect::<Vec<_>>()
    }};
}

/// Records the source ids `$ids` of `$table` as imported.
macro_rules! mark {
    ($tx:expr, $table:expr, $ids:expr, $now:expr) => {{
        let ids: Vec<&str> = $ids.collect();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::new(
                "INSERT INTO imported_rows (source_table, source_id, imported_at) ",
            );
            insert.push_values(chunk, |mut row, id| {
                row.push_bind($table).push_bind(*id).push_bind($now);
            });
            insert.build().execute(&mut *$tx).await?;
        }
    }};
}

impl Store {
    /// Adds what `set` holds and is not there yet, in one transaction; with `dry_run` the
    /// transaction is rolled back after counting. Rows whose bot, group or channel is not in
    /// `set` or the database are an error of the caller (it builds `set` consistently).
    pub async fn apply_import(
        &self,
        set: &ImportSet,
        dry_run: bool,
    ) -> Result<Applied, StoreError> {
        let now = now_ms();
        let mut applied = Applied::default();
        with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;

            let mut bot_ids: HashMap<i64, i64> = HashMap::new();
            for bot in &set.bots {
                let added: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO bot_instances (telegram_bot_id, username, display_name, token_ciphertext, \
                     owner_telegram_id, desired_state, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (telegram_bot_id) DO NOTHING RETURNING id",
                )
                .bind(bot.telegram_bot_id)
                .bind(&bot.username)
                .bind(&bot.display_name)
                .bind(&bot.token_ciphertext)
                .bind(bot.owner_telegram_id)
                .bind(if bot.enabled { "enabled" } else { "disabled" })
                .bind(bot.created_at)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                count(&mut applied.bots, added.is_some());
                let id = match added {
                    Some(id) => id,
                    None => sqlx::query_scalar("SELECT id FROM bot_instances WHERE telegram_bot_id = $1")
                        .bind(bot.telegram_bot_id)
                        .fetch_one(&mut *tx)
                        .await?,
                };
                bot_ids.insert(bot.telegram_bot_id, id);
            }
            let bot_of = |telegram: i64| {
                bot_ids.get(&telegram).copied().ok_or_else(|| {
                    StoreError::NotFound(format!("bot {telegram} among the imported bots"))
                })
            };

            let mut group_ids: HashMap<(i64, i64), i64> = HashMap::new();
            for group in &set.groups {
                let bot = bot_of(group.telegram_bot_id)?;
                // One chat, one bot: a chat Nezuko protects already (perhaps under another bot,
                // chosen on an earlier run) is left as it is, or members would be warned twice.
                let present: Option<(i64, i64, String)> = sqlx::query_as(
                    "SELECT g.id, g.bot_instance_id, b.username FROM protected_groups AS g \
                     JOIN bot_instances AS b ON b.id = g.bot_instance_id WHERE g.chat_id = $1 \
                     ORDER BY g.bot_instance_id = $2 DESC, g.id LIMIT 1",
                )
                .bind(group.chat_id)
                .bind(bot)
                .fetch_optional(&mut *tx)
                .await?;
                let added = present.is_none();
                if let Some((_, holder, username)) = &present
                    && *holder != bot
                {
                    applied.kept_elsewhere.push((group.chat_id, username.clone()));
                }
                if added {
                    applied.groups_added.push(group.chat_id);
                    if !group.enabled {
                        applied.added_disabled.push((group.chat_id, group.title.clone()));
                    }
                }
                let id = match present.map(|(id, _, _)| id) {
                    Some(id) => id,
                    None => sqlx::query_scalar(
                        "INSERT INTO protected_groups (bot_instance_id, chat_id, title, enabled, policy, member_count, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    )
                    .bind(bot)
                    .bind(group.chat_id)
                    .bind(&group.title)
                    .bind(group.enabled)
                    .bind(Json(&group.policy))
                    .bind(group.member_count)
                    .bind(group.created_at)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?,
                };
                count(&mut applied.groups, added);
                group_ids.insert((group.telegram_bot_id, group.chat_id), id);
            }

            let mut channel_ids: HashMap<i64, i64> = HashMap::new();
            for channel in &set.channels {
                let added: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO enforced_channels (chat_id, title, username, invite_link, is_private, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (chat_id) DO NOTHING RETURNING id",
                )
                .bind(channel.chat_id)
                .bind(&channel.title)
                .bind(&channel.username)
                .bind(&channel.invite_link)
                .bind(channel.is_private)
                .bind(channel.created_at)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                count(&mut applied.channels, added.is_some());
                let id = match added {
                    Some(id) => id,
                    None => sqlx::query_scalar("SELECT id FROM enforced_channels WHERE chat_id = $1")
                        .bind(channel.chat_id)
                        .fetch_one(&mut *tx)
                        .await?,
                };
                channel_ids.insert(channel.chat_id, id);
            }

            for link in &set.links {
                let group = group_ids
                    .get(&(link.telegram_bot_id, link.group_chat_id))
                    .copied()
                    .ok_or_else(|| StoreError::NotFound(format!("group {} among the imported groups", link.group_chat_id)))?;
                let channel = channel_ids
                    .get(&link.channel_chat_id)
                    .copied()
                    .ok_or_else(|| StoreError::NotFound(format!("channel {} among the imported channels", link.channel_chat_id)))?;
                let result = sqlx::query(
                    "INSERT INTO group_channel_links (group_id, channel_id, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (group_id, channel_id) DO NOTHING",
                )
                .bind(group)
                .bind(channel)
                .bind(link.created_at)
                .execute(&mut *tx)
                .await?;
                count(&mut applied.links, result.rows_affected() > 0);
            }

            // What will not be enforced, as Nezuko holds the import's groups now.
            let mut rows_used: Vec<i64> = group_ids.values().copied().collect();
            rows_used.sort_unstable();
            rows_used.dedup();
            for row in rows_used {
                let (chat, title, enabled, bot, state, links): (i64, String, bool, String, String, i64) =
                    sqlx::query_as(
                        "SELECT g.chat_id, g.title, g.enabled, b.username, b.desired_state, \
                         (SELECT COUNT(*) FROM group_channel_links AS l WHERE l.group_id = g.id) \
                         FROM protected_groups AS g JOIN bot_instances AS b ON b.id = g.bot_instance_id WHERE g.id = $1",
                    )
                    .bind(row)
                    .fetch_one(&mut *tx)
                    .await?;
                if enabled && state == "disabled" {
                    applied.under_disabled_bot.push((chat, title.clone(), bot));
                }
                if enabled && links == 0 {
                    applied.requiring_nothing.push((chat, title));
                }
            }

            for admin in &set.admins {
                let result = sqlx::query(
                    "INSERT INTO admin_users (telegram_user_id, display_name, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (telegram_user_id) DO NOTHING",
                )
                .bind(admin.telegram_user_id)
                .bind(&admin.display_name)
                .bind(admin.created_at)
                .execute(&mut *tx)
                .await?;
                count(&mut applied.admins, result.rows_affected() > 0);
            }

            // History: only rows not imported before, then their marks.
            let audit = fresh!(tx, AUDIT, &set.audit);
            applied.audit = Tally { added: audit.len(), present: set.audit.len() - audit.len() };
            for chunk in audit.chunks(ROWS_PER_STATEMENT) {
                let mut insert = QueryBuilder::new(
                    "INSERT INTO audit_log (actor_id, actor_name, action, target_type, target_id, before, after, ip, created_at) ",
                );
                insert.push_values(chunk, |mut row, imported| {
                    let (entry, created_at) = (&imported.row.entry, imported.row.created_at);
                    row.push_bind(entry.actor_id)
                        .push_bind(&entry.actor_name)
                        .push_bind(&entry.action)
                        .push_bind(&entry.target_type)
                        .push_bind(&entry.target_id)
                        .push_bind(entry.before.as_ref().map(Json))
                        .push_bind(entry.after.as_ref().map(Json))
                        .push_bind(&entry.ip)
                        .push_bind(created_at);
                });
                insert.build().execute(&mut *tx).await?;
            }
            mark!(tx, AUDIT, audit.iter().map(|r| r.source_id.as_str()), now);

            // A call no bot could be told for is marked `<id>?`: a later run that can tell (the
            // operator's BOT_TOKEN given, Telegram answering) moves it to its bot.
            let marks: HashSet<String> =
                sqlx::query_scalar("SELECT source_id FROM imported_rows WHERE source_table = $1")
                    .bind(API_CALLS)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect();
            let mut seen: HashSet<&str> = HashSet::new();
            let mut rows: Vec<ApiCall> = Vec::new();
            let mut new_marks: Vec<String> = Vec::new();
            for call in &set.api_calls {
                if !seen.insert(call.source_id.as_str()) {
                    continue;
                }
                let bot = match call.row.telegram_bot_id {
                    Some(telegram) => Some(bot_of(telegram)?),
                    None => None,
                };
                let unattributed = format!("{}?", call.source_id);
                if marks.contains(&call.source_id) {
                    applied.api_calls.present += 1;
                    continue;
                }
                if marks.contains(&unattributed) {
                    applied.api_calls.present += 1;
                    if let Some(bot) = bot {
                        // Identical calls are interchangeable: any one of them under no bot.
                        sqlx::query(
                            "UPDATE api_call_log SET bot_instance_id = $1 WHERE id = (SELECT id FROM api_call_log \
                             WHERE bot_instance_id = 0 AND method = $2 AND outcome = $3 AND created_at = $4 \
                             AND latency_ms = $5 ORDER BY id LIMIT 1)",
                        )
                        .bind(bot)
                        .bind(&call.row.method)
                        .bind(&call.row.outcome)
                        .bind(call.row.created_at)
                        .bind(call.row.latency_ms)
                        .execute(&mut *tx)
                        .await?;
                        sqlx::query(
                            "UPDATE imported_rows SET source_id = $1 WHERE source_table = $2 AND source_id = $3",
                        )
                        .bind(&call.source_id)
                        .bind(API_CALLS)
                        .bind(&unattributed)
                        .execute(&mut *tx)
                        .await?;
                        applied.calls_attributed += 1;
                    }
                    continue;
                }
                applied.api_calls.added += 1;
                if bot.is_none() {
                    applied.calls_unattributed += 1;
                }
                new_marks.push(if bot.is_some() { call.source_id.clone() } else { unattributed });
                rows.push(ApiCall {
                    bot_instance_id: bot.unwrap_or(0),
                    method: call.row.method.clone(),
                    outcome: call.row.outcome.clone(),
                    error_code: call.row.error_code,
                    latency_ms: call.row.latency_ms,
                    created_at: call.row.created_at,
                });
            }
            // The charts read the rollups, which are filled with the rows (as the live writers do).
            super::records::insert_api_call_rows!(tx, &rows);
            mark!(tx, API_CALLS, new_marks.iter().map(String::as_str), now);

            let checks = fresh!(tx, VERIFICATIONS, &set.verifications);
            applied.verifications = Tally { added: checks.len(), present: set.verifications.len() - checks.len() };
            let checks: Vec<(&str, Verification)> = checks
                .iter()
                .map(|check| {
                    let v = &check.row;
                    let group = group_ids
                        .get(&(v.telegram_bot_id, v.group_chat_id))
                        .copied()
                        .ok_or_else(|| StoreError::NotFound(format!("group {} among the imported groups", v.group_chat_id)))?;
                    Ok((check.source_id.as_str(), Verification {
                        bot_instance_id: bot_of(v.telegram_bot_id)?,
                        group_id: group,
                        chat_id: v.group_chat_id,
                        user_id: v.user_id,
                        channel_ids: Json(vec![v.channel_chat_id]),
                        outcome: v.outcome.clone(),
                        cached: v.cached,
                        latency_ms: v.latency_ms,
                        created_at: v.created_at,
                    }))
                })
                .collect::<Result<_, StoreError>>()?;
            let rows: Vec<Verification> = checks.iter().map(|(_, v)| v.clone()).collect();
            super::records::insert_verification_rows!(tx, &rows);
            mark!(tx, VERIFICATIONS, checks.iter().map(|(id, _)| *id), now);

            if dry_run {
                tx.rollback().await?;
            } else {
                tx.commit().await?;
            }
        });
        Ok(applied)
    }
}

impl Store {
    /// Of `chats`, those Nezuko protects already, each with the @username of its bot.
    pub async fn protected_chats(&self, chats: &[i64]) -> Result<Vec<(i64, String)>, StoreError> {
        let mut found = Vec::new();
        for &chat in chats {
            let bot: Option<String> = with_pool!(self, pool => sqlx::query_scalar(
                "SELECT b.username FROM protected_groups AS g JOIN bot_instances AS b ON b.id = g.bot_instance_id \
                 WHERE g.chat_id = $1 ORDER BY g.id LIMIT 1",
            )
            .bind(chat)
            .fetch_optional(pool)
            .await)?;
            if let Some(bot) = bot {
                found.push((chat, bot));
            }
        }
        Ok(found)
    }
}

fn count(tally: &mut Tally, added: bool) {
    if added {
        tally.added += 1;
    } else {
        tally.present += 1;
    }
}
