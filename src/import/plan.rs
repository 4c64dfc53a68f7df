//! The mapping of the original's rows onto Nezuko's (`original-schema.md` §4 and §6), and what
//! is left out and why. Pure: the database and Telegram were read before, and are written after.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use super::owners::Owner;
use super::source::{Original, SourceRow};
use super::times::parse_ms;
use crate::db::NewAuditEntry;
use crate::db::import::{
    ImportAdmin, ImportApiCall, ImportAudit, ImportBot, ImportChannel, ImportGroup, ImportLink,
    ImportSet, ImportVerification, Sourced,
};

/// What the operator chose (`nezuko import`'s flags).
#[derive(Debug, Clone, Default)]
pub struct Choices {
    /// Keep fail-open, Nezuko's default, instead of the original's fail-closed.
    pub fail_open: bool,
    pub include_admins: bool,
    pub include_verifications: bool,
}

/// Rows of one original table left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skip {
    pub table: &'static str,
    pub count: usize,
    pub why: String,
}

/// The rows to write and everything the report says besides counts.
#[derive(Debug, Default)]
pub struct Plan {
    pub set: ImportSet,
    pub skipped: Vec<Skip>,
    /// What needs the operator after the import.
    pub attention: Vec<String>,
    /// What was decided for them, worth knowing.
    pub notes: Vec<String>,
}

impl Plan {
    fn skip(&mut self, table: &'static str, why: impl Into<String>) {
        let why = why.into();
        match self
            .skipped
            .iter_mut()
            .find(|s| s.table == table && s.why == why)
        {
            Some(skip) => skip.count += 1,
            None => self.skipped.push(Skip {
                table,
                count: 1,
                why,
            }),
        }
    }
}

/// Maps `original` onto Nezuko's tables. `bots` are the bots to bring (their tokens checked),
/// `owners` the owner decided for each original group.
pub fn build(
    original: &Original,
    bots: Vec<ImportBot>,
    bot_skips: Vec<String>,
    owners: &BTreeMap<i64, Owner>,
    choices: &Choices,
    now: i64,
) -> Plan {
    let mut plan = Plan::default();
    let time = |row: &SourceRow, column: &str| row.text(column).and_then(|t| parse_ms(&t));
    for why in bot_skips {
        plan.skip("bot_instances", why);
    }
    let disabled_bots = bots.iter().filter(|b| !b.enabled).count();
    if disabled_bots > 0 {
        plan.notes.push(format!(
            "{disabled_bots} bot(s) inactive in the original arrive disabled; enable them in the dashboard or with `nezuko bot enable ID`"
        ));
    }
    plan.set.bots = bots;

    groups(&mut plan, original, owners, choices, now);
    let group_bot: HashMap<i64, i64> = plan
        .set
        .groups
        .iter()
        .map(|g| (g.chat_id, g.telegram_bot_id))
        .collect();
    channels_and_links(&mut plan, original, &group_bot, now);
    unguarded(&mut plan);
    admins(&mut plan, original, choices, now);

    // The audit log: actors are never recorded by the original's middleware; the database
    // browser's rows carry a session id, which a surviving session may still name.
    let mut telegram_of: HashMap<String, i64> = HashMap::new();
    for session in &original.sessions {
        if let (Some(id), Some(telegram)) = (session.text("id"), session.int("telegram_id")) {
            telegram_of.insert(id, telegram);
        }
    }
    for admin in &original.admins {
        if let (Some(id), Some(telegram)) = (admin.text("id"), admin.int("telegram_id")) {
            telegram_of.insert(id, telegram);
        }
    }
    for row in &original.audit {
        let (Some(id), Some(action)) = (row.text("id"), row.text("action")) else {
            plan.skip("admin_audit_log", "no id or action");
            continue;
        };
        let Some(created_at) = time(row, "created_at") else {
            plan.skip("admin_audit_log", "its time is unreadable");
            continue;
        };
        plan.set.audit.push(Sourced {
            source_id: id,
            row: ImportAudit {
                entry: NewAuditEntry {
                    actor_id: row
                        .text("user_id")
                        .and_then(|u| telegram_of.get(&u).copied()),
                    actor_name: "original dashboard".into(),
                    // Marked as imported, and kept apart from Nezuko's own dotted actions.
                    action: format!("original.{}", action.trim().to_lowercase()),
                    target_type: row
                        .text("resource_type")
                        .or_else(|| row.text("entity_type"))
                        .unwrap_or_else(|| "unknown".into()),
                    target_id: row.text("resource_id").or_else(|| row.text("entity_id")),
                    before: json_value(row.text("old_value")),
                    after: json_value(row.text("new_value").or_else(|| row.text("diff_json"))),
                    ip: row.text("ip_address"),
                },
                created_at,
            },
        });
    }

    api_calls(&mut plan, original, &group_bot);
    verifications(&mut plan, original, &group_bot, choices);
    restricted_members(&mut plan, original);
    if !original.owners.is_empty() {
        plan.notes.push(format!(
            "{} group owner(s) (who ran /protect in the original) have no place in Nezuko and are not imported; group admins manage their groups in Telegram",
            original.owners.len()
        ));
    }
    plan
}

