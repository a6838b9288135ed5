//! Opening the [`Counter`] a database URL names: SQLite, PostgreSQL, CockroachDB or
//! memory. Shared by the server and the operator commands, so both read the same
//! URLs the same way and describe what they opened in the same words.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use count_cockroach::{CockroachCounter, RetryStats};
use count_core::{Counter, Error, Result};
use count_memory::MemoryCounter;
use count_pg::PgCounter;
use count_sqlite::SqliteCounter;

/// Which database a URL is, or should be taken for.
///
/// The URL's scheme decides the family (`sqlite:`, `postgresql://` or `postgres://`,
/// `memory:`); the only choice left to make is PostgreSQL or CockroachDB, which speak
/// the same protocol. [`Backend::Auto`] asks the server (`SELECT version()`); naming
/// one forces it, and naming one the URL cannot be is an error.
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
    /// `auto`, `sqlite`, `postgres`, `cockroach`, `memory`: the value the
    /// `--backend` flag takes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Cockroach => "cockroach",
            Backend::Memory => "memory",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`open`] does with the database's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Migrations {
    /// Create the schema, or bring it up to this version's (what a server does).
    #[default]
    Apply,
    /// Change nothing: connect, and fail with a clear error when the schema is not at
    /// the version this build expects (what a command that writes counts but must not
    /// change the schema does: a rollup).
    Check,
    /// As [`Migrations::Check`], for a command that only reads (totals, a check, a
    /// backup): a SQLite file is opened read-only, so a user who may read it but not
    /// write it or its directory can, and nothing is created beside it. The other
    /// backends connect as with [`Migrations::Check`].
    ReadOnly,
}

/// A counter [`open`] made, with what an operator needs to know about it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Opened {
    /// The counter.
    pub counter: Arc<dyn Counter>,
    /// Which backend it is (never [`Backend::Auto`]).
    pub backend: Backend,
    /// For people: `SQLite file /var/lib/count/count.db`,
    /// `PostgreSQL at count@db.internal:5432/count` (never a password).
    pub description: String,
    /// Kept to read its retry figures.
    cockroach: Option<CockroachCounter>,
    /// Kept to checkpoint its log at a clean stop.
    sqlite: Option<SqliteCounter>,
}

impl Opened {
    /// A counter made by the caller (a test's, a wrapper's), described as `description`.
    pub fn custom(counter: Arc<dyn Counter>, description: impl Into<String>) -> Opened {
        Opened {
            counter,
            backend: Backend::Auto,
            description: description.into(),
            cockroach: None,
            sqlite: None,
        }
    }

    /// The SQLite counter, when it is one (for a backup).
    pub(crate) fn sqlite(&self) -> Option<&SqliteCounter> {
        self.sqlite.as_ref()
    }

    /// What a clean stop does after the last write: a SQLite database's write-ahead
    /// log is checkpointed into the file, so the file alone holds every count (a
    /// copy of it too). Nothing to do for the other backends. A failure is logged:
    /// nothing is lost, the counts stay in the log.
    pub async fn stop(&self) {
        if let Some(sqlite) = &self.sqlite
            && let Err(e) = sqlite.checkpoint().await
        {
            tracing::warn!(error = %e, "count-server: stopping: the SQLite log was not emptied");
        }
    }

    /// What the backend's retry loop did so far, for a backend that retries
    /// (CockroachDB's transaction restarts); `None` for the others.
    pub fn retries(&self) -> Option<RetryStats> {
        self.cockroach.as_ref().map(CockroachCounter::retries)
    }

    /// Whether counts survive the process: false for memory (`memory:`,
    /// `sqlite::memory:`).
    pub fn is_durable(&self) -> bool {
        !(self.backend == Backend::Memory || self.description == SQLITE_MEMORY)
    }

    /// A warning to log before counting, when there is one to give (counts that
    /// will not survive the process).
    pub fn warning(&self) -> Option<String> {
        (!self.is_durable()).then(|| {
            format!(
                "counting in memory ({}); every count is lost when the process stops",
                self.description
            )
        })
    }
}

