//! The platform's fixed vocabularies, each one enum shared by whoever writes and whoever reads it:
//! event kinds (published, stored, streamed, filtered, charted), verification outcomes (recorded,
//! counted, charted), timer kinds (scheduled and carried out), why a restriction record ended and
//! why a bot is in its run state. Their spellings are the stored
//! and wire form, so they never change.

use std::fmt;

/// Declares a vocabulary: the enum, its spellings, `ALL`, `as_str` and `parse`.
macro_rules! vocabulary {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize,
            serde::Deserialize, schemars::JsonSchema,
        )]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every member, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored and wire spelling.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The member spelled `text`, if any.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// What an audit entry is about (`audit_log.target_type`, the audit page's filter).
    AuditTarget {
        Bot = "bot",
        Group = "group",
        Channel = "channel",
        Settings = "settings",
        Admin = "admin",
        Session = "session",
        /// `nezuko import` of the original platform's database.
        Import = "import",
        /// A join request (the Mini App check page refusing who opened it).
        JoinRequest = "join_request",
    }
}

vocabulary! {
    /// What an event is about (`events.kind`, the SSE `type` filter, the dashboard's feed).
    EventKind {
        /// A bot's run state changed.
        BotStatus = "bot_status",
        /// A member was checked and something was decided (or done).
        Verification = "verification",
        MemberJoin = "member_join",
        MemberLeave = "member_leave",
        /// A group's permission health changed.
        Health = "health",
        /// Something a bot or admin did that is neither of the above (a group protected, …).
        Activity = "activity",
        /// A stored log record.
        Log = "log",
        SettingsChanged = "settings_changed",
        Audit = "audit",
        /// Bots moved between the nodes sharing a PostgreSQL database (a node joined, left, or
        /// was found gone).
        Node = "node",
    }
}

vocabulary! {
    /// What a verification decided (`verification_log.outcome`).
    Outcome {
        /// An administrator, a bot, Telegram's service account or an allowlisted user.
        Exempt = "exempt",
        /// A newcomer inside the group's grace period.
        Grace = "grace",
        Passed = "passed",
        /// Membership could not be read and the group fails open.
        UnknownAllowed = "unknown_allowed",
        /// Membership could not be read and the group fails closed.
        UnknownDenied = "unknown_denied",
        Restricted = "restricted",
        Warned = "warned",
        Kicked = "kicked",
        Banned = "banned",
        /// A repeat within a burst: the message was deleted, nothing else said.
        Suppressed = "suppressed",
        /// Telegram refused the action (the group's health is checked).
        Failed = "failed",
        /// "I have joined" pressed, and subscribed.
        Verified = "verified",
        /// "I have joined" pressed, still not subscribed.
        StillMissing = "still_missing",
        /// Rejoining the channel lifted Nezuko's restriction.
        Restored = "restored",
        /// The member had already left the group: nothing was done or said.
        Gone = "gone",
        /// An administrator's restriction or ban stands: Nezuko left the member alone.
        Yielded = "yielded",
        /// A message sent as a channel (not the linked one) was deleted.
        ChannelSender = "channel_sender",
        /// A join request was approved: the requester is subscribed.
        JoinApproved = "join_approved",
        /// A join request was declined: by the guard-bot fallback, or after the policy's timeout.
        JoinDeclined = "join_declined",
        /// A requester who is not subscribed was told what to join (a message through
        /// `user_chat_id`, or the check page of a guard bot).
        JoinAsked = "join_asked",
        /// A guard bot's query was left to the chat's administrators (`queue`).
        JoinQueued = "join_queued",
        /// The requester could not be written to (they blocked the bot): the request waits.
        JoinUnreachable = "join_unreachable",
        /// The request was gone when Nezuko decided: withdrawn, or decided by someone else.
        JoinWithdrawn = "join_withdrawn",
    }
}

impl Outcome {
    /// Outcomes that mean the member was let speak because they are subscribed.
    pub const SUCCESS: [Outcome; 4] = [
        Outcome::Passed,
        Outcome::Verified,
        Outcome::Restored,
        Outcome::JoinApproved,
    ];

