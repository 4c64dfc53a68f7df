//! What needs a person now, read from the database so every node sees the whole fleet: bots
//! parked as failed, bots whose token Telegram refused, bots that keep failing in backoff, enabled
//! groups whose permission health degraded, and nodes that stopped without leaving. The
//! overview's "needs attention" panel and the alerter read the same list. The `alerts` table
//! records which of these conditions people were told about (see `actors::alerter`).

use schemars::JsonSchema;
use serde::Serialize;
use sqlx::types::Json;

use super::{Store, StoreError, with_pool};
use crate::domain::RunState;

/// A bot in backoff on this attempt or later is "looping": failing again and again, not a blip.
pub const LOOPING_AFTER_ATTEMPTS: i64 = 3;

/// The kinds of condition that need a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    /// Parked in `failed` until an admin starts it (its own faults repeated, or its token cannot
    /// be decrypted).
    BotFailed,
    /// Telegram refused its token (revoked in @BotFather, say): stopped until it is replaced.
    InvalidToken,
    /// In backoff on its third attempt or later.
    BotLooping,
    /// An enabled group's permission check found a right missing.
    GroupDegraded,
    /// A node stopped heartbeating without leaving (crashed, or its machine did).
    NodeLost,
    /// Alerts cannot be delivered (the sender is not in the chat, deleted, revoked…): found by
    /// this process's Alerter, not in the database, so never itself alerted.
    AlertsUndelivered,
}

impl AttentionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttentionKind::BotFailed => "bot_failed",
            AttentionKind::InvalidToken => "invalid_token",
            AttentionKind::BotLooping => "bot_looping",
            AttentionKind::GroupDegraded => "group_degraded",
            AttentionKind::NodeLost => "node_lost",
            AttentionKind::AlertsUndelivered => "alerts_undelivered",
        }
    }

    /// What the condition is, in a few words after its subject's name.
    pub fn english(self) -> &'static str {
        match self {
            AttentionKind::BotFailed => "failed and is parked",
            AttentionKind::InvalidToken => "has an invalid token",
            AttentionKind::BotLooping => "keeps failing and restarting",
            AttentionKind::GroupDegraded => "lost a permission it needs",
            AttentionKind::NodeLost => "stopped heartbeating",
            AttentionKind::AlertsUndelivered => "cannot be delivered",
        }
    }
}

/// One condition that needs a person.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Attention {
    /// Kind and subject (`bot_failed:12`): the same condition keeps its key while it lasts.
    pub key: String,
    pub kind: AttentionKind,
    /// Who it is about, for people: `@username`, a group's title, `host · pid`.
    pub subject: String,
    /// Why, as recorded (the bot's reason, the group's missing rights, the last heartbeat).
    pub detail: String,
    /// The dashboard page that shows it, e.g. `/bots/12`.
    pub path: String,
    /// When the subject last changed (bots, groups) or last heartbeated (nodes), Unix ms.
    pub since: i64,
}