const SQLITE_MEMORY: &str = "SQLite in memory";

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

/// Whether `error` (from [`open`] with [`Migrations::Check`]) says the database's
/// schema is not at this build's version: not migrated, missing migrations (the
/// message lists them), or written by a newer version of count. False for a
/// database that cannot be reached.
pub fn is_schema_not_current(error: &Error) -> bool {
    matches!(
        error,
        Error::InvalidInput {
            field: "schema",
            ..
        }
    )
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

/// Opens the counter `url` names, as `backend` says, migrating or checking the schema
/// as `migrations` says.
///
/// URLs: `sqlite:path/to/count.db` (relative to the working directory),
/// `sqlite:///abs/path.db`, `sqlite::memory:`; `postgresql://user:password@host:port/db?sslmode=...`
/// (or `postgres://`), PostgreSQL or CockroachDB; `memory:`.
///
/// # Errors
///
/// [`Error::InvalidInput`] for a URL of no known scheme, a `backend` the URL cannot
/// be, or a database that is not the forced backend; the backend's own errors when
/// it cannot be opened (unreachable, refused, a schema not at this build's version
/// without [`Migrations::Apply`]); without [`Migrations::Apply`], [`Error::NotFound`]
/// for a SQLite file that does not exist (it is not created).
pub async fn open(url: &str, backend: Backend, migrations: Migrations) -> Result<Opened> {
    let scheme = Scheme::of(url)?;
    let migrate = migrations == Migrations::Apply;
    match (scheme, backend) {
        (Scheme::Memory, Backend::Auto | Backend::Memory) => Ok(Opened {
            counter: Arc::new(MemoryCounter::new()),
            backend: Backend::Memory,
            description: "memory".to_owned(),
            cockroach: None,
            sqlite: None,
        }),
        (Scheme::Sqlite, Backend::Auto | Backend::Sqlite) => open_sqlite(url, migrations).await,
        (Scheme::Postgres, Backend::Postgres) => open_postgres(url, migrate).await,
        (Scheme::Postgres, Backend::Cockroach) => open_cockroach(url, migrate).await,
        (Scheme::Postgres, Backend::Auto) => match open_cockroach(url, migrate).await {
            // Not CockroachDB: its flavour refused the server by its version().
            Err(Error::InvalidInput {
                field: "server", ..
            }) => open_postgres(url, migrate).await,
            other => other,
        },
        (scheme, forced) => Err(Error::invalid(
            "backend",
            forced.as_str(),
            format!("the database URL is {}, not {forced}", scheme.what()),
        )),
    }
}

async fn open_sqlite(url: &str, migrations: Migrations) -> Result<Opened> {
    let counter = SqliteCounter::builder(url)
        .migrate(migrations == Migrations::Apply)
        .read_only(migrations == Migrations::ReadOnly)
        .connect()
        .await?;
    let description = match counter.path() {
        Some(path) => format!("SQLite file {}", path.display()),
        None => SQLITE_MEMORY.to_owned(),
    };
    Ok(Opened {
        counter: Arc::new(counter.clone()),
        backend: Backend::Sqlite,
        description,
        cockroach: None,
        sqlite: Some(counter),
    })
}

async fn open_postgres(url: &str, migrate: bool) -> Result<Opened> {
    let counter = PgCounter::builder(url).migrate(migrate).connect().await?;
    Ok(Opened {
        counter: Arc::new(counter),
        backend: Backend::Postgres,
        description: format!("PostgreSQL at {}", server_of(url)),
        cockroach: None,
        sqlite: None,
    })
}

async fn open_cockroach(url: &str, migrate: bool) -> Result<Opened> {
    let counter = CockroachCounter::builder(url)
        .pg(|pg| pg.migrate(migrate))
        .connect()
        .await?;
    Ok(Opened {
        counter: Arc::new(counter.clone()),
        backend: Backend::Cockroach,
        description: format!("CockroachDB at {}", server_of(url)),
        cockroach: Some(counter),
        sqlite: None,
    })
}

/// The families of URL [`open`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Sqlite,
    Postgres,
    Memory,
}

