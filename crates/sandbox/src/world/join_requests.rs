//! Join requests as Telegram keeps them: pending until an administrator (or a bot with
//! `can_invite_users`) approves or declines them or the user withdraws; a guard bot's query about
//! one (Bot API 10.1) answered within 10 s; and the 5 minutes in which a bot may write to the
//! requester through `user_chat_id` although they never started it.
//!
//! What the Bot API documents is followed as written. Where it is silent the sandbox chooses, and
//! says so here: an unanswered query is declined when its 10 s are over (the issue that asked for
//! guard bots, and Telegram's wording "must … within 10 seconds"); once a bot shows the user a
//! Mini App (`sendChatJoinRequestWebApp`) the query stays open for [`WEB_APP_WINDOW_MS`], the time
//! a person needs to join a channel and come back; `queue` closes the query and leaves the request
//! pending for the chat's administrators.

use serde_json::json;

use super::{Payload, World};
use crate::api::ApiError;
use crate::model::{JoinQuery, JoinRequest};

/// A guard bot answers a query within this long (`ChatJoinRequest.query_id`, Bot API 10.1).
pub const QUERY_DEADLINE_MS: i64 = 10_000;
/// A Mini App shown for a query keeps it open this long (the sandbox's choice, see above).
pub const WEB_APP_WINDOW_MS: i64 = 300_000;
/// `user_chat_id` may be written to for this long after the request (`ChatJoinRequest`).
pub const USER_CHAT_WINDOW_S: i64 = 300;

/// How a guard bot answers a query (`answerChatJoinRequestQuery.result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryResult {
    Approve,
    Decline,
    Queue,
}

impl QueryResult {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "approve" => Some(Self::Approve),
            "decline" => Some(Self::Decline),
            "queue" => Some(Self::Queue),
            _ => None,
        }
    }
}

impl World {
    /// Files `user`'s request to join `chat` and tells every administrator bot that may answer it
    /// (`can_invite_users`); the chat's guard bot, if it has one, gets a `query_id` with it.
    /// Returns the query id.
    pub fn add_join_request(&mut self, chat: i64, user: i64) -> Result<Option<String>, ApiError> {
        let date = self.now();
        let guard = self.chat(chat)?.join_guard.filter(|bot| {
            self.status(chat, *bot).is_admin() && self.status(chat, *bot).rights().can_invite_users
        });
        let query = guard.map(|bot| {
            let id = format!("jrq-{}", self.next_callback_id());
            let deadline_ms = self.now_ms() + QUERY_DEADLINE_MS;
            self.join_queries.insert(
                id.clone(),
                JoinQuery {
                    id: id.clone(),
                    chat,
                    user,
                    bot,
                    deadline_ms,
                    web_app_url: None,
                },
            );
            id
        });
        let request = json!({
            "chat": self.chat_json(chat)?,
            "from": self.account(user)?.to_json(),
            "user_chat_id": user,
            "date": date,
        });
        self.chat_mut(chat)?.join_requests.push(JoinRequest {
            user,
            date,
            query: query.clone(),
        });
        let plain = Payload::new(request.clone());
        for bot in self.admin_bots(chat) {
            if !self.status(chat, bot).rights().can_invite_users {
                continue;
            }
            if Some(bot) == guard
                && let Some(id) = &query
            {
                let mut asked = request.clone();
                asked["query_id"] = json!(id);
                self.push_update(bot, "chat_join_request", &Payload::new(asked));
            } else {
                self.push_update(bot, "chat_join_request", &plain);
            }
        }
        Ok(query)
    }

    /// Approves or declines `user`'s pending request to `chat` (`by` acts); any open query about it
    /// closes. `HIDE_REQUESTER_MISSING` when there is none (never sent, withdrawn, or decided).
    pub fn resolve_join_request(
        &mut self,
        chat: i64,
        user: i64,
        approve: bool,
        by: i64,
    ) -> Result<(), ApiError> {
        let requests = &mut self.chat_mut(chat)?.join_requests;
        let Some(position) = requests.iter().position(|r| r.user == user) else {
            return Err(ApiError::bad_request("HIDE_REQUESTER_MISSING"));
        };
        let request = requests.remove(position);
        if let Some(query) = request.query {
            self.join_queries.remove(&query);
        }
        if approve && let Some(status) = self.status_on_joining(chat, user)? {
            self.set_status_by_request(chat, user, status, by)?;
        }
        Ok(())
    }

