//! One Bot API request, sent by Nezuko itself: the payload teloxide built, posted as JSON with the
//! shared client, Telegram's reply read into teloxide's types and errors.
//!
//! Why not teloxide's own sending: after any 5xx it sleeps 10 s before returning the error
//! (`DELAY_ON_SERVER_ERROR` in teloxide-core's `net/request.rs`), holding the chat's queue for that
//! long; and it keeps the HTTP status to itself, which Nezuko needs to tell a retryable answer from
//! a final one. Retrying is the caller's ([`RetryPolicy`]), so a fault costs a short, jittered wait.

use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use teloxide::types::{False, ResponseParameters, True};
use teloxide::{ApiError, Bot, RequestError, requests::Payload};

/// One request's answer, with what a retry could change.
#[derive(Debug)]
pub struct Attempt<T> {
    pub result: Result<T, RequestError>,
    /// The HTTP status, when Telegram answered at all.
    pub status: Option<u16>,
    /// Whether the same request may be sent again: a 5xx, a connection that could not be
    /// established, or (for requests whose repetition changes nothing) any network failure.
    pub retryable: bool,
}

/// `request` unless `fence` has ended: checked each time the request is polled, so a request
/// whose task wakes after the fence ended (a paused process resumed) is dropped before it is
/// written, not sent late. What was written before the pause had reached the kernel in time.
pub async fn fenced<T>(
    fence: super::Fence,
    request: impl std::future::Future<Output = Attempt<T>>,
) -> Attempt<T> {
    let mut request = std::pin::pin!(request);
    std::future::poll_fn(move |cx| {
        if let Err(error) = fence.check() {
            return std::task::Poll::Ready(Attempt {
                result: Err(error),
                status: None,
                retryable: false,
            });
        }
        request.as_mut().poll(cx)
    })
    .await
}

/// Sends `payload` once. A reply Telegram gave is never retryable unless it is a 5xx; a network
/// failure is retryable when the request never left (connect errors) or `P` is idempotent.
pub async fn send<P>(bot: &Bot, payload: &P) -> Attempt<P::Output>
where
    P: Payload + Serialize,
    P::Output: DeserializeOwned,
{
    send_with(bot, payload, |output: P::Output| output).await
}

/// Like [`send`], but reads the result as `T` and hands it to `read`: for a caller that needs
/// more than teloxide's type keeps (polling keeps each update's JSON as Telegram sent it).
pub async fn send_with<P, T, R>(bot: &Bot, payload: &P, read: impl FnOnce(T) -> R) -> Attempt<R>
where
    P: Payload + Serialize,
    T: DeserializeOwned,
{
    // teloxide names the inline variants of some methods `…Inline`; Telegram does not.
    let method = P::NAME.trim_end_matches("Inline");
    let mut url = bot.api_url();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty();
        segments.push(&format!("bot{}", bot.token()));
        segments.push(method);
    }
    let response = match bot.client().post(url).json(payload).send().await {
        Ok(response) => response,
        Err(error) => {
            let retryable = error.is_connect() || is_idempotent(method);
            return Attempt {
                result: Err(RequestError::from(error)),
                status: None,
                retryable,
            };
        }
    };
    let status = response.status();
    // Bytes, read as UTF-8 in place: `text()` would run a lossy decode and copy every reply
    // (polls bring up to 100 updates). Telegram's JSON is UTF-8; anything else is read lossily.
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => {
            return Attempt {
                result: Err(RequestError::from(error)),
                status: Some(status.as_u16()),
                retryable: is_idempotent(method),
            };
        }
    };
    let text = match std::str::from_utf8(&body) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(&body),
    };
    Attempt {
        result: read_reply(status, &text).map(read),
        status: Some(status.as_u16()),
        retryable: status.is_server_error(),
    }
}

/// Telegram's reply (`{"ok":true,"result":…}` or `{"ok":false,"description":…,"parameters":…}`)
/// as teloxide reads it: `parameters` become `RetryAfter`/`MigrateToChatId`, the description an
/// [`ApiError`]. A 5xx whose body is not Telegram's JSON (a proxy's page) is an unknown API error
/// naming the status.
fn read_reply<T: DeserializeOwned>(status: StatusCode, text: &str) -> Result<T, RequestError> {
    // A success is read in two steps: the envelope, then its `result` as `T`. (In one step, inside
    // the untagged enum below, serde buffers the value, and a `T` holding `RawValue`s, as polling
    // reads updates, cannot be read from a buffer.)
    #[derive(Deserialize)]
    struct Envelope<'a> {
        ok: bool,
        #[serde(borrow, default)]
        result: Option<&'a serde_json::value::RawValue>,
    }
    if let Ok(Envelope {
        ok: true,
        result: Some(result),
    }) = serde_json::from_str::<Envelope>(text)
    {
        return serde_json::from_str::<T>(result.get()).map_err(|source| {
            RequestError::InvalidJson {
                source: source.into(),
                raw: text.into(),
            }
        });
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Reply<T> {
        Ok {
            #[allow(dead_code)]
            ok: True,
            result: T,
        },
        Err {
            #[allow(dead_code)]
            ok: False,
            description: ApiError,
            parameters: Option<ResponseParameters>,
        },
    }
    match serde_json::from_str::<Reply<T>>(text) {
        Ok(Reply::Ok { result, .. }) => Ok(result),
        Ok(Reply::Err {
            parameters: Some(ResponseParameters::RetryAfter(after)),
            ..
        }) => Err(RequestError::RetryAfter(after)),
        Ok(Reply::Err {
            parameters: Some(ResponseParameters::MigrateToChatId(to)),
            ..
        }) => Err(RequestError::MigrateToChatId(to)),
        Ok(Reply::Err { description, .. }) => Err(RequestError::Api(description)),
        Err(_) if status.is_server_error() => Err(RequestError::Api(ApiError::Unknown(format!(
            "HTTP {status} without a Bot API reply"
        )))),
        Err(source) => Err(RequestError::InvalidJson {
            source: source.into(),
            raw: text.into(),
        }),
    }
}

