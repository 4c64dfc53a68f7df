//! On PostgreSQL, which node runs which bot: each bot is run by the node holding its lease in
//! `bot_leases` ([`LeaseTable`]), and the nodes share the bots evenly.
//!
//! Telegram lets one poller per token (a second `getUpdates` ends the first with 409), so two
//! nodes must never run one bot. The rules every node follows, once a second ([`RENEW_EVERY`]):
//! - **Renew** every lease it holds for [`LEASE_MS`]. A lease not renewed in time expires, and any
//!   node may then take the bot (its fencing number goes up by one).
//! - **Stop in time.** A node counts its leases from before it asked to renew them and stops
//!   sending for a bot [`MARGIN`] before the database would let another node take it: every
//!   request checks the bot's [`Fence`]. A node cut off from the database or paused (SIGSTOP)
//!   therefore falls silent before anyone else starts, whenever its tasks wake up again.
//! - **Share evenly.** With `n` live nodes (role `all` or `bots`, beating in `nodes` every round
//!   or still holding an unexpired lease: a dead or paused node counts until its leases run out,
//!   so its share is not waited for) and `b` enabled bots, the `i`-th node by id holds `b / n`
//!   bots, one more if `i < b % n`. A node below its share takes free bots (never leased, let go,
//!   or expired); one above it hands the excess over, once the live nodes have stayed the same for
//!   two rounds: it stops those bots (the last updates confirmed), then lets their leases go so
//!   another node takes them at once (and does not take them back itself for [`LET_GO_FOR`]). A
//!   bot left free for two rounds in a row is taken by whoever sees it, whatever its share: a dead
//!   node's bots never wait for the shares to agree.
//! - **Settle first.** A node just started takes nothing until it has seen the same live nodes
//!   two rounds in a row (at most [`SETTLE_ROUNDS`]), so nodes started together share the bots
//!   out at once instead of the first taking them all and handing most over.
//! - **Renewals come first**: they run on a task and connections of their own, so a busy node's
//!   share work (or its fleet's queries) never holds them back.
//!
//! So a bot runs again within about [`LEASE_MS`] + 2 × [`RENEW_EVERY`] of its node dying, and at
//! once after a clean stop (which lets every lease go). The registry starts only the bots this
//! node holds ([`Leases::runs`]); the supervisor hands each bot its fence.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinHandle;

use super::FleetHandle;
use crate::db::{Held, LeaseTable, Store, Survey, now_ms};
use crate::domain::EventKind;
use crate::telegram::Fence;

/// How long a lease lasts from its last renewal, in ms (the database's clock).
pub const LEASE_MS: i64 = 8_000;
/// How often a node renews its leases and looks at the shares.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How much sooner than the database a node counts its lease as ended: room for the renewal's
/// trip to the database and back, and for clocks that run at slightly different rates.
pub const MARGIN: Duration = Duration::from_secs(2);
/// How long one query of the keeper may take before the round goes on without it.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a bot being handed over may take to stop before its lease is let go anyway (its
/// fence closes first, so it sends nothing more). A bot's own stop takes at most ~10 s.
const HANDOVER_LIMIT: Duration = Duration::from_secs(12);
/// A node whose heartbeat is older than this (ms) has stopped beating: three rounds missed.
const SILENT_AFTER_MS: i64 = 3_000;
/// The most rounds a node just started waits for the live nodes to stay the same two rounds in a
/// row before it takes its share (a node alone waits one round).
const SETTLE_ROUNDS: u32 = 3;
/// How long a node leaves the bots it handed over to others.
const LET_GO_FOR: Duration = Duration::from_secs(5);
/// The previous holder of a bot taken is named (in the log and the feed) if its lease ended this
/// recently (ms); a bot idle longer (disabled, say) just starts.
const RECENT_MS: i64 = 30_000;

/// The leases this node holds, shared by the keeper (who writes it), the registry (which starts
/// only the bots held here) and the supervisor (which gives each bot its fence). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Leases {
    book: Arc<Mutex<HashMap<i64, Entry>>>,
}

#[derive(Debug, Clone)]
struct Entry {
    fence: Fence,
    /// The fencing number of this holding.
    number: i64,
    /// Since when the bot is being handed over to another node.
    leaving: Option<Instant>,
    /// When the answer of its take arrived: a renewal asked before then may not have seen it.
    taken: Instant,
}

