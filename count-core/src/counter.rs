//! The backend contract: [`Counter`], and the conveniences over it.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::{
    Batch, DailyTotal, DateRange, Day, Endpoint, Error, GroupedTotal, Kept, Period, PeriodTotal,
    Result, TotalsQuery, Zone,
    backend::sum_by_endpoint,
    limits::{LeaseAsk, LeaseGrant, Policy},
};
#[cfg(doc)]
use crate::{BatchId, QUARTER_SECONDS};

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
/// - **UTC.** A count belongs to the UTC day of its bucket; `count.v1`'s reports
///   ([`daily_totals`](Counter::daily_totals), [`period_totals`](Counter::period_totals))
///   are in UTC.
/// - **Zones and hours, exact.** [`totals`](Counter::totals) answers in the query's
///   zone, by the hour if asked: a count belongs to the local day and hour of its
///   bucket. A rollup keeps the day's counts by the quarter hour ([`QUARTER_SECONDS`])
///   as well as by the UTC day, and by the local day of every zone
///   [`keep_zone_days`](Counter::keep_zone_days) named; the quarters are dropped by
///   [`forget_quarters_before`](Counter::forget_quarters_before). A report that needs
///   what is no longer kept (see [`Kept`]) fails with [`Error::InvalidInput`] naming
///   what is; it never answers a shifted day.
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

    /// What the backend keeps besides its UTC days, for reports in other zones or by
    /// the hour. The default: nothing (such reports are refused, naming UTC days as
    /// what is kept).
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn kept(&self) -> Result<Kept> {
        Ok(Kept::default())
    }

    /// Drops the quarter-hour counts of the UTC days before `day` (the hour retention);
    /// from then on, [`kept`](Counter::kept) says quarters are kept from `day` (or
    /// later, if they already were). Days, UTC and kept zones', stay.
    ///
    /// # Errors
    ///
    /// When the backend fails; nothing is dropped then.
    async fn forget_quarters_before(&self, day: Day) -> Result<()> {
        let _ = day;
        Ok(())
    }

    /// Keeps `zone`'s days from now on, beside the UTC days: filled at once from the
    /// quarters still kept, and by every rollup after. Returns the UTC day from whose
    /// midnight they are complete. Keeping a zone already kept changes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the backend cannot keep days of other zones;
    /// when the backend fails.
    async fn keep_zone_days(&self, zone: &Zone) -> Result<Day> {
        Err(Error::invalid(
            "time zone",
            zone.name(),
            "this backend keeps days in UTC only",
        ))
    }

    /// The policy of limits ([`Policy`]) if its version is not `version`; `None` when
    /// it is (version 0: never set, the empty policy). Every replica of a
    /// [`Limiter`](crate::limits::Limiter) polls it.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn policy_since(&self, version: u64) -> Result<Option<StoredPolicy>> {
        Ok((version != 0).then(StoredPolicy::default))
    }

    /// Replaces the policy if its version is still `expected`, and returns the new
    /// version.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when the policy was changed since `expected` (read it
    /// again); [`Error::InvalidInput`] when the backend does not store limits; when
    /// the backend fails.
    async fn replace_policy(&self, expected: u64, policy: &Policy) -> Result<u64> {
        let _ = (expected, policy);
        Err(no_limits())
    }

    /// Applies `ask` to the ledger of its subject, limit and window atomically, by
    /// [`LeaseAsk::apply`], and returns the grant.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the backend does not store limits; when the
    /// backend fails ([`Error::Ambiguous`]: the grant may have been taken, and is
    /// lost to the window, never handed out twice).
    async fn lease(&self, ask: &LeaseAsk<'_>) -> Result<LeaseGrant> {
        let _ = ask;
        Err(no_limits())
    }

    /// Checks that the backend is reachable and working.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] (or another variant) saying what failed.
    async fn health(&self) -> Result<()> {
        Ok(())
    }
}

fn no_limits() -> Error {
    Error::invalid("limits", "", "this backend does not store limits")
}

/// The policy of limits as stored, with its version (bumped by every change).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredPolicy {
    /// 0 for a policy never set.
    pub version: u64,
    /// The limits, plans and subjects' plans.
    pub policy: Policy,
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

    /// The policy of limits as stored now.
    ///
    /// # Errors
    ///
    /// When the backend fails.
    async fn policy(&self) -> Result<StoredPolicy> {
        Ok(self.policy_since(u64::MAX).await?.unwrap_or_default())
    }
}

impl<C: Counter + ?Sized> CounterExt for C {}
