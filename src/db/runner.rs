//! Which process runs the bots of a SQLite database.
//!
//! SQLite serves one machine, and its bots are run by one process. A second process serving the
//! same file would poll every bot's token too; Telegram answers two pollers of one token with 409
//! Conflict, and both processes would end up parking the bot as failed while nobody polls. So the
//! process that runs the bots holds an exclusive lock on `<database file>.runner`, an OS file lock
//! that ends however the process ends (SIGKILL included), and writes who it is there; another
//! process that wants to run bots is refused with the holder's name.
//!
//! On PostgreSQL several processes are expected, and this claim is not taken.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::DatabaseUrl;

/// Held for as long as this process runs the bots of its SQLite database; dropping it lets
/// another process take over.
#[derive(Debug)]
pub struct RunnerClaim {
    _file: Option<File>,
}

/// Why this process may not run bots here.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(
        "{holder} already runs the bots of {database}; SQLite lets one process run bots: \
         stop that one, start this one with `--role api` (the admin API only), or move to PostgreSQL"
    )]
    Held { holder: String, database: String },
    #[error("cannot use the lock file {path}")]
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
            return Ok(Self { _file: None });
        };
        if path.as_os_str() == ":memory:" {
            return Ok(Self { _file: None });
        }
        let lock_path = lock_path(path);
        let io = |source| RunnerError::Io {
            path: lock_path.display().to_string(),
            source,
        };
        if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
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
        Ok(Self { _file: Some(file) })
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