impl Leases {
    fn book(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Entry>> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this node runs bot `id`: it holds the lease, is not handing it over, and the
    /// lease has not ended.
    pub fn runs(&self, id: i64) -> bool {
        self.fence(id).is_some()
    }

    /// The fence of bot `id` while this node runs it ([`Leases::runs`]).
    pub fn fence(&self, id: i64) -> Option<Fence> {
        self.book()
            .get(&id)
            .filter(|e| e.leaving.is_none() && e.fence.holds())
            .map(|e| e.fence.clone())
    }

    /// How many bots this node holds.
    pub fn count(&self) -> usize {
        self.book().len()
    }
}

/// The running keeper; see [`LeaseKeeper::stop`].
#[derive(Debug)]
pub struct LeaseKeeper {
    /// Renewals, on a cadence of their own: the shares' work (database reads, asking the
    /// supervisor what it runs) may take seconds on a busy node, and must never delay them.
    renewing: JoinHandle<()>,
    balancing: JoinHandle<()>,
    draining: Arc<AtomicBool>,
    table: LeaseTable,
    node: String,
}

/// Starts keeping `store`'s leases for this node (`store.origin()`), telling `fleet` when the
/// bots it holds change. `None` on SQLite.
pub fn start(store: &Store, fleet: FleetHandle, leases: Leases) -> Option<LeaseKeeper> {
    let table = LeaseTable::of(store)?;
    let draining = Arc::new(AtomicBool::new(false));
    let mut renewer = Renewer {
        table: table.clone(),
        node: store.origin().to_string(),
        fleet: fleet.clone(),
        leases: leases.clone(),
        failing: false,
        unknown: HashSet::new(),
    };
    let mut keeper = Keeper {
        table: table.clone(),
        node: store.origin().to_string(),
        fleet,
        leases,
        draining: draining.clone(),
        seen_free: HashSet::new(),
        runners: Vec::new(),
        last_live: Vec::new(),
        let_go: HashMap::new(),
        disabled_leaving: HashSet::new(),
        rounds: 0,
    };
    let renewing = tokio::spawn(async move {
        let mut interval = tokio::time::interval(RENEW_EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            renewer.round().await;
        }
    });
    let balancing = tokio::spawn(async move {
        let mut interval = tokio::time::interval(RENEW_EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            keeper.round().await;
        }
    });
    Some(LeaseKeeper {
        renewing,
        balancing,
        draining,
        table,
        node: store.origin().to_string(),
    })
}

impl LeaseKeeper {
    /// From now on the node takes no bot and hands none over, but keeps renewing what it holds,
    /// so its bots can stop cleanly (and confirm their last updates) under a live lease.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Stops renewing and lets every lease go, so other nodes take the bots at once. Call it once
    /// the bots have stopped.
    pub async fn stop(self) {
        self.balancing.abort();
        self.renewing.abort();
        let released =
            tokio::time::timeout(QUERY_TIMEOUT, self.table.release(&self.node, None)).await;
        if !matches!(released, Ok(Ok(()))) {
            tracing::warn!(
                "could not let this node's leases go; other nodes take its bots when they expire (8 s)"
            );
        }
    }
}

/// Renews this node's leases and keeps their fences.
struct Renewer {
    table: LeaseTable,
    node: String,
    fleet: FleetHandle,
    leases: Leases,
    /// The last round could not renew (said once, not every second).
    failing: bool,
    /// Leases the last renewal returned that the book did not hold.
    unknown: HashSet<i64>,
}

/// Takes this node's share, hands the excess over, says what moved.
struct Keeper {
    table: LeaseTable,
    node: String,
    fleet: FleetHandle,
    leases: Leases,
    draining: Arc<AtomicBool>,
    /// Bots that were free at the last round (taken by whoever sees them free twice).
    seen_free: HashSet<i64>,
    /// The live nodes that run bots, at the last round (to tell when one leaves).
    runners: Vec<String>,
    /// The live nodes at the last round: bots are handed over only while this stays the same
    /// two rounds in a row, so a node flickering in and out (just back from an outage) does not
    /// set bots bouncing.
    last_live: Vec<String>,
    /// Bots this node handed over, with when: it does not take them back for [`LET_GO_FOR`], so
    /// the node they were meant for gets them.
    let_go: HashMap<i64, Instant>,
    /// Bots being let go because an admin disabled or deleted them, not to even the shares: no
    /// other node is meant to get them, so if enabled again any node (this one too) takes them
    /// at once.
    disabled_leaving: HashSet<i64>,
    /// Rounds since this node started.
    rounds: u32,
}

impl Renewer {
    async fn round(&mut self) {
        let asked = Instant::now();
        let mut changed = false;
        match tokio::time::timeout(QUERY_TIMEOUT, self.table.renew(&self.node, LEASE_MS)).await {
            Ok(Ok(held)) => {
                // Best effort: the node's `touch` only helps others see it sooner; the next round
                // retries.
                let _ = tokio::time::timeout(QUERY_TIMEOUT, self.table.touch(&self.node)).await;
                if std::mem::take(&mut self.failing) {
                    tracing::info!("this node renews its bot leases again");
                }
                changed |= self.renewed(asked, held).await;
            }
            Ok(Err(error)) => self.renew_failed(&error.to_string()),
            Err(_) => self.renew_failed("the database did not answer within 2 s"),
        }
        changed |= self.drop_ended();
        if changed {
            self.fleet.reconcile_all();
        }
    }

