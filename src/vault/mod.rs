//! The token vault: Fernet encryption of bot tokens at rest.
//!
//! Ciphertexts are Fernet tokens, byte-compatible with Python's `cryptography.fernet`, so a database
//! written by the original dashboard keeps working. Several keys may be configured: the first
//! encrypts, all decrypt, and `nezuko rotate-key` ([`rotate`]) moves every stored token to the first.
//! [`check_store`] refuses to run with a key that cannot read what the database holds.

mod canary;
mod key;
mod key_source;
mod rotate;

use fernet::Fernet;

use crate::domain::BotToken;

pub use canary::{check_store, check_store_unrecorded};
pub use key::EncryptionKey;
pub use key_source::{KeyProblem, KeySource, replace_key_file, resolve_keys};
pub use rotate::{RotationReport, rotate, rotate_key_file};

/// Why a ciphertext could not be turned back into a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("no configured encryption key decrypts it (wrong key, or the data was altered)")]
    WrongKey,
    #[error("it decrypts, but not to a bot token")]
    NotAToken,
}

/// Encrypts with the first key, decrypts with any.
#[derive(Clone)]
pub struct Vault {
    fernets: Vec<Fernet>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vault {{ keys: {} }}", self.fernets.len())
    }
}

impl Vault {
    /// A vault over `keys`, which must not be empty (see [`resolve_keys`]).
    pub fn new(keys: &[EncryptionKey]) -> Self {
        assert!(!keys.is_empty(), "a vault needs at least one key");
        Self {
            fernets: keys.iter().map(EncryptionKey::fernet).collect(),
        }
    }

    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        self.fernets[0].encrypt(plaintext)
    }

    /// Decrypts without a TTL: stored tokens do not expire.
    pub fn decrypt(&self, ciphertext: &str) -> Result<Vec<u8>, VaultError> {
        let ciphertext = ciphertext.trim();
        self.fernets
            .iter()
            .find_map(|fernet| fernet.decrypt(ciphertext).ok())
            .ok_or(VaultError::WrongKey)
    }

    /// Whether the first key (the one that encrypts) opens `ciphertext`.
    pub fn opens_with_first(&self, ciphertext: &str) -> bool {
        self.fernets[0].decrypt(ciphertext.trim()).is_ok()
    }

    pub fn encrypt_token(&self, token: &BotToken) -> String {
        self.encrypt(token.expose().as_bytes())
    }

    pub fn decrypt_token(&self, ciphertext: &str) -> Result<BotToken, VaultError> {
        let plaintext = self.decrypt(ciphertext)?;
        let text = std::str::from_utf8(&plaintext).map_err(|_| VaultError::NotAToken)?;
        BotToken::parse(text).map_err(|_| VaultError::NotAToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EncryptionKey {
        EncryptionKey::generate()
    }

    #[test]
    fn a_token_round_trips() {
        let vault = Vault::new(&[key()]);
        let token = BotToken::parse("42:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw").unwrap();
        let ciphertext = vault.encrypt_token(&token);
        assert!(!ciphertext.contains("AAHdq"));
        assert_eq!(vault.decrypt_token(&ciphertext), Ok(token));
    }

    #[test]
    fn the_first_key_encrypts_and_every_key_decrypts() {
        let (new, old) = (key(), key());
        let old_ciphertext = Vault::new(std::slice::from_ref(&old)).encrypt(b"x");
        let both = Vault::new(&[new.clone(), old]);
        assert_eq!(both.decrypt(&old_ciphertext).unwrap(), b"x");
        let fresh = both.encrypt(b"y");
        assert_eq!(Vault::new(&[new]).decrypt(&fresh).unwrap(), b"y");
    }

    #[test]
    fn a_wrong_key_is_reported_as_such() {
        let ciphertext = Vault::new(&[key()]).encrypt(b"secret");
        assert_eq!(
            Vault::new(&[key()]).decrypt(&ciphertext),
            Err(VaultError::WrongKey)
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        assert_eq!(
            format!("{:?}", Vault::new(&[key(), key()])),
            "Vault { keys: 2 }"
        );
    }
}
