//! `CockroachCounter`: count-core's [`Counter`] contract on CockroachDB.
//!
//! ```no_run
//! # async fn run() -> count_core::Result<()> {
//! use std::sync::Arc;
//! use count_cockroach::CockroachCounter;
//! use count_core::CountQueue;
//!
//! let counter = CockroachCounter::connect(
//!     "postgresql://app:secret@free-tier.gcp-us-central1.cockroachlabs.cloud:26257/defaultdb\
//!      ?sslmode=verify-full&options=--cluster%3Dmy-cluster-123",
//! ).await?;
//! let queue = CountQueue::builder(Arc::new(counter)).build()?;
//! # Ok(()) }
//! ```
//!
//! It is count-pg's [`PgCounter`] with a CockroachDB [`Flavor`] (the schema in
//! CockroachDB's DDL, [`schema::COCKROACH`]) and a retry loop around every
//! transaction:
//!
//! - SQLSTATE 40001 (`restart transaction`, CockroachDB's answer to contention at
//!   SERIALIZABLE) is retried with exponential backoff and jitter, up to
//!   [`RetryPolicy`]'s attempts and time;
//! - 40003 (`result is ambiguous`) and a connection lost during COMMIT are retried
//!   too: a write's batch id is claimed in its own transaction, so a retry of a batch
//!   that did apply finds the claim and does nothing; a rollup chunk moves rows out of
//!   `raw_counts` atomically, so a retry only finds the rows not yet moved;
//! - every other error surfaces at once. [`CockroachCounter::retries`] counts what
//!   was retried and what was given up on.
//!
//! Each write is one bounded transaction (a `CountQueue` batch: at most
//! `max_batch_rows` rows, 10,000 by default) of one multi-row `INSERT` (never `COPY`:
//! cockroach#52722); rollups move [`CockroachCounterBuilder::rollup_chunk`] rows per
//! transaction (10,000 by default, below CockroachDB's transaction size limits).
//! Reports can read at `follower_read_timestamp()` ([`follower_reads`]), which is
//! cheaper across regions and some seconds stale.
//!
//! [`follower_reads`]: CockroachCounterBuilder::follower_reads
//!
//! # What is tested, and how
//!
//! No CockroachDB binary can run where this crate is built, so its tests run against
//! an emulation on PostgreSQL 15 (count-testcluster's `CockroachEmulation`):
//!
//! | CockroachDB behaviour | emulated by | verified here |
//! |---|---|---|
//! | SERIALIZABLE for every transaction | `default_transaction_isolation` | yes (PostgreSQL's SSI, which also raises real 40001s) |
//! | 40001 restarts, with CockroachDB's message | a deferred trigger failing chosen transactions at COMMIT (30%, or the next N) | retry, backoff, caps, exact totals |
//! | 40003 on COMMIT; connection lost before or after COMMIT | a wire-protocol proxy | exactly-once writes and rollups |
//! | `INT` = INT8, `unique_rowid()` ids above 2^53 | a shadow `unique_rowid()` | no `int4` column; ids round-trip |
//! | no `pg_advisory_lock`; `pg_try_advisory_lock` always true | shadow functions | concurrent migrations without locks |
//! | `options=--cluster=<name>` in the URL | the proxy strips and records it | passed through to the server |
//! | `version()` names CockroachDB | a shadow `version()` | detection |
//!
//! Not verified without a real cluster: the DDL's CockroachDB-only clauses (`USING
//! HASH` is left out on the emulation), that CockroachDB's planner accepts every
//! statement (multi-array `unnest`, data-modifying CTEs, `date + int`), the real
//! conditions and frequency of 40001/40003, follower reads being stale (the proxy
//! only sees that reports ask for them), DDL inside transactions under CockroachDB's
//! online schema changes, and TLS against CockroachDB Cloud.
//!
//! To run the tests against a real cluster, set `COUNT_TEST_COCKROACH_URL` to a URL
//! of a database that may be written to (each test works in a schema of its own):
//! the contract, INT8, id and concurrency tests then run there, with contention's
//! own 40001s; the fault-injection tests need the emulation and are skipped.
#![warn(missing_docs)]

