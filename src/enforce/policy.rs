//! A group's enforcement policy: built-in defaults, overlaid by the global defaults an admin set
//! (`settings` key `policy.defaults`), overlaid by the group's own overrides (`protected_groups.policy`).
//! Each layer is a JSON object naming only what it changes; unknown keys and bad values are refused
//! with the key and the accepted form, so a typo never silently weakens enforcement.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `settings` key holding the global policy defaults.
pub const DEFAULTS_KEY: &str = "policy.defaults";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Whether a member must join every linked channel or any one of them.
    pub require: Require,
    /// What happens to a member who is not subscribed.
    pub action: Action,
    /// After this many warnings, `escalate_to` replaces `action` (0: never).
    pub escalate_after: u32,
    pub escalate_to: Action,
    /// Seconds a newcomer may stay unsubscribed before the action applies (0: at once).
    pub grace_s: u64,
    /// Seconds before a warning is deleted (0: it stays until the member verifies).
    pub warning_ttl_s: u64,
    /// Seconds before replies to commands (and the commands) are deleted.
    pub reply_ttl_s: u64,
    /// What an unanswerable check (`member list is inaccessible`, timeouts) means after retries.
    pub fail_mode: FailMode,
    /// Greet subscribed newcomers.
    pub welcome: bool,
    /// Language of the texts in this group.
    pub language: Language,
    /// Users never checked in this group, besides admins.
    pub allowlist: Vec<i64>,
    /// Lift Nezuko's restriction by itself when a member rejoins the channel they left.
    pub restore_on_rejoin: bool,
    /// A restriction ends by itself after this many seconds (0: until the member verifies).
    /// Telegram treats under 30 s as forever, so values from 1 to 29 are refused.
    pub mute_for_s: u64,
    /// Messages members send as a channel (other than the group's own linked channel, and other
    /// than an anonymous administrator writing as the group): a way around the check.
    pub channel_senders: ChannelSenders,
    /// Requests to join the chat (groups and channels whose invite links ask for approval):
    /// left to the administrators, or decided by Nezuko on the requester's subscriptions.
    pub join_requests: JoinRequests,
    /// Seconds a requester who is not subscribed has before their request is declined (0: it
    /// stays pending for the administrators). At most 7 days.
    pub join_request_timeout_s: u64,
    /// What a guard bot answers Telegram's query about a requester who is not subscribed when no
    /// HTTPS `server.public_url` is set to show the check page: `queue` (leave it pending and write
    /// to the requester, as without a query) or `decline`.
    pub join_query_fallback: JoinQueryFallback,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JoinRequests {
    /// Nezuko leaves join requests to the administrators.
    Off,
    /// Subscribers are approved at once; anyone else is told what to join and approved once they
    /// have, or declined after `join_request_timeout_s`.
    ApproveSubscribers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JoinQueryFallback {
    Queue,
    Decline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelSenders {
    /// Delete them, telling the group once a day per channel why.
    Delete,
    /// Let them through unchecked.
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Require {
    All,
    Any,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Delete the message and warn; the member keeps the right to speak.
    Warn,
    /// Mute until the member verifies.
    Restrict,
    /// Remove from the group (ban then unban); the member may come back.
    Kick,
    /// Remove for good.
    Ban,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Let the member speak when membership cannot be read.
    Open,
    /// Treat an unreadable membership as not subscribed (and say so in the warning).
    Closed,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    En,
    Es,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::En, Language::Es];

    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            require: Require::All,
            action: Action::Restrict,
            escalate_after: 0,
            escalate_to: Action::Kick,
            grace_s: 0,
            warning_ttl_s: 0,
            reply_ttl_s: 60,
            fail_mode: FailMode::Open,
            welcome: false,
            language: Language::En,
            allowlist: Vec::new(),
            restore_on_rejoin: true,
            mute_for_s: 0,
            channel_senders: ChannelSenders::Delete,
            join_requests: JoinRequests::Off,
            join_request_timeout_s: 600,
            join_query_fallback: JoinQueryFallback::Queue,
        }
    }
}

/// A policy layer that cannot be applied, with the reason in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {0}")]
pub struct PolicyError(pub String);

