//! Where the vault's keys come from: the configuration, or in local mode a generated key file.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::EncryptionKey;

/// The keys as configured cannot work: none where one is required, a key file that holds no key,
/// or keys that do not decrypt the stored data. A configuration problem (`nezuko` exits 78),
/// unlike a file or database that cannot be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyProblem(pub String);

/// How the keys in use were obtained, so start-up can say so in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    KeyFile(PathBuf),
    Generated(PathBuf),
}

/// The keys to use. `configured` keys win; when `required` (production) they must be there.
/// Otherwise the keys are read from (or one is generated into) `key_file`
/// (`<data_dir>/encryption.key`: one key per line, the first encrypts; a rotation leaves two for a
/// moment), created with mode 0600, so a fresh checkout runs without any setup and keeps its data
/// readable across restarts.
///
/// Errors: [`KeyProblem`] for no configured key where one is required or a key file that does not
/// hold Fernet keys; an I/O error for a key file that cannot be read or written.
pub fn resolve_keys(
    configured: &[EncryptionKey],
    required: bool,
    key_file: &Path,
) -> anyhow::Result<(Vec<EncryptionKey>, KeySource)> {
    if !configured.is_empty() {
        return Ok((configured.to_vec(), KeySource::Configured));
    }
    if required {
        return Err(KeyProblem(
            "no encryption key configured: production mode requires ENCRYPTION_KEY (or NEZUKO_VAULT__KEYS); \
             generate one with `nezuko keygen`"
                .into(),
        )
        .into());
    }
    let path = key_file.to_path_buf();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            warn_if_readable_by_others(&path);
            Ok((parse_key_file(&path, &text)?, KeySource::KeyFile(path)))
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

/// The keys of a key file, one per line (blank lines skipped), at least one.
fn parse_key_file(path: &Path, text: &str) -> Result<Vec<EncryptionKey>, KeyProblem> {
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(index, line)| {
            // Never quote the line: even a malformed one may be most of a real key.
            EncryptionKey::parse(line).map_err(|problem| {
                KeyProblem(format!(
                    "line {} of the key file {} is not a Fernet key: {problem}",
                    index + 1,
                    path.display()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(KeyProblem(format!(
            "the key file {} holds no key; restore it from your backup (without it the stored \
             bot tokens cannot be read)",
            path.display()
        )));
    }
    Ok(keys)
}

/// Replaces the key file with `keys` (first encrypts), atomically: a crash leaves the old file or
/// the new one, never a torn one. Mode 0600.
pub fn replace_key_file(path: &Path, keys: &[EncryptionKey]) -> anyhow::Result<()> {
    let staged = path.with_extension("key.new");
    // A leftover of an interrupted replacement is only ever a copy of keys written since.
    if staged.exists() {
        std::fs::remove_file(&staged)
            .with_context(|| format!("cannot remove {}", staged.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staged)
        .with_context(|| format!("cannot create {}", staged.display()))?;
    let text: String = keys.iter().map(|k| format!("{}\n", k.expose())).collect();
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", staged.display()))?;
    std::fs::rename(&staged, path)
        .with_context(|| format!("cannot replace the key file {}", path.display()))?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        // The rename is durable once the directory is.
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    Ok(())
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
