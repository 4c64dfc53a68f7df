//! The service in-process: health and readiness over real HTTP, on both backends.

use std::time::Duration;

use nezuko::actors::registry::RegistryMsg;
use nezuko::app::Application;
use tokio::sync::oneshot;

use crate::support::{OwnPostgres, TestDb, drop_database, on_both_backends};

on_both_backends!(health_and_readiness_answer_over_http);

struct Running {
    base: String,
    /// The root of the service's supervision tree.
    supervisor: ractor::ActorCell,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(db: &TestDb) -> Running {
    let app = Application::build(&db.settings(&[]))
        .await
        .expect("the service builds");
    let base = format!("http://{}", app.local_addr());
    let supervisor = app.fleet().supervisor_cell();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async {
        // The sender dropped means stop too.
        let _ = stopped.await;
    }));
    Running {
        base,
        supervisor,
        stop,
        task,
    }
}

async fn health_and_readiness_answer_over_http(db: &TestDb) {
    let service = start(db).await;
    let client = reqwest::Client::new();
    let healthz = client
        .get(format!("{}/healthz", service.base))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);
    assert_eq!(
        healthz.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );
    let readyz = client
        .get(format!("{}/readyz", service.base))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), 200);
    let body: serde_json::Value = readyz.json().await.unwrap();
    assert_eq!(body["database"], db.store.backend().as_str());

    let missing = client
        .get(format!("{}/nope", service.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let wrong_method = client
        .post(format!("{}/healthz", service.base))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);

    service.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), service.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Another process holding SQLite's write lock leaves reads working and writes waiting: readiness
/// says the database cannot be written, and is green again once the lock is released.
#[tokio::test]
async fn readiness_fails_while_sqlite_is_write_locked() {
    use sqlx::Connection;
    let db = TestDb::sqlite().await;
    let service = start(&db).await;
    let ready = || async {
        reqwest::get(format!("{}/readyz", service.base))
            .await
            .unwrap()
            .status()
    };
    assert_eq!(ready().await, 200);
    let mut other = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let locked = reqwest::get(format!("{}/readyz", service.base))
        .await
        .unwrap();
    assert_eq!(locked.status(), 503);
    let body: serde_json::Value = locked.json().await.unwrap();
    assert_eq!(body["status"], "unavailable", "{body}");
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    assert_eq!(ready().await, 200);
    service.stop.send(()).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), service.task).await;
    db.store.close().await;
}

/// A PostgreSQL outage (the database dropped under a running service) turns readiness red while
/// liveness stays green. SQLite has no comparable outage: an open file stays readable.
#[tokio::test]
async fn readiness_fails_when_the_postgres_database_is_gone() {
    let db = TestDb::postgres().await;
    let service = start(&db).await;
    let name = db.url.rsplit('/').next().unwrap().to_string();
    drop_database(&name).await;
    let readyz = reqwest::get(format!("{}/readyz", service.base))
        .await
        .unwrap();
    assert_eq!(readyz.status(), 503);
    let body: serde_json::Value = readyz.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    let reason = body["reason"].as_str().unwrap();
    assert!(!reason.is_empty());
    assert!(
        !reason.contains(&name),
        "a public probe does not name the database: {reason}"
    );
    let healthz = reqwest::get(format!("{}/healthz", service.base))
        .await
        .unwrap();
    assert_eq!(
        healthz.status(),
        200,
        "liveness does not depend on the database"
    );
    service.stop.send(()).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), service.task).await;
    db.store.close().await;
}

/// `GET /readyz` as JSON, with its status.
async fn readiness(base: &str) -> (u16, serde_json::Value) {
    let answer = reqwest::get(format!("{base}/readyz")).await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap())
}

/// How the Registry fares, as `/readyz` shows it.
fn registry_of(readyz: &serde_json::Value) -> serde_json::Value {
    readyz["services"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["service"] == "registry"))
        .cloned()
        .unwrap_or_default()
}

/// Polls `/readyz` every 100 ms until `done` holds, for at most `limit`.
async fn readiness_until(
    base: &str,
    limit: Duration,
    done: impl Fn(u16, &serde_json::Value) -> bool,
) -> (u16, serde_json::Value) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let (status, body) = readiness(base).await;
        if done(status, &body) || tokio::time::Instant::now() >= deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Registry stops while PostgreSQL is down, so it cannot start again (it must `LISTEN`): the
/// supervisor keeps trying with a growing pause instead of failing, HTTP keeps serving, `/readyz`
/// names the Registry, and once the database is back the Registry runs and readiness is green.
#[tokio::test]
async fn a_registry_that_cannot_restart_leaves_http_serving_and_readiness_red_until_it_recovers() {
    let server = OwnPostgres::start();
    let db = TestDb::postgres_on(&server.admin_url()).await;
    let Running {
        base,
        supervisor,
        stop,
        task,
    } = start(&db).await;
    let (status, ready) =
        readiness_until(&base, Duration::from_secs(10), |status, _| status == 200).await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(registry_of(&ready)["running"], true, "{ready}");

    server.stop();
    let registry = supervisor
        .get_children()
        .into_iter()
        .find(|child| child.is_message_type_of::<RegistryMsg>() == Some(true))
        .expect("the tree runs a Registry");
    registry.kill();

    let (status, down) = readiness_until(&base, Duration::from_secs(20), |_, body| {
        registry_of(body)["failures"].as_u64() >= Some(3)
    })
    .await;
    assert_eq!(status, 503, "{down}");
    let registry = registry_of(&down);
    assert_eq!(registry["running"], false, "{down}");
    assert!(
        registry["failures"].as_u64() >= Some(3),
        "it is tried again and again: {down}"
    );
    assert!(
        down["reason"]
            .as_str()
            .unwrap()
            .contains("the registry is not running"),
        "{down}"
    );
    assert!(
        registry["next_attempt_at"].as_i64().is_some(),
        "the next attempt is shown: {down}"
    );
    let healthz = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(healthz.status(), 200, "the HTTP server kept serving");
    assert_eq!(
        supervisor.get_status(),
        ractor::ActorStatus::Running,
        "the root supervisor did not go down with its child"
    );

    server.resume();
    let (status, back) =
        readiness_until(&base, Duration::from_secs(60), |status, _| status == 200).await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(registry_of(&back)["running"], true, "{back}");
    stop.send(()).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    db.store.close().await;
}
