//! Fernet keys as configured: parsed, normalised and never printed.

use std::fmt;

use fernet::Fernet;

use crate::domain::Secret;

/// A Fernet key: 32 bytes, url-safe base64 with `=` padding (the form Python requires).
#[derive(Clone)]
pub struct EncryptionKey(Secret<String>);

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey([redacted])")
    }
}

impl EncryptionKey {
    /// Parses a key, forgiving what copy and paste adds (white space, a missing `=`).
    /// The error says what is wrong without quoting the input.
    pub fn parse(input: &str) -> Result<Self, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("it is empty".into());
        }
        if trimmed.contains(['+', '/']) {
            return Err(
                "it uses the standard base64 alphabet (+ or /) where Fernet uses the url-safe one (- and _)".into(),
            );
        }
        if !trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
        {
            return Err("it contains characters that are not url-safe base64".into());
        }
        let unpadded = trimmed.trim_end_matches('=');
        let padded = format!("{unpadded}{}", "=".repeat((4 - unpadded.len() % 4) % 4));
        match Fernet::new(&padded) {
            Some(_) => Ok(Self(Secret::new(padded))),
            None => Err(format!(
                "it decodes to {} bytes, not 32",
                unpadded.len() * 3 / 4
            )),
        }
    }

    /// A new random key.
    pub fn generate() -> Self {
        Self(Secret::new(Fernet::generate_key()))
    }

    /// The key in its canonical text form, for `nezuko keygen` and the key file only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    pub(super) fn fernet(&self) -> Fernet {
        Fernet::new(self.0.expose())
            .expect("an EncryptionKey is a valid Fernet key by construction")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_back() {
        let key = EncryptionKey::generate();
        assert_eq!(
            EncryptionKey::parse(key.expose()).unwrap().expose(),
            key.expose()
        );
        assert_eq!(key.expose().len(), 44);
    }

    #[test]
    fn padding_and_white_space_are_forgiven() {
        let key = EncryptionKey::generate();
        let sloppy = format!(" {}\n", key.expose().trim_end_matches('='));
        assert_eq!(
            EncryptionKey::parse(&sloppy).unwrap().expose(),
            key.expose()
        );
    }

    #[test]
    fn malformed_keys_are_explained_without_quoting_them() {
        for (input, needle) in [
            ("", "empty"),
            ("abc+def/ghi=", "standard base64"),
            ("not a key!", "not url-safe"),
            ("c2hvcnQ=", "not 32"),
        ] {
            let err = EncryptionKey::parse(input).unwrap_err();
            assert!(err.contains(needle), "{input:?}: {err}");
            assert!(input.is_empty() || !err.contains(input));
        }
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(
            format!("{:?}", EncryptionKey::generate()),
            "EncryptionKey([redacted])"
        );
    }
}