    /// The user takes their request back: it is gone, and nobody is told (Telegram sends no update;
    /// a bot finds out when approving or declining it fails).
    pub fn withdraw_join_request(&mut self, chat: i64, user: i64) -> Result<(), ApiError> {
        let requests = &mut self.chat_mut(chat)?.join_requests;
        let Some(position) = requests.iter().position(|r| r.user == user) else {
            return Err(ApiError::bad_request("no pending join request"));
        };
        if let Some(query) = requests.remove(position).query {
            self.join_queries.remove(&query);
        }
        Ok(())
    }

    /// The open query `id` of `bot`, or the error Telegram gives for one it does not know (never
    /// sent, answered, or past its deadline).
    pub fn open_query(&self, bot: i64, id: &str) -> Result<&JoinQuery, ApiError> {
        self.join_queries
            .get(id)
            .filter(|q| q.bot == bot && q.deadline_ms > self.now_ms())
            .ok_or_else(|| ApiError::bad_request("QUERY_ID_INVALID"))
    }

    /// Answers a guard bot's query.
    pub fn answer_join_query(
        &mut self,
        bot: i64,
        id: &str,
        result: QueryResult,
    ) -> Result<(), ApiError> {
        let query = self.open_query(bot, id)?.clone();
        match result {
            QueryResult::Approve => self.resolve_join_request(query.chat, query.user, true, bot),
            QueryResult::Decline => self.resolve_join_request(query.chat, query.user, false, bot),
            QueryResult::Queue => {
                self.join_queries.remove(id);
                let chat = self.chat_mut(query.chat)?;
                for request in chat
                    .join_requests
                    .iter_mut()
                    .filter(|r| r.user == query.user)
                {
                    request.query = None;
                }
                Ok(())
            }
        }
    }

    /// A guard bot shows the user a Mini App before deciding: the query stays open for
    /// [`WEB_APP_WINDOW_MS`] more.
    pub fn show_join_web_app(&mut self, bot: i64, id: &str, url: &str) -> Result<(), ApiError> {
        self.open_query(bot, id)?;
        if !url.starts_with("https://") {
            // Mini Apps are served over HTTPS only (`WebAppInfo.url`: "An HTTPS URL").
            return Err(ApiError::bad_request("BUTTON_URL_INVALID"));
        }
        let deadline_ms = self.now_ms() + WEB_APP_WINDOW_MS;
        if let Some(query) = self.join_queries.get_mut(id) {
            query.web_app_url = Some(url.to_string());
            query.deadline_ms = deadline_ms;
        }
        Ok(())
    }

    /// Queries whose time is over: each is closed and its request declined, as Telegram does with
    /// a query nobody answered. Returns them, for the journal's violations.
    pub fn expire_join_queries(&mut self) -> Vec<JoinQuery> {
        if self.join_queries.is_empty() {
            return Vec::new();
        }
        let now = self.now_ms();
        let expired: Vec<JoinQuery> = self
            .join_queries
            .values()
            .filter(|q| q.deadline_ms <= now)
            .cloned()
            .collect();
        for query in &expired {
            self.join_queries.remove(&query.id);
            if let Ok(chat) = self.chat_mut(query.chat) {
                chat.join_requests.retain(|r| r.user != query.user);
            }
        }
        expired
    }

    /// Whether `bot` may write to `user` through `user_chat_id` now: the user has a pending request
    /// to a chat the bot may decide on, sent at most [`USER_CHAT_WINDOW_S`] ago.
    pub fn join_window_open(&self, user: i64, bot: i64) -> bool {
        let now = self.now();
        self.chats.values().any(|chat| {
            chat.join_requests
                .iter()
                .any(|r| r.user == user && now - r.date <= USER_CHAT_WINDOW_S)
                && self.status(chat.id, bot).is_admin()
                && self.status(chat.id, bot).rights().can_invite_users
        })
    }
}
