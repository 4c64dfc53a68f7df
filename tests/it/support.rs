//! Test helpers: a fresh database per test on either backend, settings pointing at it, and how to
//! wait ([`wait`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nezuko::db::{DatabaseUrl, Store};
use nezuko::settings::{DatabaseSettings, Settings};
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

mod own_postgres;
pub use own_postgres::OwnPostgres;
pub mod wait;

/// The server the PostgreSQL suites create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database of its own for one test, migrated. Call [`TestDb::finish`] at the end.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    pub dir: TempDir,
    /// The database this test created, and the admin URL of its server.
    postgres_name: Option<(String, String)>,
}

/// With `NEZUKO_TEST_LOG` set (an `EnvFilter`, e.g. `nezuko=debug`), the product's log lines go to
/// the test's captured output, shown when it fails.
pub fn trace_if_asked() {
    if let Ok(filter) = std::env::var("NEZUKO_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

impl TestDb {
    pub async fn sqlite() -> Self {
        trace_if_asked();
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("nezuko.db").display());
        let store = connect(&url).await;
        Self {
            store,
            url,
            dir,
            postgres_name: None,
        }
    }

    pub async fn postgres() -> Self {
        trace_if_asked();
        Self::postgres_on(&postgres_admin_url()).await
    }

    /// A fresh database on the server at `admin_url` (e.g. an [`OwnPostgres`]).
    pub async fn postgres_on(admin_url: &str) -> Self {
        let name = unique_database_name();
        let mut admin = PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "PostgreSQL is required for this suite and is not reachable at {} ({err}); \
                 scripts/test starts it, or set TEST_POSTGRES_URL",
                    admin_url
                )
            });
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let url = database_url_on(admin_url, &name);
        let store = connect(&url).await;
        let dir = tempfile::tempdir().expect("temp dir");
        Self {
            store,
            url,
            dir,
            postgres_name: Some((name, admin_url.to_string())),
        }
    }

    /// Another connection to the same database, for a second service; finishing it leaves the
    /// database to its owner.
    pub async fn attach(&self) -> Self {
        Self {
            store: connect(&self.url).await,
            url: self.url.clone(),
            dir: tempfile::tempdir().expect("temp dir"),
            postgres_name: None,
        }
    }

    /// Closes the store and drops the PostgreSQL database.
    pub async fn finish(self) {
        self.store.close().await;
        if let Some((name, admin_url)) = self.postgres_name {
            drop_database_on(&admin_url, &name).await;
        }
    }

    /// Settings for a service on this database: port 0, data in the test's temp dir, no env.
    pub fn settings(&self, extra: &[(&str, &str)]) -> Settings {
        let mut env: HashMap<String, String> = HashMap::from([
            ("NEZUKO_DATABASE__URL".into(), self.url.clone()),
            ("NEZUKO_SERVER__LISTEN".into(), "127.0.0.1:0".into()),
            (
                "NEZUKO_DATA_DIR".into(),
                self.dir.path().join("data").display().to_string(),
            ),
        ]);
        for (key, value) in extra {
            env.insert((*key).into(), (*value).into());
        }
        nezuko::settings::load_from(Path::new("/nonexistent"), &env)
            .expect("test settings are valid")
    }
}

pub async fn drop_database(name: &str) {
    drop_database_on(&postgres_admin_url(), name).await;
}

async fn drop_database_on(admin_url: &str, name: &str) {
    if let Ok(mut admin) = PgConnection::connect(admin_url).await {
        let _ = admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
        admin.close().await.ok();
    }
}

/// The admin URL with its database swapped for `name`.
pub fn database_url_on(admin: &str, name: &str) -> String {
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(admin);
    format!("{base}/{name}")
}

pub fn unique_database_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "nezuko_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

async fn connect(url: &str) -> Store {
    let settings = DatabaseSettings {
        url: DatabaseUrl::parse(url).expect("test database URL"),
        max_connections: 5,
        connect_timeout: Duration::from_secs(10),
    };
    let store = Store::connect(&settings)
        .await
        .expect("connect to the test database");
    store.migrate().await.expect("migrate the test database");
    store
}

/// Declares each listed `async fn NAME(store: &Store)` as two tests, `on_sqlite::NAME` and
/// `on_postgres::NAME`, each on a fresh database.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = $crate::support::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = $crate::support::TestDb::postgres().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}
pub(crate) use on_both_backends;
