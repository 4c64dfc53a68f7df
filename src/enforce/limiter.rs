//! Client-side rate limits for every Bot API method, per bot and per chat, so a busy bot stays under
//! Telegram's flood limits instead of discovering them through 429s. teloxide's `Throttle` covers
//! only sends; restrict, ban, delete and getChatMember would otherwise pass unthrottled.
//!
//! Each scope is a GCRA bucket (a rate and a burst). A caller *reserves* a slot and sleeps until it
//! is due, so callers are served in order and none spins. A 429 with `retry_after` blocks the scope
//! for exactly that long ([`Limiter::penalize`]): every call behind it waits, not only the one refused.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// What a call is limited by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Everything one bot sends (messages, edits): Telegram's ~30 per second per token.
    BotSends(i64),
    /// Every other method of one bot.
    BotCalls(i64),
    /// Messages of one bot into one chat: about one per second, with a short burst.
    ChatSends(i64, i64),
    /// Messages of one bot into one group: 20 per minute.
    GroupSends(i64, i64),
}

/// Rates per scope kind; the defaults follow Telegram's published limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub bot_sends_per_s: f64,
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
            bot_calls_per_s: 100.0,
            chat_sends_per_s: 0.8,
            chat_burst: 2.0,
            group_sends_per_min: 17.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// GCRA's theoretical arrival time of the next call.
    tat: Instant,
    /// Nothing in this scope before this (a 429's `retry_after`).
    blocked_until: Instant,
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

    /// Waits until every scope admits one more call.
    pub async fn acquire(&self, scopes: &[Scope]) {
        let due = self.reserve(scopes, Instant::now());
        if due > Instant::now() {
            tokio::time::sleep_until(due).await;
        }
    }

    /// How long a call made now would wait, without taking a slot (the warning coalescer asks).
    pub fn delay(&self, scopes: &[Scope]) -> Duration {
        let now = Instant::now();
        let buckets = self.lock();
        scopes
            .iter()
            .map(|scope| match buckets.get(scope) {
                Some(bucket) => {
                    let (interval, burst) = self.shape(*scope);
                    let allowed = bucket.tat.checked_sub(interval.mul_f64(burst - 1.0));
                    let allowed = allowed.unwrap_or(now).max(bucket.blocked_until);
                    allowed.saturating_duration_since(now)
                }
                None => Duration::ZERO,
            })
            .max()
            .unwrap_or_default()
    }

    /// Blocks `scopes` until `retry_after` from now.
    pub fn penalize(&self, scopes: &[Scope], retry_after: Duration) {
        let until = Instant::now() + retry_after;
        let mut buckets = self.lock();
        for scope in scopes {
            let bucket = buckets.entry(*scope).or_insert(Bucket {
                tat: Instant::now(),
                blocked_until: until,
            });
            bucket.blocked_until = bucket.blocked_until.max(until);
        }
    }

    /// Drops the buckets of a bot that stopped.
    pub fn forget_bot(&self, bot_instance_id: i64) {
        self.lock().retain(|scope, _| match scope {
            Scope::BotSends(b) | Scope::BotCalls(b) => *b != bot_instance_id,
            Scope::ChatSends(b, _) | Scope::GroupSends(b, _) => *b != bot_instance_id,
        });
    }

    fn reserve(&self, scopes: &[Scope], now: Instant) -> Instant {
        let mut buckets = self.lock();
        let mut due = now;
        for scope in scopes {
            let (interval, burst) = self.shape(*scope);
            let bucket = buckets.entry(*scope).or_insert(Bucket {
                tat: now,
                blocked_until: now,
            });
            let start = bucket.tat.max(now).max(bucket.blocked_until);
            let tolerance = interval.mul_f64(burst - 1.0);
            let allowed = start.checked_sub(tolerance).unwrap_or(now).max(now);
            let allowed = allowed.max(bucket.blocked_until);
            bucket.tat = start + interval;
            due = due.max(allowed);
        }
        due
    }

    fn shape(&self, scope: Scope) -> (Duration, f64) {
        let l = &self.limits;
        let (per_s, burst) = match scope {
            Scope::BotSends(_) => (l.bot_sends_per_s, l.bot_sends_per_s.max(1.0)),
            Scope::BotCalls(_) => (l.bot_calls_per_s, l.bot_calls_per_s.max(1.0)),
            Scope::ChatSends(..) => (l.chat_sends_per_s, l.chat_burst.max(1.0)),
            // The burst stays well under the minute's allowance: a full minute's worth at once
            // would meet Telegram's window with nothing to spare.
            Scope::GroupSends(..) => (
                l.group_sends_per_min / 60.0,
                (l.group_sends_per_min / 2.0).max(1.0),
            ),
        };
        (Duration::from_secs_f64(1.0 / per_s.max(0.001)), burst)
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
    async fn retry_after_blocks_the_scope_for_exactly_that_long() {
        let limiter = Limiter::new(Limits::default());
        let scope = [Scope::BotCalls(1)];
        let start = Instant::now();
        limiter.penalize(&scope, Duration::from_secs(7));
        assert_eq!(limiter.delay(&scope), Duration::from_secs(7));
        limiter.acquire(&scope).await;
        assert_eq!(start.elapsed(), Duration::from_secs(7));
        limiter.acquire(&[Scope::BotCalls(2)]).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(7),
            "other bots are not held up"
        );
    }
}