pub mod schema;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use count_core::{
    Backoff, Batch, Counter, DailyTotal, DateRange, Day, Error, Period, PeriodTotal, Result,
};
use count_pg::tokio_postgres::error::SqlState;
use count_pg::{Flavor, PgCounter, PgCounterBuilder};

pub use schema::is_cockroach;

/// count-pg's flavour for CockroachDB.
pub const FLAVOR: Flavor = Flavor {
    name: "CockroachDB",
    migrations: schema::COCKROACH,
    fills: schema::fills,
    report_prelude: None,
};

/// The statement that makes a report's transaction a follower read.
const FOLLOWER_READ: &str = "SET TRANSACTION AS OF SYSTEM TIME follower_read_timestamp()";

/// How transactions that CockroachDB asks to restart, or whose outcome is unknown,
/// are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay; each next one doubles (with jitter in its upper half).
    pub initial_delay: Duration,
    /// No delay is longer.
    pub max_delay: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// No retry starts after this long since the first attempt.
    pub max_time: Duration,
}

impl Default for RetryPolicy {
    /// 2 ms doubling to 1 s, at most 20 attempts within 15 s.
    fn default() -> Self {
        RetryPolicy {
            initial_delay: Duration::from_millis(2),
            max_delay: Duration::from_secs(1),
            max_attempts: 20,
            max_time: Duration::from_secs(15),
        }
    }
}

/// What the retry loop did, since the counter was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryStats {
    /// Transactions retried after a 40001.
    pub restarts: u64,
    /// Transactions retried after a 40003 or a connection lost during COMMIT.
    pub ambiguous: u64,
    /// Operations that failed with a retryable error after the policy's last attempt.
    pub gave_up: u64,
}

#[derive(Debug, Default)]
struct RetryCells {
    restarts: AtomicU64,
    ambiguous: AtomicU64,
    gave_up: AtomicU64,
}

/// A [`Counter`] on CockroachDB; see the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct CockroachCounter {
    pg: PgCounter,
    retry: RetryPolicy,
    stats: Arc<RetryCells>,
}

/// Builds a [`CockroachCounter`]; every setter says its default.
#[derive(Debug, Clone)]
pub struct CockroachCounterBuilder {
    pg: PgCounterBuilder,
    retry: RetryPolicy,
    follower_reads: bool,
}

impl CockroachCounter {
    /// Connects to `url` with the default settings, and migrates the schema.
    pub async fn connect(url: &str) -> Result<CockroachCounter> {
        CockroachCounter::builder(url).connect().await
    }

    /// A builder for `url`, in count-pg's URL form: `sslmode` and `sslrootcert` as
    /// libpq reads them; other parameters, such as CockroachDB Serverless's
    /// `options=--cluster%3D<name>`, are passed to the server unchanged.
    pub fn builder(url: &str) -> CockroachCounterBuilder {
        CockroachCounterBuilder {
            pg: PgCounter::builder(url).flavor(FLAVOR).rollup_chunk(10_000),
            retry: RetryPolicy::default(),
            follower_reads: false,
        }
    }

    /// What the retry loop did so far.
    pub fn retries(&self) -> RetryStats {
        RetryStats {
            restarts: self.stats.restarts.load(Ordering::Relaxed),
            ambiguous: self.stats.ambiguous.load(Ordering::Relaxed),
            gave_up: self.stats.gave_up.load(Ordering::Relaxed),
        }
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        self.pg.schema()
    }

    /// The [`PgCounter`] underneath (no retries), e.g. for a connection of its pool.
    pub fn pg(&self) -> &PgCounter {
        &self.pg
    }