fn groups(
    plan: &mut Plan,
    original: &Original,
    owners: &BTreeMap<i64, Owner>,
    choices: &Choices,
    now: i64,
) {
    let policy = if choices.fail_open {
        json!({})
    } else {
        // The original failed closed: a member whose check failed was treated as not subscribed.
        json!({ "fail_mode": "closed" })
    };
    for row in &original.groups {
        let Some(chat) = row.int("group_id") else {
            plan.skip("protected_groups", "no group_id");
            continue;
        };
        let title = row
            .text("title")
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| chat.to_string());
        let telegram_bot_id = match owners.get(&chat) {
            Some(Owner::Bot {
                telegram_bot_id, ..
            }) => *telegram_bot_id,
            Some(Owner::Undecided(why)) => {
                plan.skip(
                    "protected_groups",
                    "left to you: which bot enforces it is not clear",
                );
                plan.attention.push(format!(
                    "group {chat} {} was not imported: {why}",
                    shown(&title)
                ));
                continue;
            }
            None => continue,
        };
        let enabled = row.flag("enabled", true);
        if let Some(params) = row
            .text("params")
            .and_then(|p| serde_json::from_str::<Value>(&p).ok())
            && let Some(keys) = params.as_object().filter(|o| !o.is_empty())
        {
            plan.notes.push(format!(
                "group {}: params {} not carried over (nothing in the original read them)",
                shown(&title),
                keys.keys().map(|k| shown(k)).collect::<Vec<_>>().join(", ")
            ));
        }
        plan.set.groups.push(ImportGroup {
            telegram_bot_id,
            chat_id: chat,
            title,
            enabled,
            policy: policy.clone(),
            // 0 without a sync time means never counted.
            member_count: row.text("last_sync_at").and(row.int("member_count")),
            created_at: row
                .text("created_at")
                .and_then(|t| parse_ms(&t))
                .unwrap_or(now),
        });
    }
    if !plan.set.groups.is_empty() {
        plan.notes.push(if choices.fail_open {
            "groups added fail open (--fail-open): a member whose check fails is let speak (groups already in Nezuko keep their policy)".to_string()
        } else {
            "groups added keep the original's fail-closed behaviour (policy fail_mode: closed): a member whose check fails stays muted; --fail-open to use Nezuko's default (groups already in Nezuko keep their policy)".to_string()
        });
    }
}

