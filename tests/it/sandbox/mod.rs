//! The sandbox Bot API: protocol, spec checks, world rules, updates, faults and flood limits,
//! and a real teloxide bot driven through a whole force-subscribe story.

mod chat_kinds;
mod driver;
mod faults;
mod fidelity;
mod join_requests;
mod members;
mod operations;
mod people;
mod protocol;
mod story;
mod teloxide_types;
mod updates;

use std::time::Duration;

use nezuko_sandbox::control::ChatUser;
use nezuko_sandbox::model::{Account, AdminRights, ChatKind, Status};
use nezuko_sandbox::{Operation, RunningSandbox, Sandbox, SandboxConfig};
use serde_json::Value;

pub const DEADLINE: Duration = Duration::from_secs(10);

/// A sandbox on its own port with one bot, an owner, a supergroup and a public channel; the bot is
/// an administrator of both with the rights a force-subscribe bot needs.
pub struct World {
    pub sandbox: Sandbox,
    pub running: RunningSandbox,
    pub bot: nezuko_sandbox::control::SandboxBot,
    pub owner: Account,
    pub group: i64,
    pub channel: i64,
    http: reqwest::Client,
}

pub fn guard_rights() -> AdminRights {
    AdminRights::force_subscribe()
}

impl World {
    pub async fn new() -> Self {
        Self::with_config(SandboxConfig::default()).await
    }

    pub async fn with_config(config: SandboxConfig) -> Self {
        let sandbox = Sandbox::new(config);
        let running = sandbox.spawn_local().await.expect("sandbox listens");
        let bot = sandbox.create_bot("Guard", "guard_bot");
        let owner = sandbox.create_user("Owner", Some("owner"));
        let group = sandbox.create_chat(ChatKind::Supergroup, "Readers", Some("readers"));
        let channel = sandbox.create_chat(ChatKind::Channel, "News", Some("news"));
        for chat in [group, channel] {
            sandbox.set_member(chat, owner.id, Status::Creator).unwrap();
            sandbox.promote(chat, bot.id, guard_rights()).unwrap();
        }
        Self {
            sandbox,
            running,
            bot,
            owner,
            group,
            channel,
            http: reqwest::Client::new(),
        }
    }

    /// A JSON call as a bot makes it: `(HTTP status, body)`.
    pub async fn call(&self, method: &str, params: Value) -> (u16, Value) {
        self.call_as(&self.bot.token.clone(), method, params).await
    }

    pub async fn call_as(&self, token: &str, method: &str, params: Value) -> (u16, Value) {
        let url = format!("{}/bot{token}/{method}", self.running.url());
        let response = self
            .http
            .post(url)
            .json(&params)
            .send()
            .await
            .expect("the sandbox answers");
        (
            response.status().as_u16(),
            response.json().await.expect("a JSON body"),
        )
    }

    /// The `result` of a call that must succeed.
    pub async fn ok(&self, method: &str, params: Value) -> Value {
        let (status, body) = self.call(method, params).await;
        assert_eq!(
            (status, &body["ok"]),
            (200, &Value::Bool(true)),
            "{method}: {body}"
        );
        body["result"].clone()
    }

    /// The description of a call that must fail with `code`.
    pub async fn fails(&self, method: &str, params: Value, code: u16) -> String {
        let (status, body) = self.call(method, params).await;
        assert_eq!(status, code, "{method}: {body}");
        assert_eq!(body["ok"], false);
        assert_eq!(body["error_code"], code);
        body["description"].as_str().unwrap().to_string()
    }

    pub fn user(&self, name: &str) -> Account {
        self.sandbox.create_user(name, Some(&name.to_lowercase()))
    }

    /// Everything queued for the bot right now (short poll), confirming nothing.
    pub async fn pending(&self) -> Vec<Value> {
        let result = self
            .ok("getUpdates", serde_json::json!({ "allowed_updates": [] }))
            .await;
        result.as_array().unwrap().clone()
    }

