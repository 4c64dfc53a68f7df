//! Telegram refusing a bot's token in the middle of its work.
//!
//! A token revoked in BotFather is refused on every call from then on: the Bot API server logs the
//! bot out and answers each request 401 "Unauthorized" (`Client::get_closing_error`,
//! tdlib/telegram-bot-api 01a3679, which also counts 401 with 429 and 5xx among the codes that say
//! nothing about the request: `Client::is_special_error_code`). The poller meets it at its next
//! `getUpdates`, but a webhook-mode bot has no poll, and an update being handled meets it first.
//! So a 401 on any of the runner's calls is not an answer about that call: the update stays with
//! Telegram (the error counts as weather, [`super::is_weather`]), and the runner is told to stop
//! as `invalid_token` ([`TokenWatch`]) instead of deciding anything on an answer it never got.

use std::fmt;
use std::sync::Arc;

use teloxide::RequestError;
use tokio_util::sync::CancellationToken;

/// One runner's watch on its token: fired by the first call Telegram answers 401, awaited by the
/// runner. Cheap to clone (clones share the watch).
#[derive(Clone, Default)]
pub struct TokenWatch {
    refused: CancellationToken,
}

impl TokenWatch {
    /// Telegram refused the token: the runner stops.
    pub fn refuse(&self) {
        self.refused.cancel();
    }

    /// Whether Telegram refused the token on one of the runner's calls.
    pub fn is_refused(&self) -> bool {
        self.refused.is_cancelled()
    }

    /// Resolves once Telegram has refused the token.
    pub async fn refused(&self) {
        self.refused.cancelled().await;
    }
}

/// A call Telegram answered 401: the bot's token was refused (revoked or replaced in BotFather).
/// Carried inside [`RequestError::Io`] like [`super::Fenced`], so it counts as weather: nothing is
/// decided on it and the update is handled again once the bot runs with a valid token.
#[derive(Debug)]
pub struct TokenRefused {
    /// The Bot API method that met the refusal.
    pub method: &'static str,
}

impl fmt::Display for TokenRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Telegram refused the bot's token (401) on {}: the bot stops as invalid_token and the update waits for its next start",
            self.method
        )
    }
}

impl std::error::Error for TokenRefused {}

impl From<TokenRefused> for RequestError {
    fn from(refused: TokenRefused) -> Self {
        RequestError::Io(Arc::new(std::io::Error::other(refused)))
    }
}

/// Whether `error` says the runner cannot speak for the bot at all, so no answer about the request
/// will come from it: this node's lease ended ([`super::Fenced`]), the runner stopped
/// ([`super::RunnerStopped`]) or Telegram refused the token ([`TokenRefused`]). Unlike a network
/// failure, such an error is never read as "Telegram could not say" (a channel's unknown answer
/// that the group's fail mode decides): the update is left for the bot's next runner.
pub fn is_halt(error: &RequestError) -> bool {
    let RequestError::Io(io) = error else {
        return false;
    };
    io.get_ref().is_some_and(|inner| {
        inner.is::<TokenRefused>()
            || inner.is::<super::Fenced>()
            || inner.is::<super::RunnerStopped>()
    })
}

/// Whether `error` (one of a chain's causes) is Telegram refusing the bot's token ([`TokenRefused`]).
pub fn is_token_refused_cause(error: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        error.downcast_ref::<RequestError>(),
        Some(RequestError::Io(io)) if io.get_ref().is_some_and(|inner| inner.is::<TokenRefused>())
    )
}

/// [`is_halt`] for any error in a chain (an `anyhow` error's causes).
pub fn is_halt_cause(error: &(dyn std::error::Error + 'static)) -> bool {
    error.downcast_ref::<RequestError>().is_some_and(is_halt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_a_closed_fence_and_a_stopped_runner_halt_and_are_weather_a_network_error_only_weather()
     {
        let refused: RequestError = TokenRefused {
            method: "getChatMember",
        }
        .into();
        assert!(is_halt(&refused) && super::super::is_weather(&refused));
        assert!(is_token_refused_cause(&refused));
        assert!(!is_token_refused_cause(&RequestError::from(
            super::super::RunnerStopped
        )));
        assert!(refused.to_string().contains("getChatMember"), "{refused}");
        assert!(is_halt(&super::super::Fenced.into()));
        assert!(is_halt(&super::super::RunnerStopped.into()));
        let unavailable: RequestError = super::super::Unavailable {
            method: "getChatMember",
            status: 502,
            description: "Bad Gateway".into(),
        }
        .into();
        assert!(!is_halt(&unavailable) && super::super::is_weather(&unavailable));
        assert!(!is_halt(&RequestError::Api(
            teloxide::ApiError::InvalidToken
        )));
    }

    #[tokio::test]
    async fn a_watch_fires_once_for_every_clone() {
        let watch = TokenWatch::default();
        let runner = watch.clone();
        assert!(!runner.is_refused());
        watch.refuse();
        watch.refuse();
        runner.refused().await;
        assert!(runner.is_refused());
    }
}
