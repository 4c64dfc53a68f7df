//! Start-up check that the configured keys can read what the database holds.
//!
//! A known plaintext, encrypted with the first key, is kept in `settings` under [`CANARY_KEY`].
//! Checking it catches a wrong key even before any bot exists; on a database written by the original
//! platform (no canary yet) the stored bot tokens are tried instead.

use super::{KeyProblem, Vault};
use crate::db::Store;

pub(super) const CANARY_KEY: &str = "vault.canary";
pub(super) const CANARY_PLAINTEXT: &[u8] = b"nezuko vault canary v1";

/// Fails with one clear message if none of the keys decrypts the store's data, and records
/// the canary on first use.
pub async fn check_store(vault: &Vault, store: &Store) -> anyhow::Result<()> {
    check(vault, store, true).await
}

/// [`check_store`] that writes nothing (no canary on first use): for a dry run.
pub async fn check_store_unrecorded(vault: &Vault, store: &Store) -> anyhow::Result<()> {
    check(vault, store, false).await
}

async fn check(vault: &Vault, store: &Store, record: bool) -> anyhow::Result<()> {
    let wrong_key = || {
        KeyProblem(format!(
            "the configured encryption key cannot decrypt the data in {}: it is not the key the bot tokens \
             were encrypted with. Use that key, or put the new key first and the old one after it \
             (ENCRYPTION_KEY=NEW,OLD) and run `nezuko rotate-key`",
            store.location()
        ))
    };
    if let Some(canary) = store.setting(CANARY_KEY).await? {
        let decrypted = canary.as_str().and_then(|text| vault.decrypt(text).ok());
        return match decrypted {
            Some(plaintext) if plaintext == CANARY_PLAINTEXT => Ok(()),
            _ => Err(wrong_key().into()),
        };
    }
    let tokens = store.bot_ciphertexts().await?;
    if !tokens.is_empty() && tokens.iter().all(|(_, c)| vault.decrypt(c).is_err()) {
        return Err(wrong_key().into());
    }
    let undecryptable = tokens
        .iter()
        .filter(|(_, c)| vault.decrypt(c).is_err())
        .count();
    if undecryptable > 0 {
        return Err(KeyProblem(format!(
            "{undecryptable} of {} stored bot tokens cannot be decrypted with the configured keys; \
             add the missing key to ENCRYPTION_KEY",
            tokens.len()
        ))
        .into());
    }
    if record {
        let canary = serde_json::Value::String(vault.encrypt(CANARY_PLAINTEXT));
        store.put_setting(CANARY_KEY, &canary, None).await?;
    }
    Ok(())
}
