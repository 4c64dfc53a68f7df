//! `nezuko rotate-key`: re-encrypt every stored secret with the first configured key; in local
//! mode, where the key lives in the data directory's key file, rotate that file's key too.

use std::path::Path;

use anyhow::bail;

use super::canary::{CANARY_KEY, CANARY_PLAINTEXT};
use super::{EncryptionKey, Vault, replace_key_file};
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

/// Rotates the key of a key file (local mode): a new key is generated and written first beside
/// the old one (`NEW` then `OLD`, so whatever happens next the file decrypts everything), every
/// token is re-encrypted with it, then the old key is dropped from the file. Interrupted at any
/// point, the service still starts, and running this again finishes the job.
///
/// `current` are the file's keys now (the first encrypts). Returns the new key.
pub async fn rotate_key_file(
    store: &Store,
    key_file: &Path,
    current: &[EncryptionKey],
) -> anyhow::Result<(EncryptionKey, RotationReport)> {
    let new = EncryptionKey::generate();
    let both: Vec<EncryptionKey> = std::iter::once(new.clone())
        .chain(current.iter().cloned())
        .collect();
    replace_key_file(key_file, &both)?;
    let report = rotate(&Vault::new(&both), store).await?;
    replace_key_file(key_file, std::slice::from_ref(&new))?;
    Ok((new, report))
}
