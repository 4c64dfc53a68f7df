//! Whether a user is subscribed to a channel: a three-valued answer (subscribed / not / unknown),
//! cached in process (moka, different TTLs for yes and no) and, with `REDIS_URL`, in a shared Redis
//! tier so every process and every bot benefits from one bot's answer for a channel.
//!
//! Every answer Telegram gives (a check, a channel's `chat_member` update, the button) is also
//! written behind to `channel_members`, and a starting process warms its cache from there
//! ([`MembershipCache::warm`]): a restart does not ask Telegram about everyone again. Each answer
//! keeps the time Telegram gave it, so a warmed answer expires when it would have anyway.
//!
//! Subscribed means `creator`, `administrator`, `member`, or `restricted` with `is_member`
//! (teloxide's `is_present`). An error is never read as "not subscribed": it is retried and, if it
//! persists, reported as unknown for the group's fail-open/fail-closed setting to decide. An error
//! that says the bot cannot ask at all (its token refused, its lease or runner ended) is no answer
//! about anyone: the check fails and the update waits for the bot's next runner.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use moka::Expiry;
use teloxide::types::{ChatId, UserId};

use super::calls::Calls;
use super::records::Records;
use super::shared_cache::SharedCache;
use crate::db::{ChannelMember, ChannelRow, now_ms};

/// One channel's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    Subscribed,
    NotSubscribed,
    /// Telegram could not say (the reason, for logs and the verification record).
    Unknown(String),
}

/// How long answers are kept.
#[derive(Debug, Clone, Copy)]
pub struct CacheTtl {
    pub positive: Duration,
    pub negative: Duration,
}

/// One cached answer and when Telegram gave it (ms since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answer {
    subscribed: bool,
    checked_at: i64,
}

struct TtlByAnswer(CacheTtl);

impl TtlByAnswer {
    /// What is left of the answer's TTL, counted from when Telegram gave it.
    fn left(&self, answer: &Answer) -> Duration {
        let ttl = if answer.subscribed {
            self.0.positive
        } else {
            self.0.negative
        };
        let age = Duration::from_millis(now_ms().saturating_sub(answer.checked_at).max(0) as u64);
        ttl.saturating_sub(age)
    }
}

impl Expiry<(i64, i64), Answer> for TtlByAnswer {
    fn expire_after_create(&self, _: &(i64, i64), answer: &Answer, _: Instant) -> Option<Duration> {
        Some(self.left(answer))
    }

    fn expire_after_update(
        &self,
        _: &(i64, i64),
        answer: &Answer,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.left(answer))
    }
}

