//! `nezuko import`: an original-platform database, built as the seed's `original-schema.md`
//! describes it (both Alembic chains' shapes, the three SQLite time formats, orphans, a group two
//! bots administer), brought into Nezuko's database on both backends, with a real sandbox as
//! Telegram; then the bots run with their groups protected.

use std::time::Duration;

use nezuko::db::{DatabaseUrl, Store};
use nezuko::settings::DatabaseSettings;
use nezuko::vault::{EncryptionKey, Vault};
use nezuko_sandbox::model::{AdminRights, ChatKind, Status};
use nezuko_sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;
use sqlx::{Connection, Executor};

use crate::cli::assert_fails_with_one_line;
use crate::operator::{DEADLINE, Finished, Operator};

/// Which dialect the original's DDL is written in.
#[derive(Clone, Copy, PartialEq)]
enum Dialect {
    Sqlite,
    Postgres,
}

/// The original's tables at the head of both chains (§1, §3): the bot's tables and api_call_log
/// with naive times, the dashboard's with aware ones on PostgreSQL. `{DT}`, `{DTZ}`, `{ID}`.
const ORIGINAL_DDL: &[&str] = &[
    "CREATE TABLE owners (user_id BIGINT NOT NULL PRIMARY KEY, username VARCHAR(255), created_at {DT} NOT NULL, updated_at {DT} NOT NULL)",
    "CREATE TABLE protected_groups (group_id BIGINT NOT NULL PRIMARY KEY, owner_id BIGINT NOT NULL, title VARCHAR(255), enabled BOOLEAN NOT NULL, params JSON, created_at {DT} NOT NULL, updated_at {DT} NOT NULL, member_count INTEGER DEFAULT 0 NOT NULL, last_sync_at {DT})",
    "CREATE TABLE enforced_channels (channel_id BIGINT NOT NULL PRIMARY KEY, title VARCHAR(255), username VARCHAR(255), invite_link TEXT, created_at {DT} NOT NULL, updated_at {DT} NOT NULL, subscriber_count INTEGER DEFAULT 0 NOT NULL, last_sync_at {DT})",
    "CREATE TABLE group_channel_links (id {ID}, group_id BIGINT NOT NULL, channel_id BIGINT NOT NULL, created_at {DT} NOT NULL, CONSTRAINT uq_group_channel UNIQUE (group_id, channel_id))",
    "CREATE TABLE alembic_version_bot (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
    "CREATE TABLE alembic_version_api (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
    "CREATE TABLE admin_users (id VARCHAR(36) PRIMARY KEY, supabase_uid VARCHAR(36), email VARCHAR(255) NOT NULL, password_hash VARCHAR(255), full_name VARCHAR(100), role VARCHAR(20) NOT NULL, is_active BOOLEAN NOT NULL, telegram_id BIGINT, created_at {DTZ} DEFAULT CURRENT_TIMESTAMP NOT NULL, updated_at {DTZ} DEFAULT CURRENT_TIMESTAMP NOT NULL, last_login {DTZ})",
    "CREATE TABLE admin_sessions (id VARCHAR(36) PRIMARY KEY, user_id VARCHAR(36), refresh_token VARCHAR(512), ip_address VARCHAR(45), user_agent VARCHAR, expires_at {DTZ}, created_at {DTZ})",
    "CREATE TABLE admin_audit_log (id VARCHAR(36) PRIMARY KEY, user_id VARCHAR(36), action VARCHAR(50) NOT NULL, resource_type VARCHAR(50) NOT NULL, resource_id VARCHAR(100), old_value JSON, new_value JSON, ip_address VARCHAR(45), user_agent VARCHAR, created_at {DTZ} DEFAULT CURRENT_TIMESTAMP NOT NULL)",
    "CREATE TABLE admin_logs (id {ID}, timestamp {DTZ} NOT NULL, level VARCHAR(10), logger VARCHAR(100), message TEXT, module VARCHAR(100), function VARCHAR(100), line_no INTEGER, path VARCHAR(255))",
    "CREATE TABLE verification_log (id {ID}, user_id BIGINT NOT NULL, group_id BIGINT NOT NULL, channel_id BIGINT NOT NULL, status VARCHAR(20) NOT NULL, latency_ms INTEGER, cached BOOLEAN DEFAULT FALSE NOT NULL, timestamp {DTZ} DEFAULT CURRENT_TIMESTAMP NOT NULL, error_type VARCHAR(50))",
    "CREATE TABLE api_call_log (id {ID}, method VARCHAR(50) NOT NULL, chat_id BIGINT, user_id BIGINT, success BOOLEAN DEFAULT TRUE NOT NULL, latency_ms INTEGER, error_type VARCHAR(50), timestamp {DT} NOT NULL)",
    "CREATE TABLE sessions (id VARCHAR(36) PRIMARY KEY, telegram_id BIGINT NOT NULL, telegram_username VARCHAR(255), telegram_name VARCHAR(255) NOT NULL, telegram_photo_url TEXT, expires_at {DTZ} NOT NULL, created_at {DTZ} NOT NULL)",
    "CREATE TABLE bot_instances (id {ID}, owner_telegram_id BIGINT NOT NULL, bot_id BIGINT NOT NULL, bot_username VARCHAR(255) NOT NULL, bot_name VARCHAR(255), token_encrypted TEXT NOT NULL, is_active BOOLEAN NOT NULL, created_at {DTZ} DEFAULT CURRENT_TIMESTAMP NOT NULL, updated_at {DTZ} DEFAULT CURRENT_TIMESTAMP NOT NULL)",
];

