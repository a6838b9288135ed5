//! [`SqliteCounterBuilder`]: every setting of a [`SqliteCounter`], with its default.

use std::sync::Arc;
use std::time::Duration;

use count_core::{Error, Result};

use crate::location::Location;
use crate::open::{self, ConnectionSettings};
use crate::readers::Readers;
use crate::schema::{self, MIGRATIONS};
use crate::writer::Writer;
use crate::{Inner, SqliteCounter};

/// What an acknowledged write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Each write transaction is synced to disk before it is acknowledged: an
    /// acknowledged batch survives the process being killed, the operating system
    /// crashing, and a power loss. SQLite's `synchronous=FULL`. The default.
    #[default]
    Full,
    /// The log is synced at checkpoints only: an acknowledged batch survives the
    /// process being killed, but a power loss or an operating system crash may undo
    /// the last acknowledged writes (the file stays consistent). SQLite's
    /// `synchronous=NORMAL` in WAL mode: writes skip a sync each.
    Normal,
}

impl Durability {
    /// The value of SQLite's `synchronous` pragma.
    pub(crate) fn synchronous(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// Builds a [`SqliteCounter`]; every setter says its default.
#[derive(Debug, Clone)]
pub struct SqliteCounterBuilder {
    url: String,
    durability: Durability,
    busy_timeout: Duration,
    read_connections: usize,
    rollup_chunk: usize,
    batch_retention: Duration,
    migrate: bool,
    read_only: bool,
}

impl SqliteCounterBuilder {
    pub(crate) fn new(url: &str) -> SqliteCounterBuilder {
        SqliteCounterBuilder {
            url: url.to_owned(),
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
            read_connections: 4,
            rollup_chunk: 250_000,
            batch_retention: Duration::from_secs(7 * 86_400),
            migrate: true,
            read_only: false,
        }
    }

    /// What an acknowledged write survives. Default [`Durability::Full`]: a power
    /// loss.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long a write waits for another process's write to the same file before
    /// it fails with [`Error::Unavailable`] (which a `CountQueue` retries). Default
    /// 5 s.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How many reports may read at once, each on a read connection of its own
    /// beside the writer. Default 4. (An in-memory database reads on its writer.)
    pub fn read_connections(mut self, connections: usize) -> Self {
        self.read_connections = connections;
        self
    }

    /// About how many raw counts (a key in a bucket) a rollup moves per
    /// transaction, in whole buckets (at least one): writes wait for one such step at
    /// most. Default 250,000 (a step of them takes tens of milliseconds).
    pub fn rollup_chunk(mut self, rows: usize) -> Self {
        self.rollup_chunk = rows.max(1);
        self
    }

    /// How long applied batch ids are kept: a batch retried after longer would be
    /// counted again. Pruned by rollups. Default 7 days.
    pub fn batch_retention(mut self, retention: Duration) -> Self {
        self.batch_retention = retention;
        self
    }

    /// Whether `connect` creates a missing file and brings the schema up to date.
    /// Default true. When false, nothing is created or migrated: the file must
    /// exist with exactly this version's schema ([`SCHEMA_VERSION`]), for a process
    /// that must not change a database's layout. (An in-memory database is always
    /// created.)
    ///
    /// [`SCHEMA_VERSION`]: crate::SCHEMA_VERSION
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Whether the counter only reads: the file is opened read-only, so a process
    /// that may read the file but not write it (or its directory) can report from
    /// it. Nothing is created, migrated or changed, not even beside the file (no
    /// `-wal`, no `-shm`); the schema must be exactly this version's, as without
    /// [`migrate`](Self::migrate); writes and rollups are refused
    /// ([`Error::InvalidInput`]). Default false. (Not for `sqlite::memory:`.)
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Opens the database (creating the file and its directories if missing), and
    /// brings its schema up to date (or, without [`migrate`](Self::migrate), checks
    /// it).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the URL or the file and the rule: a URL of
    /// another form, a directory, a place where the file cannot be created or written,
    /// a file that is not a SQLite database or holds another application's tables, a
    /// database written by a newer version of count (without `migrate` or read-only:
    /// also no schema or an older one), no read connection, an in-memory database
    /// read-only; [`Error::NotFound`] for a missing file without `migrate` or
    /// read-only. Other failures as SQLite reports them.
    pub async fn connect(self) -> Result<SqliteCounter> {
        let location = Location::parse(&self.url)?;
        if self.read_connections == 0 {
            return Err(Error::invalid("read_connections", 0, "must be at least 1"));
        }
        let settings = ConnectionSettings {
            durability: self.durability,
            busy_timeout: self.busy_timeout,
        };
        let (writer, readers, path) = match location {
            Location::Memory if self.read_only => {
                return Err(Error::invalid(
                    "url",
                    &self.url,
                    "an in-memory database cannot be opened read-only: it starts empty",
                ));
            }
            Location::Memory => {
                let writer = Writer::start(
                    || {
                        let mut conn = open::memory()?;
                        schema::migrate(&mut conn, MIGRATIONS, ":memory:")?;
                        Ok(conn)
                    },
                    None,
                )
                .await?;
                (Some(writer), None, None)
            }
            Location::File(path) => {
                let (read_only, migrate) = (self.read_only, self.migrate && !self.read_only);
                if !migrate {
                    // The schema checked on a read-only connection: nothing is changed
                    // (not even the journal mode) unless it is this version's.
                    let shown = open::shown(&path);
                    Readers::new(path.clone(), self.busy_timeout, 1, true)
                        .run(move |conn| schema::check(conn, MIGRATIONS, &shown))
                        .await?;
                }
                let writer = if read_only {
                    None
                } else {
                    let opened = path.clone();
                    let writer = Writer::start(
                        move || {
                            let mut conn = open::writer(&opened, &settings, migrate)?;
                            if migrate {
                                schema::migrate(&mut conn, MIGRATIONS, &open::shown(&opened))?;
                            }
                            Ok(conn)
                        },
                        Some(path.clone()),
                    )
                    .await?;
                    tracing::info!(database = %path.display(), durability = ?self.durability, "count: counting into SQLite");
                    Some(writer)
                };
                let readers = Readers::new(
                    path.clone(),
                    self.busy_timeout,
                    self.read_connections,
                    read_only,
                );
                (writer, Some(readers), Some(path))
            }
        };
        Ok(SqliteCounter {
            inner: Arc::new(Inner {
                writer,
                readers,
                path,
                names: Arc::default(),
                rollup_chunk: self.rollup_chunk,
                batch_retention: self.batch_retention,
            }),
        })
    }
}