fn channels_and_links(
    plan: &mut Plan,
    original: &Original,
    group_bot: &HashMap<i64, i64>,
    now: i64,
) {
    let channels: HashMap<i64, &SourceRow> = original
        .channels
        .iter()
        .filter_map(|row| row.int("channel_id").map(|id| (id, row)))
        .collect();
    let groups: BTreeSet<i64> = original
        .groups
        .iter()
        .filter_map(|g| g.int("group_id"))
        .collect();
    let mut linked: BTreeSet<i64> = BTreeSet::new();
    for row in &original.links {
        let (Some(group), Some(channel)) = (row.int("group_id"), row.int("channel_id")) else {
            plan.skip("group_channel_links", "no group or channel id");
            continue;
        };
        let Some(&bot) = group_bot.get(&group) else {
            plan.skip(
                "group_channel_links",
                if groups.contains(&group) {
                    "its group was not imported"
                } else {
                    "its group is not in protected_groups (an orphan)"
                },
            );
            continue;
        };
        if !channels.contains_key(&channel) {
            plan.skip(
                "group_channel_links",
                "its channel is not in enforced_channels (the original's link endpoint did not check)",
            );
            continue;
        }
        linked.insert(channel);
        plan.set.links.push(ImportLink {
            telegram_bot_id: bot,
            group_chat_id: group,
            channel_chat_id: channel,
            created_at: row
                .text("created_at")
                .and_then(|t| parse_ms(&t))
                .unwrap_or(now),
        });
    }
    for row in &original.channels {
        let Some(chat) = row.int("channel_id") else {
            plan.skip("enforced_channels", "no channel_id");
            continue;
        };
        if !linked.contains(&chat) {
            plan.skip("enforced_channels", "required by no imported group");
            continue;
        }
        let username = row
            .text("username")
            .map(|u| u.trim().trim_start_matches('@').to_string())
            .filter(|u| !u.is_empty());
        let title = row
            .text("title")
            .filter(|t| !t.trim().is_empty())
            .or_else(|| username.as_ref().map(|u| format!("@{u}")))
            .unwrap_or_else(|| chat.to_string());
        plan.set.channels.push(ImportChannel {
            chat_id: chat,
            title,
            is_private: username.is_none(),
            username,
            invite_link: row.text("invite_link").filter(|l| !l.trim().is_empty()),
            created_at: row
                .text("created_at")
                .and_then(|t| parse_ms(&t))
                .unwrap_or(now),
        });
    }
}

/// Channels whose join button would show only an id. (Groups that would not be enforced depend
/// on what Nezuko holds already: see `settle` in `mod.rs`.)
fn unguarded(plan: &mut Plan) {
    let untitled: Vec<String> = plan
        .set
        .channels
        .iter()
        .filter(|c| c.title == c.chat_id.to_string())
        .map(|c| c.chat_id.to_string())
        .collect();
    if !untitled.is_empty() {
        plan.attention.push(format!(
            "{} channel(s) have no title or username in the original ({}): their join buttons show the id until you name them in the dashboard",
            untitled.len(),
            untitled.join(", ")
        ));
    }
}

/// A title as the report shows it: control characters (a forged line, a terminal escape) as
/// `�`, and at most 64 characters, quoted.
pub fn shown(title: &str) -> String {
    let mut clean: String = title
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .take(64)
        .collect();
    if title.chars().count() > 64 {
        clean.push('…');
    }
    format!("\"{clean}\"")
}

fn admins(plan: &mut Plan, original: &Original, choices: &Choices, now: i64) {
    let mut roles: BTreeMap<String, usize> = BTreeMap::new();
    for row in &original.admins {
        if !choices.include_admins {
            plan.skip(
                "admin_users",
                "not imported without --include-admins (they granted nothing in the original; imported, each could sign in with full access)",
            );
            continue;
        }
        if !row.flag("is_active", true) {
            plan.skip("admin_users", "inactive");
            continue;
        }
        let Some(telegram) = row.int("telegram_id") else {
            plan.skip("admin_users", "no Telegram id to sign in with");
            continue;
        };
        *roles
            .entry(row.text("role").unwrap_or_else(|| "viewer".into()))
            .or_default() += 1;
        plan.set.admins.push(ImportAdmin {
            telegram_user_id: telegram,
            display_name: row
                .text("full_name")
                .filter(|n| !n.trim().is_empty())
                .or_else(|| row.text("email"))
                .unwrap_or_else(|| telegram.to_string()),
            created_at: row
                .text("created_at")
                .and_then(|t| parse_ms(&t))
                .unwrap_or(now),
        });
    }
    if !plan.set.admins.is_empty() {
        let roles: Vec<String> = roles
            .iter()
            .map(|(role, n)| format!("{role} {n}"))
            .collect();
        plan.attention.push(format!(
            "{} admin(s) imported: each can now sign in to the dashboard with Telegram and change everything (Nezuko has no roles; the original's were {})",
            plan.set.admins.len(),
            roles.join(", ")
        ));
    }
}