/// The world both sides agree on: the sandbox's bots, chats and a member, and the original's
/// records of them.
struct World {
    sandbox: Sandbox,
    api: String,
    key: EncryptionKey,
    alpha: nezuko_sandbox::control::SandboxBot,
    beta: nezuko_sandbox::control::SandboxBot,
    readers: i64,
    writers: i64,
    both: i64,
    split: i64,
    quiet: i64,
    news: i64,
    secret: i64,
    reader: i64,
    _running: nezuko_sandbox::RunningSandbox,
}

impl World {
    async fn new() -> Self {
        let sandbox = Sandbox::new(SandboxConfig::default());
        let running = sandbox.spawn_local().await.unwrap();
        let alpha = sandbox.create_bot("Alpha", "alpha_guard");
        let beta = sandbox.create_bot("Beta", "beta_guard");
        let owner = sandbox.create_user("Owner", Some("owner"));
        let reader = sandbox.create_user("Reader", Some("reader")).id;
        let readers = sandbox.create_chat(ChatKind::Supergroup, "Readers", None);
        let writers = sandbox.create_chat(ChatKind::Supergroup, "Writers", None);
        let both = sandbox.create_chat(ChatKind::Supergroup, "Both", None);
        let split = sandbox.create_chat(ChatKind::Supergroup, "Split", None);
        let quiet = sandbox.create_chat(ChatKind::Supergroup, "Quiet", None);
        let news = sandbox.create_chat(ChatKind::Channel, "News", Some("news_ch"));
        let secret = sandbox.create_chat(ChatKind::Channel, "Secret", None);
        let rights = AdminRights::force_subscribe();
        for chat in [readers, writers, both, split, quiet, news, secret] {
            sandbox.set_member(chat, owner.id, Status::Creator).unwrap();
        }
        for (chat, bots) in [
            (readers, &[&alpha][..]),
            (quiet, &[&alpha][..]),
            (writers, &[&beta][..]),
            (both, &[&alpha, &beta][..]),
            (split, &[&alpha, &beta][..]),
            (news, &[&alpha, &beta][..]),
            (secret, &[&beta][..]),
        ] {
            for bot in bots {
                sandbox.promote(chat, bot.id, rights).unwrap();
            }
        }
        sandbox.join(readers, reader).unwrap();
        World {
            api: running.url(),
            _running: running,
            sandbox,
            key: EncryptionKey::generate(),
            alpha,
            beta,
            readers,
            writers,
            both,
            split,
            quiet,
            news,
            secret,
            reader,
        }
    }