    /// Confirms every update queued so far, so a test sees only what it causes.
    pub async fn drain(&self) {
        self.ok("getUpdates", serde_json::json!({ "offset": -1 }))
            .await;
        self.ok("getUpdates", serde_json::json!({ "offset": i64::MAX / 2 }))
            .await;
    }

    pub fn assert_no_violations(&self) {
        assert_eq!(self.sandbox.violations(), vec![], "spec violations");
    }
}

/// How a test reaches the control API: Rust (`Sandbox::apply`) or HTTP (`POST /_sandbox/<op>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Rust,
    Http,
}

/// Runs each listed `async fn(Via)` twice: through the Rust control API and over HTTP.
macro_rules! both_ways {
    ($($name:ident),* $(,)?) => {
        mod rust {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::sandbox::Via::Rust).await
            })*
        }
        mod http {
            $(#[tokio::test]
            async fn $name() {
                super::$name(crate::sandbox::Via::Http).await
            })*
        }
    };
}
pub(crate) use both_ways;

impl World {
    /// Carries out a control operation the chosen way; the error is the control API's message.
    pub async fn op(&self, via: Via, operation: Operation) -> Result<Value, String> {
        match via {
            Via::Rust => self
                .sandbox
                .apply(operation)
                .await
                .map_err(|e| e.to_string()),
            Via::Http => {
                let mut body = serde_json::to_value(&operation).unwrap();
                let body = body.as_object_mut().unwrap();
                let name = body.remove("op").unwrap();
                let url = format!("{}/_sandbox/{}", self.running.url(), name.as_str().unwrap());
                let response = self.http.post(url).json(body).send().await.unwrap();
                let status = response.status().as_u16();
                let reply: Value = response.json().await.unwrap();
                assert_eq!(reply["ok"] == true, status == 200, "{reply}");
                match reply["ok"].as_bool() {
                    Some(true) => Ok(reply["result"].clone()),
                    _ => Err(reply["error"].as_str().unwrap_or_default().to_string()),
                }
            }
        }
    }

    /// An operation that must succeed.
    pub async fn done(&self, via: Via, operation: Operation) -> Value {
        let what = format!("{operation:?}");
        self.op(via, operation)
            .await
            .unwrap_or_else(|error| panic!("{what}: {error}"))
    }

    /// An operation that must be refused; returns why.
    pub async fn refused(&self, via: Via, operation: Operation) -> String {
        let what = format!("{operation:?}");
        match self.op(via, operation).await {
            Ok(result) => panic!("{what} was carried out: {result}"),
            Err(error) => error,
        }
    }

    /// A user who joined `chat` through the chosen way.
    pub async fn member_of(&self, via: Via, chat: i64, name: &str) -> Account {
        let user = self.user(name);
        self.done(
            via,
            Operation::Join(ChatUser {
                chat,
                user: user.id,
            }),
        )
        .await;
        user
    }

    /// Asks for every update kind (`chat_member` included) and confirms what is queued, so a
    /// test sees only what it causes next.
    pub async fn want_all(&self) {
        let every = [
            "message",
            "edited_message",
            "channel_post",
            "edited_channel_post",
            "callback_query",
            "chat_member",
            "my_chat_member",
            "chat_join_request",
        ];
        self.ok(
            "getUpdates",
            serde_json::json!({ "allowed_updates": every }),
        )
        .await;
        self.ok("getUpdates", serde_json::json!({ "offset": -1 }))
            .await;
        self.ok("getUpdates", serde_json::json!({ "offset": i64::MAX / 2 }))
            .await;
    }

    /// The updates of one kind queued for the bot (a short poll), confirming nothing.
    pub async fn pending_of(&self, kind: &str) -> Vec<Value> {
        let updates = self.ok("getUpdates", serde_json::json!({})).await;
        updates
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|u| u.get(kind).cloned())
            .collect()
    }
}
