//! Sorting Telegram's errors into what the supervisor does about them.

use std::fmt;
use std::time::Duration;

use teloxide::{ApiError, RequestError};

use crate::domain::ReasonCode;

/// Why a bot stopped, as the restart policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 401/404: the token was revoked or never existed. Retrying cannot help.
    InvalidToken,
    /// 409: another process polls this token (or a webhook is set).
    Conflict,
    /// Network errors, timeouts, 5xx and 429: worth retrying after a while.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The stored token cannot be decrypted with the configured keys.
    Undecryptable,
    /// The dispatcher ended or panicked on its own.
    Died(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidToken => {
                f.write_str("invalid token: Telegram refused it (revoked or wrong)")
            }
            Self::Conflict => {
                f.write_str("conflict: another instance is polling this token, or a webhook is set")
            }
            Self::Transient { reason, .. } => write!(f, "transient error: {reason}"),
            Self::Undecryptable => {
                f.write_str("the stored token cannot be decrypted with the configured keys")
            }
            Self::Died(reason) => write!(f, "the dispatcher stopped: {reason}"),
        }
    }
}

impl std::error::Error for Failure {}

impl Failure {
    /// The failure as a word programs decide on (the dashboard's badge, "parked").
    pub fn code(&self) -> ReasonCode {
        match self {
            Self::InvalidToken => ReasonCode::InvalidToken,
            Self::Conflict => ReasonCode::Conflict,
            Self::Transient { .. } => ReasonCode::Transient,
            Self::Undecryptable => ReasonCode::Undecryptable,
            Self::Died(_) => ReasonCode::Crashed,
        }
    }
}

/// Telegram answered a call with a 5xx however often it was retried: it is unavailable for now,
/// which is not a refusal of the request. Carried inside [`RequestError::Io`] (teloxide's error
/// type has no variant for it) so that callers can tell it from a `400` ([`is_weather`]).
#[derive(Debug)]
pub struct Unavailable {
    pub method: &'static str,
    /// The HTTP status of the last answer.
    pub status: u16,
    pub description: String,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Telegram answered {} to {} ({}); unavailable for now",
            self.status, self.method, self.description
        )
    }
}

impl std::error::Error for Unavailable {}

impl From<Unavailable> for RequestError {
    fn from(unavailable: Unavailable) -> Self {
        RequestError::Io(std::sync::Arc::new(std::io::Error::other(unavailable)))
    }
}

/// Whether `error` is Telegram's weather rather than an answer about the request: the network
/// failed, Telegram was unavailable (5xx after retries, [`Unavailable`]) or asked to wait (429).
/// The same request later may well succeed, so an update that met it is handled again later.
pub fn is_weather(error: &RequestError) -> bool {
    matches!(
        error,
        RequestError::Network(_) | RequestError::RetryAfter(_) | RequestError::Io(_)
    )
}

/// [`is_weather`] for any error in a chain (an `anyhow` error's causes).
pub fn is_weather_cause(error: &(dyn std::error::Error + 'static)) -> bool {
    error.downcast_ref::<RequestError>().is_some_and(is_weather)
}

/// Classifies an error from a Telegram request.
pub fn classify(error: &RequestError) -> Failure {
    match error {
        RequestError::Api(ApiError::InvalidToken) => Failure::InvalidToken,
        RequestError::Api(ApiError::TerminatedByOtherGetUpdates | ApiError::CantGetUpdates) => {
            Failure::Conflict
        }
        RequestError::RetryAfter(seconds) => Failure::Transient {
            reason: format!("Telegram asked to retry after {}s", seconds.seconds()),
            retry_after: Some(seconds.duration()),
        },
        RequestError::Api(other) => Failure::Transient {
            reason: other.to_string(),
            retry_after: None,
        },
        RequestError::Network(err) => Failure::Transient {
            reason: format!("network: {}", without_url(err)),
            retry_after: None,
        },
        other => Failure::Transient {
            reason: other.to_string(),
            retry_after: None,
        },
    }
}

/// reqwest errors quote the request URL, which holds the bot token: replace it, keep the causes.
fn without_url(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    match err.url() {
        Some(url) => text.replace(url.as_str(), "<Bot API URL>"),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telegrams_answers_map_to_what_the_supervisor_does() {
        assert_eq!(
            classify(&RequestError::Api(ApiError::InvalidToken)),
            Failure::InvalidToken
        );
        assert_eq!(
            classify(&RequestError::Api(ApiError::TerminatedByOtherGetUpdates)),
            Failure::Conflict
        );
        let retry = classify(&RequestError::RetryAfter(
            teloxide::types::Seconds::from_seconds(7),
        ));
        assert!(
            matches!(retry, Failure::Transient { retry_after: Some(d), .. } if d == Duration::from_secs(7))
        );
        let unknown = classify(&RequestError::Api(ApiError::Unknown("Bad Gateway".into())));
        assert!(matches!(
            unknown,
            Failure::Transient {
                retry_after: None,
                ..
            }
        ));
    }
}