    fn renew_failed(&mut self, why: &str) {
        if !std::mem::replace(&mut self.failing, true) {
            tracing::warn!(
                error = why,
                held = self.leases.count(),
                "cannot renew this node's bot leases; its bots stop in {} s unless a renewal gets through",
                (LEASE_MS as u64 / 1000).saturating_sub(MARGIN.as_secs())
            );
        }
    }

    /// Takes in the renewed leases: their fences move on; a lease held here and not renewed (it
    /// expired and another node took it) ends at once. Returns whether the bots held changed.
    async fn renewed(&mut self, asked: Instant, held: Vec<Held>) -> bool {
        let until = asked + Duration::from_millis(LEASE_MS as u64) - MARGIN;
        let renewed: HashMap<i64, i64> =
            held.iter().map(|h| (h.bot_instance_id, h.fence)).collect();
        let mut lost = Vec::new();
        let mut unknown = Vec::new();
        {
            let mut book = self.leases.book();
            book.retain(|id, entry| {
                match renewed.get(id) {
                    Some(number) if *number == entry.number => {
                        entry.fence.extend(until);
                        true
                    }
                    // Taken by the keeper while this renewal was on its way: not lost.
                    None if entry.taken >= asked => true,
                    _ => {
                        entry.fence.close();
                        lost.push(*id);
                        false
                    }
                }
            });
            unknown.extend(renewed.keys().filter(|id| !book.contains_key(id)));
        }
        // Held in the database but not here: either just taken by the keeper, whose answer is
        // not in the book yet, or a lease whose fence ran out first. Only the second kind is
        // still unknown at the next renewal; that one is let go rather than guessed about.
        let unknown: Vec<i64> = unknown
            .into_iter()
            .filter(|id| self.unknown.contains(id))
            .collect();
        self.unknown = renewed
            .keys()
            .filter(|id| !self.leases.book().contains_key(id))
            .copied()
            .collect();
        if !lost.is_empty() {
            lost.sort_unstable();
            tracing::warn!(bots = ?lost, "this node no longer holds these bots (another node took them once its leases expired, or they were deleted)");
        }
        if !unknown.is_empty() {
            // Best effort: a failed release expires with the lease; the next round retries.
            let _ = tokio::time::timeout(
                QUERY_TIMEOUT,
                self.table.release(&self.node, Some(&unknown)),
            )
            .await;
        }
        !lost.is_empty()
    }

    /// Forgets the leases whose fence has run out (no renewal got through in time).
    fn drop_ended(&mut self) -> bool {
        let mut ended = Vec::new();
        self.leases.book().retain(|id, entry| {
            // A bot being handed over has its fence closed on purpose, and the keeper lets its
            // lease go once released; dropping it here would leave the lease to expire instead
            // (others waiting 8 s for it) and warn about an end that was planned.
            let holds = entry.fence.holds() || entry.leaving.is_some();
            if !holds {
                ended.push(*id);
            }
            holds
        });
        if !ended.is_empty() {
            ended.sort_unstable();
            tracing::warn!(bots = ?ended, "this node's leases on these bots ran out unrenewed; it stopped sending for them");
        }
        !ended.is_empty()
    }
}

impl Keeper {
    async fn round(&mut self) {
        if self.draining.load(Ordering::SeqCst) {
            return;
        }
        let mut changed = self.finish_handovers().await;
        if let Ok(Ok(survey)) = tokio::time::timeout(QUERY_TIMEOUT, self.table.survey()).await {
            changed |= self.balance(survey).await;
        }
        if changed {
            self.fleet.reconcile_all();
        }
    }

