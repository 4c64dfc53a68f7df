//! Client-side rate limits for every Bot API method, per bot and per chat.
//!
//! Sends follow the limits Telegram documents (<https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this>:
//! about 30 messages a second per bot, one a second per chat, 20 a minute per group), each a GCRA
//! bucket a margin below, so a busy bot stays under them instead of discovering them through 429s.
//! teloxide's `Throttle` covers only sends.
//!
//! For every other method (getChatMember, restrictChatMember, deleteMessage, …) Telegram publishes
//! no limit, so none is assumed: calls go at the rate Telegram accepts, and a 429 teaches the limit
//! of that bot and method. The scope is blocked for exactly `retry_after`, then capped at half the
//! rate that met the 429; the cap grows back by [`RAMP`] each second without a 429 and is dropped
//! once far above what the bot asks for. `enforce.calls_per_s` (0 by default: learn) sets a fixed
//! ceiling instead, for an operator who wants one.
//!
//! A caller *reserves* a slot and sleeps until it is due, so callers are served in order and none
//! spins. A 429 blocks the scope for its `retry_after` ([`Limiter::penalize`]): every call behind
//! it waits, not only the one refused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// What a call is limited by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything one bot sends (messages, edits): Telegram's ~30 per second per token.
    BotSends(i64),
    /// One other method of one bot: no published limit, learned from 429s.
    BotCalls(i64, &'static str),
    /// Messages of one bot into one chat: about one per second, with a short burst.
    ChatSends(i64, i64),
    /// Messages of one bot into one group: 20 per minute.
    GroupSends(i64, i64),
}

/// Rates per scope kind; the defaults follow Telegram's published limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub bot_sends_per_s: f64,
    /// A fixed ceiling per bot and method for methods other than sends; 0: none, learned from 429s.
    pub bot_calls_per_s: f64,
    pub chat_sends_per_s: f64,
    pub chat_burst: f64,
    pub group_sends_per_min: f64,
}

impl Default for Limits {
    /// Below Telegram's limits by a margin: a call reserved on time may still arrive late (queued
    /// behind others on the connection), and Telegram counts arrivals, not reservations.
    fn default() -> Self {
        Self {
            bot_sends_per_s: 25.0,
            bot_calls_per_s: 0.0,
            chat_sends_per_s: 0.8,
            chat_burst: 2.0,
            group_sends_per_min: 17.0,
        }
    }
}

/// How much a learned cap grows back each second without a 429.
pub const RAMP: f64 = 1.1;
/// A learned cap is never below this (calls per second).
const LEARNED_FLOOR: f64 = 1.0;
/// A learned cap this many times above the rate the bot asks for is dropped.
const UNCAP_ABOVE_DEMAND: f64 = 4.0;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// GCRA's theoretical arrival time of the next call.
    tat: Instant,
    /// Nothing in this scope before this (a 429's `retry_after`).
    blocked_until: Instant,
    /// A rate learned from a 429 (calls per second), for methods with no published limit.
    learned: Option<f64>,
    /// When `learned` last changed.
    learned_at: Instant,
    /// Calls reserved in the current one-second window, and the rate of the last full one.
    window_start: Instant,
    window_calls: u32,
    last_rate: f64,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Self {
            tat: now,
            blocked_until: now,
            learned: None,
            learned_at: now,
            window_start: now,
            window_calls: 0,
            last_rate: 0.0,
        }
    }

    /// Counts one call in the rate window; returns the rate the bot asks for (calls per second).
    fn count(&mut self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed >= Duration::from_secs(1) {
            self.last_rate = if elapsed >= Duration::from_secs(2) {
                0.0
            } else {
                f64::from(self.window_calls)
            };
            self.window_start = now;
            self.window_calls = 0;
        }
        self.window_calls += 1;
        self.last_rate.max(f64::from(self.window_calls))
    }

    /// Grows a learned cap back by [`RAMP`] per whole second since it last changed, and drops it
    /// once far above the demand.
    fn ramp(&mut self, now: Instant, demand: f64) {
        let Some(cap) = self.learned else {
            return;
        };
        let seconds = now.saturating_duration_since(self.learned_at).as_secs();
        if seconds == 0 {
            return;
        }
        let grown = cap * RAMP.powi(seconds.min(600) as i32);
        self.learned = (grown < demand * UNCAP_ABOVE_DEMAND).then_some(grown);
        self.learned_at = now;
    }
}

