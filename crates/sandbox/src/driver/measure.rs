//! Measurements taken at the sandbox's edge only, so any bot implementation is measured the same way:
//! per update that calls for an action, the time from handing it to the bot to the bot's first
//! resulting call. A guard bot's join request query calls for its answer
//! (`answerChatJoinRequestQuery` or `sendChatJoinRequestWebApp`), whoever sent the request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::Observer;
use crate::world::QueuedUpdate;

/// Methods that count as acting on a non-subscriber.
const ACTIONS: [&str; 5] = [
    "restrictChatMember",
    "banChatMember",
    "deleteMessage",
    "deleteMessages",
    "sendMessage",
];

#[derive(Debug, Default)]
struct State {
    /// Non-subscribers whose next update calls for an action, by (chat, user).
    watched: HashMap<(i64, i64), ()>,
    /// (bot, chat, user) → when the first update calling for an action was handed over.
    waiting: HashMap<(i64, i64, i64), Instant>,
    /// Each measured latency with when its update was handed over.
    latencies: Vec<(Instant, Duration)>,
    /// Guard queries handed over and not yet answered: query id → its (bot, chat, user).
    queries: HashMap<String, (i64, i64, i64)>,
}

/// Collects hand-over times and matches the bots' calls to them.
#[derive(Debug, Default)]
pub struct Stopwatch {
    state: Mutex<State>,
}

impl Stopwatch {
    /// Marks a user whose messages and joins in `chat` need an action.
    pub fn watch(&self, chat: i64, user: i64) {
        self.lock().watched.insert((chat, user), ());
    }

    pub fn unwatch(&self, chat: i64, user: i64) {
        self.lock().watched.remove(&(chat, user));
    }

    /// Forgets what was measured so far (the end of a warm-up); watched users stay watched.
    pub fn reset(&self) {
        let mut state = self.lock();
        state.latencies.clear();
        state.waiting.clear();
        state.queries.clear();
    }

    /// Updates that called for an action and got none (still waiting when asked).
    pub fn unanswered(&self) -> usize {
        self.lock().waiting.len()
    }

    /// Up to `limit` of the updates still waiting for an action, oldest first: (bot, chat, user,
    /// when handed over), so a run that lost some says which to look for in the bot's log.
    pub fn unanswered_sample(&self, limit: usize) -> Vec<(i64, i64, i64, Instant)> {
        let mut waiting: Vec<_> = self
            .lock()
            .waiting
            .iter()
            .map(|(&(bot, chat, user), &handed)| (bot, chat, user, handed))
            .collect();
        waiting.sort_by_key(|w| w.3);
        waiting.truncate(limit);
        waiting
    }

    /// The measured latencies, sorted.
    pub fn latencies(&self) -> Vec<Duration> {
        self.latencies_between(None, None)
    }

    /// The latencies of updates handed over within `[from, to)` (either end open), sorted: the
    /// figures of one stretch of a run, such as the minute after the bots were restarted.
    pub fn latencies_between(&self, from: Option<Instant>, to: Option<Instant>) -> Vec<Duration> {
        let mut latencies: Vec<Duration> = self
            .lock()
            .latencies
            .iter()
            .filter(|(at, _)| from.is_none_or(|from| *at >= from) && to.is_none_or(|to| *at < to))
            .map(|(_, latency)| *latency)
            .collect();
        latencies.sort_unstable();
        latencies
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Observer for Stopwatch {
    fn updates_handed(&self, bot: i64, updates: &[QueuedUpdate], at: Instant) {
        let mut state = self.lock();
        for update in updates {
            if update.kind == "chat_join_request" {
                let request = &update.payload.value;
                if let (Some(query), Some(chat), Some(user)) = (
                    request["query_id"].as_str(),
                    request["chat"]["id"].as_i64(),
                    request["from"]["id"].as_i64(),
                ) {
                    let key = (bot, chat, user);
                    state.queries.insert(query.to_string(), key);
                    state.waiting.entry(key).or_insert(at);
                }
                continue;
            }
            if update.kind != "message" {
                continue;
            }
            let message = &update.payload.value;
            let Some(chat) = message["chat"]["id"].as_i64() else {
                continue;
            };
            let users: Vec<i64> = match message["new_chat_members"].as_array() {
                Some(members) => members.iter().filter_map(|m| m["id"].as_i64()).collect(),
                None => message["from"]["id"].as_i64().into_iter().collect(),
            };
            for user in users {
                if state.watched.contains_key(&(chat, user)) {
                    state.waiting.entry((bot, chat, user)).or_insert(at);
                }
            }
        }
    }

    fn call_arrived(&self, bot: i64, method: &str, params: &Map<String, Value>, at: Instant) {
        if matches!(
            method,
            "answerChatJoinRequestQuery" | "sendChatJoinRequestWebApp"
        ) {
            let mut state = self.lock();
            let query = params
                .get("chat_join_request_query_id")
                .and_then(Value::as_str);
            let key = query.and_then(|q| state.queries.remove(q));
            if let Some(handed) = key.and_then(|key| state.waiting.remove(&key)) {
                state
                    .latencies
                    .push((handed, at.saturating_duration_since(handed)));
            }
            return;
        }
        if !ACTIONS.contains(&method) {
            return;
        }
        let Some(chat) = params.get("chat_id").and_then(Value::as_i64) else {
            return;
        };
        let mut state = self.lock();
        let key = match params.get("user_id").and_then(Value::as_i64) {
            Some(user) => {
                // Acted on: what this member sent before the action and is handed over after it
                // calls for nothing more (counting it would time the bot to some later, unrelated
                // warning in the chat). The driver watches them again if they leave again.
                state.watched.remove(&(chat, user));
                Some((bot, chat, user))
            }
            // A delete or a warning names no user: it answers the oldest waiting update in that chat.
            None => state
                .waiting
                .iter()
                .filter(|((b, c, _), _)| *b == bot && *c == chat)
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| *k),
        };
        if let Some(handed) = key.and_then(|key| state.waiting.remove(&key)) {
            state
                .latencies
                .push((handed, at.saturating_duration_since(handed)));
        }
    }
}

/// The `q`-quantile of sorted durations, in milliseconds.
pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::world::Payload;

