//! `nezuko serve --role all|api|bots`, and one bot runner per SQLite file: real processes on one
//! database, the sandbox as Telegram.

use std::time::Duration;

use nezuko_sandbox::{RunningSandbox, Sandbox, SandboxConfig};

use crate::api::{Session, sign_in_at};
use crate::operator::{DEADLINE, Operator, Serving};

const OWNER: &str = "424242";

/// A bot added with `nezuko bot add` to an operator's SQLite database, not served yet.
struct Shared {
    sandbox: Sandbox,
    telegram: RunningSandbox,
    operator: Operator,
    /// The bot's Telegram id (the sandbox's name for it).
    bot: i64,
    /// `DATABASE_URL` when not the operator's SQLite file.
    database: Option<String>,
}

impl Shared {
    async fn new() -> Self {
        Self::on(None).await
    }

    async fn on(database: Option<String>) -> Self {
        let sandbox = Sandbox::new(SandboxConfig::default());
        let telegram = sandbox.spawn_local().await.unwrap();
        let bot = sandbox.create_bot("Guard", "guard_bot");
        let world = Self {
            sandbox,
            telegram,
            operator: Operator::new(),
            bot: bot.id,
            database,
        };
        let vars = world.vars();
        let added = world
            .operator
            .run_with_input(
                &["bot", "add"],
                &borrowed(&vars),
                &format!("{}\n", bot.token),
            )
            .await;
        assert!(added.status.success(), "{}", added.stderr);
        world
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("NEZUKO_TELEGRAM__API_URL", self.telegram.url().to_string()),
            ("BOT_OWNER_TELEGRAM_ID", OWNER.to_string()),
        ];
        if let Some(url) = &self.database {
            vars.push(("DATABASE_URL", url.clone()));
        }
        vars
    }

    async fn serve(&self, role: &str) -> Serving {
        let vars = self.vars();
        self.operator.serve_as(role, &borrowed(&vars)).await
    }

    /// Serves with `role` and waits until the bot polls.
    async fn serve_polling(&self, role: &str) -> Serving {
        let serving = self.serve(role).await;
        self.sandbox.wait_polling(self.bot, DEADLINE).await.unwrap();
        serving
    }

    /// Nezuko's id for the bot.
    async fn bot_instance_id(&self) -> i64 {
        let store = self.operator.store().await;
        let id = store.bots().await.unwrap()[0].id;
        store.close().await;
        id
    }

    /// `getUpdates` calls Telegram refused with 409 (two pollers of one token).
    fn conflicts(&self) -> usize {
        self.sandbox
            .calls(Some(self.bot), Some("getUpdates"))
            .iter()
            .filter(|c| c.error_code == Some(409))
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_second_bot_runner_is_refused_in_one_line_and_an_api_process_runs_beside_it() {
    let world = Shared::new().await;
    let runner = world.serve_polling("bots").await;
    let pid = runner.child.id().unwrap();

    // A second runner, as `serve` with no role: refused before it touches anything.
    let vars = world.vars();
    let mut with_port = vec![("NEZUKO_SERVER__LISTEN", "127.0.0.1:0")];
    with_port.extend(borrowed(&vars));
    let refused = world.operator.run(&["serve"], &with_port).await;
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stderr);
    let errors = refused.error_lines();
    assert_eq!(errors.len(), 1, "{}", refused.stderr);
    assert!(
        errors[0].contains(&format!("pid {pid}"))
            && errors[0].contains("already runs the bots")
            && errors[0].contains("--role api"),
        "{}",
        errors[0]
    );

    // The runner serves its probes only.
    let http = reqwest::Client::new();
    let status = |path: &'static str, base: String| {
        let http = http.clone();
        async move {
            http.get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("/healthz", runner.base.clone()).await, 200);
    assert_eq!(status("/readyz", runner.base.clone()).await, 200);
    assert_eq!(status("/api/v1/bots", runner.base.clone()).await, 404);
    assert_eq!(status("/", runner.base.clone()).await, 404);

    // The admin API beside it: the dashboard and the API, no bots of its own (the role given by
    // configuration, `server.role`, rather than `--role`).
    let mut api_vars = vec![("NEZUKO_SERVER__ROLE", "api")];
    api_vars.extend(borrowed(&vars));
    let api = world.operator.serve_with(&["serve"], &api_vars).await;
    assert_eq!(status("/", api.base.clone()).await, 200);
    assert_eq!(status("/api/v1/bots", api.base.clone()).await, 401);
    let store = world.operator.store().await;
    let owner: i64 = OWNER.parse().unwrap();
    let session = sign_in_at(&store, &api.base, owner).await;
    store.close().await;
    let id = world.bot_instance_id().await;

    // Both are nodes of the database: the runner runs the bots, the API process does not.
    let nodes = get(&http, &api.base, &session, "/api/v1/nodes").await;
    assert_eq!(nodes["runner_alive"], true, "{nodes}");
    let items = nodes["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{nodes}");
    let of = |pid: u32| {
        items
            .iter()
            .find(|n| n["pid"] == pid)
            .unwrap_or_else(|| panic!("no node with pid {pid}: {nodes}"))
    };
    let api_pid = api.child.id().unwrap();
    assert_eq!(of(pid)["role"], "bots");
    assert_eq!(of(pid)["runs_bots"], true);
    assert_eq!(of(api_pid)["role"], "api");
    assert_eq!(of(api_pid)["runs_bots"], false);
    assert!(items.iter().all(|n| n["alive"] == true), "{nodes}");
    let listed = world.operator.run(&["nodes"], &borrowed(&vars)).await;
    assert!(listed.status.success(), "{}", listed.stderr);
    let runner_line = listed
        .stdout
        .lines()
        .find(|l| l.contains(&format!(" {pid} ")))
        .unwrap_or_else(|| panic!("{}", listed.stdout));
    assert!(
        runner_line.contains(" bots ")
            && runner_line.contains(" yes ")
            && runner_line.ends_with(" s ago"),
        "{runner_line}"
    );

    // An admin stops the bot through the API process: the runner stops polling it, and the API
    // process's live stream shows the runner's `stopped`.
    let mut stream = sse(&http, &api.base, &session).await;
    let stopped = bot_action(&http, &api.base, &session, id, "disable").await;
    assert_eq!(stopped, 202, "accepted: the runner acts on it");
    let seen = tokio::time::timeout(DEADLINE, async {
        let mut text = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.lines().any(|line| {
                line.starts_with("data:")
                    && line.contains("\"state\":\"stopped\"")
                    && line.contains(&format!("\"bot_instance_id\":{id}"))
            }) {
                return text;
            }
        }
        panic!("the stream ended: {text}");
    })
    .await;
    assert!(seen.is_ok(), "the API process streamed the runner's stop");
    world
        .sandbox
        .wait_until(DEADLINE, "the bot stops polling", |s| {
            (!s.is_polling(world.bot)).then_some(())
        })
        .await
        .unwrap();
    let started = bot_action(&http, &api.base, &session, id, "enable").await;
    assert_eq!(started, 202);
    world
        .sandbox
        .wait_polling(world.bot, DEADLINE)
        .await
        .unwrap();

    // Nobody ever polled beside the runner.
    assert_eq!(world.conflicts(), 0);
    let (_, log) = api.terminate().await;
    assert!(
        log.iter()
            .any(|l| l.contains("this process runs no bots (`--role api`)")),
        "{log:#?}"
    );
    let (status, _) = runner.terminate().await;
    assert!(status.success());
    let listed = world.operator.run(&["nodes"], &borrowed(&vars)).await;
    assert!(
        listed.stdout.starts_with("no nodes"),
        "a node that stops leaves: {}",
        listed.stdout
    );
    // Once the runner is gone, another process may run the bots.
    let next = world.serve_polling("all").await;
    let (status, _) = next.terminate().await;
    assert!(status.success());
    assert!(world.sandbox.violations().is_empty());
}