    /// The original's rows: three bots (one inactive), four groups (one that both active bots
    /// administer, one disabled), three channels (one linked to nothing), five links (one to a
    /// channel that does not exist), admins, audit rows resolvable through a session, API calls
    /// and synthetic verifications, in the three SQLite time formats.
    fn rows(&self, dialect: Dialect) -> Vec<String> {
        let vault = Vault::new(std::slice::from_ref(&self.key));
        let seal = |token: &str| vault.encrypt(token.as_bytes());
        let (t, f) = match dialect {
            Dialect::Sqlite => ("1", "0"),
            Dialect::Postgres => ("TRUE", "FALSE"),
        };
        let gamma = "777000111:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
        vec![
            "INSERT INTO alembic_version_bot VALUES ('c1f7ecc2c523')".into(),
            "INSERT INTO alembic_version_api VALUES ('2026_02_04_telegram_auth')".into(),
            format!(
                "INSERT INTO bot_instances (owner_telegram_id, bot_id, bot_username, bot_name, token_encrypted, is_active, created_at, updated_at) VALUES \
                 (123456789, {}, 'alpha_guard', 'Alpha', '{}', {t}, '2026-02-04 10:00:00.250000', '2026-02-04 10:00:00.250000'), \
                 (123456789, {}, 'beta_guard', NULL, '{}', {t}, '2026-02-04 10:00:00', '2026-02-04 10:00:00'), \
                 (123456789, 777000111, 'gamma_old', 'Gamma', '{}', {f}, '2026-02-04T10:00:00+00:00', '2026-02-04T10:00:00+00:00')",
                self.alpha.id,
                seal(&self.alpha.token),
                self.beta.id,
                seal(&self.beta.token),
                seal(gamma)
            ),
            "INSERT INTO owners VALUES (42, 'founder', '2026-02-04 10:00:00.000000', '2026-02-04 10:00:00.000000')".into(),
            format!(
                "INSERT INTO protected_groups (group_id, owner_id, title, enabled, params, created_at, updated_at, member_count, last_sync_at) VALUES \
                 ({}, 42, 'Readers', {t}, '{{}}', '2026-02-04 10:00:00.000000', '2026-02-04 10:00:00.000000', 12, '2026-02-04 11:00:00'), \
                 ({}, 42, NULL, {t}, '{{\"welcome_message\": \"hi\"}}', '2026-02-04 10:00:00', '2026-02-04 10:00:00', 0, NULL), \
                 ({}, 42, 'Both', {t}, 'null', '2026-02-04T10:00:00+00:00', '2026-02-04T10:00:00+00:00', 0, NULL), \
                 ({}, 42, 'Quiet', {f}, '{{}}', '2026-02-04 10:00:00', '2026-02-04 10:00:00', 0, NULL), \
                 ({}, 42, 'Split', {t}, '{{}}', '2026-02-04 10:00:00', '2026-02-04 10:00:00', 0, NULL)",
                self.readers,
                self.writers,
                self.both,
                self.quiet,
                self.split
            ),
            format!(
                "INSERT INTO enforced_channels (channel_id, title, username, invite_link, created_at, updated_at) VALUES \
                 ({}, 'News', 'news_ch', 'https://t.me/news_ch', '2026-02-04 10:00:00', '2026-02-04 10:00:00'), \
                 ({}, NULL, NULL, 'https://t.me/+secret', '2026-02-04 10:00:00', '2026-02-04 10:00:00'), \
                 (-100777, 'Forgotten', '@forgotten', NULL, '2026-02-04 10:00:00', '2026-02-04 10:00:00')",
                self.news,
                self.secret
            ),
            format!(
                "INSERT INTO group_channel_links (group_id, channel_id, created_at) VALUES \
                 ({r}, {n}, '2026-02-04 10:00:00'), ({w}, {s}, '2026-02-04 10:00:00'), ({b}, {n}, '2026-02-04 10:00:00'), \
                 ({q}, {n}, '2026-02-04 10:00:00'), ({r}, -100999, '2026-02-04 10:00:00'), \
                 ({sp}, {s}, '2026-02-04 10:00:00')",
                sp = self.split,
                r = self.readers,
                n = self.news,
                w = self.writers,
                s = self.secret,
                b = self.both,
                q = self.quiet
            ),
            format!(
                "INSERT INTO admin_users (id, email, full_name, role, is_active, telegram_id, created_at, updated_at) VALUES \
                 ('a1', 'ada@example.org', 'Ada Admin', 'owner', {t}, 5001, '2026-02-04 10:00:00', '2026-02-04 10:00:00'), \
                 ('a2', 'old@example.org', NULL, 'viewer', {f}, 5002, '2026-02-04 10:00:00', '2026-02-04 10:00:00')"
            ),
            "INSERT INTO sessions (id, telegram_id, telegram_name, expires_at, created_at) VALUES \
             ('s-1', 6001, 'Owner', '2026-02-05 10:00:00', '2026-02-04 10:00:00')"
                .into(),
            format!(
                "INSERT INTO admin_audit_log (id, user_id, action, resource_type, resource_id, old_value, new_value, ip_address, created_at) VALUES \
                 ('u-1', NULL, 'POST', 'groups', '{r}', 'null', 'null', '10.0.0.1', '2026-02-04 10:00:00'), \
                 ('u-2', 's-1', 'DELETE', 'group_channel_links', '7', '{{\"id\": 7}}', 'null', NULL, '2026-02-04 10:05:00.500000'), \
                 ('u-3', NULL, 'PUT', 'groups', '{r}', 'null', 'null', NULL, '2026-02-04T10:10:00+00:00')",
                r = self.readers
            ),
            format!(
                "INSERT INTO api_call_log (method, chat_id, user_id, success, latency_ms, error_type, timestamp) VALUES \
                 ('getChatMember', {n}, {u}, {t}, 40, NULL, '2026-02-04 10:00:00.000000'), \
                 ('restrictChatMember', {w}, 77, {t}, 55, NULL, '2026-02-04 10:00:01'), \
                 ('restrictChatMember', {w}, 78, {f}, NULL, 'RetryAfter', '2026-02-04T10:00:02+00:00'), \
                 ('getChatMemberCount', -100555, NULL, {t}, NULL, NULL, '2026-02-04 11:00:00')",
                n = self.news,
                u = self.reader,
                w = self.writers
            ),
            format!(
                "INSERT INTO verification_log (user_id, group_id, channel_id, status, latency_ms, cached, timestamp) VALUES \
                 (100000001, {r}, {n}, 'verified', 12, {f}, '2026-02-04T10:00:00+00:00'), \
                 (100000002, {r}, {n}, 'error', 30, {f}, '2026-02-04T10:00:01+00:00')",
                r = self.readers,
                n = self.news
            ),
        ]
    }

