//! The admin API over real HTTP: a whole service (store, fleet, enforcer, warp) against the sandbox
//! Bot API, on SQLite and PostgreSQL, signed in the way a browser is (cookie + CSRF header).

mod attention;
mod auth;
mod bots;
mod catalogue;
pub mod contract;
mod events;
mod input;
mod join_page;
mod preflight;
mod protect;
mod proxies;
pub mod redis_fan_out;
mod reports;
pub mod sse;

use std::time::Duration;

use nezuko::app::Application;
use nezuko_sandbox::{RunningSandbox, Sandbox, SandboxConfig};
use reqwest::{Method, StatusCode, header::HeaderMap};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::support::TestDb;

pub const OWNER: i64 = 1001;

/// A running service, its sandbox, and an owner's session.
pub struct ApiWorld {
    pub db: TestDb,
    pub sandbox: Sandbox,
    /// Keeps the sandbox server up for the world's lifetime.
    _server: RunningSandbox,
    pub base: String,
    pub client: reqwest::Client,
    pub login_token: String,
    pub session: Session,
    /// Publishes events as the service's own parts do (what a log record or a bot would send).
    pub publisher: nezuko::events::Publisher,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A signed-in browser: the session cookie and the CSRF token.
#[derive(Clone, Debug)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

/// One answer: status, JSON body (Null when not JSON), headers. Those of [`ApiWorld::send`] (and
/// so of every helper on it) have been checked against the OpenAPI document
/// ([`contract::check`]).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Answer {
    /// Asserts a problem document with this status and code.
    pub fn problem(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{:?}", self.body);
        assert_eq!(self.body["code"], code, "{:?}", self.body);
        assert_eq!(
            self.headers["content-type"], "application/problem+json",
            "{:?}",
            self.body
        );
        assert!(!self.body["detail"].as_str().unwrap_or("").is_empty());
    }

    pub fn ok(&self) -> &Value {
        assert!(self.status.is_success(), "{} {:?}", self.status, self.body);
        &self.body
    }
}

impl ApiWorld {
    pub async fn start(db: TestDb) -> Self {
        Self::start_with(db, &[]).await
    }

    pub async fn start_with(db: TestDb, extra: &[(&str, &str)]) -> Self {
        Self::start_in(db, Sandbox::new(SandboxConfig::default()), extra).await
    }

    async fn start_in(db: TestDb, sandbox: Sandbox, extra: &[(&str, &str)]) -> Self {
        let running = sandbox.spawn_local().await.unwrap();
        let login = sandbox.create_bot("Login", "nezuko_login_bot");
        let url = running.url();
        let owner = OWNER.to_string();
        let mut env = vec![
            ("NEZUKO_TELEGRAM__API_URL", url.as_str()),
            ("NEZUKO_AUTH__OWNER_TELEGRAM_ID", owner.as_str()),
            ("NEZUKO_AUTH__LOGIN_BOT_TOKEN", login.token.as_str()),
            ("NEZUKO_FLEET__REGISTRY_POLL_MS", "100"),
            ("NEZUKO_FLEET__BACKOFF_INITIAL_MS", "50"),
        ];
        env.extend_from_slice(extra);
        let settings = db.settings(&env);
        let app = Application::build(&settings)
            .await
            .expect("the service builds");
        let base = format!("http://{}", app.local_addr());
        let publisher = app.fleet().publisher();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        let mut world = Self {
            db,
            sandbox,
            _server: running,
            base,
            client,
            login_token: login.token,
            session: Session {
                cookie: String::new(),
                csrf: String::new(),
            },
            publisher,
            stop: Some(stop),
            task: Some(task),
        };
        world.session = world.sign_in(OWNER).await;
        world
    }

    /// A second service on `first`'s database (and key file) and sandbox, signed in as the owner.
    pub async fn start_on(first: &ApiWorld, extra: &[(&str, &str)]) -> Self {
        let data = first.db.dir.path().join("data").display().to_string();
        let mut env = vec![("NEZUKO_DATA_DIR", data.as_str())];
        env.extend_from_slice(extra);
        Self::start_in(first.db.attach().await, first.sandbox.clone(), &env).await
    }

    /// Stops a service started with [`ApiWorld::start_on`], leaving the database alone.
    pub async fn detach(self) {
        self.finish().await;
    }

    /// The login bot's Telegram id (its token's prefix).
    pub fn login_bot_id(&self) -> i64 {
        let id = self.login_token.split(':').next().unwrap_or_default();
        id.parse().expect("a bot token starts with the bot's id")
    }