fn borrowed<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// `GET path` as the signed-in admin; the JSON body.
async fn get(
    http: &reqwest::Client,
    base: &str,
    session: &Session,
    path: &str,
) -> serde_json::Value {
    signed_get(http, base, session, path)
        .await
        .json()
        .await
        .unwrap()
}

/// The live event stream, open.
async fn sse(http: &reqwest::Client, base: &str, session: &Session) -> reqwest::Response {
    signed_get(http, base, session, "/api/v1/events/stream").await
}

/// `GET path` with the session's cookie, answered 200.
async fn signed_get(
    http: &reqwest::Client,
    base: &str,
    session: &Session,
    path: &str,
) -> reqwest::Response {
    let response = http
        .get(format!("{base}{path}"))
        .header("cookie", format!("nezuko_session={}", session.cookie))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response
}

/// `POST /api/v1/bots/{id}/{action}` as the signed-in admin; the status.
async fn bot_action(
    http: &reqwest::Client,
    base: &str,
    session: &Session,
    id: i64,
    action: &str,
) -> u16 {
    tokio::time::timeout(
        Duration::from_secs(30),
        http.post(format!("{base}/api/v1/bots/{id}/{action}"))
            .header("cookie", format!("nezuko_session={}", session.cookie))
            .header("x-csrf-token", &session.csrf)
            .send(),
    )
    .await
    .expect("answers in time")
    .unwrap()
    .status()
    .as_u16()
}

/// Migrations of one new SQLite file by two processes at once are taken in turn (sqlx locks them
/// only on PostgreSQL): before, one of the two failed with "table … already exists" 7 times in 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_an_api_and_a_bots_process_started_together_on_a_new_file_both_come_up() {
    let sandbox = Sandbox::new(SandboxConfig::default());
    let telegram = sandbox.spawn_local().await.unwrap();
    let url = telegram.url().to_string();
    let vars = [("NEZUKO_TELEGRAM__API_URL", url.as_str())];
    for _ in 0..5 {
        let operator = Operator::new();
        let (api, bots) = tokio::join!(
            operator.serve_as("api", &vars),
            operator.serve_as("bots", &vars)
        );
        for serving in [api, bots] {
            let (status, log) = serving.terminate().await;
            assert!(status.success(), "{log:#?}");
        }
    }
}
