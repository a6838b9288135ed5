//! The backend contract: [`Counter`], and the conveniences over it.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::{
    Batch, DailyTotal, DateRange, Day, Endpoint, GroupedTotal, Period, PeriodTotal, Result,
    TotalsQuery, backend::sum_by_endpoint,
};
#[cfg(doc)]
use crate::{BatchId, Error};

/// Where counts are stored: SQLite, PostgreSQL, CockroachDB, memory, a remote count
/// server.
///
/// Used as `Arc<dyn Counter>`. Apps do not call it per request: a
/// [`CountQueue`](crate::CountQueue) aggregates and writes batches to it.
///
/// # Contract
///
/// Every implementation guarantees, and `count_core::testkit` checks:
///
/// - **Exactly-once writes.** [`write`](Counter::write) applies a batch atomically (all
///   of its counts or none) and at most once per [`BatchId`]: writing an id that was
///   already applied with the same counts changes nothing and returns `Ok`, so a
///   caller that got an error, a timeout or an [`Error::Ambiguous`] retries the same
///   batch safely. An id already applied with *other* counts changes nothing and
///   fails with [`Error::BatchConflict`].
/// - **Rollup adds.** [`rollup`](Counter::rollup) folds the day's counts that are not
///   yet rolled up into that day's totals, adding to what is there. Running it again,
///   running it from several processes at once, and running it while counts for the
///   same day are still being written all end with exact totals; counts written after
///   a rollup are kept and rolled up by the next one. Subjects and statuses survive
///   the rollup.
/// - **Live reports.** [`daily_totals`](Counter::daily_totals),
///   [`period_totals`](Counter::period_totals) and [`totals`](Counter::totals) include
///   counts not yet rolled up, so a rollup never changes a report. A range or period
///   with no counts gives an empty list, not an error.
/// - **Per endpoint means summed.** Daily and period totals are per endpoint, summed
///   over every subject and status (counts made without either included).
/// - **Order.** Daily totals are ordered by day, then path (bytewise), then method
///   (wire number); period totals by path, then method; grouped totals as
///   [`GroupedTotal`] says. No total is zero.
/// - **Totals saturate.** A sum that would pass `i64::MAX` is `i64::MAX`: no report or
///   rollup fails, and no other endpoint or day is affected.
/// - **UTC.** A count belongs to the UTC day of its bucket.
/// - **Unrolled days.** [`unrolled_days`](Counter::unrolled_days) lists, in order,
///   every day before the given one that holds counts not yet rolled up, so a
///   [`RollupScheduler`](crate::RollupScheduler) catches up after any downtime.
#[async_trait]
pub trait Counter: Send + Sync + Debug + 'static {
    /// Applies `batch` exactly once (see the contract).
    ///
    /// # Errors
    ///
    /// [`Error::BatchConflict`] when the batch's id was applied with other counts;
    /// [`Error::Unavailable`] or [`Error::Ambiguous`] when the backend failed (retry
    /// the same batch); other variants as the backend says.
    async fn write(&self, batch: &Batch) -> Result<()>;

    /// Folds `day`'s not-yet-rolled counts into its daily totals and returns that
    /// day's totals afterwards.
    ///
    /// # Errors
    ///
    /// When the backend fails; a rollup cut short is completed by the next one.
    async fn rollup(&self, day: Day) -> Result<Vec<DailyTotal>>;

    /// Per-day, per-endpoint totals for every day of `range`, live.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn daily_totals(&self, range: DateRange) -> Result<Vec<DailyTotal>>;

    /// Per-endpoint totals over `period`, live.
    ///
    /// The default sums [`daily_totals`](Counter::daily_totals); a backend that can
    /// sum in place should.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn period_totals(&self, period: Period) -> Result<Vec<PeriodTotal>> {
        let daily = self.daily_totals(period.range()).await?;
        Ok(sum_by_endpoint(daily))
    }

    /// Totals over `query`'s range, filtered and grouped as it says, live.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn totals(&self, query: &TotalsQuery) -> Result<Vec<GroupedTotal>>;

    /// The days before `before` that hold counts not yet rolled up, in order.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn unrolled_days(&self, before: Day) -> Result<Vec<Day>>;

    /// Checks that the backend is reachable and working.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] (or another variant) saying what failed.
    async fn health(&self) -> Result<()> {
        Ok(())
    }
}

/// Conveniences over any [`Counter`].
#[async_trait]
pub trait CounterExt: Counter {
    /// The totals of one day, live.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn day_totals(&self, day: Day) -> Result<Vec<DailyTotal>> {
        self.daily_totals(DateRange::day(day)).await
    }

    /// The total of one endpoint over `period`, live (0 when it was never counted).
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn endpoint_total(&self, endpoint: Endpoint, period: Period) -> Result<u64> {
        let totals = self.period_totals(period).await?;
        Ok(totals
            .iter()
            .find(|t| t.endpoint == endpoint)
            .map_or(0, |t| t.total))
    }
}

impl<C: Counter + ?Sized> CounterExt for C {}
