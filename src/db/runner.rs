//! Which process runs the bots of a SQLite database.
//!
//! SQLite serves one machine, and its bots are run by one process. A second process serving the
//! same file would poll every bot's token too; Telegram answers two pollers of one token with 409
//! Conflict, and both processes would end up parking the bot as failed while nobody polls. So the
//! process that runs the bots holds an exclusive lock on `<database file>.runner`, an OS file lock
//! that ends however the process ends (SIGKILL included), and writes who it is there; another
//! process that wants to run bots is refused with the holder's name.
//!
//! On PostgreSQL several processes share the bots, each bot run by the node holding its lease
//! (`db::leases`, `actors::leases`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::DatabaseUrl;

/// Held for as long as this process runs the bots of its SQLite database; dropping it lets
/// another process take over.
#[derive(Debug)]
pub struct RunnerClaim {
    file: Option<File>,
}

/// Why this process may not run bots here.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(
        "{holder} already runs the bots of {database}; on SQLite one process runs the bots: \
         stop that one, or start this one with `--role api` (the admin API only)"
    )]
    Held { holder: String, database: String },
    #[error(
        "cannot use the lock file {path} that keeps a second bot runner off this database \
         (it must be writable by the user running nezuko; `--role api` needs none)"
    )]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl RunnerClaim {
    /// Claims the bots of the database at `url` for this process: on SQLite, locks
    /// `<file>.runner` and writes `pid <n> since <RFC 3339 time>` into it; on PostgreSQL and for
    /// `:memory:`, takes nothing.
    ///
    /// Errors: [`RunnerError::Held`] when another process holds it, [`RunnerError::Io`] when the
    /// lock file cannot be opened or written.
    pub fn take(url: &DatabaseUrl) -> Result<Self, RunnerError> {
        let DatabaseUrl::Sqlite { path } = url else {
            return Ok(Self { file: None });
        };
        if path.as_os_str() == ":memory:" {
            return Ok(Self { file: None });
        }
        let io_at = |path: &Path| {
            let path = path.display().to_string();
            move |source| RunnerError::Io {
                path: path.clone(),
                source,
            }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        }
        // The file as SQLite opens it: every spelling of the path, symlinks included, must meet
        // at one lock.
        let real = real_path(path).map_err(io_at(path))?;
        let lock_path = lock_path(&real);
        let io = &io_at(&lock_path);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(RunnerError::Held {
                    holder: holder(&mut file),
                    database: path.display().to_string(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        let since = chrono::DateTime::from_timestamp_millis(super::now_ms())
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%SZ");
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(file, "pid {} since {since}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { file: Some(file) })
    }
}

impl Drop for RunnerClaim {
    /// Empties the file on the way out, so what is left behind names nobody. (The OS lock, not the
    /// file, is what keeps a second runner out; it ends with the process either way.)
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            // Clearing the holder's name is courtesy; the lock itself ends with the file.
            let _ = file.set_len(0);
        }
    }
}

/// Held while this process migrates a SQLite database: an OS lock on `<file>.migrating`, taken
/// by waiting for any other process migrating the same file.
pub(super) struct MigrationLock {
    _file: File,
}

impl MigrationLock {
    pub(super) async fn take(database: &Path) -> Result<Self, super::StoreError> {
        let database = database.to_path_buf();
        let locked = tokio::task::spawn_blocking(move || -> std::io::Result<File> {
            let real = real_path(&database)?;
            let mut name = real.into_os_string();
            name.push(".migrating");
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(PathBuf::from(name))?;
            file.lock()?;
            Ok(file)
        })
        .await
        .map_err(|error| std::io::Error::other(error.to_string()))
        .and_then(|locked| locked);
        match locked {
            Ok(file) => Ok(Self { _file: file }),
            Err(error) => Err(super::StoreError::MigrationLock(error)),
        }
    }
}

/// `path` with symlinks resolved; a file not created yet is resolved through its directory.
fn real_path(path: &Path) -> std::io::Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(real) => Ok(real),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
                Some(dir) => std::fs::canonicalize(dir)?,
                None => std::env::current_dir()?,
            };
            Ok(dir.join(path.file_name().unwrap_or(path.as_os_str())))
        }
        Err(error) => Err(error),
    }
}

fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".runner");
    PathBuf::from(name)
}

/// Who holds the lock, as its holder wrote it ("another process" before it has written).
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    // An unreadable file just names no holder.
    let _ = file.read_to_string(&mut text);
    let text = text.trim();
    if text.is_empty() {
        "another process".to_string()
    } else {
        format!("another nezuko process ({text})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_on_one_file_is_refused_with_the_holder_and_free_once_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite {
            path: dir.path().join("data").join("nezuko.db"),
        };
        let first = RunnerClaim::take(&url).unwrap();
        let refused = RunnerClaim::take(&url).unwrap_err().to_string();
        let pid = format!("pid {}", std::process::id());
        assert!(refused.contains(&pid), "{refused}");
        assert!(refused.contains("--role api"), "{refused}");
        drop(first);
        RunnerClaim::take(&url).expect("free again once the holder let go");
    }

    #[test]
    fn every_spelling_of_the_file_meets_at_one_lock_symlinks_included() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("nezuko.db");
        std::fs::write(&real, b"").unwrap();
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let _first = RunnerClaim::take(&DatabaseUrl::Sqlite { path: real }).unwrap();
        let through_link = RunnerClaim::take(&DatabaseUrl::Sqlite { path: link });
        assert!(matches!(through_link, Err(RunnerError::Held { .. })));
    }

    #[test]
    fn postgres_and_memory_databases_take_no_claim() {
        let memory = DatabaseUrl::Sqlite {
            path: ":memory:".into(),
        };
        let _a = RunnerClaim::take(&memory).unwrap();
        let _b = RunnerClaim::take(&memory).unwrap();
        let pg = DatabaseUrl::parse("postgres://nezuko@127.0.0.1/nezuko").unwrap();
        let _c = RunnerClaim::take(&pg).unwrap();
        let _d = RunnerClaim::take(&pg).unwrap();
    }
}
