//! [`open`]: the one place a URL becomes a backend.

use std::fmt;
use std::sync::Arc;

use count_core::{Counter, Error, Result};
use count_memory::MemoryCounter;

/// Which backend a URL turned out to be, or is required to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// `memory:`: every count is lost when the process stops.
    Memory,
    /// `sqlite:path/to/count.db`, `sqlite:///abs/path.db`, `sqlite::memory:`.
    Sqlite,
    /// `postgresql://` or `postgres://` on a PostgreSQL server.
    Postgres,
    /// `postgresql://` or `postgres://` on a CockroachDB cluster.
    Cockroach,
    /// `grpc://host:port`, `http://` or `https://`: a remote count-server.
    Grpc,
    /// A counter the caller made ([`Opened::custom`]).
    Custom,
}

impl Kind {
    /// `memory`, `sqlite`, `postgres`, `cockroach`, `grpc`, `custom`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
            Kind::Cockroach => "cockroach",
            Kind::Grpc => "grpc",
            Kind::Custom => "custom",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What opening does with the database's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Migrations {
    /// Create the schema, or bring it up to this version's (what a server does).
    #[default]
    Apply,
    /// Change nothing: fail with a clear error (see [`is_schema_not_current`]) when
    /// the schema is not at this version's, and [`Error::NotFound`] for a SQLite file
    /// that does not exist.
    Check,
    /// As [`Migrations::Check`], for a program that only reads: a SQLite file is
    /// opened read-only, so a user who may read it but not write it can, and nothing
    /// is created beside it.
    ReadOnly,
}

/// The counter [`open`] made, and what it is.
#[derive(Debug, Clone)]
#[non_exhaustive]
// Made once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Backend {
    /// In memory.
    Memory(Arc<MemoryCounter>),
    /// A SQLite file, or SQLite in memory.
    #[cfg(feature = "sqlite")]
    Sqlite(count_sqlite::SqliteCounter),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(count_pg::PgCounter),
    /// CockroachDB.
    #[cfg(feature = "cockroach")]
    Cockroach(count_cockroach::CockroachCounter),
    /// A remote count-server.
    #[cfg(feature = "grpc")]
    Grpc(count_grpc::GrpcCounter),
    /// A counter the caller made ([`Opened::custom`]), durable or not.
    Custom {
        /// Whether its counts outlive the process.
        durable: bool,
    },
}

/// A counter [`open`] made, with what its owner needs to know about it.
#[derive(Debug, Clone)]
pub struct Opened {
    counter: Arc<dyn Counter>,
    backend: Backend,
    description: String,
}

impl Opened {
    /// The counter, for a [`CountQueue`](count_core::CountQueue), a
    /// [`RollupScheduler`](count_core::RollupScheduler) or reports.
    pub fn counter(&self) -> Arc<dyn Counter> {
        self.counter.clone()
    }

    /// The backend, for what only it can do (a SQLite backup, CockroachDB's retry
    /// figures).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Which backend it is.
    pub fn kind(&self) -> Kind {
        match &self.backend {
            Backend::Memory(_) => Kind::Memory,
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(_) => Kind::Sqlite,
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => Kind::Postgres,
            #[cfg(feature = "cockroach")]
            Backend::Cockroach(_) => Kind::Cockroach,
            #[cfg(feature = "grpc")]
            Backend::Grpc(_) => Kind::Grpc,
            Backend::Custom { .. } => Kind::Custom,
        }
    }

    /// For people, never with a password: `SQLite file /var/lib/count/count.db`,
    /// `PostgreSQL at count@db.internal:5432/count`.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Whether counts outlive this process: false for `memory:` and
    /// `sqlite::memory:`.
    pub fn is_durable(&self) -> bool {
        match &self.backend {
            Backend::Memory(_) => false,
            Backend::Custom { durable } => *durable,
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(sqlite) => sqlite.path().is_some(),
            #[allow(unreachable_patterns)]
            _ => true,
        }
    }

