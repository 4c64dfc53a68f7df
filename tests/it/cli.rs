//! The `nezuko` binary as an operator runs it: a fresh directory, no configuration, real signals.

use std::path::Path;
use std::time::Duration;

use nezuko::db::{NewBot, Store};
use nezuko::domain::{BotToken, DesiredState};
use nezuko::vault::{EncryptionKey, Vault};

use crate::operator::{DEADLINE, Finished, Operator};

/// Stores a bot with a token encrypted by `vault`; returns its row id and token.
async fn insert_bot(store: &Store, vault: &Vault, telegram_bot_id: i64) -> (i64, BotToken) {
    let token = BotToken::parse(&format!(
        "{telegram_bot_id}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    ))
    .unwrap();
    let bot = NewBot {
        telegram_bot_id,
        username: format!("bot{telegram_bot_id}"),
        display_name: format!("Bot {telegram_bot_id}"),
        token_ciphertext: vault.encrypt_token(&token),
        owner_telegram_id: None,
        desired_state: DesiredState::Enabled,
    };
    (store.insert_bot(&bot).await.unwrap().id, token)
}

async fn get(url: String) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn serve_without_configuration_runs_on_sqlite_and_a_second_start_reuses_the_data() {
    let operator = Operator::new();
    let first = operator.serve(&[]).await;
    assert_eq!(
        get(format!("{}/healthz", first.base)).await,
        (200, serde_json::json!({ "status": "ok" }))
    );
    let (status, ready) = get(format!("{}/readyz", first.base)).await;
    assert_eq!((status, ready["database"].as_str()), (200, Some("sqlite")));
    let (status, log) = first.terminate().await;
    assert!(status.success(), "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.contains("data is stored in sqlite://data/nezuko.db")),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("generated a new one into data/encryption.key")),
        "{log:#?}"
    );

    let key_file = operator.data().join("encryption.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let key = EncryptionKey::parse(&std::fs::read_to_string(&key_file).unwrap()).unwrap();

    // A bot stored between the runs must survive the second start, readable with the same key.
    let store = operator.store().await;
    let vault = Vault::new(std::slice::from_ref(&key));
    let (bot_id, token) = insert_bot(&store, &vault, 5551234).await;
    store.close().await;

    let second = operator.serve(&[]).await;
    assert_eq!(get(format!("{}/readyz", second.base)).await.0, 200);
    let (status, log) = second.terminate().await;
    assert!(status.success());
    assert!(
        log.iter()
            .any(|l| l.contains("encryption key from the key file")),
        "{log:#?}"
    );
    let store = operator.store().await;
    let kept = store.bot(bot_id).await.unwrap();
    assert_eq!(vault.decrypt_token(&kept.token_ciphertext).unwrap(), token);
    store.close().await;
}

/// Asserts `finished` failed with exit status `code` and one error line holding each of `words`, no panic.
pub(crate) async fn assert_fails_with_one_line(finished: Finished, code: i32, words: &[&str]) {
    assert_eq!(finished.status.code(), Some(code), "{}", finished.stderr);
    let errors = finished.error_lines();
    assert_eq!(errors.len(), 1, "{}", finished.stderr);
    for word in words {
        assert!(
            errors[0].contains(word),
            "`{word}` missing from: {}",
            errors[0]
        );
    }
    assert!(
        !finished.stderr.contains("panicked") && !finished.stderr.contains("backtrace"),
        "{}",
        finished.stderr
    );
}

#[tokio::test]
async fn an_unreachable_postgres_fails_fast_with_the_cause() {
    let operator = Operator::new();
    let finished = operator
        .run(
            &["serve"],
            &[("NEZUKO_DATABASE__URL", "postgres://nobody@127.0.0.1:1/x")],
        )
        .await;
    assert_fails_with_one_line(
        finished,
        1,
        &[
            "cannot connect to the database at postgres://nobody@127.0.0.1:1/x",
            "refused",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_malformed_url_is_a_configuration_error() {
    let operator = Operator::new();
    let finished = operator
        .run(
            &["serve"],
            &[("NEZUKO_DATABASE__URL", "postgres://u:hunter2@[::1/x")],
        )
        .await;
    assert!(!finished.stderr.contains("hunter2"));
    assert_fails_with_one_line(
        finished,
        78,
        &["database.url", "NEZUKO_DATABASE__URL", "expected"],
    )
    .await;
}

#[tokio::test]
async fn a_malformed_key_is_a_configuration_error() {
    let operator = Operator::new();
    let finished = operator
        .run(&["serve"], &[("ENCRYPTION_KEY", "c2hvcnQ=")])
        .await;
    assert_fails_with_one_line(
        finished,
        78,
        &[
            "vault.keys",
            "ENCRYPTION_KEY",
            "not a Fernet key",
            "nezuko keygen",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_wrong_key_is_refused_before_serving() {
    let operator = Operator::new();
    let right = EncryptionKey::generate();
    let (status, _) = operator
        .serve(&[("ENCRYPTION_KEY", right.expose())])
        .await
        .terminate()
        .await;
    assert!(status.success());
    let wrong = EncryptionKey::generate();
    let finished = operator
        .run(&["serve"], &[("ENCRYPTION_KEY", wrong.expose())])
        .await;
    assert_fails_with_one_line(
        finished,
        78,
        &["encryption key cannot decrypt", "rotate-key"],
    )
    .await;
}

#[tokio::test]
async fn production_refuses_to_start_without_a_key() {
    let operator = Operator::new();
    let finished = operator
        .run(&["serve"], &[("NEZUKO_ENV", "production")])
        .await;
    assert!(!operator.data().join("encryption.key").exists());
    assert_fails_with_one_line(
        finished,
        78,
        &["production", "ENCRYPTION_KEY", "nezuko keygen"],
    )
    .await;
}

#[tokio::test]
async fn rotate_key_moves_every_token_to_the_new_key() {
    let operator = Operator::new();
    let (old, new) = (EncryptionKey::generate(), EncryptionKey::generate());
    let (status, _) = operator
        .serve(&[("ENCRYPTION_KEY", old.expose())])
        .await
        .terminate()
        .await;
    assert!(status.success());
    let store = operator.store().await;
    let old_vault = Vault::new(std::slice::from_ref(&old));
    for n in 1..=2 {
        insert_bot(&store, &old_vault, n).await;
    }
    store.close().await;

    let both = format!("{},{}", new.expose(), old.expose());
    let rotated = operator
        .run(&["rotate-key"], &[("ENCRYPTION_KEY", &both)])
        .await;
    assert!(rotated.status.success(), "{}", rotated.stderr);
    assert!(
        rotated.stdout.contains("re-encrypted 2 bot token(s)"),
        "{}",
        rotated.stdout
    );

    let serving = operator.serve(&[("ENCRYPTION_KEY", new.expose())]).await;
    assert_eq!(serving.terminate().await.0.code(), Some(0));
    let store = operator.store().await;
    let new_vault = Vault::new(std::slice::from_ref(&new));
    for (_, ciphertext) in store.bot_ciphertexts().await.unwrap() {
        assert!(new_vault.decrypt_token(&ciphertext).is_ok());
    }
    store.close().await;
}

/// The keys the data directory's key file holds, first line first.
fn key_file_keys(operator: &Operator) -> Vec<String> {
    std::fs::read_to_string(operator.data().join("encryption.key"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether every stored token decrypts with `key`.
async fn all_tokens_open_with(operator: &Operator, key: &str) -> bool {
    let store = operator.store().await;
    let vault = Vault::new(&[EncryptionKey::parse(key).unwrap()]);
    let all = store
        .bot_ciphertexts()
        .await
        .unwrap()
        .iter()
        .all(|(_, ciphertext)| vault.decrypt_token(ciphertext).is_ok());
    store.close().await;
    all
}

#[tokio::test]
async fn in_local_mode_rotate_key_leaves_a_service_that_starts_without_encryption_key() {
    // Only the generated key file: rotation makes a new key and keeps it there alone.
    let operator = Operator::new();
    let serving = operator.serve(&[]).await;
    // Not while a service runs on the database: it keeps the old key in memory.
    let refused = operator.run(&["rotate-key"], &[]).await;
    assert_fails_with_one_line(refused, 1, &["stop the service first", "a node is running"]).await;
    let (status, _) = serving.terminate().await;
    assert!(status.success());
    let old = key_file_keys(&operator);
    assert_eq!(old.len(), 1, "the refused rotation changed nothing");
    let store = operator.store().await;
    let old_vault = Vault::new(&[EncryptionKey::parse(&old[0]).unwrap()]);
    for n in 1..=2 {
        insert_bot(&store, &old_vault, n).await;
    }
    store.close().await;
    let rotated = operator.run(&["rotate-key"], &[]).await;
    assert!(rotated.status.success(), "{}", rotated.stderr);
    assert!(rotated.stdout.contains("re-encrypted 2 bot token(s)"));
    let new = key_file_keys(&operator);
    assert_eq!(new.len(), 1, "the old key is gone from the file");
    assert_ne!(new, old);
    assert!(all_tokens_open_with(&operator, &new[0]).await);
    assert!(!all_tokens_open_with(&operator, &old[0]).await);
    let (status, log) = operator.serve(&[]).await.terminate().await;
    assert_eq!(status.code(), Some(0), "{log:?}");

    // ENCRYPTION_KEY=NEW,OLD over a key file holding OLD: the file follows, so unsetting the
    // variable afterwards still starts.
    let operator = Operator::new();
    let (status, _) = operator.serve(&[]).await.terminate().await;
    assert!(status.success());
    let old = key_file_keys(&operator).remove(0);
    let store = operator.store().await;
    insert_bot(
        &store,
        &Vault::new(&[EncryptionKey::parse(&old).unwrap()]),
        3,
    )
    .await;
    store.close().await;
    let new = EncryptionKey::generate();
    let both = format!("{},{old}", new.expose());
    let rotated = operator
        .run(&["rotate-key"], &[("ENCRYPTION_KEY", &both)])
        .await;
    assert!(rotated.status.success(), "{}", rotated.stderr);
    assert_eq!(key_file_keys(&operator), [new.expose().to_string()]);
    let (status, log) = operator.serve(&[]).await.terminate().await;
    assert_eq!(status.code(), Some(0), "{log:?}");
    assert!(all_tokens_open_with(&operator, new.expose()).await);
}

#[tokio::test]
async fn a_key_file_a_rotation_left_with_two_keys_still_starts() {
    // A rotation interrupted after writing NEW before OLD: both decrypt, the first encrypts.
    let operator = Operator::new();
    let (status, _) = operator.serve(&[]).await.terminate().await;
    assert!(status.success());
    let old = key_file_keys(&operator).remove(0);
    let new = EncryptionKey::generate();
    std::fs::write(
        operator.data().join("encryption.key"),
        format!("{}\n{old}\n", new.expose()),
    )
    .unwrap();
    let (status, log) = operator.serve(&[]).await.terminate().await;
    assert_eq!(status.code(), Some(0), "{log:?}");
    // A key file with no key at all is a configuration problem, said as one.
    std::fs::write(operator.data().join("encryption.key"), "\n").unwrap();
    let finished = operator.run(&["serve"], &[]).await;
    assert_fails_with_one_line(finished, 78, &["holds no key", "backup"]).await;
}

#[tokio::test]
async fn a_service_nobody_can_sign_in_to_says_how_to_get_in() {
    let operator = Operator::new();
    let (status, log) = operator.serve(&[]).await.terminate().await;
    assert!(status.success());
    let said = log.join("\n");
    assert!(said.contains("nobody can sign in"), "{said}");
    assert!(said.contains("BOT_OWNER_TELEGRAM_ID"), "{said}");
    assert!(said.contains("nezuko login-link"), "{said}");
    // With an owner the way in is a login link (no widget configured).
    let owner = [("BOT_OWNER_TELEGRAM_ID", "1001")];
    let (status, log) = operator.serve(&owner).await.terminate().await;
    assert!(status.success());
    let said = log.join("\n");
    assert!(!said.contains("nobody can sign in"), "{said}");
    assert!(said.contains("nezuko login-link"), "{said}");
    let nobody = operator.run(&["login-link"], &[]).await;
    assert_fails_with_one_line(nobody, 78, &["auth.owner_telegram_id", "--user"]).await;
    let link = operator.run(&["login-link"], &owner).await;
    assert!(link.status.success(), "{}", link.stderr);
    assert!(link.stdout.contains("/login#token="), "{}", link.stdout);
}

#[tokio::test]
async fn keygen_prints_a_key_that_parses_and_check_config_hides_it() {
    let operator = Operator::new();
    let keygen = operator.run(&["keygen"], &[]).await;
    assert!(keygen.status.success());
    let key = keygen.stdout.trim();
    EncryptionKey::parse(key).unwrap();
    let checked = operator
        .run(&["check-config"], &[("ENCRYPTION_KEY", key)])
        .await;
    assert!(checked.status.success(), "{}", checked.stderr);
    assert!(checked.stdout.contains("configuration is valid"));
    assert!(!checked.stdout.contains(key));
    let bad = operator
        .run(&["check-config"], &[("NEZUKO_SERVER__LISTEN", "nowhere")])
        .await;
    assert_fails_with_one_line(bad, 78, &["server.listen"]).await;
}

/// Runs `nezuko keygen` with its standard output on `stdout`; how it ended and its stderr.
async fn keygen_into(
    operator: &Operator,
    stdout: std::process::Stdio,
) -> (std::process::Output, String) {
    let mut command = operator.command(&["keygen"], &[]);
    command.stdout(stdout);
    // Not `output()`, which would pipe stdout to us instead.
    let child = command.spawn().unwrap();
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stderr)
}

#[tokio::test]
async fn a_listing_piped_into_a_reader_that_left_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let operator = Operator::new();
    // As in `nezuko keygen | head -c0`: the reading end is gone before the first line is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let (output, stderr) = keygen_into(&operator, writer.into()).await;
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        output.status.signal(),
        Some(13),
        "ended by SIGPIPE: {stderr}"
    );
}

#[tokio::test]
async fn output_that_cannot_be_written_is_a_one_line_error() {
    let operator = Operator::new();
    // As in `nezuko keygen > /dev/full`.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let (output, stderr) = keygen_into(&operator, full.into()).await;
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot write to standard output"),
        "{stderr}"
    );
}

#[tokio::test]
async fn migrate_creates_the_database_and_says_where() {
    let operator = Operator::new();
    let migrated = operator.run(&["migrate"], &[]).await;
    assert!(migrated.status.success(), "{}", migrated.stderr);
    assert!(migrated.stdout.contains("sqlite://data/nezuko.db"));
    assert!(Path::new(&operator.data().join("nezuko.db")).exists());
}

#[tokio::test]
async fn every_command_has_help() {
    let operator = Operator::new();
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["keygen", "--help"],
        &["check-config", "--help"],
        &["rotate-key", "--help"],
        &["demo", "--help"],
    ] {
        let help = operator.run(args, &[]).await;
        assert!(help.status.success(), "{args:?}");
        assert!(
            help.stdout.contains("Usage: nezuko"),
            "{args:?}: {}",
            help.stdout
        );
    }
}

#[tokio::test]
async fn the_sandbox_drives_a_scenario_and_prints_a_json_report_last() {
    let operator = Operator::new();
    let finished = operator.run(&smoke_sandbox("0.5", "0"), &[]).await;
    assert!(finished.status.success(), "{}", finished.stderr);
    let last = finished.stdout.lines().last().expect("a report line");
    let report: serde_json::Value = serde_json::from_str(last).unwrap();
    for field in [
        "updates_per_s",
        "p50_ms",
        "p99_ms",
        "calls_by_method",
        "rate_limited",
        "spec_violations",
    ] {
        assert!(report.get(field).is_some(), "{field} missing from {report}");
    }
    assert!(
        report["events"]["message"].as_u64().unwrap() > 0,
        "{report}"
    );
    let world: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(operator.dir.path().join("sandbox-world.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(world["bots"].as_array().unwrap().len(), 2);
    assert!(world["bots"][0]["token"].as_str().unwrap().contains(':'));
    assert_eq!(world["groups"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_bot_added_on_the_command_line_runs_under_serve_and_stops_on_sigterm() {
    use nezuko_sandbox::{Sandbox, SandboxConfig};
    let sandbox = Sandbox::new(SandboxConfig::default());
    let telegram = sandbox.spawn_local().await.unwrap();
    let bot = sandbox.create_bot("Cli", "cli_bot");
    let user = sandbox.create_user("Cleo", None);
    let operator = Operator::new();
    let api = telegram.url();
    let vars = [("NEZUKO_TELEGRAM__API_URL", api.as_str())];

    let refused = operator
        .run_with_input(&["bot", "add"], &vars, "123:not-a-token")
        .await;
    assert_fails_with_one_line(refused, 1, &["does not hold a bot token"]).await;
    let added = operator
        .run_with_input(&["bot", "add"], &vars, &format!("{}\n", bot.token))
        .await;
    assert!(added.status.success(), "{}", added.stderr);
    assert!(
        added.stdout.contains("added bot 1 (@cli_bot), enabled"),
        "{}",
        added.stdout
    );
    assert!(
        !added.stdout.contains(&bot.token) && !added.stderr.contains(&bot.token),
        "the token never shows"
    );

    let serving = operator.serve(&vars).await;
    let bot_id = bot.id;
    sandbox.wait_polling(bot_id, DEADLINE).await.unwrap();
    sandbox.send_private(bot.id, user.id, "/start").unwrap();
    let user_id = user.id;
    sandbox
        .wait_until(DEADLINE, "the greeting", |s| {
            s.transcript(user_id).into_iter().find(|m| m.from == bot_id)
        })
        .await
        .unwrap();
    let listed = operator.run(&["bot", "list"], &[]).await;
    assert!(
        listed.stdout.contains("@cli_bot") && listed.stdout.contains("running"),
        "{}",
        listed.stdout
    );

    // What the command line changes is audited with actor `cli`, like the dashboard's actions.
    let restarted = operator.run(&["bot", "restart", "1"], &[]).await;
    assert!(restarted.status.success(), "{}", restarted.stderr);
    let link = operator.run(&["login-link", "--user", "4242"], &[]).await;
    assert!(!link.status.success(), "4242 is nobody here");
    let store = operator.store().await;
    let audit = store
        .query_audit(&nezuko::db::AuditFilter {
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    store.close().await;
    let by_cli: Vec<(&str, &str)> = audit
        .iter()
        .filter(|e| e.actor_name == "cli")
        .map(|e| (e.action.as_str(), e.target_id.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        by_cli,
        [("bot.restart", "1"), ("bot.add", "1")],
        "{audit:#?}"
    );
    assert!(
        audit.iter().all(|e| !format!("{e:?}").contains(&bot.token)),
        "no token in the audit log"
    );

    let (status, log) = serving.terminate().await;
    assert!(status.success(), "{log:#?}");
    assert!(
        log.iter().all(|line| !line.contains(&bot.token)),
        "the token never reaches the log"
    );
    let listed = operator.run(&["bot", "list"], &[]).await;
    assert!(
        listed.stdout.contains("stopped") && listed.stdout.contains("service shutting down"),
        "{}\n{log:#?}",
        listed.stdout
    );
    assert!(!sandbox.is_polling(bot.id));
}

/// The enforcement benchmark runs end to end on a small scenario, with the product restarted
/// midway, and reports every figure the issue names, the product's own included (the numbers
/// themselves are for the machine's README table, not asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_verify_prints_its_report_as_the_last_line() {
    let operator = Operator::new();
    let finished = operator
        .run(
            &[
                "bench",
                "verify",
                "--scenario",
                "smoke",
                "--seconds",
                "4",
                "--warmup",
                "1",
                "--restart-at",
                "1",
                "--after-restart",
                "2",
            ],
            &[],
        )
        .await;
    assert!(finished.status.success(), "{}", finished.stderr);
    let last = finished.stdout.lines().last().expect("a report line");
    let report: serde_json::Value = serde_json::from_str(last).unwrap();
    for field in [
        "updates_per_s",
        "p50_ms",
        "p99_ms",
        "cache_hit",
        "rate_limited",
        "spec_violations",
        "backend",
        "after_restart",
    ] {
        assert!(report.get(field).is_some(), "{field} missing in {report}");
    }
    for field in [
        "product_cpu_us_per_update",
        "product_cores",
        "product_rss_mb",
    ] {
        assert!(
            report[field].as_f64().is_some_and(|v| v > 0.0),
            "{field} in {report}"
        );
    }
    assert!(
        report["after_restart"]["actions_measured"]
            .as_u64()
            .is_some(),
        "{report}"
    );
    assert_eq!(report["backend"], "sqlite");
    assert_eq!(report["spec_violations"], 0, "{}", finished.stderr);
    // Not asserted to be 0 here: the restarted process does not know which share of Telegram's
    // per-chat message budget the process before it used, so its first warnings may meet a 429.
    assert!(report["rate_limited"].as_u64().is_some(), "{report}");
    assert!(
        report["updates_confirmed"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(
        report["calls_by_method"]["getUpdates"].as_u64().unwrap() > 0,
        "{report}"
    );
}

/// The fleet benchmark runs its sandbox as a process of its own and measures the fleet alone:
/// every bot of the sandbox's world runs, and the report names what was measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_fleet_runs_every_bot_of_a_sandbox_process_of_its_own() {
    let operator = Operator::new();
    let finished = operator
        .run(&["bench", "fleet", "--bots", "20", "--sample", "5"], &[])
        .await;
    assert!(finished.status.success(), "{}", finished.stderr);
    let last = finished.stdout.lines().last().expect("a report line");
    let report: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(report["bench"], "fleet", "{report}");
    assert_eq!(report["bots"], 20, "{report}");
    assert_eq!(report["sample"], 5, "{report}");
    assert_eq!(report["mode"], "polling", "{report}");
    for field in [
        "all_running_s",
        "rss_mb",
        "peak_rss_mb",
        "settled_rss_mb",
        "first_updates_done_s",
        "start_p99_ms",
        "stop_p99_ms",
    ] {
        assert!(
            report[field].as_f64().is_some_and(|v| v > 0.0),
            "{field} in {report}"
        );
    }
}

/// In webhook mode the fleet benchmark's bots set their webhooks on the sandbox, which posts
/// their first updates to the product's delivery route: every bot runs, every first update is
/// done with, and stops and starts are timed as in polling mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_fleet_runs_its_bots_in_webhook_mode() {
    let operator = Operator::new();
    let finished = operator
        .run(
            &[
                "bench", "fleet", "--bots", "20", "--sample", "5", "--mode", "webhook",
            ],
            &[],
        )
        .await;
    assert!(finished.status.success(), "{}", finished.stderr);
    let last = finished.stdout.lines().last().expect("a report line");
    let report: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(report["mode"], "webhook", "{report}");
    assert_eq!(report["bots"], 20, "{report}");
    for field in ["settled_rss_mb", "start_p99_ms", "stop_p99_ms"] {
        assert!(
            report[field].as_f64().is_some_and(|v| v > 0.0),
            "{field} in {report}"
        );
    }
}

/// The chaos benchmark kills a real `nezuko serve` under load, takes its database away and sends
/// a storm of Telegram faults, and finds nothing missing or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_chaos_loses_nothing_through_kills_an_outage_and_a_fault_storm() {
    let operator = Operator::new();
    let args = [
        "bench",
        "chaos",
        "--seconds",
        "10",
        "--rate",
        "10",
        "--kills",
        "2",
        "--outage",
        "3",
    ];
    let (report, stderr) = operator.bench_report(&args, Duration::from_secs(150)).await;
    assert!(report["actions_needed"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["kills"], 2, "{report}");
    for field in [
        "actions_missing",
        "actions_doubled",
        "warnings_missing",
        "records_missing",
        "bots_parked",
        "spec_violations",
    ] {
        assert_eq!(report[field], 0, "{field} in {report}\n{stderr}");
    }
}

/// The sandbox benchmark runs its sandbox as a second process and reports the sandbox's own
/// throughput and CPU cost (the figures are for the README, not asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_sandbox_measures_a_sandbox_process_of_its_own() {
    let operator = Operator::new();
    let finished = operator
        .run(
            &[
                "bench",
                "sandbox",
                "--bots",
                "2",
                "--clients",
                "4",
                "--seconds",
                "0.5",
            ],
            &[],
        )
        .await;
    assert!(finished.status.success(), "{}", finished.stderr);
    let last = finished.stdout.lines().last().expect("a report line");
    let report: serde_json::Value = serde_json::from_str(last).unwrap();
    for field in [
        "updates_per_s",
        "calls_per_s",
        "sandbox_cpu_us_per_update",
        "sandbox_cpu_us_per_call",
        "sandbox_rss_mb",
    ] {
        assert!(
            report[field].as_f64().is_some_and(|v| v > 0.0),
            "{field} in {report}"
        );
    }
    assert_eq!(report["spec_violations"], 0);
}

/// Two real processes on one PostgreSQL database and one Redis: a change made in this process's
/// service reaches an SSE client of a `nezuko serve` child process, with the same event id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_reaches_sse_clients_of_another_nezuko_process() {
    use crate::api::{ApiWorld, OWNER};
    let redis = crate::api::redis_fan_out::redis_url();
    let key = EncryptionKey::generate();
    let here = ApiWorld::start_with(
        crate::support::TestDb::postgres().await,
        &[
            ("NEZUKO_REDIS__URL", redis.as_str()),
            ("NEZUKO_VAULT__KEYS", key.expose()),
        ],
    )
    .await;
    let operator = Operator::new();
    let owner = OWNER.to_string();
    let other = operator
        .serve(&[
            ("DATABASE_URL", here.db.url.as_str()),
            ("REDIS_URL", redis.as_str()),
            ("ENCRYPTION_KEY", key.expose()),
            ("BOT_OWNER_TELEGRAM_ID", owner.as_str()),
        ])
        .await;
    let session = crate::api::sign_in_at(&here.db.store, &other.base, OWNER).await;
    let mut watcher =
        crate::api::sse::SseClient::open(&other.base, &session.cookie, "?type=audit", None).await;
    assert_eq!(watcher.status, 200);
    // The child's relay subscribes in the background (beside this process's own).
    crate::api::redis_fan_out::wait_for_relays(&here.db.store, 2).await;
    here.call(
        reqwest::Method::PUT,
        "/api/v1/settings/policy",
        Some(serde_json::json!({ "grace_s": 3 })),
    )
    .await
    .ok();
    let event = watcher
        .next(Duration::from_secs(10))
        .await
        .expect("the other process relays the event");
    assert_eq!(event.data["payload"]["action"], "settings.policy");
    let stored = here.db.store.events_after(0, 100).await.unwrap();
    let row = stored.iter().rev().find(|e| e.kind == "audit").unwrap();
    assert_eq!(event.id, Some(row.id));
    let (status, _) = other.terminate().await;
    assert!(status.success());
    here.finish().await;
}

/// The API benchmark runs end to end on a small data set and reports every figure the issue names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_api_prints_its_report_as_the_last_line() {
    let operator = Operator::new();
    let finished = operator
        .run(
            &[
                "bench",
                "api",
                "--rows",
                "3000",
                "--samples",
                "2",
                "--sse-clients",
                "5",
                "--rate",
                "20",
                "--seconds",
                "1",
            ],
            &[],
        )
        .await;
    assert!(finished.status.success(), "{}", finished.stderr);
    let last = finished.stdout.lines().last().expect("a report line");
    let report: serde_json::Value = serde_json::from_str(last).unwrap();
    for field in [
        "stats_p95_ms",
        "charts_p95_ms",
        "sse_clients",
        "sse_p99_ms",
        "backend",
    ] {
        assert!(
            report.get(field).is_some_and(|v| !v.is_null()),
            "{field} missing in {report}"
        );
    }
    assert_eq!(report["backend"], "sqlite");
    assert_eq!(report["sse_clients"], 5);
    assert_eq!(report["sse_delivered"], report["sse_expected"], "{report}");
}

/// The service's own log records reach the `logs` table through the tracing layer, and the logs API
/// finds them; a warning logged while serving arrives there as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_stores_its_log_records_and_serves_them() {
    let operator = Operator::new();
    let serving = operator
        .serve(&[
            ("BOT_OWNER_TELEGRAM_ID", "1001"),
            ("NEZUKO_LOG__STORE_LEVEL", "info"),
        ])
        .await;
    let store = operator.store().await;
    let session = crate::api::sign_in_at(&store, &serving.base, 1001).await;
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let found = loop {
        let answer = client
            .get(format!(
                "{}/api/v1/logs?text=listening&min_level=info",
                serving.base
            ))
            .header("cookie", format!("nezuko_session={}", session.cookie))
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = answer.json().await.unwrap();
        if let Some(first) = body["items"]
            .as_array()
            .and_then(|items| items.first())
            .cloned()
        {
            break first;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no stored log record: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(found["level"], "info");
    assert_eq!(found["target"], "nezuko::app");
    assert!(
        found["message"].as_str().unwrap().contains("/api/v1"),
        "{found}"
    );
    let (status, _) = serving.terminate().await;
    assert!(status.success());
}

/// `nezuko sandbox --scenario …` stops on SIGTERM while it drives traffic, as every other command
/// does (it used to install the handlers and never look at them: only SIGKILL ended it).
#[tokio::test]
async fn a_sandbox_driving_a_scenario_stops_on_sigterm() {
    let operator = Operator::new();
    let mut child = operator
        .command(&smoke_sandbox("1000", "1"), &[])
        .spawn()
        .unwrap();
    let world = operator.dir.path().join("sandbox-world.json");
    tokio::time::timeout(DEADLINE, async {
        while !world.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the world is written");
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("stops within 5 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// `nezuko sandbox` on a free port driving the smoke scenario for `duration` s, waiting `wait` s for
/// bots.
fn smoke_sandbox<'a>(duration: &'a str, wait: &'a str) -> [&'a str; 9] {
    [
        "sandbox",
        "--listen",
        "127.0.0.1:0",
        "--scenario",
        "smoke",
        "--duration",
        duration,
        "--wait-for-bots",
        wait,
    ]
}

/// The shell block of the README that follows `<!-- recipe: NAME -->`.
fn readme_recipe(name: &str) -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("the README is there");
    let marker = format!("<!-- recipe: {name} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("the README has the recipe `{name}`"))
        .1;
    let block = after
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .unwrap_or_else(|| panic!("the recipe `{name}` is a sh block"))
        .0;
    block.to_string()
}

/// `text` with `from` replaced by `to`, which must be in it (so a changed README fails here, not
/// later and obscurely).
fn replaced(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "`{from}` is no longer in: {text}");
    text.replace(from, to)
}

/// Runs `script` with bash in `dir` as a paste into a root shell on a machine whose PostgreSQL
/// superuser is `postgres` would: `sudo -u postgres` becomes a connection as that user (the test
/// database trusts it), and `nezuko` is the binary under test.
fn recipe_command(dir: &Path, script: &str) -> tokio::process::Command {
    let admin = reqwest::Url::parse(&crate::support::postgres_admin_url()).unwrap();
    let binary = Path::new(env!("CARGO_BIN_EXE_nezuko")).parent().unwrap();
    let prelude = r#"sudo() { if [ "$1" = "-u" ]; then shift 2; fi; "$@"; }"#;
    let mut command = tokio::process::Command::new("bash");
    command
        .arg("-ec")
        .arg(format!("{prelude}\n{script}"))
        .current_dir(dir)
        .env_clear()
        .env(
            "PATH",
            format!("{}:{}", binary.display(), std::env::var("PATH").unwrap()),
        )
        .env("PGHOST", admin.host_str().unwrap())
        .env("PGPORT", admin.port().unwrap_or(5432).to_string())
        .env("PGUSER", admin.username())
        .kill_on_drop(true);
    command
}

/// The role and database the recipe makes, dropped however the test ends.
struct RecipeDatabase {
    name: String,
}

impl Drop for RecipeDatabase {
    fn drop(&mut self) {
        let admin = reqwest::Url::parse(&crate::support::postgres_admin_url()).unwrap();
        let name = &self.name;
        // Separate statements: `DROP DATABASE` cannot run inside a transaction.
        let dropped = std::process::Command::new("psql")
            .env("PGHOST", admin.host_str().unwrap())
            .env("PGPORT", admin.port().unwrap_or(5432).to_string())
            .env("PGUSER", admin.username())
            .args([
                "-c",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ])
            .args(["-c", &format!("DROP ROLE IF EXISTS {name}")])
            .output();
        if !std::thread::panicking() {
            assert!(dropped.is_ok_and(|d| d.status.success()), "dropping {name}");
        }
    }
}

#[tokio::test]
async fn the_postgresql_recipe_in_the_readme_starts_twice() {
    let dir = tempfile::tempdir().unwrap();
    let admin = reqwest::Url::parse(&crate::support::postgres_admin_url()).unwrap();
    let database = RecipeDatabase {
        name: format!("nz_recipe_{}", std::process::id()),
    };
    let name = &database.name;
    let once = readme_recipe("postgres-once");
    let once = replaced(&once, "ROLE nezuko", &format!("ROLE {name}"));
    let once = replaced(
        &once,
        "--owner nezuko nezuko",
        &format!("--owner {name} {name}"),
    );
    let start = replaced(
        &readme_recipe("postgres-start"),
        "postgres://nezuko:change-me@127.0.0.1:5432/nezuko",
        &format!(
            "postgres://{name}:change-me@{}:{}/{name}",
            admin.host_str().unwrap(),
            admin.port().unwrap_or(5432)
        ),
    );
    let made = recipe_command(dir.path(), &once).output().await.unwrap();
    assert!(made.status.success(), "the one-time steps: {made:?}");
    for start_number in 1..=2 {
        let port = crate::webhooks::free_port();
        let mut serving = recipe_command(dir.path(), &start);
        serving
            .env("NEZUKO_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = serving.spawn().unwrap();
        let group = format!("-{}", child.id().unwrap());
        let url = format!("http://127.0.0.1:{port}/readyz");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let ready = loop {
            if let Ok(answer) = reqwest::get(&url).await
                && answer.status() == 200
            {
                break true;
            }
            if child.try_wait().unwrap().is_some() || tokio::time::Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // The whole group: bash and the `nezuko serve` it started (gone already if it failed).
        let signalled = std::process::Command::new("kill")
            .args(["-TERM", "--", &group])
            .status();
        let finished = tokio::time::timeout(DEADLINE, child.wait_with_output())
            .await
            .expect("it stops on SIGTERM")
            .unwrap();
        let said = String::from_utf8_lossy(&finished.stderr);
        assert!(ready, "start {start_number} never became ready: {said}");
        assert!(signalled.is_ok_and(|s| s.success()), "kill -TERM {group}");
        assert!(finished.status.success(), "start {start_number}: {said}");
    }
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_to_a_service_that_starts() {
    let operator = Operator::new();
    let serving = operator.serve(&[]).await;
    let key = key_file_keys(&operator).remove(0);
    let store = operator.store().await;
    insert_bot(
        &store,
        &Vault::new(&[EncryptionKey::parse(&key).unwrap()]),
        7,
    )
    .await;
    store.close().await;
    let backups = operator.dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let file = backups.join("nezuko-1.db");
    let to = file.to_str().unwrap();
    // Taken while the service runs.
    let taken = operator.run(&["backup", "--to", to], &[]).await;
    assert!(taken.status.success(), "{}", taken.stderr);
    assert!(
        taken.stdout.contains("1 bot token(s), integrity ok"),
        "{}",
        taken.stdout
    );
    assert!(taken.stdout.contains("nezuko-1.db.key"), "{}", taken.stdout);
    let again = operator.run(&["backup", "--to", to], &[]).await;
    assert_fails_with_one_line(again, 1, &["exists already"]).await;
    let (status, _) = serving.terminate().await;
    assert!(status.success());

    // Restored elsewhere: the database and its key, and the service starts on them.
    let restored = Operator::new();
    std::fs::create_dir_all(restored.data()).unwrap();
    std::fs::copy(&file, restored.data().join("nezuko.db")).unwrap();
    std::fs::copy(
        backups.join("nezuko-1.db.key"),
        restored.data().join("encryption.key"),
    )
    .unwrap();
    let (status, log) = restored.serve(&[]).await.terminate().await;
    assert_eq!(status.code(), Some(0), "{log:?}");
    assert!(all_tokens_open_with(&restored, &key).await);

    // PostgreSQL is dumped with its own tool; the command says how.
    let elsewhere = Operator::new();
    let admin = crate::support::postgres_admin_url();
    let dumped = elsewhere
        .run(&["backup", "--to", "x.db"], &[("DATABASE_URL", &admin)])
        .await;
    assert_fails_with_one_line(dumped, 1, &["pg_dump", "ENCRYPTION_KEY"]).await;
}

#[tokio::test]
async fn the_shipped_systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/nezuko.service"
    ))
    .unwrap();
    // Verified as installed, with the binary where the unit expects it: here, the one under test.
    let unit = replaced(
        &unit,
        "ExecStart=/usr/local/bin/nezuko serve",
        &format!("ExecStart={} serve", env!("CARGO_BIN_EXE_nezuko")),
    );
    assert!(unit.contains("RestartPreventExitStatus=78"), "{unit}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nezuko.service");
    std::fs::write(&path, unit).unwrap();
    let verified = tokio::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .await
        .expect("systemd-analyze is installed (Debian's systemd package)");
    let said = String::from_utf8_lossy(&verified.stderr);
    // Unknown keys are only warnings to systemd: any word from it fails the unit here.
    assert!(
        verified.status.success() && said.trim().is_empty(),
        "{said}"
    );
}

/// The original Python platform's tables, as its bot's Alembic chain (B) made them on SQLite, with
/// a row in each (the seed's `original-schema.md` §3).
const ORIGINAL_BOT_CHAIN: [&str; 6] = [
    "CREATE TABLE owners (user_id BIGINT PRIMARY KEY, username VARCHAR(255), created_at DATETIME)",
    "CREATE TABLE protected_groups (group_id BIGINT PRIMARY KEY, owner_id BIGINT, title VARCHAR(255), enabled BOOLEAN, params JSON, created_at DATETIME, updated_at DATETIME)",
    "CREATE TABLE alembic_version_bot (version_num VARCHAR(32) PRIMARY KEY)",
    "INSERT INTO owners VALUES (42, 'founder', '2026-02-04 10:00:00.000000')",
    "INSERT INTO protected_groups VALUES (-1001, 42, 'Readers', TRUE, '{}', '2026-02-04 10:00:00', '2026-02-04 10:00:00')",
    "INSERT INTO alembic_version_bot VALUES ('c1f7ecc2c523')",
];

/// Only the dashboard's chain (A) ran: its admin tables and its own `bot_instances`.
const ORIGINAL_API_CHAIN: [&str; 3] = [
    "CREATE TABLE admin_audit_log (id VARCHAR(36) PRIMARY KEY, action VARCHAR(100), created_at DATETIME)",
    "CREATE TABLE bot_instances (id INTEGER PRIMARY KEY, bot_id BIGINT, bot_username VARCHAR(255), token_encrypted TEXT, is_active BOOLEAN)",
    "INSERT INTO admin_audit_log VALUES ('0b9d…', 'group.update', '2026-02-04 10:00:00')",
];

#[tokio::test]
async fn serve_and_migrate_refuse_the_original_platforms_sqlite_database_and_change_nothing() {
    use sqlx::{Connection, Executor};
    for (shape, statements, marks) in [
        (
            "bot chain",
            &ORIGINAL_BOT_CHAIN[..],
            &[
                "owners",
                "alembic_version_bot",
                "protected_groups.group_id or bot_instances.token_encrypted",
            ][..],
        ),
        (
            "dashboard chain",
            &ORIGINAL_API_CHAIN[..],
            &["admin_audit_log"][..],
        ),
        (
            "the dashboard's bots alone",
            &[
                "CREATE TABLE bot_instances (id INTEGER PRIMARY KEY, bot_id BIGINT, token_encrypted TEXT)",
            ][..],
            &["bot_instances.token_encrypted"][..],
        ),
    ] {
        let operator = Operator::new();
        let file = operator.dir.path().join("original.db");
        let url = format!("sqlite://{}", file.display());
        let mut original = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        for statement in statements {
            original.execute(*statement).await.unwrap();
        }
        original.close().await.unwrap();
        let before = std::fs::read(&file).unwrap();
        for command in ["serve", "migrate"] {
            let refused = operator.run(&[command], &[("DATABASE_URL", &url)]).await;
            let mut words = vec!["original Python platform", "untouched", "new database"];
            words.extend_from_slice(marks);
            assert_fails_with_one_line(refused, 78, &words).await;
        }
        assert_eq!(
            std::fs::read(&file).unwrap(),
            before,
            "{shape}: the file is as it was"
        );
        let beside: Vec<String> = std::fs::read_dir(operator.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("original.db"))
            .collect();
        assert_eq!(
            beside,
            ["original.db"],
            "{shape}: no journal, WAL or runner lock beside it"
        );
    }
}

#[tokio::test]
async fn migrate_refuses_the_original_platforms_postgres_database_and_changes_nothing() {
    use sqlx::{Connection, Executor};
    let admin_url = crate::support::postgres_admin_url();
    let name = crate::support::unique_database_name();
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    admin.close().await.ok();
    let url = crate::support::database_url_on(&admin_url, &name);
    let mut original = sqlx::PgConnection::connect(&url).await.unwrap();
    for statement in ORIGINAL_BOT_CHAIN {
        original
            .execute(sqlx::AssertSqlSafe(
                statement.replace("DATETIME", "TIMESTAMP"),
            ))
            .await
            .unwrap();
    }
    let tables = "SELECT string_agg(table_name::text, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'";
    let before: String = sqlx::query_scalar(tables)
        .fetch_one(&mut original)
        .await
        .unwrap();
    let operator = Operator::new();
    for command in ["migrate", "serve"] {
        let refused = operator.run(&[command], &[("DATABASE_URL", &url)]).await;
        assert_fails_with_one_line(refused, 78, &["original Python platform", "owners"]).await;
    }
    let after: String = sqlx::query_scalar(tables)
        .fetch_one(&mut original)
        .await
        .unwrap();
    assert_eq!(after, before, "no table was added");
    original.close().await.ok();
    crate::support::drop_database(&name).await;
}