/// Methods whose repetition leaves Telegram as one call would: reads, and writes that set a state
/// rather than add something. Sends (a second message), invite links (a second link) and the like
/// are not, so a failure after they may have left is not retried blindly.
pub fn is_idempotent(method: &str) -> bool {
    method.starts_with("get")
        || matches!(
            method,
            "restrictChatMember"
                | "banChatMember"
                | "unbanChatMember"
                | "deleteMessage"
                | "deleteMessages"
                | "editMessageText"
                | "editMessageReplyMarkup"
                | "answerCallbackQuery"
                | "approveChatJoinRequest"
                | "declineChatJoinRequest"
                | "answerChatJoinRequestQuery"
                | "sendChatJoinRequestWebApp"
                | "setMyCommands"
                | "setWebhook"
                | "deleteWebhook"
                | "leaveChat"
        )
}

/// Nezuko's retry policy for Telegram's 5xx and network failures: a few attempts, short waits
/// doubling from `initial` up to `max`, each spread by ±`jitter` so bots that failed together do
/// not come back together. Unlike a 429 (which says how long to wait), these say nothing, so the
/// waits stay short: a chat's queue waits at most the sum of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    pub initial: Duration,
    pub max: Duration,
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// Three retries after 100, 200 and 400 ms (±20 %): under a second in all.
    fn default() -> Self {
        Self {
            retries: 3,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based).
    pub fn delay(&self, retry: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(2u32.saturating_pow(retry.min(16)))
            .min(self.max)
            .as_secs_f64();
        let spread = base * self.jitter;
        let jittered = if spread > 0.0 {
            base + rand::rng().random_range(-spread..=spread)
        } else {
            base
        };
        Duration::from_secs_f64(jittered.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teloxide::types::Me;

    #[test]
    fn telegrams_replies_read_as_teloxide_reads_them() {
        let ok: Result<True, _> = read_reply(StatusCode::OK, r#"{"ok":true,"result":true}"#);
        assert!(ok.is_ok());
        let slow: Result<True, _> = read_reply(
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 5","parameters":{"retry_after":5}}"#,
        );
        assert!(matches!(slow, Err(RequestError::RetryAfter(s)) if s.seconds() == 5));
        let moved: Result<True, _> = read_reply(
            StatusCode::BAD_REQUEST,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: group chat was upgraded to a supergroup chat","parameters":{"migrate_to_chat_id":-1001}}"#,
        );
        assert!(matches!(moved, Err(RequestError::MigrateToChatId(c)) if c.0 == -1001));
        let refused: Result<True, _> = read_reply(
            StatusCode::UNAUTHORIZED,
            r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
        );
        assert!(matches!(
            refused,
            Err(RequestError::Api(ApiError::InvalidToken))
        ));
        let proxy: Result<Me, _> = read_reply(StatusCode::BAD_GATEWAY, "<html>502</html>");
        assert!(
            matches!(proxy, Err(RequestError::Api(ApiError::Unknown(ref t))) if t.contains("502")),
            "{proxy:?}"
        );
        let garbage: Result<Me, _> = read_reply(StatusCode::OK, "{}");
        assert!(matches!(garbage, Err(RequestError::InvalidJson { .. })));
    }

    #[test]
    fn retries_wait_briefly_and_only_repeat_what_is_safe_to_repeat() {
        let policy = RetryPolicy::default();
        let total: Duration = (0..policy.retries).map(|r| policy.delay(r)).sum();
        assert!(total < Duration::from_secs(1), "{total:?}");
        for retry in 0..40 {
            assert!(policy.delay(retry) <= policy.max.mul_f64(1.0 + policy.jitter));
        }
        assert!(is_idempotent("getChatMember") && is_idempotent("restrictChatMember"));
        assert!(!is_idempotent("sendMessage") && !is_idempotent("createChatInviteLink"));
    }
}
