//! Guard bots (Bot API 10.1): a `chat_join_request` may carry a `query_id` the bot must answer
//! within 10 s, with [`AnswerChatJoinRequestQuery`] or by first showing the user a Mini App
//! ([`SendChatJoinRequestWebApp`]). teloxide predates both: its `ChatJoinRequest` drops `query_id`
//! and it has neither method. The query id is read from the update's JSON where it is parsed
//! ([`query_id`], kept by the bot's `Ledger` until the update is done with), and the two methods are
//! payloads of our own, sent through the same transport, limits and records as every other call.

use serde::{Deserialize, Serialize};
use teloxide::requests::Payload;
use teloxide::types::True;

/// `answerChatJoinRequestQuery`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnswerChatJoinRequestQuery {
    pub chat_join_request_query_id: String,
    pub result: QueryResult,
}

impl Payload for AnswerChatJoinRequestQuery {
    type Output = True;
    const NAME: &'static str = "answerChatJoinRequestQuery";
}

/// `answerChatJoinRequestQuery.result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryResult {
    /// Let the user in.
    Approve,
    /// Keep the user out.
    Decline,
    /// Leave the decision to the chat's other administrators (the request stays pending).
    Queue,
}

/// `sendChatJoinRequestWebApp`: the user sees the Mini App at `web_app_url` before the bot decides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendChatJoinRequestWebApp {
    pub chat_join_request_query_id: String,
    pub web_app_url: String,
}

impl Payload for SendChatJoinRequestWebApp {
    type Output = True;
    const NAME: &'static str = "sendChatJoinRequestWebApp";
}

/// The `query_id` of a `chat_join_request` update, read from the update's JSON; `None` for any
/// other update or a request without one. Cheap for every other update: only a JSON text holding
/// the key `"query_id"` is parsed (a quote inside a string value is escaped, so message text
/// cannot hold it bare).
pub fn query_id(raw: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Update {
        chat_join_request: Option<Request>,
    }
    #[derive(Deserialize)]
    struct Request {
        query_id: Option<String>,
    }
    if !raw.contains("\"query_id\"") {
        return None;
    }
    serde_json::from_str::<Update>(raw)
        .ok()?
        .chat_join_request?
        .query_id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_id_is_read_from_join_requests_only() {
        let asked = r#"{"update_id":5,"chat_join_request":{"chat":{"id":-100,"type":"channel"},"from":{"id":7,"is_bot":false,"first_name":"A"},"user_chat_id":7,"date":1,"query_id":"q-1"}}"#;
        assert_eq!(query_id(asked).as_deref(), Some("q-1"));
        let plain = asked.replace(r#","query_id":"q-1""#, "");
        assert_eq!(query_id(&plain), None);
        let text = r#"{"update_id":6,"message":{"text":"\"query_id\":\"x\""}}"#;
        assert_eq!(query_id(text), None);
    }

    #[test]
    fn payloads_serialize_as_the_bot_api_names_them() {
        let answer = AnswerChatJoinRequestQuery {
            chat_join_request_query_id: "q".into(),
            result: QueryResult::Queue,
        };
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            serde_json::json!({ "chat_join_request_query_id": "q", "result": "queue" })
        );
    }
}
