//! Database URLs: which backend, where, and a form safe to print.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::domain::Secret;

/// A database URL whose scheme picks the backend. `Debug` and `Display` hide any password.
#[derive(Clone)]
pub enum DatabaseUrl {
    /// A file path (relative to the working directory) or `:memory:`.
    Sqlite {
        path: PathBuf,
    },
    Postgres {
        url: Secret<String>,
    },
}

/// Why a URL was refused: the problem and the accepted form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    pub problem: String,
    pub expected: String,
}

const EXPECTED: &str = "sqlite://PATH or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE";

impl DatabaseUrl {
    /// Parses a URL. The original platform's SQLAlchemy spellings are accepted too:
    /// `sqlite+aiosqlite:///relative.db` (three slashes: relative, as SQLAlchemy means it)
    /// and `postgresql+asyncpg://…`.
    pub fn parse(input: &str) -> Result<Self, UrlError> {
        let url = input.trim();
        let fail = |problem: String| UrlError {
            problem,
            expected: EXPECTED.to_string(),
        };
        let (scheme, rest) = url
            .split_once(':')
            .ok_or_else(|| fail(format!("`{}` has no scheme", redact(url))))?;
        match scheme {
            "sqlite" => sqlite_path(rest).map_err(fail),
            "sqlite+aiosqlite" | "sqlite+pysqlite" => {
                // SQLAlchemy: sqlite:///x.db is relative, sqlite:////x.db absolute.
                let path = rest.strip_prefix("///").unwrap_or(rest);
                sqlite_path(&format!("//{path}")).map_err(fail)
            }
            "postgres" | "postgresql" | "postgresql+asyncpg" | "postgresql+psycopg" => {
                let normalised = format!("postgres:{rest}");
                PgConnectOptions::from_str(&normalised).map_err(|err| {
                    fail(format!(
                        "`{}` is not a valid PostgreSQL URL ({})",
                        redact(url),
                        first_line(&err.to_string())
                    ))
                })?;
                Ok(Self::Postgres {
                    url: Secret::new(normalised),
                })
            }
            other => Err(fail(format!("unsupported scheme `{other}`"))),
        }
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite://{}", path.display()),
            Self::Postgres { url } => redact(url.expose()),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres { .. })
    }
}

fn sqlite_path(rest: &str) -> Result<DatabaseUrl, String> {
    let path = rest.strip_prefix("//").unwrap_or(rest);
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() {
        return Err("the SQLite URL names no file".into());
    }
    Ok(DatabaseUrl::Sqlite {
        path: PathBuf::from(path),
    })
}

/// Hides the password in `scheme://user:password@host`, even in a URL that failed to parse.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(url: &str) -> PathBuf {
        match DatabaseUrl::parse(url).unwrap() {
            DatabaseUrl::Sqlite { path } => path,
            other => panic!("{url} parsed as {other:?}"),
        }
    }

    #[test]
    fn sqlite_urls_name_a_path() {
        assert_eq!(
            sqlite("sqlite://data/nezuko.db"),
            PathBuf::from("data/nezuko.db")
        );
        assert_eq!(
            sqlite("sqlite:///var/lib/n.db"),
            PathBuf::from("/var/lib/n.db")
        );
        assert_eq!(sqlite("sqlite:data.db?mode=rwc"), PathBuf::from("data.db"));
    }

    #[test]
    fn the_original_platforms_sqlalchemy_urls_are_understood() {
        assert_eq!(
            sqlite("sqlite+aiosqlite:///../../storage/data/nezuko.db"),
            PathBuf::from("../../storage/data/nezuko.db")
        );
        assert_eq!(
            sqlite("sqlite+aiosqlite:////srv/n.db"),
            PathBuf::from("/srv/n.db")
        );
        assert!(
            DatabaseUrl::parse("postgresql+asyncpg://u:p@db/nezuko")
                .unwrap()
                .is_postgres()
        );
    }

    #[test]
    fn passwords_never_show() {
        let url = DatabaseUrl::parse("postgres://nezuko:s3cret@db:5432/nezuko").unwrap();
        assert_eq!(url.to_string(), "postgres://nezuko:***@db:5432/nezuko");
        assert!(!format!("{url:?}").contains("s3cret"));
        let err = DatabaseUrl::parse("postgres://nezuko:s3cret@db:notaport/x").unwrap_err();
        assert!(!err.problem.contains("s3cret"), "{}", err.problem);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(
            DatabaseUrl::parse("mysql://x/y")
                .unwrap_err()
                .problem
                .contains("unsupported scheme `mysql`")
        );
        assert!(
            DatabaseUrl::parse("nonsense")
                .unwrap_err()
                .problem
                .contains("no scheme")
        );
        assert!(
            DatabaseUrl::parse("sqlite://")
                .unwrap_err()
                .problem
                .contains("names no file")
        );
        assert!(
            DatabaseUrl::parse("postgres://u@h:99999999/db")
                .unwrap_err()
                .problem
                .contains("not a valid PostgreSQL URL")
        );
    }
}