/// One alert as recorded in `alerts`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AlertRow {
    pub key: String,
    pub kind: String,
    pub summary: String,
    pub raised_at: i64,
    pub notified_at: Option<i64>,
    pub cleared_at: Option<i64>,
    pub cleared_notified_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct BotNeed {
    id: i64,
    username: String,
    #[sqlx(try_from = "String")]
    run_state: RunState,
    run_reason: Option<String>,
    run_reason_code: Option<String>,
    run_attempt: i64,
    updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct GroupNeed {
    id: i64,
    title: String,
    health_detail: Option<Json<serde_json::Value>>,
    health_checked_at: Option<i64>,
    updated_at: i64,
}

impl Store {
    /// Every condition that needs a person at `now` (Unix ms): bots first, then groups, then
    /// nodes, each by id.
    pub async fn attention(&self, now: i64) -> Result<Vec<Attention>, StoreError> {
        let bots_sql = "SELECT id, username, run_state, run_reason, run_reason_code, run_attempt, updated_at \
             FROM bot_instances WHERE desired_state = 'enabled' AND (run_state = 'failed' \
             OR (run_state = 'stopped' AND run_reason_code = 'invalid_token') \
             OR (run_state = 'backoff' AND run_attempt >= $1)) ORDER BY id";
        let groups_sql = "SELECT g.id, g.title, g.health_detail, g.health_checked_at, g.updated_at \
             FROM protected_groups g JOIN bot_instances b ON b.id = g.bot_instance_id \
             WHERE g.enabled AND g.health = 'degraded' AND b.desired_state = 'enabled' ORDER BY g.id";
        let (bots, groups) = with_pool!(self, pool => {
            let bots = sqlx::query_as::<_, BotNeed>(bots_sql)
                .bind(LOOPING_AFTER_ATTEMPTS)
                .fetch_all(pool)
                .await?;
            let groups = sqlx::query_as::<_, GroupNeed>(groups_sql).fetch_all(pool).await?;
            Ok::<_, sqlx::Error>((bots, groups))
        })?;
        let mut found: Vec<Attention> = bots.into_iter().map(bot_need).collect();
        found.extend(groups.into_iter().map(group_need));
        for node in self.nodes().await? {
            if !node.alive(now) {
                found.push(Attention {
                    key: format!("node_lost:{}", node.id),
                    kind: AttentionKind::NodeLost,
                    subject: format!("{} · {}", node.host, node.pid),
                    detail: format!(
                        "no heartbeat for {} s; its bots move to another node",
                        (now - node.heartbeat_at) / 1000
                    ),
                    path: "/".into(),
                    since: node.heartbeat_at,
                });
            }
        }
        Ok(found)
    }

    /// The alerts not cleared yet, and the cleared ones whose recovery was not told yet.
    pub async fn unsettled_alerts(&self) -> Result<Vec<AlertRow>, StoreError> {
        let sql = "SELECT key, kind, summary, raised_at, notified_at, cleared_at, cleared_notified_at \
                   FROM alerts WHERE cleared_at IS NULL OR (notified_at IS NOT NULL AND cleared_notified_at IS NULL) \
                   ORDER BY raised_at, key";
        Ok(with_pool!(self, pool => sqlx::query_as::<_, AlertRow>(sql).fetch_all(pool).await)?)
    }

    /// Opens the alert for `found` unless it is open already: true when this call opened it (so
    /// of several nodes passing at once, one). A cleared alert of the same key opens afresh.
    pub async fn raise_alert(&self, found: &Attention, now: i64) -> Result<bool, StoreError> {
        let sql = "INSERT INTO alerts (key, kind, summary, raised_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (key) DO UPDATE SET kind = excluded.kind, summary = excluded.summary, \
                   raised_at = excluded.raised_at, notified_at = NULL, cleared_at = NULL, cleared_notified_at = NULL \
                   WHERE alerts.cleared_at IS NOT NULL";
        let done = with_pool!(self, pool => sqlx::query(sql)
            .bind(&found.key)
            .bind(found.kind.as_str())
            .bind(summary(found))
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Clears the open alert `key`: true when this call cleared it.
    pub async fn clear_alert(&self, key: &str, now: i64) -> Result<bool, StoreError> {
        let done = with_pool!(self, pool => sqlx::query(
            "UPDATE alerts SET cleared_at = $1 WHERE key = $2 AND cleared_at IS NULL")
            .bind(now)
            .bind(key)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Claims the right to tell people that `key` was raised (`recovery` false) or cleared
    /// (true): true for exactly one caller, which then sends. [`Store::unclaim_alert`] hands it
    /// back when the message could not be sent.
    pub async fn claim_alert(
        &self,
        key: &str,
        recovery: bool,
        now: i64,
    ) -> Result<bool, StoreError> {
        let sql = if recovery {
            "UPDATE alerts SET cleared_notified_at = $1 WHERE key = $2 AND cleared_at IS NOT NULL \
             AND cleared_notified_at IS NULL"
        } else {
            "UPDATE alerts SET notified_at = $1 WHERE key = $2 AND cleared_at IS NULL AND notified_at IS NULL"
        };
        let done = with_pool!(self, pool => sqlx::query(sql)
            .bind(now)
            .bind(key)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Undoes [`Store::claim_alert`] (the message did not go out; the next pass tries again).
    pub async fn unclaim_alert(&self, key: &str, recovery: bool) -> Result<(), StoreError> {
        let sql = if recovery {
            "UPDATE alerts SET cleared_notified_at = NULL WHERE key = $1"
        } else {
            "UPDATE alerts SET notified_at = NULL WHERE key = $1"
        };
        with_pool!(self, pool => sqlx::query(sql).bind(key).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Deletes settled alerts cleared before `cutoff` (Unix ms); returns how many went.
    pub async fn prune_alerts(&self, cutoff: i64) -> Result<u64, StoreError> {
        let sql = "DELETE FROM alerts WHERE cleared_at < $1 \
                   AND (notified_at IS NULL OR cleared_notified_at IS NOT NULL)";
        Ok(with_pool!(self, pool => sqlx::query(sql)
            .bind(cutoff)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?)
    }
}

/// The one line an alert says about `found`: subject, what happened, why.
pub fn summary(found: &Attention) -> String {
    format!(
        "{} {}: {}",
        found.subject,
        found.kind.english(),
        found.detail
    )
}

fn bot_need(bot: BotNeed) -> Attention {
    let kind = match (bot.run_state, bot.run_reason_code.as_deref()) {
        (RunState::Failed, _) => AttentionKind::BotFailed,
        (RunState::Stopped, Some("invalid_token")) => AttentionKind::InvalidToken,
        _ => AttentionKind::BotLooping,
    };
    let reason = bot
        .run_reason
        .unwrap_or_else(|| bot.run_state.as_str().into());
    let detail = match kind {
        AttentionKind::BotLooping => format!("attempt {}; {reason}", bot.run_attempt),
        // The reason starts with what the kind already says ("invalid token: Telegram refused…").
        AttentionKind::InvalidToken => reason
            .strip_prefix("invalid token: ")
            .map_or(reason.clone(), str::to_string),
        _ => reason,
    };
    Attention {
        key: format!("{}:{}", kind.as_str(), bot.id),
        kind,
        subject: format!("@{}", bot.username),
        detail,
        path: format!("/bots/{}", bot.id),
        since: bot.updated_at,
    }
}

fn group_need(group: GroupNeed) -> Attention {
    let detail = group
        .health_detail
        .as_ref()
        .and_then(|d| d.0["summary"].as_str().map(str::to_string))
        .unwrap_or_else(|| "a right the bot needs is missing".into());
    Attention {
        key: format!("group_degraded:{}", group.id),
        kind: AttentionKind::GroupDegraded,
        subject: group.title,
        detail,
        path: format!("/groups/{}", group.id),
        since: group.health_checked_at.unwrap_or(group.updated_at),
    }
}
