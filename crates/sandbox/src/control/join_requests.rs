//! Join requests from both sides: a user asks to join or takes it back, the chat's owner assigns a
//! guard bot, a user opens the Mini App a guard bot showed them (with `initData` signed as
//! Telegram signs it), and the pending requests read back.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use super::ControlError;
use super::world::check_ids;
use crate::Sandbox;
use crate::model::{JoinQuery, Status};

/// A pending join request as the control API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingRequest {
    pub user: i64,
    /// Unix seconds.
    pub date: i64,
    /// The guard bot's open query, if one is open.
    pub query: Option<String>,
    /// The Mini App the guard bot showed for it, if it did.
    pub web_app_url: Option<String>,
}

/// A Mini App as the user's app opens it: the URL and the `initData` the page reads from
/// `Telegram.WebApp.initData`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenedWebApp {
    pub url: String,
    pub init_data: String,
}

impl Sandbox {
    /// The user asks to join; administrator bots with `can_invite_users` get a `chat_join_request`
    /// (the guard bot's with a `query_id`). Returns the query id, if a guard bot was asked.
    pub fn request_join(&self, chat: i64, user: i64) -> Result<Option<String>, ControlError> {
        let mut world = self.world();
        super::users::acting(&world, chat, user)?;
        match world.status(chat, user) {
            Status::Kicked { .. } => return Err(ControlError::Banned { chat, user }),
            status if status.is_present() => {
                return Err(ControlError::NotAllowed {
                    chat,
                    user,
                    reason: "a member has nothing to request".into(),
                });
            }
            _ => {}
        }
        if world.chats[&chat]
            .join_requests
            .iter()
            .any(|r| r.user == user)
        {
            return Err(ControlError::NotAllowed {
                chat,
                user,
                reason: "a request is already pending".into(),
            });
        }
        Ok(world.add_join_request(chat, user)?)
    }

    /// The user withdraws their pending request; no bot is told.
    pub fn withdraw_join_request(&self, chat: i64, user: i64) -> Result<(), ControlError> {
        let mut world = self.world();
        check_ids(&world, chat, user)?;
        Ok(world.withdraw_join_request(chat, user)?)
    }

    /// The chat's owner assigns `bot` (an administrator with `can_invite_users`) to process join
    /// requests, or no bot (`None`).
    pub fn set_join_guard(&self, chat: i64, bot: Option<i64>) -> Result<(), ControlError> {
        let mut world = self.world();
        world.chat(chat)?;
        if let Some(bot) = bot {
            if !world.bots.contains_key(&bot) {
                return Err(ControlError::UnknownAccount(bot));
            }
            let status = world.status(chat, bot);
            if !status.is_admin() || !status.rights().can_invite_users {
                return Err(ControlError::Telegram(format!(
                    "bot {bot} must be an administrator of chat {chat} with can_invite_users"
                )));
            }
        }
        world.chat_mut(chat)?.join_guard = bot;
        Ok(())
    }

    /// Pending join requests of a chat, oldest first.
    pub fn join_requests(&self, chat: i64) -> Result<Vec<PendingRequest>, ControlError> {
        self.expire_join_queries();
        let world = self.world();
        let requests = &world.chat(chat)?.join_requests;
        Ok(requests
            .iter()
            .map(|r| {
                let query = r.query.as_ref().and_then(|id| world.join_queries.get(id));
                PendingRequest {
                    user: r.user,
                    date: r.date,
                    query: query.map(|q| q.id.clone()),
                    web_app_url: query.and_then(|q| q.web_app_url.clone()),
                }
            })
            .collect())
    }

    /// The user opens the Mini App a guard bot showed for `query`: its URL and the `initData`
    /// Telegram hands the page, signed with the bot's token. `signature` stands for the Ed25519
    /// third-party signature Telegram adds (Bot API 8.0); the sandbox cannot make Telegram's, so
    /// it is random, which is all a check by `hash` needs: every field takes part in it.
    pub fn open_join_web_app(&self, query: &str) -> Result<OpenedWebApp, ControlError> {
        self.expire_join_queries();
        let world = self.world();
        let open: &JoinQuery = world
            .join_queries
            .get(query)
            .ok_or_else(|| ControlError::Telegram(format!("no open join request query {query}")))?;
        let url = open.web_app_url.clone().ok_or_else(|| {
            ControlError::Telegram(format!("the bot showed no Mini App for query {query}"))
        })?;
        let token = world.bots[&open.bot].token.clone();
        let user = world.account(open.user)?.to_json();
        let fields = vec![
            ("auth_date".to_string(), world.now().to_string()),
            ("chat_type".to_string(), "sender".to_string()),
            ("signature".to_string(), random_signature()),
            ("user".to_string(), user.to_string()),
        ];
        Ok(OpenedWebApp {
            url,
            init_data: sign_init_data(fields, &token),
        })
    }
}

/// `fields` with the `hash` Telegram adds: HMAC-SHA-256 of the sorted `key=value` lines under
/// `HMAC-SHA-256("WebAppData", token)`, as a URL-encoded query string.
pub fn sign_init_data(mut fields: Vec<(String, String)>, token: &str) -> String {
    let mut lines: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
    lines.sort();
    let mut derive =
        Hmac::<Sha256>::new_from_slice(b"WebAppData").expect("HMAC takes keys of any length");
    derive.update(token.as_bytes());
    let secret = derive.finalize().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("HMAC takes keys of any length");
    mac.update(lines.join("\n").as_bytes());
    fields.push(("hash".into(), hex::encode(mac.finalize().into_bytes())));
    serde_urlencoded::to_string(&fields).unwrap_or_default()
}

fn random_signature() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn init_data_is_signed_over_every_field() {
        let fields = vec![
            ("auth_date".to_string(), "1780000000".to_string()),
            ("user".to_string(), json!({ "id": 7 }).to_string()),
        ];
        let signed = sign_init_data(fields.clone(), "1:token");
        let again = sign_init_data(fields, "1:token");
        assert_eq!(signed, again);
        assert!(signed.contains("hash="));
        let other = sign_init_data(
            vec![("auth_date".to_string(), "1780000001".to_string())],
            "1:token",
        );
        assert_ne!(signed.rsplit("hash=").next(), other.rsplit("hash=").next());
    }
}
