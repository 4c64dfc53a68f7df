//! Where alerts go and who sends them (`alerts.*` in the configuration, the `alerts` setting the
//! dashboard stores): a value checked once, wherever it comes from.

use serde::{Deserialize, Serialize};

/// Where alerts go and who sends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// The chat alerts are sent to (a private admin group, say: its id is negative); null: none
    /// are sent, the dashboard still shows what needs attention.
    pub chat_id: Option<i64>,
    /// `login` (the login bot, `auth.login_bot_token`) or a fleet bot's `@username`. The sender
    /// must be a member of the chat.
    pub sender: String,
}

/// Telegram's chat ids have at most 52 significant bits (Bot API, `Chat.id`: "at most 52
/// significant bits, so a signed 64-bit integer or double-precision float type are safe"): a
/// larger one names no chat, and a browser would round it.
pub const MAX_CHAT_ID: i64 = (1 << 52) - 1;

/// Checks a chat id as Telegram could have made it: not 0, within 52 bits.
pub fn check_chat_id(id: i64) -> Result<(), String> {
    if id == 0 {
        Err("0 is not a Telegram chat id; leave it empty for no alerts".into())
    } else if id.unsigned_abs() > MAX_CHAT_ID as u64 {
        Err(format!(
            "{id} is not a Telegram chat id: they have at most 52 significant bits"
        ))
    } else {
        Ok(())
    }
}

impl AlertConfig {
    /// Checks the sender's spelling: `login`, or a bot username (5-32 characters of letters,
    /// digits and `_`, ending in `bot`, after an optional `@`; Telegram's rule for bot usernames).
    pub fn validate(&self) -> Result<(), String> {
        if self.sender == "login" {
            return Ok(());
        }
        let name = self.sender.trim_start_matches('@');
        let valid = (5..=32).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && name.to_ascii_lowercase().ends_with("bot");
        if valid {
            Ok(())
        } else {
            Err(format!(
                "`{}` is neither `login` nor a bot's @username",
                self.sender
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_is_login_or_a_bot_username() {
        let config = |sender: &str| AlertConfig {
            chat_id: Some(-100),
            sender: sender.into(),
        };
        assert!(config("login").validate().is_ok());
        assert!(config("@alerts_bot").validate().is_ok());
        assert!(config("AlertsBot").validate().is_ok());
        assert!(config("@alerts").validate().is_err());
        assert!(config("@a bot").validate().is_err());
        assert!(check_chat_id(-1_001_234_567_890).is_ok());
        assert!(check_chat_id(0).is_err());
        assert!(check_chat_id(9_007_199_254_740_993).is_err());
    }
}