    /// What a clean stop does after the last write: a SQLite file's write-ahead log
    /// is checkpointed into it, so the file alone holds every count. Nothing for the
    /// other backends.
    ///
    /// # Errors
    ///
    /// The checkpoint's: nothing is lost, the counts stay in the log.
    pub async fn stop(&self) -> Result<()> {
        match &self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(sqlite) => sqlite.checkpoint().await,
            _ => Ok(()),
        }
    }

    /// A counter made by the caller (a test's, a wrapper's), described as
    /// `description`; `durable`: whether its counts outlive the process.
    pub fn custom(
        counter: Arc<dyn Counter>,
        description: impl Into<String>,
        durable: bool,
    ) -> Opened {
        Opened {
            counter,
            backend: Backend::Custom { durable },
            description: description.into(),
        }
    }

    /// `counter` as the counter, and as the backend `variant` holds.
    fn new<C: Counter + Clone + 'static>(
        counter: C,
        variant: fn(C) -> Backend,
        description: String,
    ) -> Self {
        Opened {
            counter: Arc::new(counter.clone()),
            backend: variant(counter),
            description,
        }
    }
}

/// Opens the backend `url` names, migrating its schema: [`Options::open`] with the
/// defaults.
///
/// # Errors
///
/// As [`Options::open`].
pub async fn open(url: &str) -> Result<Opened> {
    Options::new().open(url).await
}

/// How [`Options::open`] opens a URL.
#[derive(Debug, Clone, Default)]
pub struct Options {
    migrations: Migrations,
    kind: Option<Kind>,
    /// A count-server's bearer token, and the PEM roots its TLS is checked against.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    token: Option<String>,
    #[cfg_attr(not(feature = "grpc"), allow(dead_code))]
    ca_pem: Option<Vec<u8>>,
}

impl Options {
    /// Migrations applied; the kind told by the URL (and for `postgres://`, by the
    /// server).
    pub fn new() -> Options {
        Options::default()
    }

    /// What to do with the schema. Default [`Migrations::Apply`].
    pub fn migrations(mut self, migrations: Migrations) -> Options {
        self.migrations = migrations;
        self
    }

    /// Requires the URL to be this kind (PostgreSQL or CockroachDB without asking
    /// the server which). Default: whatever the URL is.
    pub fn kind(mut self, kind: Kind) -> Options {
        self.kind = Some(kind);
        self
    }

    /// For a count-server: the token sent as `authorization: Bearer <token>`.
    pub fn token(mut self, token: impl Into<String>) -> Options {
        self.token = Some(token.into());
        self
    }