fn api_calls(plan: &mut Plan, original: &Original, group_bot: &HashMap<i64, i64>) {
    // A channel's calls belong to the bot of the groups requiring it, when that is one bot.
    let mut channel_bots: HashMap<i64, BTreeSet<i64>> = HashMap::new();
    for link in &plan.set.links {
        channel_bots
            .entry(link.channel_chat_id)
            .or_default()
            .insert(link.telegram_bot_id);
    }
    let only_bot = match plan.set.bots.as_slice() {
        [only] => Some(only.telegram_bot_id),
        _ => None,
    };
    for row in &original.api_calls {
        let (Some(id), Some(method)) = (row.int("id"), row.text("method")) else {
            plan.skip("api_call_log", "no id or method");
            continue;
        };
        let Some(created_at) = row.text("timestamp").and_then(|t| parse_ms(&t)) else {
            plan.skip("api_call_log", "its time is unreadable");
            continue;
        };
        let chat = row.int("chat_id");
        let bot = chat
            .and_then(|c| group_bot.get(&c).copied())
            .or_else(|| {
                chat.and_then(|c| channel_bots.get(&c))
                    .filter(|bots| bots.len() == 1)
                    .and_then(|bots| bots.first().copied())
            })
            .or(only_bot);
        let (outcome, error_code) = call_outcome(row.flag("success", true), row.text("error_type"));
        plan.set.api_calls.push(Sourced {
            source_id: source_id(
                id,
                row,
                &[
                    "method",
                    "chat_id",
                    "user_id",
                    "success",
                    "error_type",
                    "timestamp",
                ],
            ),
            row: ImportApiCall {
                telegram_bot_id: bot,
                method,
                outcome: outcome.into(),
                error_code,
                latency_ms: row.int("latency_ms").unwrap_or(0).max(0),
                created_at,
            },
        });
    }
}

/// Nezuko's outcome and error code of an original call: its success flag and the
/// python-telegram-bot exception class it recorded (§4, api_call_log).
fn call_outcome(success: bool, error_type: Option<String>) -> (&'static str, Option<i64>) {
    if success {
        return ("ok", None);
    }
    match error_type.as_deref().map(str::trim) {
        Some("RetryAfter") => ("rate_limited", Some(429)),
        Some("BadRequest" | "Forbidden" | "ChatMigrated" | "InvalidToken" | "Conflict") => {
            ("api_error", Some(400))
        }
        Some("TimedOut" | "NetworkError") => ("network_error", None),
        _ => ("error", None),
    }
}

fn verifications(
    plan: &mut Plan,
    original: &Original,
    group_bot: &HashMap<i64, i64>,
    choices: &Choices,
) {
    for row in &original.verifications {
        if !choices.include_verifications {
            plan.skip(
                "verification_log",
                "not imported without --include-verifications (the original's bot never wrote this table: its rows come from a seed script)",
            );
            continue;
        }
        let (Some(id), Some(user), Some(group), Some(channel), Some(status)) = (
            row.int("id"),
            row.int("user_id"),
            row.int("group_id"),
            row.int("channel_id"),
            row.text("status"),
        ) else {
            plan.skip("verification_log", "a required value is missing");
            continue;
        };
        let Some(&bot) = group_bot.get(&group) else {
            plan.skip("verification_log", "its group was not imported");
            continue;
        };
        let Some(created_at) = row.text("timestamp").and_then(|t| parse_ms(&t)) else {
            plan.skip("verification_log", "its time is unreadable");
            continue;
        };
        let outcome = match status.trim() {
            "verified" => "passed",
            // Not a member: it does not say a mute was applied, the nearest outcome is this.
            "restricted" => "restricted",
            // A failed check was treated as not subscribed (fail closed).
            _ => "unknown_denied",
        };
        plan.set.verifications.push(Sourced {
            source_id: source_id(
                id,
                row,
                &["user_id", "group_id", "channel_id", "status", "timestamp"],
            ),
            row: ImportVerification {
                telegram_bot_id: bot,
                group_chat_id: group,
                user_id: user,
                channel_chat_id: channel,
                outcome: outcome.into(),
                cached: row.flag("cached", false),
                latency_ms: row.int("latency_ms").unwrap_or(0).max(0),
                created_at,
            },
        });
    }
}