    /// Lets go of the bots handed over that have stopped here (or took too long to).
    async fn finish_handovers(&mut self) -> bool {
        let leaving: Vec<(i64, Instant)> = self
            .leases
            .book()
            .iter()
            .filter_map(|(id, e)| e.leaving.map(|since| (*id, since)))
            .collect();
        if leaving.is_empty() {
            return false;
        }
        let Ok(managed) = self.fleet.managed().await else {
            return false;
        };
        let done: Vec<i64> = leaving
            .into_iter()
            .filter(|(id, since)| !managed.contains_key(id) || since.elapsed() > HANDOVER_LIMIT)
            .map(|(id, _)| id)
            .collect();
        if done.is_empty() {
            return false;
        }
        {
            let book = self.leases.book();
            for id in &done {
                if let Some(entry) = book.get(id) {
                    entry.fence.close();
                }
            }
        }
        match tokio::time::timeout(QUERY_TIMEOUT, self.table.release(&self.node, Some(&done))).await
        {
            Ok(Ok(())) => {
                let mut book = self.leases.book();
                let now = Instant::now();
                for id in &done {
                    book.remove(id);
                    if !self.disabled_leaving.remove(id) {
                        self.let_go.insert(*id, now);
                    }
                }
                tracing::info!(bots = ?done, "handed these bots over: stopped here and let go");
                true
            }
            // Tried again next round; their fences stay closed meanwhile.
            _ => false,
        }
    }

    /// Takes this node's share of the free bots and hands over what exceeds it.
    async fn balance(&mut self, survey: Survey) -> bool {
        let (runners, silent) = self.runners(&survey).await;
        self.note_departures(&runners, silent.as_ref());
        let stable = runners == self.last_live;
        self.last_live = runners.clone();
        self.rounds = self.rounds.saturating_add(1);
        if self.rounds <= SETTLE_ROUNDS && !stable {
            // Just started, and the live nodes are still changing: nodes started together (a
            // deploy, a host's boot) would otherwise each see only those registered before them,
            // the first would take every bot and then hand most of them over while all of them
            // start up. Nothing is taken and nothing is counted as seen free meanwhile.
            return false;
        }
        self.let_go.retain(|_, at| at.elapsed() < LET_GO_FOR);
        let n = runners.len().max(1);
        let index = runners.iter().position(|id| *id == self.node).unwrap_or(0);
        let share = survey.enabled.len() / n + usize::from(index < survey.enabled.len() % n);
        let enabled: HashSet<i64> = survey.enabled.iter().copied().collect();
        let leases: HashMap<i64, _> = survey
            .leases
            .iter()
            .map(|l| (l.bot_instance_id, l))
            .collect();
        let mut changed = false;

        // What this node holds and keeps; disabled or deleted bots are handed back too.
        let mut kept: Vec<i64> = {
            let mut book = self.leases.book();
            let now = Instant::now();
            for (id, entry) in book.iter_mut() {
                if entry.leaving.is_none() && !enabled.contains(id) {
                    entry.leaving = Some(now);
                    self.disabled_leaving.insert(*id);
                }
            }
            book.iter()
                .filter(|(_, e)| e.leaving.is_none())
                .map(|(id, _)| *id)
                .collect()
        };
        kept.sort_unstable();
        if kept.len() > share && stable {
            let excess = kept.split_off(share);
            let now = Instant::now();
            let mut book = self.leases.book();
            for id in &excess {
                if let Some(entry) = book.get_mut(id) {
                    entry.leaving = Some(now);
                }
            }
            tracing::info!(
                bots = excess.len(),
                share,
                nodes = n,
                "handing bots over to even the shares"
            );
            changed = true;
        }

        let book_ids: HashSet<i64> = self.leases.book().keys().copied().collect();
        // A holding lost otherwise (expired in an outage) is no longer being let go.
        self.disabled_leaving.retain(|id| book_ids.contains(id));
        let free: Vec<i64> = survey
            .enabled
            .iter()
            .copied()
            .filter(|id| !book_ids.contains(id) && !self.let_go.contains_key(id))
            .filter(|id| leases.get(id).is_none_or(|l| l.expires_at <= survey.now))
            .collect();
        // This node's turn through the free bots starts at its own place, so nodes filling their
        // shares at once mostly ask for different bots.
        let start = index * free.len() / n;
        let mut wanted: Vec<i64> = free[start..]
            .iter()
            .chain(&free[..start])
            .copied()
            .take(share.saturating_sub(kept.len()))
            .collect();
        wanted.extend(free.iter().filter(|id| self.seen_free.contains(id)));
        wanted.sort_unstable();
        wanted.dedup();
        let mut taken = Vec::new();
        if !wanted.is_empty() {
            let asked = Instant::now();
            match tokio::time::timeout(
                QUERY_TIMEOUT,
                self.table.take(&self.node, LEASE_MS, &wanted),
            )
            .await
            {
                Ok(Ok(held)) => {
                    let until = asked + Duration::from_millis(LEASE_MS as u64) - MARGIN;
                    let mut book = self.leases.book();
                    for h in held {
                        taken.push(h.bot_instance_id);
                        book.insert(
                            h.bot_instance_id,
                            Entry {
                                fence: Fence::until(until),
                                number: h.fence,
                                leaving: None,
                                taken: Instant::now(),
                            },
                        );
                    }
                }
                Ok(Err(error)) => tracing::warn!(%error, "could not take bot leases"),
                Err(_) => tracing::warn!("taking bot leases timed out"),
            }
        }
        if !taken.is_empty() {
            taken.sort_unstable();
            self.note_moves(&taken, &leases, survey.now);
            changed = true;
        }
        let taken: HashSet<i64> = taken.into_iter().collect();
        self.seen_free = free.into_iter().filter(|id| !taken.contains(id)).collect();
        changed
    }