impl Scheme {
    fn of(url: &str) -> Result<Scheme> {
        if url == "memory:" {
            Ok(Scheme::Memory)
        } else if url.starts_with("sqlite:") {
            Ok(Scheme::Sqlite)
        } else if url.starts_with("postgresql://") || url.starts_with("postgres://") {
            Ok(Scheme::Postgres)
        } else {
            Err(Error::invalid(
                "database URL",
                redact(url),
                "expected sqlite:<path>, postgresql://..., postgres://... or memory:",
            ))
        }
    }

    fn what(self) -> &'static str {
        match self {
            Scheme::Sqlite => "SQLite (sqlite:)",
            Scheme::Postgres => "PostgreSQL or CockroachDB (postgresql://)",
            Scheme::Memory => "memory (memory:)",
        }
    }
}

/// `user@host:port/database` of a PostgreSQL URL: what an operator needs to tell
/// databases apart, without the password or the parameters.
fn server_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => (userinfo.split(':').next().unwrap_or_default(), host),
        None => ("", authority),
    };
    let mut shown = String::new();
    if !user.is_empty() {
        shown.push_str(user);
        shown.push('@');
    }
    shown.push_str(if host.is_empty() { "localhost" } else { host });
    if !database.is_empty() {
        shown.push('/');
        shown.push_str(database);
    }
    shown
}

/// A URL fit for an error message: a password in it replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_the_server_and_never_the_password() {
        for (url, shown) in [
            (
                "postgresql://count:s3cret@db.internal:5432/count?sslmode=verify-full",
                "count@db.internal:5432/count",
            ),
            ("postgres://db/app", "db/app"),
            ("postgresql://u@[::1]:26257/x", "u@[::1]:26257/x"),
            ("postgresql:///local", "localhost/local"),
            ("postgresql://a:b:c@h/d", "a@h/d"),
        ] {
            assert_eq!(server_of(url), shown, "{url}");
        }
        assert_eq!(redact("mysql://root:hunter2@h/x"), "mysql://root:***@h/x");
        assert_eq!(redact("ftp://h/x"), "ftp://h/x");
        assert_eq!(redact("nonsense"), "nonsense");
    }

    #[test]
    fn schemes_are_recognised_and_unknown_ones_refused_without_the_password() {
        assert_eq!(Scheme::of("memory:").unwrap(), Scheme::Memory);
        assert_eq!(Scheme::of("sqlite::memory:").unwrap(), Scheme::Sqlite);
        assert_eq!(Scheme::of("sqlite:/a/b.db").unwrap(), Scheme::Sqlite);
        assert_eq!(Scheme::of("postgres://h/d").unwrap(), Scheme::Postgres);
        let err = Scheme::of("mysql://root:hunter2@h/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mysql://root:***@h/x"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("sqlite:<path>"), "{err}");
        assert!(Scheme::of("").is_err());
        assert!(Scheme::of("memory:x").is_err());
    }

    #[tokio::test]
    async fn a_forced_backend_the_url_cannot_be_is_refused_by_name() {
        let err = open("memory:", Backend::Postgres, Migrations::Apply)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"postgres\"") && err.contains("not postgres") && err.contains("memory"),
            "{err}"
        );
        let err = open("postgresql://h/d", Backend::Sqlite, Migrations::Apply)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not sqlite"), "{err}");
        let memory = open("memory:", Backend::Auto, Migrations::Check)
            .await
            .unwrap();
        assert_eq!(memory.backend, Backend::Memory);
        assert!(!memory.is_durable());
        assert!(memory.warning().unwrap().contains("lost"));
        assert!(memory.retries().is_none());
    }

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