    /// For a count-server over `https://`: trust these PEM roots besides the
    /// system's.
    pub fn ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Options {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Opens the backend `url` names:
    ///
    /// | URL | backend | feature |
    /// |---|---|---|
    /// | `memory:` | [`MemoryCounter`] | always |
    /// | `sqlite:count.db` (relative), `sqlite:///abs/count.db`, `sqlite::memory:` | SQLite | `sqlite` (default) |
    /// | `postgresql://user:pw@host:port/db?sslmode=...` (or `postgres://`) | PostgreSQL, or CockroachDB when the server's `version()` says so | `postgres`, `cockroach` |
    /// | `grpc://host:port`, `http://host:port`, `https://host` | a remote count-server | `grpc` |
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a URL of no known scheme or of a backend this build
    /// leaves out (naming the feature), or one that is not the [`kind`](Self::kind)
    /// required; the backend's own errors when it cannot be opened (see
    /// [`is_schema_not_current`]); without [`Migrations::Apply`],
    /// [`Error::NotFound`] for a SQLite file that does not exist.
    pub async fn open(self, url: &str) -> Result<Opened> {
        let scheme = Scheme::of(url)?;
        match (scheme, self.kind) {
            (Scheme::Memory, None | Some(Kind::Memory)) => {
                let memory = Arc::new(MemoryCounter::new());
                Ok(Opened {
                    counter: memory.clone(),
                    backend: Backend::Memory(memory),
                    description: "memory".to_owned(),
                })
            }
            (Scheme::Sqlite, None | Some(Kind::Sqlite)) => self.sqlite(url).await,
            (Scheme::Postgres, None | Some(Kind::Postgres | Kind::Cockroach)) => {
                self.postgres(url).await
            }
            (Scheme::Grpc, None | Some(Kind::Grpc)) => self.grpc(url).await,
            (scheme, Some(kind)) => Err(Error::invalid(
                "backend",
                kind.as_str(),
                format!("the URL is {}, not {kind}", scheme.what()),
            )),
        }
    }

    #[cfg(feature = "sqlite")]
    async fn sqlite(self, url: &str) -> Result<Opened> {
        let sqlite = count_sqlite::SqliteCounter::builder(url)
            .migrate(self.migrations == Migrations::Apply)
            .read_only(self.migrations == Migrations::ReadOnly)
            .connect()
            .await?;
        let description = match sqlite.path() {
            Some(path) => format!("SQLite file {}", path.display()),
            None => "SQLite in memory".to_owned(),
        };
        Ok(Opened::new(sqlite, Backend::Sqlite, description))
    }

    #[cfg(not(feature = "sqlite"))]
    async fn sqlite(self, _: &str) -> Result<Opened> {
        Err(left_out("sqlite:", "sqlite"))
    }

    #[cfg(feature = "postgres")]
    async fn postgres(self, url: &str) -> Result<Opened> {
        let migrate = self.migrations == Migrations::Apply;
        let pg = |pg: count_pg::PgCounterBuilder| pg.migrate(migrate);
        let postgres = |pg: count_pg::PgCounter| {
            let description = format!("PostgreSQL at {}", pg.server());
            Opened::new(pg, Backend::Postgres, description)
        };
        #[cfg(feature = "cockroach")]
        {
            use count_cockroach::{CockroachCounter, PgOrCockroach};
            let cockroach = |crdb: CockroachCounter| {
                let description = format!("CockroachDB at {}", crdb.pg().server());
                Opened::new(crdb, Backend::Cockroach, description)
            };
            let builder = CockroachCounter::builder(url).pg(pg);
            match self.kind {
                Some(Kind::Cockroach) => Ok(cockroach(builder.connect().await?)),
                Some(_) => Ok(postgres(
                    pg(count_pg::PgCounter::builder(url)).connect().await?,
                )),
                None => Ok(match builder.connect_or_postgres().await? {
                    PgOrCockroach::Postgres(pg) => postgres(pg),
                    PgOrCockroach::Cockroach(crdb) => cockroach(crdb),
                }),
            }
        }
        #[cfg(not(feature = "cockroach"))]
        match self.kind {
            Some(Kind::Cockroach) => Err(left_out("CockroachDB", "cockroach")),
            _ => Ok(postgres(
                pg(count_pg::PgCounter::builder(url)).connect().await?,
            )),
        }
    }

    #[cfg(not(feature = "postgres"))]
    async fn postgres(self, _: &str) -> Result<Opened> {
        Err(left_out("postgresql://", "postgres"))
    }

    #[cfg(feature = "grpc")]
    async fn grpc(self, url: &str) -> Result<Opened> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
        let host = host_of(url);
        if rest != host && rest != format!("{host}/") {
            // Only the host: a user, password, path or query would be ignored, or shown.
            return Err(Error::invalid(
                "database URL",
                format!("{scheme}://{host}/..."),
                "a count-server's URL is grpc://host:port (or http://, https://) and \
                 nothing else; a token is given with Options::token",
            ));
        }
        let scheme = if scheme == "grpc" { "http" } else { scheme };
        let mut builder = count_grpc::GrpcCounter::builder(&format!("{scheme}://{host}"));
        if let Some(token) = self.token {
            builder = builder.token(token);
        }
        if let Some(pem) = self.ca_pem {
            builder = builder.ca_cert_pem(pem);
        }
        let grpc = builder.connect().await?;
        let description = format!("count-server at {host}");
        Ok(Opened::new(grpc, Backend::Grpc, description))
    }

    #[cfg(not(feature = "grpc"))]
    async fn grpc(self, _: &str) -> Result<Opened> {
        Err(left_out("grpc://", "grpc"))
    }
}

/// A URL of a backend this build was compiled without.
#[allow(dead_code)]
fn left_out(what: &str, feature: &str) -> Error {
    Error::invalid(
        "database URL",
        what,
        format!("this build of count has no such backend: enable count's `{feature}` feature"),
    )
}

/// `host:port` of a URL: without the user, a password or the path.
#[cfg(feature = "grpc")]
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// Whether `error` (from [`Options::open`] without [`Migrations::Apply`]) says the
/// database's schema is not at this build's version: not migrated, missing
/// migrations (the message lists them), or written by a newer version of count.
/// False for a database that cannot be reached.
pub fn is_schema_not_current(error: &Error) -> bool {
    matches!(
        error,
        Error::InvalidInput {
            field: "schema",
            ..
        }
    )
}

