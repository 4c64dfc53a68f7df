//! `nezuko backup`: a consistent copy of a SQLite database while the service uses it.
//!
//! `VACUUM INTO` writes the database as one read transaction sees it, so the copy is consistent
//! however busy the writers are, and compact; it is SQLite's own online backup for a file
//! (<https://sqlite.org/lang_vacuum.html#vacuuminto>). PostgreSQL has `pg_dump` for that.

use std::path::Path;

use super::{Pool, Store, StoreError};

/// Copies the SQLite database at `from` to `to` (which must not exist) through a read-only
/// connection: nothing is written to `from`. For a dry run that must leave a database as it was.
pub async fn snapshot_sqlite(from: &Path, to: &Path) -> Result<(), StoreError> {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(from)
        .read_only(true);
    let mut connection = sqlx::SqliteConnection::connect_with(&options).await?;
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(to.to_string_lossy().into_owned())
        .execute(&mut connection)
        .await;
    let _ = connection.close().await;
    copied?;
    Ok(())
}

impl Store {
    /// Writes a consistent copy of this SQLite database to `path`, which must not exist yet.
    ///
    /// Errors: [`StoreError::Unsupported`] on PostgreSQL (use `pg_dump`); the database's error if
    /// the file cannot be written (it exists, or its directory does not).
    pub async fn copy_sqlite_to(&self, path: &Path) -> Result<(), StoreError> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Err(StoreError::Unsupported(
                "a PostgreSQL database is backed up with pg_dump, not copied by Nezuko",
            ));
        };
        sqlx::query("VACUUM INTO $1")
            .bind(path.to_string_lossy().into_owned())
            .execute(pool)
            .await?;
        Ok(())
    }

    /// `PRAGMA integrity_check` of a SQLite database: `ok`, or what is wrong.
    pub async fn sqlite_integrity(&self) -> Result<String, StoreError> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Err(StoreError::Unsupported("integrity_check is SQLite's"));
        };
        let rows: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check")
            .fetch_all(pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(line,)| line)
            .collect::<Vec<_>>()
            .join("; "))
    }
}
