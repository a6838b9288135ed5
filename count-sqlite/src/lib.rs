#![doc = include_str!("../README.md")]

// In the order a count flows: where the file is and how it is opened, its schema,
// the writer thread that applies batches and rollup steps, and the reads.
mod backup;
mod builder;
mod error;
mod location;
mod open;
mod schema;

mod rollup;
mod sum;
mod write;
mod writer;
mod zones;

mod limits;

mod names;
mod packed;
mod readers;
mod reports;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use count_core::backend::Backoff;
use count_core::jiff::Timestamp;
use count_core::{
    Batch, Counter, DailyTotal, DateRange, Day, Error, GroupedTotal, Kept, Period, PeriodTotal,
    Result, StoredPolicy, TotalsQuery, Zone,
    limits::{LeaseAsk, LeaseGrant, Policy},
};
use rusqlite::Connection;

pub use builder::{Durability, SqliteCounterBuilder};
pub use schema::SCHEMA_VERSION;

use names::KeyNames;
use readers::Readers;
use writer::Writer;

/// A [`Counter`] on a SQLite file (or a private in-memory database); see the
/// [crate docs](crate).
///
/// Cloning is cheap: clones share the connections. The writer thread stops, and
/// the file is closed, once the last clone is dropped.
#[derive(Debug, Clone)]
pub struct SqliteCounter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None` for a counter opened read-only.
    writer: Option<Writer>,
    /// `None` for an in-memory database, which only its writer's connection sees.
    readers: Option<Readers>,
    /// `None` for an in-memory database.
    path: Option<PathBuf>,
    names: Arc<KeyNames>,
    rollup_chunk: usize,
    batch_retention: Duration,
}

impl SqliteCounter {
    /// Opens `url` with the default settings: `sqlite:path/to/count.db` (relative to
    /// the working directory), `sqlite:///absolute/path/count.db`, or
    /// `sqlite::memory:` (counts lost when the counter is dropped: for tests).
    ///
    /// # Errors
    ///
    /// As [`SqliteCounterBuilder::connect`].
    pub async fn connect(url: &str) -> Result<SqliteCounter> {
        SqliteCounter::builder(url).connect().await
    }

    /// A builder for `url` (as in [`connect`](SqliteCounter::connect)).
    pub fn builder(url: &str) -> SqliteCounterBuilder {
        SqliteCounterBuilder::new(url)
    }

    /// Copies every commit from the write-ahead log (`count.db-wal`) into the
    /// database file and empties the log, so that the file alone holds every count:
    /// what a clean stop calls, after its last write. The writer runs it by itself
    /// when the last clone is dropped, but a process may exit before that thread
    /// gets to it; awaiting this one is sure. The counter keeps working after it
    /// (later writes go to the log again).
    ///
    /// A copy of a database that is being written is not consistent: use
    /// [`backup`](SqliteCounter::backup) for that.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when another connection (another process's) kept part of
    /// the log from being copied: nothing is lost, it stays in the log.
    ///
    /// [`Error::Unavailable`]: count_core::Error::Unavailable
    pub async fn checkpoint(&self) -> Result<()> {
        self.inner.writer()?.run(|db| db.checkpoint()).await
    }

    /// Writes a consistent copy of the database into the new file `dest`, while
    /// writes go on: the way to back up a database in use (a plain copy of the file
    /// misses what is still in its `-wal`, and may be torn). SQLite's online backup
    /// API, in one read transaction: the copy holds every count committed before the
    /// backup started, and whole batches only. Writes neither wait for it nor undo
    /// it. `dest` is written only once the copy is whole.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming `dest` when it exists (a backup never
    /// overwrites) or cannot be written; the database's error otherwise.
    pub async fn backup(&self, dest: impl AsRef<Path>) -> Result<()> {
        let dest = std::path::absolute(dest.as_ref()).map_err(|e| {
            Error::invalid(
                "backup file",
                dest.as_ref().display().to_string(),
                e.to_string(),
            )
        })?;
        self.inner.read(move |conn| backup::copy(conn, &dest)).await
    }

    /// The database file, absolute; `None` for `sqlite::memory:`.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }
}

impl Inner {
    /// The writer thread.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the file for a counter opened read-only.
    fn writer(&self) -> Result<&Writer> {
        self.writer.as_ref().ok_or_else(|| {
            let shown = self.path.as_deref().map(open::shown).unwrap_or_default();
            Error::invalid(
                "database",
                shown,
                "was opened read-only: it is not written, rolled up or checkpointed \
                 (open it without read_only to count into it)",
            )
        })
    }