    fn vars<'a>(&'a self, key: &'a str, target: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("ENCRYPTION_KEY", key),
            ("NEZUKO_TELEGRAM__API_URL", self.api.as_str()),
            ("DATABASE_URL", target),
        ]
    }
}

/// Creates the original database in `dialect` and returns its URL (SQLAlchemy's spelling).
async fn original(
    world: &World,
    dialect: Dialect,
    operator: &Operator,
) -> (String, Option<String>) {
    let statements: Vec<String> = ORIGINAL_DDL
        .iter()
        .map(|ddl| {
            let (dt, dtz, id) = match dialect {
                Dialect::Sqlite => ("DATETIME", "DATETIME", "INTEGER NOT NULL PRIMARY KEY"),
                Dialect::Postgres => (
                    "TIMESTAMP WITHOUT TIME ZONE",
                    "TIMESTAMP WITH TIME ZONE",
                    "SERIAL PRIMARY KEY",
                ),
            };
            ddl.replace("{DTZ}", dtz)
                .replace("{DT}", dt)
                .replace("{ID}", id)
        })
        .chain(world.rows(dialect))
        .collect();
    match dialect {
        Dialect::Sqlite => {
            let file = operator.dir.path().join("old").join("nezuko.db");
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            let mut connection =
                sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", file.display()))
                    .await
                    .unwrap();
            for statement in &statements {
                connection
                    .execute(sqlx::AssertSqlSafe(statement.clone()))
                    .await
                    .unwrap();
            }
            connection.close().await.unwrap();
            (format!("sqlite+aiosqlite:///{}", file.display()), None)
        }
        Dialect::Postgres => {
            let name = fresh_postgres().await;
            let url = crate::support::database_url_on(&crate::support::postgres_admin_url(), &name);
            let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
            for statement in &statements {
                connection
                    .execute(sqlx::AssertSqlSafe(statement.clone()))
                    .await
                    .unwrap();
            }
            connection.close().await.unwrap();
            (
                url.replacen("postgres://", "postgresql+asyncpg://", 1),
                Some(name),
            )
        }
    }
}

async fn fresh_postgres() -> String {
    let name = crate::support::unique_database_name();
    let mut admin = sqlx::PgConnection::connect(&crate::support::postgres_admin_url())
        .await
        .unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    admin.close().await.ok();
    name
}

async fn store_at(url: &str) -> Store {
    Store::connect(&DatabaseSettings {
        url: DatabaseUrl::parse(url).unwrap(),
        max_connections: 2,
        connect_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap()
}

/// The JSON report of a successful `nezuko import … --json`.
fn report(finished: &Finished) -> Value {
    assert!(finished.status.success(), "{}", finished.stderr);
    serde_json::from_str(finished.stdout.lines().last().unwrap()).unwrap()
}

/// `(table, original, brought, added, already, skipped)` rows of a report.
fn counts(report: &Value) -> Vec<(String, u64, u64, u64, u64, u64)> {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let n = |k: &str| t[k].as_u64().unwrap();
            (
                t["table"].as_str().unwrap().to_string(),
                n("original"),
                n("brought"),
                n("added"),
                n("present"),
                n("skipped"),
            )
        })
        .collect()
}

