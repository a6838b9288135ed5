//! [`CockroachCounter`] and its builder: count-pg's counter with the CockroachDB
//! flavour, every operation inside the retry loop.

use std::sync::Arc;

use async_trait::async_trait;
use count_core::{
    Batch, Counter, DailyTotal, DateRange, Day, Error, GroupedTotal, Period, PeriodTotal, Result,
    StoredPolicy, TotalsQuery,
    limits::{LeaseAsk, LeaseGrant, Policy},
};
use count_pg::{Flavor, PgCounter, PgCounterBuilder};

use crate::retry::{RetryCells, RetryPolicy, RetryStats, retrying};
use crate::schema;

/// count-pg's flavour for CockroachDB.
pub(crate) const FLAVOR: Flavor = Flavor {
    name: "CockroachDB",
    migrations: schema::COCKROACH,
    fills: schema::fills,
    report_prelude: None,
    // Below CockroachDB's transaction size limits.
    rollup_chunk: 10_000,
};

/// The statement that makes a report's transaction a follower read.
const FOLLOWER_READ: &str = "SET TRANSACTION AS OF SYSTEM TIME follower_read_timestamp()";

/// A [`Counter`] on CockroachDB; see the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct CockroachCounter {
    pg: PgCounter,
    retry: RetryPolicy,
    stats: Arc<RetryCells>,
}

/// Builds a [`CockroachCounter`].
///
/// The settings it shares with PostgreSQL (pool size, schema, migrations, connect
/// timeout, rollup chunk, batch retention) are [`PgCounterBuilder`]'s own, set through
/// [`pg`](CockroachCounterBuilder::pg); this builder adds what only CockroachDB needs.
///
/// ```no_run
/// # async fn run() -> count_core::Result<()> {
/// use count_cockroach::{CockroachCounter, RetryPolicy};
///
/// let counter = CockroachCounter::builder("postgresql://app@crdb:26257/app?sslmode=verify-full")
///     .pg(|pg| pg.schema("billing").pool_size(8))
///     .retry(RetryPolicy::new().max_attempts(30))
///     .follower_reads(true)
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CockroachCounterBuilder {
    pg: PgCounterBuilder,
    retry: RetryPolicy,
    follower_reads: bool,
}

impl CockroachCounter {
    /// Connects to `url` with the default settings, and migrates the schema.
    ///
    /// # Errors
    ///
    /// As [`CockroachCounterBuilder::connect`].
    pub async fn connect(url: &str) -> Result<CockroachCounter> {
        CockroachCounter::builder(url).connect().await
    }

    /// A builder for `url`, in count-pg's URL form: `sslmode` and `sslrootcert` as
    /// libpq reads them; other parameters, such as CockroachDB Serverless's
    /// `options=--cluster%3D<name>`, are passed to the server unchanged.
    pub fn builder(url: &str) -> CockroachCounterBuilder {
        CockroachCounterBuilder {
            pg: PgCounter::builder(url),
            retry: RetryPolicy::default(),
            follower_reads: false,
        }
    }

    /// What the retry loop did so far.
    pub fn retries(&self) -> RetryStats {
        self.stats.snapshot()
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        self.pg.schema()
    }

    /// The [`PgCounter`] underneath (no retries), e.g. for a connection of its pool.
    pub fn pg(&self) -> &PgCounter {
        &self.pg
    }

    fn over(pg: PgCounter, retry: RetryPolicy) -> CockroachCounter {
        CockroachCounter {
            pg,
            retry,
            stats: Arc::default(),
        }
    }

    async fn retrying<T, F>(&self, op: impl Fn() -> F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        retrying(&self.retry, &self.stats, op).await
    }

    /// Retries restarts (40001: nothing applied) only; an ambiguous outcome is
    /// returned as is.
    async fn retrying_restarts<T, F>(&self, op: impl Fn() -> F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let nested = retrying(&self.retry, &self.stats, || async {
            match op().await {
                Err(error @ Error::Ambiguous { .. }) => Ok(Err(error)),
                other => other.map(Ok),
            }
        })
        .await;
        nested.and_then(|outcome| outcome)
    }
}

impl CockroachCounterBuilder {
    /// Sets what CockroachDB shares with PostgreSQL on count-pg's builder: `configure`
    /// gets it and returns it changed. The defaults are [`PgCounterBuilder`]'s, but
    /// for [`rollup_chunk`](PgCounterBuilder::rollup_chunk): 10,000 counts per
    /// transaction, below CockroachDB's transaction size limits.
    pub fn pg(mut self, configure: impl FnOnce(PgCounterBuilder) -> PgCounterBuilder) -> Self {
        self.pg = configure(self.pg);
        self
    }

