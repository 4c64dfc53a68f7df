//! The token vault: Fernet spec vectors, interoperability with Python, key checks and rotation.

use std::path::PathBuf;
use std::process::Command;

use fernet::Fernet;
use nezuko::db::NewBot;
use nezuko::domain::{BotToken, DesiredState};
use nezuko::vault::{self, EncryptionKey, Vault, VaultError};
use serde_json::Value;

use crate::support::{TestDb, on_both_backends};

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn vectors(name: &str) -> Vec<Value> {
    fixture(&format!("fernet/{name}.json"))
        .as_array()
        .expect("a list of vectors")
        .clone()
}

fn text<'a>(vector: &'a Value, field: &str) -> &'a str {
    vector[field]
        .as_str()
        .unwrap_or_else(|| panic!("vector field {field}"))
}

/// Seconds since the epoch of an RFC 3339 time with an offset, e.g. `1985-10-26T01:20:00-07:00`.
fn unix_seconds(rfc3339: &str) -> u64 {
    let (date, rest) = rfc3339.split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (clock, offset) = rest.split_at(8);
    let c: Vec<i64> = clock.split(':').map(|p| p.parse().unwrap()).collect();
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let o: Vec<i64> = offset[1..].split(':').map(|p| p.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let local = days * 86_400 + c[0] * 3600 + c[1] * 60 + c[2];
    (local - sign * (o[0] * 3600 + o[1] * 60)) as u64
}

fn decode(token: &str) -> Vec<u8> {
    // Fernet tokens are url-safe base64; decoding via a throwaway alphabet map keeps the test dependency-free.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in token.bytes().filter(|b| *b != b'=') {
        let value = alphabet
            .iter()
            .position(|a| *a == byte)
            .expect("url-safe base64") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

#[test]
fn the_generate_vectors_decrypt_and_our_tokens_have_their_layout() {
    for vector in vectors("generate") {
        let now = unix_seconds(text(&vector, "now"));
        let fernet = Fernet::new(text(&vector, "secret")).unwrap();
        let expected = text(&vector, "token");
        assert_eq!(
            fernet.decrypt_at_time(expected, None, now).unwrap(),
            text(&vector, "src").as_bytes()
        );

        // The crate draws the IV from the OS, so the bytes cannot match; everything else must.
        let ours = decode(&fernet.encrypt_at_time(text(&vector, "src").as_bytes(), now));
        let theirs = decode(expected);
        assert_eq!(ours.len(), theirs.len());
        assert_eq!(ours[0], 0x80, "version byte");
        assert_eq!(ours[1..9], now.to_be_bytes(), "timestamp");
        let iv: Vec<u8> = vector["iv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(theirs[9..25], iv[..]);
    }
}

#[test]
fn the_verify_vectors_decrypt_within_their_ttl() {
    for vector in vectors("verify") {
        let fernet = Fernet::new(text(&vector, "secret")).unwrap();
        let ttl = vector["ttl_sec"].as_u64();
        let now = unix_seconds(text(&vector, "now"));
        assert_eq!(
            fernet
                .decrypt_at_time(text(&vector, "token"), ttl, now)
                .unwrap(),
            text(&vector, "src").as_bytes()
        );
        // The vault reads stored tokens without a TTL.
        let vault = Vault::new(&[EncryptionKey::parse(text(&vector, "secret")).unwrap()]);
        assert_eq!(
            vault.decrypt(text(&vector, "token")).unwrap(),
            text(&vector, "src").as_bytes()
        );
    }
}

#[test]
fn every_invalid_vector_is_refused() {
    for vector in vectors("invalid") {
        let desc = text(&vector, "desc");
        let fernet = Fernet::new(text(&vector, "secret")).unwrap();
        let now = unix_seconds(text(&vector, "now"));
        let ttl = vector["ttl_sec"].as_u64();
        assert!(
            fernet
                .decrypt_at_time(text(&vector, "token"), ttl, now)
                .is_err(),
            "accepted: {desc}"
        );
        // Time-based refusals need a TTL, which stored tokens do not have; every other flaw the vault refuses too.
        if !matches!(
            desc,
            "expired TTL" | "far-future TS (unacceptable clock skew)"
        ) {
            let vault = Vault::new(&[EncryptionKey::parse(text(&vector, "secret")).unwrap()]);
            assert_eq!(
                vault.decrypt(text(&vector, "token")),
                Err(VaultError::WrongKey),
                "vault accepted: {desc}"
            );
        }
    }
}

#[test]
fn a_token_encrypted_by_the_python_platform_decrypts() {
    let made = fixture("python_fernet.json");
    let vault = Vault::new(&[EncryptionKey::parse(text(&made, "key")).unwrap()]);
    let token = vault.decrypt_token(text(&made, "ciphertext")).unwrap();
    assert_eq!(token.expose(), text(&made, "plaintext"));
}

#[test]
fn a_token_encrypted_here_decrypts_in_python() {
    let key = EncryptionKey::generate();
    let token = BotToken::parse("5550001:AAH_rust-made-token-for-python-0123456").unwrap();
    let ciphertext = Vault::new(std::slice::from_ref(&key)).encrypt_token(&token);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/fernet_decrypt.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(key.expose())
        .arg(&ciphertext)
        .output()
        .expect("python3 is required (scripts/test installs it with the cryptography package)");
    assert!(
        output.status.success(),
        "python could not decrypt: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8(output.stdout).unwrap(), token.expose());
}

on_both_backends!(
    rotation_re_encrypts_every_token_with_the_first_key,
    rotation_changes_nothing_when_a_token_cannot_be_decrypted,
    a_wrong_key_is_refused_at_start_even_without_bots,
    a_database_from_the_python_platform_is_checked_by_its_tokens,
);

fn bot_with(telegram_bot_id: i64, ciphertext: String) -> NewBot {
    NewBot {
        telegram_bot_id,
        username: "b".into(),
        display_name: "B".into(),
        token_ciphertext: ciphertext,
        owner_telegram_id: None,
        desired_state: DesiredState::Enabled,
    }
}

fn token(n: i64) -> BotToken {
    BotToken::parse(&format!("{n}:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw")).unwrap()
}

async fn rotation_re_encrypts_every_token_with_the_first_key(db: &TestDb) {
    let (old, new) = (EncryptionKey::generate(), EncryptionKey::generate());
    let old_vault = Vault::new(std::slice::from_ref(&old));
    vault::check_store(&old_vault, &db.store).await.unwrap();
    for n in 1..=3 {
        db.store
            .insert_bot(&bot_with(n, old_vault.encrypt_token(&token(n))))
            .await
            .unwrap();
    }

    let report = vault::rotate(&Vault::new(&[new.clone(), old]), &db.store)
        .await
        .unwrap();
    assert_eq!(report.tokens, 3);

    let new_only = Vault::new(&[new]);
    vault::check_store(&new_only, &db.store)
        .await
        .expect("the canary moved to the new key");
    for (id, ciphertext) in db.store.bot_ciphertexts().await.unwrap() {
        let bot = db.store.bot(id).await.unwrap();
        assert_eq!(
            new_only.decrypt_token(&ciphertext).unwrap(),
            token(bot.telegram_bot_id)
        );
        assert_eq!(old_vault.decrypt(&ciphertext), Err(VaultError::WrongKey));
    }
}

async fn rotation_changes_nothing_when_a_token_cannot_be_decrypted(db: &TestDb) {
    let (known, lost) = (EncryptionKey::generate(), EncryptionKey::generate());
    let known_vault = Vault::new(std::slice::from_ref(&known));
    let good = db
        .store
        .insert_bot(&bot_with(1, known_vault.encrypt_token(&token(1))))
        .await
        .unwrap();
    let bad = db
        .store
        .insert_bot(&bot_with(2, Vault::new(&[lost]).encrypt_token(&token(2))))
        .await
        .unwrap();

    let err = vault::rotate(&Vault::new(&[EncryptionKey::generate(), known]), &db.store)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&bad.id.to_string()), "{err}");
    assert!(err.to_string().contains("nothing was changed"));
    assert_eq!(
        db.store.bot(good.id).await.unwrap().token_ciphertext,
        good.token_ciphertext
    );
}

async fn a_wrong_key_is_refused_at_start_even_without_bots(db: &TestDb) {
    vault::check_store(&Vault::new(&[EncryptionKey::generate()]), &db.store)
        .await
        .unwrap();
    let err = vault::check_store(&Vault::new(&[EncryptionKey::generate()]), &db.store)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot decrypt"), "{err}");
    assert!(err.to_string().contains("rotate-key"), "{err}");
}

async fn a_database_from_the_python_platform_is_checked_by_its_tokens(db: &TestDb) {
    let made = fixture("python_fernet.json");
    db.store
        .insert_bot(&bot_with(7012345678, text(&made, "ciphertext").to_string()))
        .await
        .unwrap();
    let wrong = vault::check_store(&Vault::new(&[EncryptionKey::generate()]), &db.store).await;
    assert!(wrong.is_err());
    let right = Vault::new(&[EncryptionKey::parse(text(&made, "key")).unwrap()]);
    vault::check_store(&right, &db.store).await.unwrap();
    assert!(db.store.setting("vault.canary").await.unwrap().is_some());
}