    /// Runs `op` until it succeeds, fails with an error not worth retrying, or the
    /// policy runs out.
    async fn retrying<T, F>(&self, op: impl Fn() -> F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let mut backoff = Backoff::new(self.retry.initial_delay, self.retry.max_delay);
        let mut attempts = 1;
        loop {
            let error = match op().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let cell = match retry_kind(&error) {
                Some(Retry::Restart) => &self.stats.restarts,
                Some(Retry::Ambiguous) => &self.stats.ambiguous,
                None => return Err(error),
            };
            if attempts >= self.retry.max_attempts || started.elapsed() >= self.retry.max_time {
                self.stats.gave_up.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(attempts, %error, "count: giving up on a CockroachDB transaction");
                return Err(error);
            }
            cell.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(attempts, %error, "count: retrying a CockroachDB transaction");
            tokio::time::sleep(backoff.next_delay()).await;
            attempts += 1;
        }
    }
}

impl CockroachCounterBuilder {
    /// Connections in the pool. Default 16.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pg = self.pg.pool_size(size);
        self
    }

    /// The schema holding the tables (an identifier: a-z, 0-9, _). Default `count`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.pg = self.pg.schema(schema);
        self
    }

    /// Whether `connect` applies migrations. Default true.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.pg = self.pg.migrate(migrate);
        self
    }

    /// How long opening a connection may take. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.pg = self.pg.connect_timeout(timeout);
        self
    }

    /// Raw rows moved per rollup transaction. Default 10,000.
    pub fn rollup_chunk(mut self, rows: i64) -> Self {
        self.pg = self.pg.rollup_chunk(rows);
        self
    }

    /// How long applied batch ids are kept. Default 7 days.
    pub fn batch_retention(mut self, retention: Duration) -> Self {
        self.pg = self.pg.batch_retention(retention);
        self
    }

    /// How restarts and ambiguous commits are retried. Default [`RetryPolicy::default`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Reports (`daily_totals`, `period_totals`) read at
    /// `follower_read_timestamp()`: served by the nearest replica, missing the last
    /// seconds of counts. Rollups always read current data. Default false.
    pub fn follower_reads(mut self, on: bool) -> Self {
        self.follower_reads = on;
        self
    }

    /// Connects, checks the server is CockroachDB, and migrates (or checks) the
    /// schema. Migrations retry their own restarts; connecting is not retried here.
    pub async fn connect(self) -> Result<CockroachCounter> {
        let flavor = Flavor {
            report_prelude: self.follower_reads.then_some(FOLLOWER_READ),
            ..FLAVOR
        };
        let retry = self.retry;
        if retry.max_attempts == 0 {
            return Err(Error::invalid("max_attempts", 0, "must be at least 1"));
        }
        Ok(CockroachCounter {
            pg: self.pg.flavor(flavor).connect().await?,
            retry,
            stats: Arc::default(),
        })
    }
}

enum Retry {
    Restart,
    Ambiguous,
}

/// Whether `error` is worth retrying the whole transaction for.
fn retry_kind(error: &Error) -> Option<Retry> {
    match error {
        Error::Ambiguous { .. } => Some(Retry::Ambiguous),
        Error::Unavailable {
            source: Some(source),
            ..
        } => {
            let db = source.downcast_ref::<count_pg::tokio_postgres::Error>()?;
            (db.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)).then_some(Retry::Restart)
        }
        _ => None,
    }
}

#[async_trait]
impl Counter for CockroachCounter {
    async fn write(&self, batch: &Batch) -> Result<()> {
        self.retrying(|| self.pg.write(batch)).await
    }

    async fn rollup(&self, day: Day) -> Result<Vec<DailyTotal>> {
        self.retrying(|| self.pg.rollup(day)).await
    }

    async fn daily_totals(&self, range: DateRange) -> Result<Vec<DailyTotal>> {
        self.retrying(|| self.pg.daily_totals(range)).await
    }

    async fn period_totals(&self, period: Period) -> Result<Vec<PeriodTotal>> {
        self.retrying(|| self.pg.period_totals(period)).await
    }

    async fn unrolled_days(&self, before: Day) -> Result<Vec<Day>> {
        self.retrying(|| self.pg.unrolled_days(before)).await
    }

    async fn health(&self) -> Result<()> {
        self.pg.health().await
    }
}