    /// How restarts and ambiguous commits are retried. Default [`RetryPolicy::new`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Reports (`daily_totals`, `period_totals`, `totals`) read at
    /// `follower_read_timestamp()`: served by the nearest replica, missing the last
    /// seconds of counts. Rollups always read current data. Default false.
    pub fn follower_reads(mut self, on: bool) -> Self {
        self.follower_reads = on;
        self
    }

    /// Connects, checks the server is CockroachDB, and migrates (or checks) the
    /// schema. Migrations retry their own restarts; connecting is not retried here.
    ///
    /// # Errors
    ///
    /// As [`PgCounterBuilder::connect`], and [`Error::InvalidInput`] when the server is
    /// not CockroachDB (naming what it is) or the retry policy allows no attempt.
    pub async fn connect(self) -> Result<CockroachCounter> {
        let (pg, retry) = self.parts()?;
        let pg = pg.connect().await?;
        Ok(CockroachCounter::over(pg, retry))
    }

    /// Connects to whichever the server is, told apart by its `version()` on the
    /// first connection: CockroachDB with these settings, else PostgreSQL with the
    /// [`pg`](Self::pg) settings alone.
    ///
    /// # Errors
    ///
    /// As [`PgCounterBuilder::connect`], and [`Error::InvalidInput`] when the retry
    /// policy allows no attempt.
    pub async fn connect_or_postgres(self) -> Result<PgOrCockroach> {
        let (pg, retry) = self.parts()?;
        let pg = pg.or_flavor(Flavor::POSTGRES).connect().await?;
        Ok(if pg.flavor() == FLAVOR.name {
            PgOrCockroach::Cockroach(CockroachCounter::over(pg, retry))
        } else {
            PgOrCockroach::Postgres(pg)
        })
    }

    /// count-pg's builder with this flavour, and the checked retry policy.
    fn parts(self) -> Result<(PgCounterBuilder, RetryPolicy)> {
        if self.retry.max_attempts == 0 {
            return Err(Error::invalid("max_attempts", 0, "must be at least 1"));
        }
        let flavor = Flavor {
            report_prelude: self.follower_reads.then_some(FOLLOWER_READ),
            ..FLAVOR
        };
        Ok((self.pg.flavor(flavor), self.retry))
    }
}

/// What [`CockroachCounterBuilder::connect_or_postgres`] found at the URL.
#[derive(Debug, Clone)]
pub enum PgOrCockroach {
    /// A PostgreSQL server (or any that does not name itself CockroachDB).
    Postgres(PgCounter),
    /// A CockroachDB cluster.
    Cockroach(CockroachCounter),
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

    async fn totals(&self, query: &TotalsQuery) -> Result<Vec<GroupedTotal>> {
        self.retrying(|| self.pg.totals(query)).await
    }

    async fn kept(&self) -> Result<count_core::Kept> {
        self.retrying(|| self.pg.kept()).await
    }

    async fn forget_quarters_before(&self, day: Day) -> Result<()> {
        self.retrying(|| self.pg.forget_quarters_before(day)).await
    }

    async fn keep_zone_days(&self, zone: &count_core::Zone) -> Result<Day> {
        self.retrying(|| self.pg.keep_zone_days(zone)).await
    }

    async fn unrolled_days(&self, before: Day) -> Result<Vec<Day>> {
        self.retrying(|| self.pg.unrolled_days(before)).await
    }

    async fn policy_since(&self, version: u64) -> Result<Option<StoredPolicy>> {
        self.retrying(|| self.pg.policy_since(version)).await
    }

    async fn replace_policy(&self, expected: u64, policy: &Policy) -> Result<u64> {
        // A lost commit is not retried: the replace may have applied, and a retry
        // would then say the policy changed under it.
        self.retrying_restarts(|| self.pg.replace_policy(expected, policy))
            .await
    }

    async fn lease(&self, ask: &LeaseAsk<'_>) -> Result<LeaseGrant> {
        // A lost commit is not retried: a grant taken twice only strands quota, but
        // quota given back twice would be handed out again.
        self.retrying_restarts(|| self.pg.lease(ask)).await
    }

    async fn health(&self) -> Result<()> {
        self.pg.health().await
    }
}
