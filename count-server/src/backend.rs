//! Where the counts are, as the settings name it (`--db-url`, `--db-path`,
//! `--backend`), shared by the server and the operator commands so both open the
//! same database; [`count::open`] turns the URL into a backend.

use std::fmt;
use std::path::{Path, PathBuf};

use count::{Kind, Migrations, Opened};
use count_core::{Error, Result};

/// Which database a URL is, or should be taken for.
///
/// The URL's scheme decides the family (`sqlite:`, `postgresql://` or `postgres://`,
/// `memory:`); the only choice left to make is PostgreSQL or CockroachDB, which speak
/// the same protocol. [`Backend::Auto`] asks the server (its `version()`, on the
/// first connection); naming one forces it, and naming one the URL cannot be is an
/// error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
#[non_exhaustive]
pub enum Backend {
    /// Decided by the URL's scheme, and for `postgresql://` by the server's
    /// `version()`: CockroachDB if it says so, else PostgreSQL.
    #[default]
    Auto,
    /// SQLite (`sqlite:path/to/count.db`, `sqlite:///abs/path.db`, `sqlite::memory:`).
    Sqlite,
    /// PostgreSQL (`postgresql://` or `postgres://`).
    Postgres,
    /// CockroachDB (`postgresql://` or `postgres://`).
    Cockroach,
    /// In memory (`memory:`): every count is lost when the process stops.
    Memory,
}

impl Backend {
    /// The kind required; `None` for [`Backend::Auto`].
    pub const fn kind(self) -> Option<Kind> {
        match self {
            Backend::Auto => None,
            Backend::Sqlite => Some(Kind::Sqlite),
            Backend::Postgres => Some(Kind::Postgres),
            Backend::Cockroach => Some(Kind::Cockroach),
            Backend::Memory => Some(Kind::Memory),
        }
    }

    /// `auto`, `sqlite`, `postgres`, `cockroach`, `memory`: the value the
    /// `--backend` flag takes.
    pub const fn as_str(self) -> &'static str {
        match self.kind() {
            Some(kind) => kind.as_str(),
            None => "auto",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The file the server counts into when no database URL is given:
/// `$XDG_DATA_HOME/count/count.db`, else `$HOME/.local/share/count/count.db`, else
/// `count.db` in the working directory.
///
/// A per-user data directory, as the XDG base directory specification defines it,
/// rather than the working directory: the same command started from another
/// directory (a shell elsewhere, a service manager that starts in `/`) finds the same
/// counts instead of silently starting an empty file. Deployments name their own
/// place (`--db-path /var/lib/count/count.db`).
pub fn default_db_path() -> PathBuf {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    if let Some(data) = from_env("XDG_DATA_HOME") {
        return data.join("count").join("count.db");
    }
    if let Some(home) = from_env("HOME") {
        return home.join(".local/share/count/count.db");
    }
    PathBuf::from("count.db")
}

/// Where the counts are, as the settings name it. The server and the operator
/// commands choose by this one rule, so that both always open the same database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Location {
    /// A database URL (`--db-url`, `DB_URL`).
    Url(String),
    /// A SQLite file named by `--db-path` (`COUNT_DB_PATH`).
    File(PathBuf),
    /// Neither was given: the SQLite file at [`default_db_path`].
    DefaultFile(PathBuf),
}

impl Location {
    /// The database `url` (`--db-url`, `DB_URL`) or `path` (`--db-path`,
    /// `COUNT_DB_PATH`) names; neither: [`default_db_path`]. An empty URL counts as
    /// none.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when both are given (an environment holding both, say):
    /// which one was meant cannot be told, and guessing would count into, or report
    /// from, another database than the one meant.
    pub fn choose(url: Option<&str>, path: Option<&Path>) -> Result<Location> {
        match (url.filter(|url| !url.is_empty()), path) {
            (Some(_), Some(path)) => Err(Error::invalid(
                "database",
                format!("URL and path {}", path.display()),
                "name one database: a URL (--db-url, DB_URL) or a SQLite file (--db-path, \
                 COUNT_DB_PATH), not both",
            )),
            (Some(url), None) => Ok(Location::Url(url.to_owned())),
            (None, Some(path)) => Ok(Location::File(path.to_owned())),
            (None, None) => Ok(Location::DefaultFile(default_db_path())),
        }
    }
}

/// The URL of the SQLite file at `path` (made absolute against the working
/// directory), as [`open`] reads it: `sqlite://` and the absolute path, so no file
/// name can be misread (`:memory:`, a leading `//`).
///
/// # Errors
///
/// [`Error::InvalidInput`] when `path` is empty, cannot be made absolute, or is not
/// valid UTF-8 (a URL is text).
pub fn sqlite_url(path: &Path) -> Result<String> {
    let refuse = |rule: String| Error::invalid("database path", path.display().to_string(), rule);
    let absolute = std::path::absolute(path).map_err(|e| refuse(e.to_string()))?;
    let text = absolute
        .to_str()
        .ok_or_else(|| refuse("must be valid UTF-8".to_owned()))?;
    Ok(format!("sqlite://{text}"))
}

/// Opens the backend `url` names with [`count::open`]'s rules, as `backend` says,
/// migrating or checking the schema as `migrations` says.
///
/// # Errors
///
/// As [`count::Options::open`].
pub async fn open(url: &str, backend: Backend, migrations: Migrations) -> Result<Opened> {
    let options = count::Options::new().migrations(migrations);
    match backend.kind() {
        Some(kind) => options.kind(kind).open(url).await,
        None => options.open(url).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_path_is_a_per_user_data_directory() {
        let path = default_db_path();
        assert!(path.ends_with("count/count.db") || path == Path::new("count.db"));
        assert_eq!(
            sqlite_url(Path::new("/var/lib/count/count.db")).unwrap(),
            "sqlite:///var/lib/count/count.db"
        );
        let relative = sqlite_url(Path::new(":memory:")).unwrap();
        assert!(relative.starts_with("sqlite:///") && relative.ends_with("/:memory:"));
        assert!(sqlite_url(Path::new("")).is_err());
    }

    #[test]
    fn one_rule_picks_the_database_and_refuses_two() {
        let file = Path::new("/data/count.db");
        assert_eq!(
            Location::choose(Some("postgres://h/d"), None).unwrap(),
            Location::Url("postgres://h/d".to_owned())
        );
        assert_eq!(
            Location::choose(None, Some(file)).unwrap(),
            Location::File(file.to_owned())
        );
        assert_eq!(
            Location::choose(Some(""), Some(file)).unwrap(),
            Location::File(file.to_owned())
        );
        assert_eq!(
            Location::choose(None, None).unwrap(),
            Location::DefaultFile(default_db_path())
        );
        let both = Location::choose(Some("postgres://h/d"), Some(file))
            .unwrap_err()
            .to_string();
        assert!(
            both.contains("not both") && both.contains("/data/count.db"),
            "{both}"
        );
    }
}