    use super::*;

    fn update(chat: i64, user: i64) -> QueuedUpdate {
        let payload = Payload::new(json!({ "chat": { "id": chat }, "from": { "id": user } }));
        QueuedUpdate {
            update_id: 1,
            kind: "message",
            raw: payload.value.to_string().into(),
            payload,
        }
    }

    #[test]
    fn a_watched_users_update_is_timed_to_the_bots_first_action() {
        let watch = Stopwatch::default();
        watch.watch(-1, 7);
        let start = Instant::now();
        watch.updates_handed(5, &[update(-1, 7), update(-1, 8)], start);
        watch.updates_handed(5, &[update(-1, 7)], start + Duration::from_millis(50));
        let params = json!({ "chat_id": -1, "user_id": 7 })
            .as_object()
            .unwrap()
            .clone();
        watch.call_arrived(
            5,
            "getChatMember",
            &params,
            start + Duration::from_millis(5),
        );
        watch.call_arrived(
            5,
            "restrictChatMember",
            &params,
            start + Duration::from_millis(12),
        );
        watch.call_arrived(
            5,
            "restrictChatMember",
            &params,
            start + Duration::from_millis(90),
        );
        assert_eq!(
            watch.latencies(),
            vec![Duration::from_millis(12)],
            "first hand-over to first action, once"
        );
    }

    #[test]
    fn an_update_handed_over_after_the_bot_acted_on_its_sender_is_not_timed() {
        let watch = Stopwatch::default();
        watch.watch(-1, 7);
        let start = Instant::now();
        let params = json!({ "chat_id": -1, "user_id": 7 })
            .as_object()
            .unwrap()
            .clone();
        // Restricted on a channel leave, while a message sent just before waited to be polled.
        watch.call_arrived(5, "restrictChatMember", &params, start);
        watch.updates_handed(5, &[update(-1, 7)], start + Duration::from_millis(10));
        let warning = json!({ "chat_id": -1 }).as_object().unwrap().clone();
        watch.call_arrived(5, "sendMessage", &warning, start + Duration::from_secs(2));
        assert!(watch.latencies().is_empty(), "{:?}", watch.latencies());
        watch.watch(-1, 7);
        watch.updates_handed(5, &[update(-1, 7)], start + Duration::from_secs(3));
        watch.call_arrived(
            5,
            "deleteMessage",
            &warning,
            start + Duration::from_millis(3_020),
        );
        assert_eq!(
            watch.latencies(),
            vec![Duration::from_millis(20)],
            "watched again"
        );
    }

    #[test]
    fn a_guard_query_is_timed_to_its_answer() {
        let watch = Stopwatch::default();
        let start = Instant::now();
        let payload = Payload::new(json!({
            "chat": { "id": -1 }, "from": { "id": 7 }, "user_chat_id": 7, "date": 0, "query_id": "q1"
        }));
        let request = QueuedUpdate {
            update_id: 2,
            kind: "chat_join_request",
            raw: payload.value.to_string().into(),
            payload,
        };
        watch.updates_handed(5, &[request], start);
        assert_eq!(watch.unanswered(), 1);
        let answer = json!({ "chat_join_request_query_id": "q1", "result": "approve" })
            .as_object()
            .unwrap()
            .clone();
        watch.call_arrived(
            5,
            "answerChatJoinRequestQuery",
            &answer,
            start + Duration::from_millis(30),
        );
        assert_eq!(watch.latencies(), vec![Duration::from_millis(30)]);
        assert_eq!(watch.unanswered(), 0);
    }

    #[test]
    fn quantiles_pick_from_sorted_samples() {
        let samples: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&samples, 0.5), 51.0);
        assert_eq!(quantile_ms(&samples, 0.99), 99.0);
        assert_eq!(quantile_ms(&[], 0.99), 0.0);
    }
}