    /// Runs `read` on a read connection, or on the writer for an in-memory database.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        match &self.readers {
            Some(readers) => readers.run(read).await,
            None => self.writer()?.run(move |db| read(&db.conn)).await,
        }
    }

    /// One rollup step, retried a few times when it may succeed later (another
    /// process held the write lock past the busy timeout): a step either committed
    /// whole or left nothing, so a retry never adds twice.
    async fn rollup_step(&self, day: Day) -> Result<rollup::Step> {
        let limit = self.rollup_chunk;
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_millis(800));
        let mut attempt = 0;
        loop {
            let step = self
                .writer()?
                .run(move |db| rollup::step(&mut db.conn, db.files.as_ref(), day, limit))
                .await;
            match step {
                Err(e) if e.is_retryable() && attempt < 3 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "count: retrying a rollup step");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                result => return result,
            }
        }
    }
}

#[async_trait]
impl Counter for SqliteCounter {
    async fn write(&self, batch: &Batch) -> Result<()> {
        self.inner.writer()?.write(batch).await
    }

    async fn rollup(&self, day: Day) -> Result<Vec<DailyTotal>> {
        let inner = &*self.inner;
        while inner.rollup_step(day).await?.more {}
        let retention = i64::try_from(inner.batch_retention.as_secs()).unwrap_or(i64::MAX);
        let before = Timestamp::now().as_second().saturating_sub(retention);
        inner
            .writer()?
            .run(move |db| rollup::prune_batches(&db.conn, before))
            .await?;
        self.daily_totals(DateRange::day(day)).await
    }

    async fn daily_totals(&self, range: DateRange) -> Result<Vec<DailyTotal>> {
        let names = Arc::clone(&self.inner.names);
        self.inner
            .read(move |conn| reports::daily(conn, &names, range))
            .await
    }

    async fn period_totals(&self, period: Period) -> Result<Vec<PeriodTotal>> {
        let names = Arc::clone(&self.inner.names);
        self.inner
            .read(move |conn| reports::period(conn, &names, period.range()))
            .await
    }

    async fn totals(&self, query: &TotalsQuery) -> Result<Vec<GroupedTotal>> {
        let (names, query) = (Arc::clone(&self.inner.names), query.clone());
        self.inner
            .read(move |conn| reports::totals(conn, &names, &query))
            .await
    }

    async fn unrolled_days(&self, before: Day) -> Result<Vec<Day>> {
        self.inner
            .read(move |conn| reports::unrolled_days(conn, before))
            .await
    }

    async fn kept(&self) -> Result<Kept> {
        self.inner.read(zones::kept).await
    }

    async fn forget_quarters_before(&self, day: Day) -> Result<()> {
        self.inner
            .writer()?
            .run(move |db| zones::forget_quarters_before(&mut db.conn, day))
            .await
    }

    async fn policy_since(&self, version: u64) -> Result<Option<StoredPolicy>> {
        self.inner
            .read(move |conn| limits::policy_since(conn, version))
            .await
    }

    async fn replace_policy(&self, expected: u64, policy: &Policy) -> Result<u64> {
        let policy = policy.clone();
        self.inner
            .writer()?
            .run(move |db| limits::replace_policy(&mut db.conn, expected, &policy))
            .await
    }

    async fn lease(&self, ask: &LeaseAsk<'_>) -> Result<LeaseGrant> {
        let (subject, limit) = (ask.subject.to_owned(), ask.limit.to_owned());
        let ask = LeaseAsk {
            subject: "",
            limit: "",
            ..*ask
        };
        self.inner
            .writer()?
            .run(move |db| {
                let ask = LeaseAsk {
                    subject: &subject,
                    limit: &limit,
                    ..ask
                };
                limits::lease(&mut db.conn, &ask)
            })
            .await
    }

    async fn keep_zone_days(&self, zone: &Zone) -> Result<Day> {
        let zone = zone.clone();
        self.inner
            .writer()?
            .run(move |db| zones::keep_zone(&mut db.conn, &zone))
            .await
    }

    /// Checks that the writer thread answers and the database reads, on the writer
    /// and on a read connection, and that the file at the path is still the one
    /// opened (counts written to a deleted or replaced file would be seen by no one).
    async fn health(&self) -> Result<()> {
        let inner = &*self.inner;
        if let Some(writer) = &inner.writer {
            writer
                .run(|db| {
                    reports::check(&db.conn)?;
                    db.still_opened()
                })
                .await?;
        }
        inner.read(reports::check).await
    }
}
