//! Injected faults and Telegram's flood limits: what stands between a call and its answer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::api::ApiError;

/// A fault to inject into calls of one bot (or all) and one method (or all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// The bot's user id; `None` for every bot.
    #[serde(default)]
    pub bot: Option<i64>,
    /// The method in any letter case; `None` for every method.
    #[serde(default)]
    pub method: Option<String>,
    pub kind: FaultKind,
    /// How many calls it affects; `None` until cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    /// 429 with `retry_after`.
    RetryAfter { seconds: u64 },
    /// A 5xx answer.
    ServerError { status: u16 },
    /// Answers normally after a delay (nothing is carried out before it; a token revoked during it
    /// is refused with 401, as Telegram checks it when the call arrives).
    Delay { ms: u64 },
    /// Carries the call out at once and answers after a delay: the answer is slow on its way back,
    /// so the world (and other clients) see the effect before the caller knows of it.
    SlowReply { ms: u64 },
    /// Closes the connection without an answer.
    DropConnection,
}

/// What a fault does to one call.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultEffect {
    Fail(ApiError),
    Delay(Duration),
    SlowReply(Duration),
    Drop,
}

#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<Fault>,
    /// Calls a rule has acted on so far.
    taken: u64,
}

impl Faults {
    pub fn add(&mut self, fault: Fault) {
        self.rules.push(fault);
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// Calls a rule has acted on so far.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// The effect of the first rule matching this call, counting it against the rule's `times`.
    pub fn take(&mut self, bot: i64, method: &str) -> Option<FaultEffect> {
        let index = self.rules.iter().position(|rule| {
            rule.bot.is_none_or(|b| b == bot)
                && rule
                    .method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        self.taken += 1;
        let rule = &mut self.rules[index];
        let effect = match &rule.kind {
            FaultKind::RetryAfter { seconds } => {
                FaultEffect::Fail(ApiError::too_many_requests(*seconds))
            }
            FaultKind::ServerError { status } => FaultEffect::Fail(ApiError::server_error(*status)),
            FaultKind::Delay { ms } => FaultEffect::Delay(Duration::from_millis(*ms)),
            FaultKind::SlowReply { ms } => FaultEffect::SlowReply(Duration::from_millis(*ms)),
            FaultKind::DropConnection => FaultEffect::Drop,
        };
        if let Some(times) = &mut rule.times {
            *times = times.saturating_sub(1);
            if *times == 0 {
                self.rules.remove(index);
            }
        }
        Some(effect)
    }
}

/// Telegram's flood limits for sending messages, per bot token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    pub enabled: bool,
    /// Messages per second across all chats (Telegram: about 30).
    pub per_bot_per_s: f64,
    /// Messages per second into one chat (Telegram: about 1), with a small burst allowance.
    pub per_chat_per_s: f64,
    pub per_chat_burst: f64,
    /// Messages per minute into one group (Telegram: 20).
    pub per_group_per_min: f64,
    /// Calls per second per bot of each method that sends no message (getChatMember,
    /// restrictChatMember, …; `getUpdates` aside). Telegram publishes no such limit yet answers
    /// 429 when a bot overdoes one; `None` (the default) never does.
    #[serde(default)]
    pub per_method_per_s: Option<f64>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            per_bot_per_s: 30.0,
            per_chat_per_s: 1.0,
            per_chat_burst: 3.0,
            per_group_per_min: 20.0,
            per_method_per_s: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets keyed by (bot, scope).
#[derive(Debug, Default)]
pub struct FloodControl {
    buckets: HashMap<(i64, Scope), Bucket>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    Bot,
    Chat(i64),
    Group(i64),
    /// One method other than sends, by a hash of its name.
    Method(u64),
}

impl FloodControl {
    /// Takes one message from every bucket that applies, or none and says how long to wait.
    pub fn admit(
        &mut self,
        limits: &RateLimits,
        bot: i64,
        chat: Option<(i64, bool)>,
        now: Instant,
    ) -> Result<(), u64> {
        if !limits.enabled {
            return Ok(());
        }
        let mut scopes = vec![(Scope::Bot, limits.per_bot_per_s, limits.per_bot_per_s)];
        self.take(bot, &mut scopes, chat, limits, now)
    }

    /// Takes one call of a method that sends no message, where a per-method limit is set.
    pub fn admit_call(
        &mut self,
        limits: &RateLimits,
        bot: i64,
        method: &str,
        now: Instant,
    ) -> Result<(), u64> {
        let Some(rate) = limits.per_method_per_s.filter(|_| limits.enabled) else {
            return Ok(());
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(method, &mut hasher);
        let scope = Scope::Method(std::hash::Hasher::finish(&hasher));
        let mut scopes = vec![(scope, rate, rate.max(1.0))];
        self.take(bot, &mut scopes, None, limits, now)
    }

    fn take(
        &mut self,
        bot: i64,
        scopes: &mut Vec<(Scope, f64, f64)>,
        chat: Option<(i64, bool)>,
        limits: &RateLimits,
        now: Instant,
    ) -> Result<(), u64> {
        if let Some((chat, is_group)) = chat {
            scopes.push((
                Scope::Chat(chat),
                limits.per_chat_per_s,
                limits.per_chat_burst,
            ));
            if is_group {
                let per_s = limits.per_group_per_min / 60.0;
                scopes.push((Scope::Group(chat), per_s, limits.per_group_per_min));
            }
        }
        let mut wait_s: f64 = 0.0;
        for (scope, rate, capacity) in scopes.iter() {
            let bucket = self.refilled(bot, *scope, *rate, *capacity, now);
            if bucket.tokens < 1.0 {
                wait_s = wait_s.max((1.0 - bucket.tokens) / rate);
            }
        }
        if wait_s > 0.0 {
            return Err(wait_s.ceil().max(1.0) as u64);
        }
        for (scope, _, _) in scopes.iter() {
            if let Some(bucket) = self.buckets.get_mut(&(bot, *scope)) {
                bucket.tokens -= 1.0;
            }
        }
        Ok(())
    }

    fn refilled(
        &mut self,
        bot: i64,
        scope: Scope,
        rate: f64,
        capacity: f64,
        now: Instant,
    ) -> Bucket {
        let bucket = self.buckets.entry((bot, scope)).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.updated = now;
        *bucket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_with_a_count_expires() {
        let mut faults = Faults::default();
        faults.add(Fault {
            bot: Some(1),
            method: Some("getMe".into()),
            kind: FaultKind::ServerError { status: 502 },
            times: Some(2),
        });
        assert_eq!(faults.take(2, "getMe"), None);
        assert_eq!(
            faults.take(1, "GetMe"),
            Some(FaultEffect::Fail(ApiError::server_error(502)))
        );
        assert!(faults.take(1, "getme").is_some());
        assert_eq!(faults.take(1, "getMe"), None);
    }

    #[test]
    fn a_chat_gets_a_short_burst_then_one_message_a_second() {
        let limits = RateLimits::default();
        let mut flood = FloodControl::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(flood.admit(&limits, 1, Some((5, false)), start), Ok(()));
        }
        assert_eq!(flood.admit(&limits, 1, Some((5, false)), start), Err(1));
        assert_eq!(
            flood.admit(&limits, 1, Some((6, false)), start),
            Ok(()),
            "other chats are not affected"
        );
        assert_eq!(
            flood.admit(&limits, 1, Some((5, false)), start + Duration::from_secs(1)),
            Ok(())
        );
    }

    #[test]
    fn a_group_gets_twenty_messages_a_minute() {
        let limits = RateLimits {
            per_chat_burst: 100.0,
            per_chat_per_s: 100.0,
            ..RateLimits::default()
        };
        let mut flood = FloodControl::default();
        let t = Instant::now();
        for _ in 0..20 {
            assert_eq!(flood.admit(&limits, 1, Some((-5, true)), t), Ok(()));
        }
        assert_eq!(flood.admit(&limits, 1, Some((-5, true)), t), Err(3));
    }

    #[test]
    fn a_bot_gets_thirty_messages_a_second() {
        let limits = RateLimits::default();
        let mut flood = FloodControl::default();
        let t = Instant::now();
        for chat in 0..30 {
            assert_eq!(flood.admit(&limits, 1, Some((chat, false)), t), Ok(()));
        }
        assert_eq!(flood.admit(&limits, 1, Some((99, false)), t), Err(1));
        assert_eq!(
            flood.admit(&limits, 2, Some((99, false)), t),
            Ok(()),
            "limits are per token"
        );
    }
}