/// The families of URL [`Options::open`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Memory,
    Sqlite,
    Postgres,
    Grpc,
}

impl Scheme {
    fn of(url: &str) -> Result<Scheme> {
        let (scheme, rest) = url.split_once(':').unwrap_or(("", url));
        let authority = rest.starts_with("//");
        match scheme {
            "memory" if rest.is_empty() => Ok(Scheme::Memory),
            "sqlite" => Ok(Scheme::Sqlite),
            "postgresql" | "postgres" if authority => Ok(Scheme::Postgres),
            "grpc" | "http" | "https" if authority => Ok(Scheme::Grpc),
            _ => {
                // Only a scheme is shown, never the rest: it may hold a password.
                let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
                let shown = if is_scheme {
                    format!("{scheme}:...")
                } else {
                    "(not a URL)".to_owned()
                };
                Err(Error::invalid(
                    "database URL",
                    shown,
                    "expected sqlite:<path>, postgresql://..., postgres://..., memory:, \
                     grpc://host:port, http://... or https://...",
                ))
            }
        }
    }

    fn what(self) -> &'static str {
        match self {
            Scheme::Memory => "memory (memory:)",
            Scheme::Sqlite => "SQLite (sqlite:)",
            Scheme::Postgres => "PostgreSQL or CockroachDB (postgresql://)",
            Scheme::Grpc => "a count-server (grpc://, http://, https://)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_told_apart_and_unknown_ones_refused_without_the_rest_of_the_url() {
        for (url, scheme) in [
            ("memory:", Scheme::Memory),
            ("sqlite::memory:", Scheme::Sqlite),
            ("sqlite:/a/b.db", Scheme::Sqlite),
            ("postgres://h/d", Scheme::Postgres),
            ("postgresql://u:p@h/d", Scheme::Postgres),
            ("grpc://h:7777", Scheme::Grpc),
            ("https://count.example", Scheme::Grpc),
        ] {
            assert_eq!(Scheme::of(url).unwrap(), scheme, "{url}");
        }
        let err = Scheme::of("mysql://root:hunter2@h/x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"mysql:...\"") && err.contains("sqlite:<path>"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        for bad in ["", "memory:x", "postgres:h", "postgres:h/x://y", "count.db"] {
            assert!(Scheme::of(bad).is_err(), "{bad}");
        }
        let keywords = Scheme::of("host=db password=s3cr3t:x")
            .unwrap_err()
            .to_string();
        assert!(
            keywords.contains("(not a URL)") && !keywords.contains("s3cr3t"),
            "{keywords}"
        );
    }

    #[tokio::test]
    async fn a_required_kind_the_url_cannot_be_is_refused_by_name() {
        let err = Options::new()
            .kind(Kind::Postgres)
            .open("memory:")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"postgres\"") && err.contains("not postgres") && err.contains("memory"),
            "{err}"
        );
        let memory = open("memory:").await.unwrap();
        assert_eq!(memory.kind(), Kind::Memory);
        assert!(!memory.is_durable());
        assert_eq!(memory.description(), "memory");
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_is_durable_in_a_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.db");
        let url = format!("sqlite://{}", file.display());
        let missing = Options::new()
            .migrations(Migrations::Check)
            .open(&url)
            .await
            .unwrap_err();
        assert!(matches!(missing, Error::NotFound(_)), "{missing}");
        let opened = open(&url).await.unwrap();
        assert_eq!(opened.kind(), Kind::Sqlite);
        assert!(opened.is_durable());
        assert_eq!(
            opened.description(),
            format!("SQLite file {}", file.display())
        );
        opened.stop().await.unwrap();
        let in_memory = open("sqlite::memory:").await.unwrap();
        assert!(!in_memory.is_durable());
    }

    #[cfg(feature = "grpc")]
    #[tokio::test]
    async fn a_servers_url_is_its_host_and_nothing_else() {
        assert_eq!(host_of("grpc://tok@h.internal:7777/x"), "h.internal:7777");
        assert_eq!(host_of("https://count.example"), "count.example");
        for url in ["grpc://u:hunter2@h:7777", "https://h/api", "http://h:1?x=1"] {
            let err = open(url).await.unwrap_err().to_string();
            assert!(
                err.contains("grpc://host:port") && !err.contains("hunter2"),
                "{err}"
            );
        }
    }
}
