//! One error type for every configuration problem, rendered as a single line.

use std::fmt;

/// A configuration value that cannot be used.
///
/// Renders as one line: the key, where it was set, the problem and the accepted form, e.g.
/// ``database.url (from NEZUKO_DATABASE__URL): unsupported scheme `mysql`; expected …``.
/// Secret values are never quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub origin: String,
    pub problem: String,
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.key)?;
        if !self.origin.is_empty() {
            write!(f, " (from {})", self.origin)?;
        }
        write!(f, ": {}", self.problem)?;
        if !self.expected.is_empty() {
            write!(f, "; expected {}", self.expected)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