fn expected(added: bool) -> Vec<(String, u64, u64, u64, u64, u64)> {
    [
        ("bot_instances", 3, 3, 0),
        ("protected_groups", 5, 4, 1),
        ("enforced_channels", 3, 2, 1),
        ("group_channel_links", 6, 4, 2),
        ("admin_users", 2, 1, 1),
        ("admin_audit_log", 3, 3, 0),
        ("api_call_log", 4, 4, 0),
        ("verification_log", 2, 0, 2),
    ]
    .into_iter()
    .map(|(table, original, brought, skipped)| {
        let (add, present) = if added { (brought, 0) } else { (0, brought) };
        (table.to_string(), original, brought, add, present, skipped)
    })
    .collect()
}

async fn imports_and_protects(dialect: Dialect) {
    let world = World::new().await;
    let operator = Operator::new();
    let (from, source_db) = original(&world, dialect, &operator).await;
    let (target, target_db) = match dialect {
        Dialect::Sqlite => (
            format!("sqlite://{}", operator.data().join("nezuko.db").display()),
            None,
        ),
        Dialect::Postgres => {
            let name = fresh_postgres().await;
            (
                crate::support::database_url_on(&crate::support::postgres_admin_url(), &name),
                Some(name),
            )
        }
    };
    let key = world.key.expose().to_string();
    let vars = world.vars(&key, &target);
    let import = [
        "import",
        "--from",
        from.as_str(),
        "--include-admins",
        "--json",
    ];

    // A dry run reports; an import then does exactly that; a second one changes nothing.
    let mut dry: Vec<&str> = import.to_vec();
    dry.push("--dry-run");
    let dry = report(&operator.run(&dry, &vars).await);
    assert_eq!(counts(&dry), expected(true), "{dry:#}");
    assert_eq!(dry["dry_run"], true);
    match dialect {
        Dialect::Sqlite => assert!(!operator.data().exists(), "a dry run writes nothing"),
        Dialect::Postgres => {
            let store = store_at(&target).await;
            assert!(
                store.bots().await.unwrap().is_empty(),
                "a dry run adds nothing"
            );
            store.close().await;
        }
    }

    let done = report(&operator.run(&import, &vars).await);
    assert_eq!(counts(&done), counts(&dry), "{done:#}");
    assert_eq!(done["added"], dry["added"]);
    let needs: String = done["needs_you"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        needs.contains(&world.both.to_string()) && needs.contains("@alpha_guard and @beta_guard"),
        "the group both bots administer is listed, not guessed: {needs}"
    );
    assert!(
        needs.contains("arrive disabled") && needs.contains("\"Quiet\""),
        "{needs}"
    );
    assert!(
        needs.contains("restricted or unrestricted 1 member(s)"),
        "{needs}"
    );
    assert!(
        needs.contains("1 admin(s) imported") && needs.contains("owner 1"),
        "{needs}"
    );
    let bots_of = done["group_bots"].to_string();
    assert!(
        bots_of.contains("Telegram says administers it"),
        "{bots_of}"
    );

    let again = report(&operator.run(&import, &vars).await);
    assert_eq!(counts(&again), expected(false), "{again:#}");
    assert_eq!(again["added"], 0);
    let text = operator.run(&import[..4], &vars).await;
    assert!(
        text.stdout
            .contains("nothing changed: everything is here already"),
        "{}",
        text.stdout
    );

    // What arrived, mapped as the schema note says.
    let store = store_at(&target).await;
    let bots = store.bots().await.unwrap();
    let names: Vec<(String, String, &str)> = bots
        .iter()
        .map(|b| {
            (
                b.username.clone(),
                b.display_name.clone(),
                b.desired_state.as_str(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("alpha_guard".into(), "Alpha".into(), "enabled"),
            ("beta_guard".into(), "beta_guard".into(), "enabled"),
            ("gamma_old".into(), "Gamma".into(), "disabled"),
        ]
    );
    let vault = Vault::new(std::slice::from_ref(&world.key));
    assert_eq!(
        vault
            .decrypt_token(&bots[0].token_ciphertext)
            .unwrap()
            .expose(),
        world.alpha.token
    );
    let readers = store
        .group_by_chat(bots[0].id, world.readers)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(readers.title, "Readers");
    assert_eq!(readers.member_count, Some(12));
    assert_eq!(readers.policy.0["fail_mode"], "closed");
    let writers = store
        .group_by_chat(bots[1].id, world.writers)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        writers.title,
        world.writers.to_string(),
        "a missing title is the chat id"
    );
    assert_eq!(writers.member_count, None, "never synced");
    assert!(
        store
            .group_by_chat(bots[0].id, world.both)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .group_by_chat(bots[1].id, world.both)
            .await
            .unwrap()
            .is_none()
    );
    let audit = store
        .query_audit(&nezuko::db::AuditFilter {
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut imported: Vec<(&str, Option<i64>, i64)> = audit
        .iter()
        .filter(|e| e.actor_name == "original dashboard")
        .map(|e| (e.action.as_str(), e.actor_id, e.created_at))
        .collect();
    imported.sort_by_key(|(_, _, at)| -at);
    assert_eq!(
        imported,
        [
            ("original.put", None, 1_770_199_800_000),
            ("original.delete", Some(6001), 1_770_199_500_500),
            ("original.post", None, 1_770_199_200_000),
        ]
    );
    assert!(
        audit
            .iter()
            .any(|e| e.actor_name == "cli" && e.action == "import.original"),
        "the import itself is audited"
    );
    // The charts read the rollups: the imported calls are there, by outcome.
    let outcomes = store
        .counts_by(
            nezuko::db::analytics::Table::ApiCalls,
            nezuko::db::analytics::Column::CallOutcome,
            1_770_199_200_000,
            1_770_206_400_000,
        )
        .await
        .unwrap();
    let outcomes: Vec<(&str, i64)> = outcomes.iter().map(|c| (c.key.as_str(), c.count)).collect();
    assert_eq!(outcomes, [("ok", 3), ("rate_limited", 1)]);
    assert_eq!(
        store
            .admins()
            .await
            .unwrap()
            .iter()
            .map(|a| a.telegram_user_id)
            .collect::<Vec<_>>(),
        [5001]
    );
    store.close().await;

    // The operator settles the ambiguous group; only it and its link are added.
    let chosen = format!("--group-bot={}=@beta_guard", world.both);
    let mut settle = import.to_vec();
    settle.push(chosen.as_str());
    let settled = report(&operator.run(&settle, &vars).await);
    assert_eq!(settled["added"], 2, "{settled:#}");

    // A re-run naming another bot for it leaves the chat with its bot, and says so; a bot an
    // admin disabled meanwhile is named with the groups it leaves unprotected.
    let alpha_id = bots[0].id.to_string();
    let disabled = operator.run(&["bot", "disable", &alpha_id], &vars).await;
    assert!(disabled.status.success(), "{}", disabled.stderr);
    let rechosen = format!("--group-bot={}=@alpha_guard", world.both);
    let mut again = import.to_vec();
    again.push(rechosen.as_str());
    let kept = report(&operator.run(&again, &vars).await);
    assert_eq!(kept["added"], 0, "{kept:#}");
    assert!(
        kept["notes"].to_string().contains(&format!(
            "group {} is in Nezuko already, under @beta_guard: left as it is",
            world.both
        )),
        "{kept:#}"
    );
    assert!(
        !kept["group_bots"].to_string().contains("as chosen"),
        "{kept:#}"
    );
    let unprotected = kept["needs_you"].to_string();
    assert!(
        unprotected.contains("are under @alpha_guard, which is disabled")
            && unprotected.contains("Readers"),
        "{kept:#}"
    );
    let enabled = operator.run(&["bot", "enable", &alpha_id], &vars).await;
    assert!(enabled.status.success(), "{}", enabled.stderr);

    // The bots run from the imported rows, and the groups are protected.
    let serving = operator.serve(&vars).await;
    world
        .sandbox
        .wait_polling(world.alpha.id, DEADLINE)
        .await
        .unwrap();
    world
        .sandbox
        .wait_polling(world.beta.id, DEADLINE)
        .await
        .unwrap();
    let refused = operator.run(&import, &vars).await;
    assert_fails_with_one_line(
        refused,
        1,
        &["stop the service first", "nothing was imported"],
    )
    .await;
    // The reader joined while no bot ran; the join waits in Telegram's queue for the bot.
    let (readers, reader) = (world.readers, world.reader);
    world
        .sandbox
        .wait_until(DEADLINE, "the non-subscriber is muted", |s| {
            (!s.member(readers, reader).can_send_messages()).then_some(())
        })
        .await
        .unwrap();
    let (status, log) = serving.terminate().await;
    assert!(status.success(), "{log:#?}");
    for token in [&world.alpha.token, &world.beta.token] {
        assert!(log.iter().all(|l| !l.contains(token.as_str())));
    }

    for name in [source_db, target_db].into_iter().flatten() {
        crate::support::drop_database(&name).await;
    }
}

#[tokio::test]
async fn an_original_sqlite_database_imports_into_sqlite_and_its_bots_then_protect_their_groups() {
    imports_and_protects(Dialect::Sqlite).await;
}

#[tokio::test]
async fn an_original_postgres_database_imports_into_postgres_and_its_bots_then_protect_their_groups()
 {
    imports_and_protects(Dialect::Postgres).await;
}

#[tokio::test]
async fn a_wrong_key_an_unreachable_source_and_a_foreign_database_are_refused_and_nothing_is_written()
 {
    let world = World::new().await;
    let operator = Operator::new();
    let (from, _) = original(&world, Dialect::Sqlite, &operator).await;
    let other = EncryptionKey::generate();
    let target = format!("sqlite://{}", operator.data().join("nezuko.db").display());
    let wrong = other.expose().to_string();
    let vars = world.vars(&wrong, &target);

    let refused = operator.run(&["import", "--from", &from], &vars).await;
    assert_fails_with_one_line(
        refused,
        78,
        &[
            "does not open the original's bot tokens",
            "3 of 3",
            "ENCRYPTION_KEY",
            "nothing was imported",
        ],
    )
    .await;
    let without_key = operator
        .run(
            &["import", "--from", &from],
            &[("NEZUKO_TELEGRAM__API_URL", world.api.as_str())],
        )
        .await;
    assert_fails_with_one_line(without_key, 78, &["no encryption key is configured"]).await;

    let key = world.key.expose().to_string();
    let vars = world.vars(&key, &target);
    let missing = operator
        .run(
            &["import", "--from", "sqlite:///nowhere/original.db"],
            &vars,
        )
        .await;
    assert_fails_with_one_line(missing, 1, &["does not exist"]).await;
    let unreachable = operator
        .run(
            &[
                "import",
                "--from",
                "postgresql+asyncpg://nobody@127.0.0.1:1/x",
            ],
            &vars,
        )
        .await;
    assert_fails_with_one_line(
        unreachable,
        1,
        &["cannot open the original database", "refused"],
    )
    .await;
    let nobody = format!("{}=@nobody", world.readers);
    let unknown_bot = operator
        .run(&["import", "--from", &from, "--group-bot", &nobody], &vars)
        .await;
    assert_fails_with_one_line(unknown_bot, 1, &["no such bot", "@alpha_guard"]).await;
    let unknown_group = operator
        .run(
            &[
                "import",
                "--from",
                &from,
                "--group-bot",
                "-100123=@alpha_guard",
            ],
            &vars,
        )
        .await;
    assert_fails_with_one_line(
        unknown_group,
        1,
        &["the original protects no group -100123"],
    )
    .await;
    assert!(
        !operator.data().exists(),
        "nothing was written: no database, no key file"
    );

    // A database that is not the original's: an empty one, and Nezuko's own.
    let empty = operator.dir.path().join("empty.db");
    sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", empty.display()))
        .await
        .unwrap()
        .execute("CREATE TABLE notes (id INTEGER)")
        .await
        .unwrap();
    let foreign = operator
        .run(
            &["import", "--from", &format!("sqlite://{}", empty.display())],
            &vars,
        )
        .await;
    assert_fails_with_one_line(
        foreign,
        1,
        &["is not the original platform's database", "notes"],
    )
    .await;
    let migrated = operator.run(&["migrate"], &vars).await;
    assert!(migrated.status.success(), "{}", migrated.stderr);
    let own = operator.run(&["import", "--from", &target], &vars).await;
    assert_fails_with_one_line(own, 1, &["it is a Nezuko database"]).await;
    let store = operator.store().await;
    assert!(store.bots().await.unwrap().is_empty());
    store.close().await;
}

/// A standalone bot's database, made by the bot's Alembic chain alone (no dashboard tables, no
/// `member_count` or `last_sync_at`, no `bot_instances`): its groups go to the former `BOT_TOKEN`,
/// read from standard input and introduced by `getMe`.
#[tokio::test]
async fn a_standalone_bots_database_imports_under_its_former_bot_token() {
    let world = World::new().await;
    let operator = Operator::new();
    let file = operator.dir.path().join("standalone.db");
    let mut connection =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", file.display()))
            .await
            .unwrap();
    for statement in [
        "CREATE TABLE owners (user_id BIGINT NOT NULL PRIMARY KEY, username VARCHAR(255), created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)".to_string(),
        "CREATE TABLE protected_groups (group_id BIGINT NOT NULL PRIMARY KEY, owner_id BIGINT NOT NULL, title VARCHAR(255), enabled BOOLEAN NOT NULL, params JSON, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)".to_string(),
        "CREATE TABLE enforced_channels (channel_id BIGINT NOT NULL PRIMARY KEY, title VARCHAR(255), username VARCHAR(255), invite_link TEXT, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)".to_string(),
        "CREATE TABLE group_channel_links (id INTEGER NOT NULL PRIMARY KEY, group_id BIGINT NOT NULL, channel_id BIGINT NOT NULL, created_at DATETIME NOT NULL)".to_string(),
        "CREATE TABLE alembic_version_bot (version_num VARCHAR(32) NOT NULL PRIMARY KEY)".to_string(),
        "INSERT INTO alembic_version_bot VALUES ('c1f7ecc2c523')".to_string(),
        "INSERT INTO owners VALUES (42, 'founder', '2026-02-04 10:00:00.000000', '2026-02-04 10:00:00.000000')".to_string(),
        format!("INSERT INTO protected_groups VALUES ({}, 42, 'Readers', 1, '{{}}', '2026-02-04 10:00:00.000000', '2026-02-04 10:00:00.000000')", world.readers),
        format!("INSERT INTO enforced_channels VALUES ({}, 'News', 'news_ch', NULL, '2026-02-04 10:00:00', '2026-02-04 10:00:00')", world.news),
        format!("INSERT INTO group_channel_links VALUES (1, {}, {}, '2026-02-04 10:00:00')", world.readers, world.news),
        "CREATE TABLE api_call_log (id INTEGER NOT NULL PRIMARY KEY, method VARCHAR(50) NOT NULL, chat_id BIGINT, user_id BIGINT, success BOOLEAN NOT NULL, latency_ms INTEGER, error_type VARCHAR(50), timestamp DATETIME NOT NULL)".to_string(),
        format!("INSERT INTO api_call_log VALUES (1, 'restrictChatMember', {}, 5, 1, 30, NULL, '2026-02-04 10:00:00.000000')", world.readers),
    ] {
        connection.execute(sqlx::AssertSqlSafe(statement)).await.unwrap();
    }
    connection.close().await.unwrap();
    let from = format!("sqlite://{}", file.display());
    let api = [("NEZUKO_TELEGRAM__API_URL", world.api.as_str())];

    // Without the token no group can be given a bot; the call is kept under none.
    let undecided = report(
        &operator
            .run(&["import", "--from", &from, "--json"], &api)
            .await,
    );
    assert!(
        undecided["needs_you"]
            .to_string()
            .contains("--bot-token-for-groups"),
        "{undecided:#}"
    );
    assert_eq!(
        undecided["added"], 1,
        "the call, under no bot: {undecided:#}"
    );
    let done = operator
        .run_with_input(
            &[
                "import",
                "--from",
                &from,
                "--bot-token-for-groups",
                "-",
                "--json",
            ],
            &api,
            &format!("{}\n", world.alpha.token),
        )
        .await;
    let done = report(&done);
    let added: Vec<(String, u64)> = counts(&done)
        .into_iter()
        .map(|(table, _, _, added, _, _)| (table, added))
        .filter(|(_, added)| *added > 0)
        .collect();
    assert_eq!(
        added,
        [
            ("bot_instances".to_string(), 1),
            ("protected_groups".to_string(), 1),
            ("enforced_channels".to_string(), 1),
            ("group_channel_links".to_string(), 1),
        ],
        "{done:#}"
    );
    assert!(
        done["group_bots"]
            .to_string()
            .contains("the former BOT_TOKEN"),
        "{done:#}"
    );
    let store = operator.store().await;
    let bots = store.bots().await.unwrap();
    assert_eq!(
        (
            bots.len(),
            bots[0].username.as_str(),
            bots[0].telegram_bot_id
        ),
        (1, "alpha_guard", world.alpha.id),
        "the bot came from getMe"
    );
    let group = store
        .group_by_chat(bots[0].id, world.readers)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(group.member_count, None);
    store.close().await;
    assert!(
        done["notes"]
            .to_string()
            .contains("1 API call(s) an earlier import kept under no bot now belong to their bot"),
        "{done:#}"
    );
    let file = operator.data().join("nezuko.db");
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    let owners: Vec<i64> = sqlx::query_scalar("SELECT bot_instance_id FROM api_call_log")
        .fetch_all(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    assert_eq!(
        owners,
        [bots[0].id],
        "the call moved to its bot, not doubled"
    );
}
