//! Configuration: layering, the original platform's variables, and one clear message per bad value.

use std::collections::HashMap;
use std::path::Path;

use nezuko::db::DatabaseUrl;
use nezuko::settings::{ConfigError, Environment, LogFormat, Settings, load_from};
use nezuko::vault::EncryptionKey;

const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    load_from(Path::new("/nonexistent"), &env(pairs))
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn no_files_and_no_variables_give_a_runnable_local_service() {
    let settings = load(&[]).unwrap();
    assert_eq!(settings.environment, Environment::Local);
    assert_eq!(settings.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(settings.database.url.to_string(), "sqlite://data/nezuko.db");
    assert!(settings.vault.keys.is_empty());
    assert!(settings.redis.url.is_none());
    assert_eq!(settings.auth.owner_telegram_id, None);
    assert_eq!(settings.telegram.api_url, "https://api.telegram.org");
    assert_eq!(settings.log.format, LogFormat::Pretty);
    assert_eq!(settings.key_file(), Path::new("data/encryption.key"));
}

#[test]
fn the_overlay_named_by_nezuko_env_applies_after_the_base_file() {
    let dir = dir_with(&[
        ("base.toml", "[server]\nlisten = \"127.0.0.1:9000\"\n"),
        (
            "production.toml",
            "[server]\npublic_url = \"https://admin.example.org/\"\n",
        ),
        ("local.toml", "[server]\nlisten = \"127.0.0.1:9001\"\n"),
    ]);
    let key = EncryptionKey::generate();
    let production = load_from(
        dir.path(),
        &env(&[
            ("NEZUKO_ENV", "production"),
            ("ENCRYPTION_KEY", key.expose()),
        ]),
    )
    .unwrap();
    assert_eq!(production.environment, Environment::Production);
    assert_eq!(production.server.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(production.public_url(), "https://admin.example.org");
    assert_eq!(production.log.format, LogFormat::Json);
    let local = load_from(dir.path(), &env(&[])).unwrap();
    assert_eq!(local.server.listen.to_string(), "127.0.0.1:9001");
    assert_eq!(local.public_url(), "http://127.0.0.1:9001");
}

#[test]
fn nezuko_variables_win_over_the_original_platforms_which_win_over_files() {
    let dir = dir_with(&[(
        "local.toml",
        "[database]\nurl = \"sqlite://from-file.db\"\n",
    )]);
    let legacy = load_from(
        dir.path(),
        &env(&[("DATABASE_URL", "sqlite+aiosqlite:///legacy.db")]),
    )
    .unwrap();
    assert_eq!(legacy.database.url.to_string(), "sqlite://legacy.db");
    let both = load_from(
        dir.path(),
        &env(&[
            ("DATABASE_URL", "sqlite://legacy.db"),
            ("NEZUKO_DATABASE__URL", "postgres://u@db/nezuko"),
        ]),
    )
    .unwrap();
    assert!(both.database.url.is_postgres());
}

#[test]
fn the_original_platforms_variables_are_honoured() {
    let (new, old) = (EncryptionKey::generate(), EncryptionKey::generate());
    let keys = format!("{}, {}", new.expose(), old.expose());
    let settings = load(&[
        (
            "DATABASE_URL",
            "postgresql+asyncpg://nezuko:pw@db:5432/nezuko",
        ),
        ("REDIS_URL", "redis://localhost:6379/0"),
        ("ENCRYPTION_KEY", &keys),
        ("BOT_OWNER_TELEGRAM_ID", "424242"),
        ("LOGIN_BOT_TOKEN", TOKEN),
    ])
    .unwrap();
    assert!(matches!(
        settings.database.url,
        DatabaseUrl::Postgres { .. }
    ));
    assert_eq!(
        settings.redis.url.as_ref().unwrap().expose(),
        "redis://localhost:6379/0"
    );
    assert_eq!(settings.vault.keys.len(), 2);
    assert_eq!(settings.vault.keys[0].expose(), new.expose());
    assert_eq!(settings.auth.owner_telegram_id, Some(424242));
    assert_eq!(
        settings.auth.login_bot_token.as_ref().unwrap().bot_id(),
        123456789
    );
}

#[test]
fn secrets_never_appear_in_debug_output() {
    let key = EncryptionKey::generate();
    let settings = load(&[
        ("DATABASE_URL", "postgres://nezuko:db-password@db/nezuko"),
        ("REDIS_URL", "redis://:redis-password@localhost"),
        ("ENCRYPTION_KEY", key.expose()),
        ("LOGIN_BOT_TOKEN", TOKEN),
    ])
    .unwrap();
    let shown = format!("{settings:?} {settings:#?}");
    for secret in [
        "db-password",
        "redis-password",
        key.expose(),
        "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked into {shown}");
    }
}

/// One bad value: the variables set, then the key, origin and words the message must contain.
type BadValue = (
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
    &'static str,
);

const BAD_VALUES: &[BadValue] = &[
    (
        &[("NEZUKO_SERVER__LISTEN", "localhost")],
        "server.listen",
        "NEZUKO_SERVER__LISTEN",
        "IP:PORT",
    ),
    (
        &[("NEZUKO_SERVER__TRUSTED_PROXIES", "10.0.0.1, proxy.internal")],
        "server.trusted_proxies",
        "NEZUKO_SERVER__TRUSTED_PROXIES",
        "`proxy.internal` is not an IP address or CIDR range",
    ),
    (
        &[("NEZUKO_DATABASE__URL", "mysql://x/y")],
        "database.url",
        "NEZUKO_DATABASE__URL",
        "unsupported scheme `mysql`",
    ),
    (
        &[("DATABASE_URL", "postgres://u:pw@host:port/db")],
        "database.url",
        "DATABASE_URL",
        "not a valid PostgreSQL URL",
    ),
    (
        &[("NEZUKO_DATABASE__MAX_CONNECTIONS", "0")],
        "database.max_connections",
        "NEZUKO_DATABASE__MAX_CONNECTIONS",
        "from 1 to 1000",
    ),
    (
        &[("NEZUKO_DATABASE__CONNECT_TIMEOUT_S", "soon")],
        "database.connect_timeout_s",
        "NEZUKO",
        "not a whole number",
    ),
    (
        &[("ENCRYPTION_KEY", "not-a-key")],
        "vault.keys",
        "ENCRYPTION_KEY",
        "not a Fernet key",
    ),
    (
        &[("BOT_OWNER_TELEGRAM_ID", "@owner")],
        "auth.owner_telegram_id",
        "BOT_OWNER_TELEGRAM_ID",
        "Telegram user id",
    ),
    (
        &[("LOGIN_BOT_TOKEN", "12345")],
        "auth.login_bot_token",
        "LOGIN_BOT_TOKEN",
        "<bot id>:<secret>",
    ),
    (
        &[("REDIS_URL", "localhost:6379")],
        "redis.url",
        "REDIS_URL",
        "redis://",
    ),
    (
        &[("NEZUKO_TELEGRAM__API_URL", "ftp://x")],
        "telegram.api_url",
        "NEZUKO_TELEGRAM__API_URL",
        "http",
    ),
    (
        &[("NEZUKO_LOG__FORMAT", "xml")],
        "log.format",
        "NEZUKO_LOG__FORMAT",
        "pretty, json or auto",
    ),
    (
        &[("NEZUKO_LOG__FILTER", "info,=[")],
        "log.filter",
        "NEZUKO_LOG__FILTER",
        "not a log filter",
    ),
    (
        &[("NEZUKO_DATABSE__URL", "sqlite://x")],
        "databse.url",
        "NEZUKO_DATABSE__URL",
        "unknown key",
    ),
    (
        &[("NEZUKO_ENV", "staging")],
        "NEZUKO_ENV",
        "environment",
        "local or production",
    ),
];

#[test]
fn every_bad_value_names_its_key_origin_problem_and_accepted_form() {
    for (vars, key, origin, words) in BAD_VALUES {
        let err = load(vars).expect_err(key);
        let line = err.to_string();
        assert_eq!(err.key, *key, "{line}");
        assert!(err.origin.contains(origin), "{line}");
        assert!(line.contains(words), "`{words}` missing from: {line}");
        assert!(
            !err.problem.is_empty() && !err.expected.is_empty(),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }
}

#[test]
fn a_malformed_key_is_never_quoted_back() {
    let almost = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e";
    let err = load(&[("ENCRYPTION_KEY", almost)]).unwrap_err();
    assert!(!err.to_string().contains(almost), "{err}");
}

#[test]
fn file_problems_name_the_file() {
    let dir = dir_with(&[("local.toml", "[server]\nlisten = [1, 2]\n")]);
    let err = load_from(dir.path(), &env(&[])).unwrap_err();
    assert_eq!(err.key, "server.listen");
    assert!(err.origin.ends_with("local.toml"), "{err}");
    let dir = dir_with(&[("base.toml", "[server\n")]);
    let err = load_from(dir.path(), &env(&[])).unwrap_err();
    assert!(err.to_string().contains("not valid TOML"), "{err}");
    let dir = dir_with(&[("base.toml", "[servr]\nlisten = \"127.0.0.1:1\"\n")]);
    let err = load_from(dir.path(), &env(&[])).unwrap_err();
    assert_eq!(err.key, "servr.listen");
    assert!(err.origin.ends_with("base.toml"), "{err}");
}

#[test]
fn the_shipped_config_files_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    load_from(&dir, &env(&[])).unwrap();
    let key = EncryptionKey::generate();
    load_from(
        &dir,
        &env(&[
            ("NEZUKO_ENV", "production"),
            ("ENCRYPTION_KEY", key.expose()),
        ]),
    )
    .unwrap();
}

#[test]
fn webhook_mode_is_polling_by_default_and_needs_a_public_url() {
    use nezuko::settings::TelegramMode;
    assert_eq!(load(&[]).unwrap().telegram.mode, TelegramMode::Polling);
    let error = load(&[("NEZUKO_TELEGRAM__MODE", "webhook")]).unwrap_err();
    assert_eq!(error.key, "telegram.mode");
    assert!(error.problem.contains("server.public_url"), "{error}");
    let webhook = load(&[
        ("NEZUKO_TELEGRAM__MODE", "webhook"),
        ("NEZUKO_SERVER__PUBLIC_URL", "https://bots.example.org"),
    ])
    .unwrap();
    assert_eq!(webhook.telegram.mode, TelegramMode::Webhook);
    let error = load(&[("NEZUKO_TELEGRAM__MODE", "hooks")]).unwrap_err();
    assert!(error.problem.contains("unknown mode `hooks`"), "{error}");
    assert_eq!(error.expected, "polling or webhook");
}

#[test]
fn a_public_url_with_a_query_or_a_fragment_is_refused() {
    for url in [
        "http://127.0.0.1:8090/?x=1",
        "https://bots.example.org/#top",
    ] {
        let error = load(&[("NEZUKO_SERVER__PUBLIC_URL", url)]).unwrap_err();
        assert_eq!(error.key, "server.public_url");
        assert!(error.problem.contains("query or a fragment"), "{error}");
    }
}

#[test]
fn a_public_url_with_credentials_is_refused_without_quoting_them() {
    for url in [
        "https://admin:hunter2@bots.example.org",
        "http://hunter2@127.0.0.1:8090/nezuko",
        // Read by URL parsers as credentials too.
        "https:///admin:hunter2@bots.example.org",
        "https:admin:hunter2@bots.example.org",
    ] {
        let error = load(&[("NEZUKO_SERVER__PUBLIC_URL", url)]).unwrap_err();
        assert_eq!(error.key, "server.public_url");
        assert!(error.problem.contains("user name or password"), "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
    // An `@` in the path is not a credential.
    let settings = load(&[(
        "NEZUKO_SERVER__PUBLIC_URL",
        "https://bots.example.org/@team",
    )])
    .unwrap();
    assert_eq!(settings.public_url(), "https://bots.example.org/@team");
}

#[test]
fn a_public_url_is_kept_as_the_url_parser_writes_it_and_needs_a_host_and_a_port_that_exists() {
    // As sent to setWebhook and reported back by getWebhookInfo.
    for (given, kept) in [
        ("http://LOCALHOST:80/x/", "http://localhost/x"),
        ("https://Bots.Example.org:443", "https://bots.example.org"),
        (
            "https://bots.example.org:8443/nz",
            "https://bots.example.org:8443/nz",
        ),
    ] {
        let settings = load(&[("NEZUKO_SERVER__PUBLIC_URL", given)]).unwrap();
        assert_eq!(settings.public_url(), kept);
    }
    for url in [
        "http://:8080",
        "https://host:abc",
        "https://host:99999",
        "ftp://host",
        "host",
    ] {
        let error = load(&[("NEZUKO_SERVER__PUBLIC_URL", url)]).unwrap_err();
        assert_eq!(error.key, "server.public_url");
        assert!(
            error.problem.contains("not an http(s) URL"),
            "{url}: {error}"
        );
    }
}

#[test]
fn the_role_is_all_unless_configured_and_an_unknown_one_is_refused() {
    use nezuko::app::Role;
    assert_eq!(load(&[]).unwrap().server.role, Role::All);
    let api = load(&[("NEZUKO_SERVER__ROLE", "api")]).unwrap();
    assert_eq!(api.server.role, Role::Api);
    let error = load(&[("NEZUKO_SERVER__ROLE", "worker")]).unwrap_err();
    assert_eq!(error.key, "server.role");
    assert!(error.problem.contains("unknown role `worker`"), "{error}");
    assert_eq!(error.expected, "all, api or bots");
}

#[test]
fn trusted_proxies_take_addresses_and_ranges() {
    let settings = load(&[(
        "NEZUKO_SERVER__TRUSTED_PROXIES",
        " 10.0.0.0/8, ::1 ,192.168.1.7/24",
    )])
    .unwrap();
    let shown: Vec<String> = settings
        .server
        .trusted_proxies
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(shown, ["10.0.0.0/8", "::1/128", "192.168.1.0/24"]);
    assert!(load(&[]).unwrap().server.trusted_proxies.is_empty());
}
