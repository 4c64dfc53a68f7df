//! Where the vault's keys come from: the configuration, or in local mode a generated key file.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::EncryptionKey;

/// How the keys in use were obtained, so start-up can say so in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    KeyFile(PathBuf),
    Generated(PathBuf),
}

/// The keys to use. `configured` keys win; when `required` (production) they must be there.
/// Otherwise a key is read from (or generated into) `key_file` (`<data_dir>/encryption.key`),
/// created with mode 0600, so a fresh checkout runs without any setup and keeps its data readable
/// across restarts.
///
/// Errors: no configured key where one is required; a key file that cannot be read, written or
/// does not hold a Fernet key.
pub fn resolve_keys(
    configured: &[EncryptionKey],
    required: bool,
    key_file: &Path,
) -> anyhow::Result<(Vec<EncryptionKey>, KeySource)> {
    if !configured.is_empty() {
        return Ok((configured.to_vec(), KeySource::Configured));
    }
    if required {
        bail!(
            "no encryption key configured: production mode requires ENCRYPTION_KEY (or NEZUKO_VAULT__KEYS); \
             generate one with `nezuko keygen`"
        );
    }
    let path = key_file.to_path_buf();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            warn_if_readable_by_others(&path);
            let key = EncryptionKey::parse(&text).map_err(|problem| {
                anyhow::anyhow!(
                    "the key file {} does not hold a Fernet key: {problem}",
                    path.display()
                )
            })?;
            Ok((vec![key], KeySource::KeyFile(path)))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let key = EncryptionKey::generate();
            write_key_file(&path, &key)?;
            Ok((vec![key], KeySource::Generated(path)))
        }
        Err(err) => {
            Err(err).with_context(|| format!("cannot read the key file {}", path.display()))
        }
    }
}

fn write_key_file(path: &Path, key: &EncryptionKey) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    // create_new: never overwrite a key another process wrote a moment ago.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create the key file {}", path.display()))?;
    writeln!(file, "{}", key.expose())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the key file {}", path.display()))
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the encryption key file is readable by other users; run chmod 600 on it"
        );
    }
}