    /// The live nodes that run bots, by id, this one included; and the nodes on record whose
    /// heartbeat has stopped (`None` when the table could not be read: the last round's live
    /// nodes stand in). Live: role `all` or `bots`, and beating (every round, with its renewal)
    /// or still holding an unexpired lease. A node that stopped beating counts until its leases
    /// run out, no longer: its bots are then free, and its share is not waited for.
    async fn runners(&self, survey: &Survey) -> (Vec<String>, Option<HashSet<String>>) {
        let now = now_ms();
        let holding = |node: &str| {
            survey
                .leases
                .iter()
                .any(|l| l.node_id == node && l.expires_at > survey.now)
        };
        let (mut live, silent) = match tokio::time::timeout(QUERY_TIMEOUT, self.table.nodes()).await
        {
            Ok(Ok(nodes)) => (
                nodes
                    .iter()
                    .filter(|n| {
                        n.role != "api"
                            && (now - n.heartbeat_at <= SILENT_AFTER_MS || holding(&n.id))
                    })
                    .map(|n| n.id.clone())
                    .collect(),
                Some(
                    nodes
                        .into_iter()
                        .filter(|n| now - n.heartbeat_at > SILENT_AFTER_MS)
                        .map(|n| n.id)
                        .collect(),
                ),
            ),
            _ => (self.runners.clone(), None),
        };
        live.push(self.node.clone());
        live.sort_unstable();
        live.dedup();
        (live, silent)
    }

    /// Says so when a node that ran bots stopped beating without leaving (killed, cut off,
    /// paused: its row is still there and its heartbeat has stopped; a clean stop deletes the
    /// row): its leases expire, and the other nodes take its bots.
    fn note_departures(&mut self, live: &[String], silent: Option<&HashSet<String>>) {
        let Some(silent) = silent else {
            return;
        };
        let gone: Vec<String> = self
            .runners
            .iter()
            .filter(|id| !live.contains(id) && silent.contains(*id))
            .cloned()
            .collect();
        // A node that dropped out but still beats (its leases all let go: it is stopping) is
        // kept in mind until it has either left or gone silent.
        let mut remembered: Vec<String> = live.to_vec();
        remembered.extend(
            self.runners
                .iter()
                .filter(|id| !live.contains(id) && !silent.contains(*id))
                .cloned(),
        );
        self.runners = remembered;
        // One node says it (the first by id), not every one that noticed.
        if live.first() != Some(&self.node) {
            return;
        }
        for node in gone {
            tracing::warn!(node = %node, "a node stopped beating; its bots move to the others");
            self.fleet.publisher().publish(
                EventKind::Node,
                None,
                json!({ "node": node, "change": "gone", "seen_by": self.node }),
            );
        }
    }

    /// An event per node the taken bots came from (their previous holder), for the feed.
    fn note_moves(&self, taken: &[i64], before: &HashMap<i64, &crate::db::LeaseRow>, now: i64) {
        let mut from: HashMap<Option<&str>, Vec<i64>> = HashMap::new();
        for id in taken {
            let previous = before
                .get(id)
                .filter(|l| l.expires_at > now - RECENT_MS)
                .map(|l| l.node_id.as_str());
            from.entry(previous.filter(|p| *p != self.node))
                .or_default()
                .push(*id);
        }
        for (previous, bots) in from {
            tracing::info!(from = previous.unwrap_or("nobody"), bots = ?bots, "this node runs these bots now");
            self.fleet.publisher().publish(
                EventKind::Node,
                None,
                json!({ "node": self.node, "change": "took", "from": previous, "bots": bots }),
            );
        }
    }
}
