//! Telegram bot tokens: parsed once, never printed.

use std::fmt;

/// A Telegram bot token (`<bot id>:<secret>`), checked for shape.
///
/// `Debug` shows only the bot id, so a token inside any struct that derives `Debug`
/// cannot leak through a log line or an error message. There is deliberately no `Display`
/// and no `Serialize`: the only ways out are [`BotToken::expose`] (for the Telegram client and
/// the vault) and [`BotToken::bot_id`].
#[derive(Clone, PartialEq, Eq)]
pub struct BotToken {
    bot_id: i64,
    token: String,
}

/// Why a string is not a bot token. Never carries the input, which may be a real secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotTokenError {
    #[error("a bot token has the form <bot id>:<secret>, with a colon")]
    MissingColon,
    #[error("the part before the colon must be the bot's numeric id")]
    BadBotId,
    #[error("the part after the colon must be 30 to 64 characters of A-Z, a-z, 0-9, _ and -")]
    BadSecret,
}

impl BotToken {
    /// Parses a token as BotFather issues it. Surrounding white space is ignored
    /// because tokens are usually pasted.
    pub fn parse(input: &str) -> Result<Self, BotTokenError> {
        let token = input.trim();
        let (id, secret) = token.split_once(':').ok_or(BotTokenError::MissingColon)?;
        let bot_id = match id.parse::<i64>() {
            Ok(bot_id) if bot_id > 0 && id.bytes().all(|b| b.is_ascii_digit()) => bot_id,
            _ => return Err(BotTokenError::BadBotId),
        };
        let secret_ok = (30..=64).contains(&secret.len())
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !secret_ok {
            return Err(BotTokenError::BadSecret);
        }
        Ok(Self {
            bot_id,
            token: token.to_string(),
        })
    }

    /// The bot's Telegram user id, which is public and safe to log.
    pub fn bot_id(&self) -> i64 {
        self.bot_id
    }

    /// The full token. Only for the Telegram client and the vault.
    pub fn expose(&self) -> &str {
        &self.token
    }
}

impl fmt::Debug for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BotToken({}:[redacted])", self.bot_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

    #[test]
    fn a_botfather_token_parses_and_keeps_its_id() {
        let token = BotToken::parse(&format!("  {TOKEN}\n")).unwrap();
        assert_eq!(token.bot_id(), 123456789);
        assert_eq!(token.expose(), TOKEN);
    }

    #[test]
    fn debug_shows_the_id_but_never_the_secret() {
        let token = BotToken::parse(TOKEN).unwrap();
        let shown = format!("{token:?}");
        assert_eq!(shown, "BotToken(123456789:[redacted])");
        assert!(!shown.contains("AAHdq"));
    }

    #[test]
    fn malformed_tokens_are_refused_with_the_reason() {
        assert_eq!(BotToken::parse("nocolon"), Err(BotTokenError::MissingColon));
        assert_eq!(
            BotToken::parse("-5:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
            Err(BotTokenError::BadBotId)
        );
        assert_eq!(
            BotToken::parse("+5:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
            Err(BotTokenError::BadBotId)
        );
        assert_eq!(BotToken::parse("12:short"), Err(BotTokenError::BadSecret));
        assert_eq!(
            BotToken::parse("12:AAHdqTcvCH1vGWJxfSeofSAs0K5PAL/saw"),
            Err(BotTokenError::BadSecret)
        );
    }

    #[test]
    fn errors_never_echo_the_input() {
        let err = BotToken::parse("12:AAHdqTcvCH1vGWJxfSeofSAs0K5PAL/saw").unwrap_err();
        assert!(!err.to_string().contains("AAHdq"));
    }
}