/// The membership cache shared by every bot of the process, keyed by (channel, user).
pub struct MembershipCache {
    local: moka::sync::Cache<(i64, i64), Answer>,
    shared: Option<SharedCache>,
    /// Where answers are kept for the next start.
    records: Records,
    ttl: CacheTtl,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl MembershipCache {
    pub fn new(ttl: CacheTtl, shared: Option<SharedCache>, records: Records) -> Self {
        Self {
            local: moka::sync::Cache::builder()
                .max_capacity(2_000_000)
                .expire_after(TtlByAnswer(ttl))
                .build(),
            shared,
            records,
            ttl,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// A cached answer: this process first, then the shared tier.
    pub async fn get(&self, channel: i64, user: i64) -> Option<bool> {
        if let Some(known) = self.local.get(&(channel, user)) {
            return Some(known.subscribed);
        }
        let subscribed = self.shared.as_ref()?.get(channel, user).await?;
        // The shared tier keeps no time: its own TTL already shortened what is left.
        self.local.insert(
            (channel, user),
            Answer {
                subscribed,
                checked_at: now_ms(),
            },
        );
        Some(subscribed)
    }

    /// Records what Telegram said (a check, a `chat_member` update, a button press).
    pub async fn put(&self, channel: i64, user: i64, subscribed: bool) {
        let checked_at = now_ms();
        self.local.insert(
            (channel, user),
            Answer {
                subscribed,
                checked_at,
            },
        );
        self.records.member(ChannelMember {
            channel_chat_id: channel,
            user_id: user,
            subscribed,
            checked_at,
        });
        if let Some(shared) = &self.shared {
            let ttl = if subscribed {
                self.ttl.positive
            } else {
                self.ttl.negative
            };
            shared.put(channel, user, subscribed, ttl).await;
        }
    }

    /// Fills the cache with answers kept by an earlier run (still within their TTL), without
    /// replacing anything learned since this process started. Returns how many were taken.
    pub fn warm(&self, kept: &[ChannelMember]) -> usize {
        let mut taken = 0;
        for row in kept {
            let answer = Answer {
                subscribed: row.subscribed,
                checked_at: row.checked_at,
            };
            if TtlByAnswer(self.ttl).left(&answer).is_zero() {
                continue;
            }
            let entry = self
                .local
                .entry((row.channel_chat_id, row.user_id))
                .or_insert(answer);
            taken += usize::from(entry.is_fresh());
        }
        taken
    }

    /// The oldest answer [`MembershipCache::warm`] could still use (ms since the Unix epoch).
    pub fn oldest_usable(&self) -> i64 {
        let longest = self.ttl.positive.max(self.ttl.negative);
        now_ms() - longest.as_millis() as i64
    }

    pub fn count(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// (hits, misses) of cache lookups since start; fresh checks (the button) skip the cache and
    /// count as neither.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// Checks members against channels through one bot.
pub struct Checker {
    pub cache: Arc<MembershipCache>,
    pub retries: u32,
    pub retry_delay: Duration,
}

/// The outcome of checking one user against a group's channels.
#[derive(Debug, Clone, Default)]
pub struct CheckOutcome {
    pub subscribed: Vec<ChannelRow>,
    pub missing: Vec<ChannelRow>,
    pub unknown: Vec<(ChannelRow, String)>,
    /// Every answer came from the cache.
    pub cached: bool,
}

impl CheckOutcome {
    /// Every channel missing: what a check that could not be made in time is taken as, where the
    /// person is asked to join and check again rather than let in unchecked.
    pub fn missing_all(channels: &[ChannelRow]) -> Self {
        Self {
            subscribed: Vec::new(),
            missing: channels.to_vec(),
            unknown: Vec::new(),
            cached: false,
        }
    }
}

impl Checker {
    /// Checks `user` against every channel, concurrently. `fresh` skips the cache (the button).
    /// `Err` when the runner cannot ask Telegram at all ([`crate::telegram::is_halt`]): no answer
    /// about the member, which the caller leaves for the bot's next runner.
    pub async fn check(
        &self,
        calls: &Calls,
        channels: &[ChannelRow],
        user: i64,
        fresh: bool,
    ) -> Result<CheckOutcome, teloxide::RequestError> {
        let answers = join_all(
            channels
                .iter()
                .map(|channel| self.one(calls, channel.chat_id, user, fresh)),
        )
        .await;
        let mut outcome = CheckOutcome {
            cached: true,
            ..CheckOutcome::default()
        };
        for (channel, answer) in channels.iter().zip(answers) {
            let (answer, cached) = answer?;
            outcome.cached &= cached;
            match answer {
                Membership::Subscribed => outcome.subscribed.push(channel.clone()),
                Membership::NotSubscribed => outcome.missing.push(channel.clone()),
                Membership::Unknown(why) => outcome.unknown.push((channel.clone(), why)),
            }
        }
        Ok(outcome)
    }

    /// One channel's answer and whether it came from the cache; `Err` only when the runner cannot
    /// ask at all ([`crate::telegram::is_halt`]: a refused token, an ended lease, a stopped
    /// runner), which is no answer about the member and is never retried.
    async fn one(
        &self,
        calls: &Calls,
        channel: i64,
        user: i64,
        fresh: bool,
    ) -> Result<(Membership, bool), teloxide::RequestError> {
        if !fresh && let Some(subscribed) = self.cache.get(channel, user).await {
            self.cache.count(true);
            return Ok((answer(subscribed), true));
        }
        if !fresh {
            self.cache.count(false);
        }
        let mut last = String::new();
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(self.retry_delay * attempt).await;
            }
            let request = calls
                .bot()
                .get_chat_member(ChatId(channel), UserId(user.max(0) as u64));
            match calls.run("getChatMember", None, request).await {
                Ok(member) => {
                    let subscribed = member.kind.is_present();
                    self.cache.put(channel, user, subscribed).await;
                    return Ok((answer(subscribed), false));
                }
                Err(error) if crate::telegram::is_halt(&error) => return Err(error),
                Err(error) => last = error.to_string(),
            }
        }
        Ok((Membership::Unknown(last), false))
    }
}

fn answer(subscribed: bool) -> Membership {
    if subscribed {
        Membership::Subscribed
    } else {
        Membership::NotSubscribed
    }
}

use teloxide::prelude::Requester as _;