    /// A new supergroup for operators, with the login bot in it when `with_login_bot`.
    pub fn operators_chat(&self, with_login_bot: bool) -> i64 {
        use nezuko_sandbox::model::{ChatKind, Status};
        let chat = self
            .sandbox
            .create_chat(ChatKind::Supergroup, "Nezuko operators", None);
        if with_login_bot {
            self.sandbox
                .set_member(chat, self.login_bot_id(), Status::Member)
                .unwrap();
        }
        chat
    }

    /// A one-time link for `user`, as `nezuko login-link` makes it; returns the secret.
    pub async fn login_link(&self, user: i64) -> String {
        let url = nezuko::http::auth::create_login_link(&self.db.store, &self.base, user, 5)
            .await
            .unwrap();
        url.split("#token=").nth(1).unwrap().to_string()
    }

    /// Signs `user` in through a login link.
    pub async fn sign_in(&self, user: i64) -> Session {
        let token = self.login_link(user).await;
        let answer = self
            .anon(
                Method::POST,
                "/api/v1/auth/link",
                Some(json!({ "token": token })),
            )
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        session_of(&answer)
    }

    /// A request with no session.
    pub async fn anon(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send(method, path, body, None, false).await
    }

    /// A request as the owner, with the CSRF header.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.send(method, path, body, Some(&self.session), true)
            .await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        session: Option<&Session>,
        csrf: bool,
    ) -> Answer {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(session) = session {
            request = request.header("cookie", format!("nezuko_session={}", session.cookie));
            if csrf {
                request = request.header("x-csrf-token", &session.csrf);
            }
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = answer(request.send().await.expect("the service answers")).await;
        contract::check(&method, path, &answer);
        answer
    }

    /// The actions of the audit entries about `target_type`, newest first.
    pub async fn audit_actions(&self, target_type: &str) -> Vec<String> {
        let audit = self
            .get(&format!("/api/v1/audit?target_type={target_type}"))
            .await;
        audit.ok()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect()
    }

    /// Adds the bot of `token` through the API and waits until it runs; returns its row id.
    pub async fn add_running_bot(&self, token: &str) -> i64 {
        let added = self.post("/api/v1/bots", json!({ "token": token })).await;
        let id = added.ok()["id"].as_i64().unwrap();
        self.wait_bot(id, "running", |b| b["run_state"] == "running")
            .await;
        id
    }

    /// Waits until `check` holds for the bot's detail, or fails with the last detail seen.
    pub async fn wait_bot(&self, id: i64, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let detail = self.get(&format!("/api/v1/bots/{id}")).await.body;
            if check(&detail) {
                return detail;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "bot {id} never became {what}: {detail}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the service; whether it had stopped within `within`.
    pub async fn stop_within(&mut self, within: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => tokio::time::timeout(within, task).await.is_ok(),
            None => true,
        }
    }

    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
        }
        self.db.finish().await;
    }
}

pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        headers,
    }
}

/// Signs `user` in at another service (`base`, e.g. a child process) sharing `store`'s database.
pub async fn sign_in_at(store: &nezuko::db::Store, base: &str, user: i64) -> Session {
    let url = nezuko::http::auth::create_login_link(store, base, user, 5)
        .await
        .unwrap();
    let token = url.split("#token=").nth(1).unwrap();
    let signed = reqwest::Client::new()
        .post(format!("{base}/api/v1/auth/link"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    session_of(&answer(signed).await)
}

/// The session a sign-in answer opened.
pub fn session_of(answer: &Answer) -> Session {
    let cookie = answer.headers["set-cookie"].to_str().unwrap();
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("nezuko_session=");
    Session {
        cookie: value.to_string(),
        csrf: answer.body["csrf_token"].as_str().unwrap().to_string(),
    }
}

/// `api_tests!(name, …)`: each `async fn name(world: &mut ApiWorld)` runs on SQLite and PostgreSQL.
macro_rules! api_tests {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::support::TestDb::sqlite().await;
                    let mut world = $crate::api::ApiWorld::start(db).await;
                    super::$name(&mut world).await;
                    world.finish().await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::support::TestDb::postgres().await;
                    let mut world = $crate::api::ApiWorld::start(db).await;
                    super::$name(&mut world).await;
                    world.finish().await;
                }
            )*
        }
    };
}
pub(crate) use api_tests;
