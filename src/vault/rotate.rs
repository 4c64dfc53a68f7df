//! `nezuko rotate-key`: re-encrypt every stored secret with the first configured key.

use anyhow::bail;

use super::Vault;
use super::canary::{CANARY_KEY, CANARY_PLAINTEXT};
use crate::db::Store;

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    pub tokens: usize,
}

/// Re-encrypts every bot token (and the canary) with the vault's first key, in one transaction:
/// if any token cannot be decrypted, nothing is changed and the error names the bots.
pub async fn rotate(vault: &Vault, store: &Store) -> anyhow::Result<RotationReport> {
    let tokens = store.bot_ciphertexts().await?;
    let mut rewritten = Vec::with_capacity(tokens.len());
    let mut failed = Vec::new();
    for (id, ciphertext) in &tokens {
        match vault.decrypt(ciphertext) {
            Ok(plaintext) => rewritten.push((*id, vault.encrypt(&plaintext))),
            Err(_) => failed.push(id.to_string()),
        }
    }
    if !failed.is_empty() {
        bail!(
            "no configured key decrypts the token of bot instance(s) {}; nothing was changed. \
             Add the key they were encrypted with after the new one in ENCRYPTION_KEY",
            failed.join(", ")
        );
    }
    let canary = serde_json::Value::String(vault.encrypt(CANARY_PLAINTEXT));
    store
        .replace_bot_ciphertexts(&rewritten, (CANARY_KEY, &canary))
        .await?;
    Ok(RotationReport {
        tokens: rewritten.len(),
    })
}