#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    buckets: Mutex<HashMap<Scope, Bucket>>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until every scope admits one more call. A slot reserved before a 429 blocked the
    /// scope is given up when it comes due inside the block, and a new one reserved after it (at
    /// the rate the 429 taught).
    pub async fn acquire(&self, scopes: &[Scope]) {
        loop {
            let due = self.reserve(scopes, Instant::now());
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            if !self.blocked(scopes, Instant::now()) {
                return;
            }
        }
    }

    fn blocked(&self, scopes: &[Scope], now: Instant) -> bool {
        let buckets = self.lock();
        scopes.iter().any(|scope| {
            buckets
                .get(scope)
                .is_some_and(|bucket| bucket.blocked_until > now)
        })
    }

    /// How long a call made now would wait, without taking a slot (the warning coalescer asks).
    pub fn delay(&self, scopes: &[Scope]) -> Duration {
        let now = Instant::now();
        let buckets = self.lock();
        scopes
            .iter()
            .map(|scope| match buckets.get(scope) {
                Some(bucket) => {
                    let allowed = match self.shape(*scope, bucket) {
                        Some((interval, burst)) => bucket
                            .tat
                            .checked_sub(interval.mul_f64(burst - 1.0))
                            .unwrap_or(now),
                        None => now,
                    };
                    allowed
                        .max(bucket.blocked_until)
                        .saturating_duration_since(now)
                }
                None => Duration::ZERO,
            })
            .max()
            .unwrap_or_default()
    }

    /// Blocks `scopes` until `retry_after` from now (a 429). A method with no published limit
    /// also learns one: half the rate that met the 429, or half the cap already learned. The 429s
    /// of calls that were in flight together count once: only the first of them, arriving while
    /// the scope is not yet blocked, lowers the cap.
    pub fn penalize(&self, scopes: &[Scope], retry_after: Duration) {
        let now = Instant::now();
        let until = now + retry_after;
        let mut buckets = self.lock();
        for scope in scopes {
            let bucket = buckets.entry(*scope).or_insert_with(|| Bucket::new(now));
            let already_blocked = bucket.blocked_until > now;
            bucket.blocked_until = bucket.blocked_until.max(until);
            if matches!(scope, Scope::BotCalls(..))
                && self.limits.bot_calls_per_s <= 0.0
                && !already_blocked
            {
                let demand = bucket.last_rate.max(f64::from(bucket.window_calls));
                let cap = match bucket.learned {
                    Some(cap) => cap / 2.0,
                    None => demand / 2.0,
                }
                .max(LEARNED_FLOOR);
                bucket.learned = Some(cap);
                // Growing back starts once the block is over.
                bucket.learned_at = until;
                bucket.tat = bucket.tat.max(until);
                tracing::info!(
                    scope = ?scope,
                    calls_per_s = cap,
                    "Telegram limited a method; going at the rate it accepts"
                );
            }
        }
    }

    /// The rate learned for `scope`, if a 429 taught one (for tests and the dashboard).
    pub fn learned(&self, scope: Scope) -> Option<f64> {
        self.lock().get(&scope).and_then(|bucket| bucket.learned)
    }

    /// Drops the buckets of a bot that stopped, but those that still hold it back: a slot
    /// reserved ahead, a 429's block, a rate learned from a 429. Telegram counts the bot's
    /// sends whichever runner made them, so a bot started again at once (a restart) must not
    /// begin with a full burst in a chat it has just written to (seen: five messages to one
    /// group in 1.5 s after a restart, answered 429). A bucket at rest is the same as a new one.
    pub fn forget_bot(&self, bot_instance_id: i64) {
        let now = Instant::now();
        self.lock().retain(|scope, bucket| {
            let bot = match scope {
                Scope::BotSends(b) | Scope::BotCalls(b, _) => *b,
                Scope::ChatSends(b, _) | Scope::GroupSends(b, _) => *b,
            };
            bot != bot_instance_id
                || bucket.tat > now
                || bucket.blocked_until > now
                || bucket.learned.is_some()
        });
    }

    fn reserve(&self, scopes: &[Scope], now: Instant) -> Instant {
        let mut buckets = self.lock();
        let mut due = now;
        for scope in scopes {
            let bucket = buckets.entry(*scope).or_insert_with(|| Bucket::new(now));
            if matches!(scope, Scope::BotCalls(..)) {
                let demand = bucket.count(now);
                bucket.ramp(now, demand);
            }
            let start = bucket.tat.max(now).max(bucket.blocked_until);
            let Some((interval, burst)) = self.shape(*scope, bucket) else {
                bucket.tat = start;
                due = due.max(start);
                continue;
            };
            let tolerance = interval.mul_f64(burst - 1.0);
            let allowed = start.checked_sub(tolerance).unwrap_or(now).max(now);
            let allowed = allowed.max(bucket.blocked_until);
            bucket.tat = start + interval;
            due = due.max(allowed);
        }
        due
    }

    /// A scope's interval between calls and burst, or `None` when nothing limits it.
    fn shape(&self, scope: Scope, bucket: &Bucket) -> Option<(Duration, f64)> {
        let l = &self.limits;
        let (per_s, burst) = match scope {
            Scope::BotSends(_) => (l.bot_sends_per_s, l.bot_sends_per_s.max(1.0)),
            Scope::BotCalls(..) if l.bot_calls_per_s > 0.0 => {
                (l.bot_calls_per_s, l.bot_calls_per_s.max(1.0))
            }
            // Learned: a tenth of a second's worth at once, so a cap is kept, not bursted through.
            Scope::BotCalls(..) => {
                let rate = bucket.learned?;
                (rate, (rate / 10.0).max(1.0))
            }
            Scope::ChatSends(..) => (l.chat_sends_per_s, l.chat_burst.max(1.0)),
            // The burst stays well under the minute's allowance: a full minute's worth at once
            // would meet Telegram's window with nothing to spare.
            Scope::GroupSends(..) => (
                l.group_sends_per_min / 60.0,
                (l.group_sends_per_min / 2.0).max(1.0),
            ),
        };
        Some((Duration::from_secs_f64(1.0 / per_s.max(0.001)), burst))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Scope, Bucket>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_chat_gets_its_burst_then_one_call_a_second() {
        let scope = [Scope::ChatSends(1, 5)];
        let start = Instant::now();
        let limiter = Limiter::new(Limits {
            chat_sends_per_s: 1.0,
            chat_burst: 3.0,
            ..Limits::default()
        });
        for _ in 0..3 {
            limiter.acquire(&scope).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.acquire(&scope).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        limiter.acquire(&scope).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_bot_started_again_keeps_the_pace_its_last_runner_set() {
        let limiter = Limiter::new(Limits {
            chat_sends_per_s: 1.0,
            chat_burst: 3.0,
            ..Limits::default()
        });
        let (busy, idle) = ([Scope::ChatSends(1, 5)], [Scope::ChatSends(1, 6)]);
        for _ in 0..3 {
            limiter.acquire(&busy).await;
        }
        limiter.acquire(&idle).await;
        tokio::time::advance(Duration::from_millis(1500)).await;
        // The bot stops and starts again: its burst in the busy chat is spent still (one slot
        // has come back, the second is due at 2 s), where a new bucket would allow three at once.
        limiter.forget_bot(1);
        let restarted = Instant::now();
        limiter.acquire(&busy).await;
        limiter.acquire(&busy).await;
        assert_eq!(
            restarted.elapsed(),
            Duration::from_millis(500),
            "a fresh burst"
        );
        // What no longer holds it back is dropped: the idle chat's bucket is new again.
        assert!(
            !limiter.lock().contains_key(&idle[0]),
            "an idle bucket kept"
        );
        // Once the pace has passed, a stop forgets everything.
        tokio::time::advance(Duration::from_secs(5)).await;
        limiter.forget_bot(1);
        assert!(limiter.lock().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_blocks_the_scope_for_exactly_that_long() {
        let limiter = Limiter::new(Limits::default());
        let scope = [Scope::BotCalls(1, "getChatMember")];
        let start = Instant::now();
        limiter.penalize(&scope, Duration::from_secs(7));
        assert_eq!(limiter.delay(&scope), Duration::from_secs(7));
        limiter.acquire(&scope).await;
        assert_eq!(start.elapsed(), Duration::from_secs(7));
        limiter
            .acquire(&[Scope::BotCalls(2, "getChatMember")])
            .await;
        limiter
            .acquire(&[Scope::BotCalls(1, "deleteMessage")])
            .await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(7),
            "other bots, and the bot's other methods, are not held up"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn methods_without_a_published_limit_go_as_fast_as_asked_until_a_429() {
        let limiter = Limiter::new(Limits::default());
        let scope = [Scope::BotCalls(1, "getChatMember")];
        let start = Instant::now();
        for _ in 0..5_000 {
            limiter.acquire(&scope).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "no fixed 100/s");
        assert_eq!(limiter.learned(scope[0]), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_teaches_half_the_rate_that_met_it_which_grows_back_gently() {
        let limiter = Limiter::new(Limits::default());
        let scope = [Scope::BotCalls(1, "getChatMember")];
        for _ in 0..400 {
            limiter.acquire(&scope).await;
        }
        limiter.penalize(&scope, Duration::from_secs(2));
        assert_eq!(limiter.learned(scope[0]), Some(200.0));
        let blocked = Instant::now();
        // After the block, calls go at the learned rate: 200 more take about a second.
        for _ in 0..221 {
            limiter.acquire(&scope).await;
        }
        let took = blocked.elapsed();
        assert!(
            took >= Duration::from_millis(2_900) && took <= Duration::from_millis(3_100),
            "{took:?}"
        );
        // Ten quiet seconds later the cap has grown by RAMP each second.
        tokio::time::sleep(Duration::from_secs(10)).await;
        limiter.acquire(&scope).await;
        let grown = limiter.learned(scope[0]);
        assert!(
            grown.is_none_or(|cap| cap > 200.0 * RAMP.powi(9)),
            "{grown:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fixed_ceiling_is_kept_when_the_operator_sets_one() {
        let limiter = Limiter::new(Limits {
            bot_calls_per_s: 10.0,
            ..Limits::default()
        });
        let scope = [Scope::BotCalls(1, "getChatMember")];
        let start = Instant::now();
        for _ in 0..20 {
            limiter.acquire(&scope).await;
        }
        assert!(start.elapsed() >= Duration::from_millis(900));
    }
}