/// How a policy key is edited: what the dashboard's editor renders for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FieldKind {
    /// One of `choices` (their wire spellings).
    Choice {
        choices: Vec<String>,
    },
    /// A whole number, ≥ 0.
    Number,
    Bool,
    /// A list of whole numbers (user ids).
    List,
}

/// One key of [`Policy`] as the dashboard's editor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Field {
    pub key: &'static str,
    #[serde(flatten)]
    pub kind: FieldKind,
}

/// The wire spellings of `values` (what serde writes for each).
fn spellings<T: Serialize>(values: &[T]) -> Vec<String> {
    values
        .iter()
        .filter_map(|v| serde_json::to_value(v).ok()?.as_str().map(str::to_string))
        .collect()
}

/// Every key of [`Policy`], in the editor's order, with how it is edited (`GET
/// /api/v1/vocabulary`): the dashboard builds its editor from this, so a key added here is
/// editable there. A test checks it names exactly the keys [`Policy`] serializes.
pub fn fields() -> Vec<Field> {
    use FieldKind::{Bool, Choice, List, Number};
    let actions = spellings(&[Action::Warn, Action::Restrict, Action::Kick, Action::Ban]);
    // Escalating to a warning would be no escalation (`validate` refuses it).
    let escalations = spellings(&[Action::Restrict, Action::Kick, Action::Ban]);
    let field = |key, kind| Field { key, kind };
    vec![
        field(
            "require",
            Choice {
                choices: spellings(&[Require::All, Require::Any]),
            },
        ),
        field("action", Choice { choices: actions }),
        field("escalate_after", Number),
        field(
            "escalate_to",
            Choice {
                choices: escalations,
            },
        ),
        field("grace_s", Number),
        field("warning_ttl_s", Number),
        field("reply_ttl_s", Number),
        field("mute_for_s", Number),
        field(
            "fail_mode",
            Choice {
                choices: spellings(&[FailMode::Open, FailMode::Closed]),
            },
        ),
        field(
            "channel_senders",
            Choice {
                choices: spellings(&[ChannelSenders::Delete, ChannelSenders::Allow]),
            },
        ),
        field(
            "join_requests",
            Choice {
                choices: spellings(&[JoinRequests::Off, JoinRequests::ApproveSubscribers]),
            },
        ),
        field("join_request_timeout_s", Number),
        field(
            "join_query_fallback",
            Choice {
                choices: spellings(&[JoinQueryFallback::Queue, JoinQueryFallback::Decline]),
            },
        ),
        field("welcome", Bool),
        field("restore_on_rejoin", Bool),
        field(
            "language",
            Choice {
                choices: spellings(&Language::ALL),
            },
        ),
        field("allowlist", List),
    ]
}

impl Policy {
    /// The policy of a protected channel: guarded only at the door, so Nezuko decides its join
    /// requests whatever the layers say (with them off, it would protect nothing).
    pub fn for_chat(mut self, channel: bool) -> Self {
        if channel {
            self.join_requests = JoinRequests::ApproveSubscribers;
        }
        self
    }