    /// Whether the outcome is worth an event on the live feed (a pass is not, unless assumed).
    pub fn is_news(self) -> bool {
        !matches!(
            self,
            Outcome::Passed | Outcome::Exempt | Outcome::Grace | Outcome::Suppressed
        )
    }
}

vocabulary! {
    /// What a durable timer does when it falls due (`scheduled_actions.kind`).
    TimerKind {
        /// Delete a message (auto-deleted replies and warnings).
        DeleteMessage = "delete_message",
        /// A newcomer's grace period ended: check them.
        GraceCheck = "grace_check",
        /// A temporary restriction ended at Telegram: close Nezuko's record and its warning.
        RestrictionExpired = "restriction_expired",
        /// A join request's `join_request_timeout_s` ran out: decline it if still pending.
        JoinRequestTimeout = "join_request_timeout",
    }
}

vocabulary! {
    /// Why Nezuko's record of what it did to a member ended (`member_restrictions.end_reason`).
    EndReason {
        /// The member pressed "I have joined" and is subscribed.
        Verified = "verified",
        /// The member rejoined the channel they were missing and was let speak.
        Restored = "restored",
        /// A temporary restriction ran out at Telegram.
        Expired = "expired",
        /// An administrator let the member speak by hand.
        AdminLifted = "admin_lifted",
        /// An administrator restricted the member differently: their restriction stands.
        AdminRestricted = "admin_restricted",
        /// The member was banned (by an administrator, or found banned).
        Banned = "banned",
        /// The group stopped being protected.
        Unprotected = "unprotected",
        /// Nezuko removed the member (kick or ban policy).
        Removed = "removed",
        /// The member was found to have left, or to be an administrator now: nothing of Nezuko's
        /// is in force any more.
        Moot = "moot",
    }
}

vocabulary! {
    /// Why a bot is in its run state, as a word programs decide on (`bot_instances.run_reason_code`,
    /// the `reason_code` of `bot_status` events); `run_reason` beside it is the sentence people read.
    ReasonCode {
        /// An admin stopped or disabled it.
        StoppedByAdmin = "stopped_by_admin",
        /// The service was shutting down.
        ShuttingDown = "shutting_down",
        /// Stopping in order to start again (an admin's restart, a new token).
        Restarting = "restarting",
        /// Telegram refused the token (401/404): parked until an admin starts it again.
        InvalidToken = "invalid_token",
        /// The configured keys cannot decrypt the stored token: parked.
        Undecryptable = "undecryptable",
        /// Another process polls the token, or a webhook is set (409): ridden out.
        Conflict = "conflict",
        /// Telegram's weather (network, timeouts, 5xx, 429): ridden out.
        Transient = "transient",
        /// The bot's task ended with no outside cause: retried.
        Crashed = "crashed",
        /// Crashed too often within the window: parked.
        CrashLoop = "crash_loop",
    }
}

impl ReasonCode {
    /// Parked: the bot stays down until an admin starts it again.
    pub fn parks(self) -> bool {
        matches!(
            self,
            Self::InvalidToken | Self::Undecryptable | Self::CrashLoop
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_reads_back_as_its_member() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(*kind));
        }
        for outcome in Outcome::ALL {
            assert_eq!(Outcome::parse(outcome.as_str()), Some(*outcome));
        }
        for code in ReasonCode::ALL {
            assert_eq!(ReasonCode::parse(code.as_str()), Some(*code));
        }
        for kind in TimerKind::ALL {
            assert_eq!(TimerKind::parse(kind.as_str()), Some(*kind));
        }
        for reason in EndReason::ALL {
            assert_eq!(EndReason::parse(reason.as_str()), Some(*reason));
        }
        assert_eq!(Outcome::parse("nope"), None);
        assert_eq!(
            serde_json::to_value(Outcome::UnknownAllowed).unwrap(),
            "unknown_allowed"
        );
    }
}