/// Members the original restricted stay so: Nezuko lifts only restrictions it made itself.
/// `api_call_log` names who the original's bot called `restrictChatMember` for (a mute and an
/// unmute look alike), which is all the original kept.
fn restricted_members(plan: &mut Plan, original: &Original) {
    let mut users: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for row in &original.api_calls {
        if row.text("method").as_deref() == Some("restrictChatMember")
            && row.flag("success", true)
            && let (Some(chat), Some(user)) = (row.int("chat_id"), row.int("user_id"))
        {
            users.entry(chat).or_default().insert(user);
        }
    }
    let titles: HashMap<i64, String> = original
        .groups
        .iter()
        .filter_map(|g| Some((g.int("group_id")?, g.text("title").unwrap_or_default())))
        .collect();
    if users.is_empty() {
        plan.attention.push(
            "members the original muted are recorded nowhere Nezuko can see, so they stay muted until an admin lifts them in Telegram".into(),
        );
        return;
    }
    let total: usize = users.values().map(BTreeSet::len).sum();
    let per_group: Vec<String> = users
        .iter()
        .map(|(chat, set)| {
            let title = titles
                .get(chat)
                .filter(|t| !t.is_empty())
                .cloned()
                .unwrap_or_else(|| chat.to_string());
            format!("{} {}", shown(&title), set.len())
        })
        .collect();
    plan.attention.push(format!(
        "the original restricted or unrestricted {total} member(s) ({}); Nezuko lifts only restrictions it made, so anyone the original left muted stays muted until an admin lifts it in Telegram (they may press the old button in vain)",
        per_group.join(", ")
    ));
}

/// A history row's key in `imported_rows`: its id and a digest of what it says. The id alone is
/// not enough: SQLite gives a deleted last row's id to the next row, and a second original
/// database (another bot's) numbers its rows from 1 too.
fn source_id(id: i64, row: &SourceRow, columns: &[&str]) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    for column in columns {
        digest.update(row.text(column).unwrap_or_default().as_bytes());
        digest.update([0]);
    }
    format!("{id}:{}", hex::encode(&digest.finalize()[..8]))
}

/// The original's JSON text as a value: the JSON `null` it writes for Python's `None` is none.
fn json_value(text: Option<String>) -> Option<Value> {
    let text = text?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Null) => None,
        Ok(value) => Some(value),
        Err(_) => Some(Value::String(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_call_maps_by_its_exception_class() {
        assert_eq!(call_outcome(true, Some("BadRequest".into())), ("ok", None));
        assert_eq!(
            call_outcome(false, Some("RetryAfter".into())),
            ("rate_limited", Some(429))
        );
        assert_eq!(
            call_outcome(false, Some("Forbidden".into())),
            ("api_error", Some(400))
        );
        assert_eq!(
            call_outcome(false, Some("TimedOut".into())),
            ("network_error", None)
        );
        assert_eq!(
            call_outcome(false, Some("KeyError".into())),
            ("error", None)
        );
        assert_eq!(call_outcome(false, None), ("error", None));
    }

    #[test]
    fn json_null_is_no_value() {
        assert_eq!(json_value(Some("null".into())), None);
        assert_eq!(json_value(None), None);
        assert_eq!(json_value(Some("{\"a\":1}".into())), Some(json!({"a": 1})));
        assert_eq!(json_value(Some("not json".into())), Some(json!("not json")));
    }
}
