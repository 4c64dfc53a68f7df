//! The end of a temporary restriction, fixed at the moment the request leaves.
//!
//! Telegram reads an `until_date` less than 30 seconds ahead (or more than 366 days) as *forever*
//! (Bot API, `restrictChatMember` and `banChatMember`; tdlib's `fix_until_date`). A date computed
//! when an action was planned can be seconds old by the time a rate limit or a 429's
//! `retry_after` lets the request go, and a 30-second mute would then mute forever. So the only
//! way to put an `until_date` on a request is [`restrict_request`] or [`ban_request`], which callers invoke inside
//! [`super::Calls::run_built`], and [`UntilDate::from_now`] never yields less than 30 s plus
//! [`MARGIN_S`] ahead of the moment it is called. A test keeps `until_date(` out of every other file.

use chrono::{DateTime, Utc};
use teloxide::Bot;
use teloxide::payloads::{BanChatMemberSetters, RestrictChatMemberSetters};
use teloxide::prelude::Requester;
use teloxide::requests::JsonRequest;
use teloxide::types::{ChatId, ChatPermissions, UserId};

/// Telegram's shortest temporary restriction, in seconds.
pub const TELEGRAM_MIN_S: i64 = 30;
/// Added to [`TELEGRAM_MIN_S`]: our clock and Telegram's differ, and the request takes time to arrive.
pub const MARGIN_S: i64 = 10;
/// Telegram's longest temporary restriction (366 days); longer is forever anyway.
pub const TELEGRAM_MAX_S: i64 = 366 * 24 * 3600;

/// An `until_date` at least [`TELEGRAM_MIN_S`] + [`MARGIN_S`] ahead of when it was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UntilDate(i64);

impl UntilDate {
    /// `for_s` seconds after `now_s` (Unix seconds), stretched to the shortest date Telegram
    /// honours as temporary and capped at the longest.
    pub fn from_now(now_s: i64, for_s: u64) -> Self {
        let ahead = i64::try_from(for_s)
            .unwrap_or(TELEGRAM_MAX_S)
            .clamp(TELEGRAM_MIN_S + MARGIN_S, TELEGRAM_MAX_S - MARGIN_S);
        Self(now_s + ahead)
    }

    /// Unix seconds.
    pub fn unix(self) -> i64 {
        self.0
    }

    fn at(self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.0, 0).unwrap_or_default()
    }
}

/// Unix seconds now, on this machine's clock.
pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A `restrictChatMember` request; `until` is `None` for "until Nezuko lifts it" (no date sent).
pub fn restrict_request(
    bot: &Bot,
    chat: i64,
    user: i64,
    permissions: ChatPermissions,
    until: Option<UntilDate>,
) -> JsonRequest<teloxide::payloads::RestrictChatMember> {
    let request = bot.restrict_chat_member(ChatId(chat), UserId(user.max(0) as u64), permissions);
    match until {
        Some(until) => request.until_date(until.at()),
        None => request,
    }
}

/// A `banChatMember` request that keeps the member's messages; `until` is `None` for a ban until
/// an administrator lifts it. A kick is a ban with the shortest `until`: should the unban that
/// follows fail, the ban still ends by itself within a minute.
pub fn ban_request(
    bot: &Bot,
    chat: i64,
    user: i64,
    until: Option<UntilDate>,
) -> JsonRequest<teloxide::payloads::BanChatMember> {
    let request = bot
        .ban_chat_member(ChatId(chat), UserId(user.max(0) as u64))
        .revoke_messages(false);
    match until {
        Some(until) => request.until_date(until.at()),
        None => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_until_date_is_ever_closer_than_telegrams_minimum_plus_the_margin() {
        let now = 1_800_000_000;
        for for_s in [0, 1, 29, 30, 39, 40, 41, 60, 3_600, u64::MAX] {
            let until = UntilDate::from_now(now, for_s).unix();
            assert!(
                until - now >= TELEGRAM_MIN_S + MARGIN_S,
                "{for_s} s gave {}",
                until - now
            );
            assert!(until - now <= TELEGRAM_MAX_S, "{for_s} s gave forever");
        }
        assert_eq!(UntilDate::from_now(now, 3_600).unix(), now + 3_600);
    }

    /// The only code that can put an `until_date` on a request is this module: every other
    /// source file is read and must not call `until_date(` itself.
    #[test]
    fn no_other_code_path_sets_an_until_date() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("enforce/deadline.rs")
                    && std::fs::read_to_string(&path)
                        .unwrap()
                        .contains(".until_date(")
                {
                    offenders.push(path.display().to_string());
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "until_date set outside deadline.rs: {offenders:?}"
        );
    }
}
