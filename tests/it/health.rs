//! The service in-process: health and readiness over real HTTP, on both backends.

use std::time::Duration;

use nezuko::app::Application;
use tokio::sync::oneshot;

use crate::support::{TestDb, drop_database, on_both_backends};

on_both_backends!(health_and_readiness_answer_over_http);

struct Running {
    base: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(db: &TestDb) -> Running {
    let app = Application::build(&db.settings(&[]))
        .await
        .expect("the service builds");
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    Running { base, stop, task }
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
    assert!(!body["reason"].as_str().unwrap().is_empty());
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
