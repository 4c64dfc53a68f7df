//! What an import did, table by table, and what is left to the operator: printed as text, or as
//! one JSON object (`--json`) for scripts.

use std::collections::BTreeMap;

use super::owners::Owner;
use super::plan::{Plan, Skip};
use super::source::Original;
use crate::db::import::{Applied, Tally};

/// One original table: rows found, brought (after what was skipped), added, already present.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableLine {
    pub table: &'static str,
    pub original: usize,
    pub brought: usize,
    pub added: usize,
    pub present: usize,
    pub skipped: usize,
}

/// The outcome of `nezuko import`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub source: String,
    pub target: String,
    pub dry_run: bool,
    /// Alembic revisions the original was stamped with (`alembic_version_bot`, `…_api`).
    pub revisions: BTreeMap<String, String>,
    pub tables: Vec<TableLine>,
    pub skipped: Vec<Skip>,
    /// How a bot was chosen → the groups (chat id and title) it got that way.
    pub group_bots: BTreeMap<String, Vec<String>>,
    pub needs_you: Vec<String>,
    pub notes: Vec<String>,
    /// Rows added (would be added, in a dry run) over all tables.
    pub added: usize,
}

impl Report {
    pub(super) fn new(
        original: &Original,
        plan: &Plan,
        owners: &BTreeMap<i64, Owner>,
        applied: Applied,
        target: String,
        dry_run: bool,
    ) -> Self {
        let set = &plan.set;
        let line = |table: &'static str, found: usize, tally: Tally| {
            let skipped = plan
                .skipped
                .iter()
                .filter(|s| s.table == table)
                .map(|s| s.count)
                .sum();
            TableLine {
                table,
                original: found,
                brought: tally.added + tally.present,
                added: tally.added,
                present: tally.present,
                skipped,
            }
        };
        // A bot that only the operator's BOT_TOKEN brought has no original row.
        let tables = [
            ("bot_instances", applied.bots),
            ("protected_groups", applied.groups),
            ("enforced_channels", applied.channels),
            ("group_channel_links", applied.links),
            ("admin_users", applied.admins),
            ("admin_audit_log", applied.audit),
            ("api_call_log", applied.api_calls),
            ("verification_log", applied.verifications),
        ]
        .into_iter()
        .map(|(table, tally)| {
            line(
                table,
                original.found.get(table).copied().unwrap_or(0),
                tally,
            )
        })
        .collect();
        let mut group_bots: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for group in &set.groups {
            if applied
                .kept_elsewhere
                .iter()
                .any(|(chat, _)| *chat == group.chat_id)
            {
                continue;
            }
            if let Some(Owner::Bot { how, .. }) = owners.get(&group.chat_id) {
                group_bots.entry(how.clone()).or_default().push(format!(
                    "{} {}",
                    group.chat_id,
                    super::plan::shown(&group.title)
                ));
            }
        }
        Self {
            source: original.location.clone(),
            target,
            dry_run,
            revisions: original.revisions.clone(),
            tables,
            skipped: plan.skipped.clone(),
            group_bots,
            needs_you: plan.attention.clone(),
            notes: {
                let mut notes = plan.notes.clone();
                if applied.calls_attributed > 0 {
                    notes.push(format!(
                        "{} API call(s) an earlier import kept under no bot now belong to their bot",
                        applied.calls_attributed
                    ));
                }
                notes
            },
            added: applied.added(),
        }
    }

    /// The report as lines of text.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let stamped = if self.revisions.is_empty() {
            "no Alembic stamp".to_string()
        } else {
            self.revisions
                .iter()
                .map(|(table, revision)| format!("{table} {revision}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!("import from {} ({stamped})", self.source));
        out.push(format!(
            "into {}{}",
            self.target,
            if self.dry_run {
                " — dry run: nothing is written"
            } else {
                ""
            }
        ));
        out.push(String::new());
        out.push(format!(
            "{:<20} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "table", "original", "brought", "added", "already", "skipped"
        ));
        for t in &self.tables {
            out.push(format!(
                "{:<20} {:>8} {:>8} {:>8} {:>8} {:>8}",
                t.table, t.original, t.brought, t.added, t.present, t.skipped
            ));
        }
        if !self.skipped.is_empty() {
            out.push(String::new());
            out.push("skipped:".into());
            for skip in &self.skipped {
                out.push(format!("  {} × {}: {}", skip.count, skip.table, skip.why));
            }
        }
        if !self.group_bots.is_empty() {
            out.push(String::new());
            out.push("which bot enforces each group:".into());
            for (how, groups) in &self.group_bots {
                // A long list is a count: one bot with 5,000 groups is one line.
                if groups.len() > 10 {
                    out.push(format!("  {how}: {} groups", groups.len()));
                } else {
                    out.push(format!("  {how}: {}", groups.join(", ")));
                }
            }
        }
        if !self.needs_you.is_empty() {
            out.push(String::new());
            out.push("needs you:".into());
            for item in &self.needs_you {
                out.push(format!("  - {item}"));
            }
        }
        if !self.notes.is_empty() {
            out.push(String::new());
            out.push("notes:".into());
            for note in &self.notes {
                out.push(format!("  - {note}"));
            }
        }
        out.push(String::new());
        out.push(match (self.dry_run, self.added) {
            (true, 0) => "dry run: nothing to import, everything is here already".into(),
            (true, n) => format!("dry run: an import would add {n} rows; nothing was written"),
            (false, 0) => "nothing changed: everything is here already".into(),
            (false, n) => format!("imported {n} rows in one transaction"),
        });
        out
    }
}