    /// Built-in defaults, then `defaults`, then `overrides`.
    pub fn resolve(defaults: &Value, overrides: &Value) -> Result<Self, PolicyError> {
        let mut merged = match serde_json::to_value(Self::default()) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        for layer in [defaults, overrides] {
            match layer {
                Value::Object(map) => merged.extend(map.clone()),
                Value::Null => {}
                other => return Err(PolicyError(format!("expected a JSON object, got {other}"))),
            }
        }
        let policy: Self = serde_json::from_value(Value::Object(merged))
            .map_err(|e| PolicyError(e.to_string()))?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks a layer on its own (what the API and `/settings` store).
    pub fn check_layer(layer: &Value) -> Result<(), PolicyError> {
        Self::resolve(&Value::Null, layer).map(|_| ())
    }

    /// Which key of `layer` makes `error` (from resolving `layer` over `defaults`), so a form can
    /// show the refusal at that key's field: the first key refused on its own (a wrong type, an
    /// unknown key, a value out of range), else the first of the layer's keys the reason names
    /// (a combination, such as `escalate_after` with `escalate_to: warn`). `None` when neither.
    pub fn culprit(defaults: &Value, layer: &Value, error: &PolicyError) -> Option<String> {
        let keys = layer.as_object()?;
        let alone = keys.iter().find(|(key, value)| {
            let single = Value::Object(Map::from_iter([((*key).clone(), (*value).clone())]));
            Self::resolve(defaults, &single).is_err()
        });
        alone
            .or_else(|| keys.iter().find(|(key, _)| error.0.contains(key.as_str())))
            .map(|(key, _)| key.clone())
    }

    fn validate(&self) -> Result<(), PolicyError> {
        if (1..30).contains(&self.mute_for_s) {
            return Err(PolicyError(
                "mute_for_s must be 0 (until verified) or at least 30: Telegram treats shorter restrictions as permanent".into(),
            ));
        }
        if self.escalate_after > 0 && self.escalate_to == Action::Warn {
            return Err(PolicyError(
                "escalate_to must be restrict, kick or ban".into(),
            ));
        }
        if self.grace_s > 86_400 || self.warning_ttl_s > 86_400 || self.reply_ttl_s > 86_400 {
            return Err(PolicyError(
                "grace_s, warning_ttl_s and reply_ttl_s are at most 86400 (one day)".into(),
            ));
        }
        if self.join_request_timeout_s > 604_800 {
            return Err(PolicyError(
                "join_request_timeout_s is at most 604800 (7 days); 0 leaves requests pending"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The action for a member who has had `warnings` warnings (this one included).
    pub fn action_after(&self, warnings: i64) -> Action {
        if self.escalate_after > 0 && warnings > i64::from(self.escalate_after) {
            self.escalate_to
        } else {
            self.action
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_editors_fields_are_exactly_the_policys_keys_and_every_choice_is_accepted() {
        let defaults = serde_json::to_value(Policy::default()).unwrap();
        let mut keys: Vec<&str> = defaults
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut described: Vec<&str> = fields().iter().map(|f| f.key).collect();
        keys.sort_unstable();
        described.sort_unstable();
        assert_eq!(described, keys);
        for field in fields() {
            if let FieldKind::Choice { choices } = &field.kind {
                assert!(choices.len() >= 2, "{}", field.key);
                for choice in choices {
                    // With escalation on, so a choice only valid while unused is caught.
                    Policy::check_layer(&json!({ field.key: choice, "escalate_after": 3 }))
                        .unwrap_or_else(|e| panic!("{}={choice}: {e}", field.key));
                }
                let default = defaults[field.key].as_str().unwrap();
                assert!(choices.iter().any(|c| c == default), "{}", field.key);
            }
        }
    }

    #[test]
    fn layers_apply_in_order() {
        let policy = Policy::resolve(
            &json!({ "action": "kick", "welcome": true }),
            &json!({ "action": "ban", "language": "es" }),
        )
        .unwrap();
        assert_eq!(policy.action, Action::Ban);
        assert!(policy.welcome);
        assert_eq!(policy.language, Language::Es);
        assert_eq!(policy.require, Require::All);
    }

    #[test]
    fn channel_senders_are_deleted_unless_allowed() {
        assert_eq!(Policy::default().channel_senders, ChannelSenders::Delete);
        let allowed = Policy::resolve(&json!({}), &json!({ "channel_senders": "allow" })).unwrap();
        assert_eq!(allowed.channel_senders, ChannelSenders::Allow);
        assert!(Policy::check_layer(&json!({ "channel_senders": "ban" })).is_err());
    }

    #[test]
    fn typos_and_unsafe_values_are_refused() {
        let typo = Policy::resolve(&json!({}), &json!({ "acton": "ban" })).unwrap_err();
        assert!(typo.0.contains("acton"), "{typo}");
        let short = Policy::check_layer(&json!({ "mute_for_s": 10 })).unwrap_err();
        assert!(short.0.contains("30"), "{short}");
        assert!(Policy::check_layer(&json!({ "action": "explode" })).is_err());
        assert!(Policy::check_layer(&json!([1])).is_err());
    }

    #[test]
    fn escalation_starts_after_the_named_warning() {
        let policy = Policy {
            action: Action::Warn,
            escalate_after: 2,
            escalate_to: Action::Ban,
            ..Policy::default()
        };
        assert_eq!(policy.action_after(1), Action::Warn);
        assert_eq!(policy.action_after(2), Action::Warn);
        assert_eq!(policy.action_after(3), Action::Ban);
    }
}
