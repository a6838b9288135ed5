//! The backend contract: [`Counter`], and the values that cross it.

use std::fmt::Debug;

use async_trait::async_trait;
use jiff::Timestamp;
use uuid::Uuid;

use crate::calendar::{DateRange, Day, Period, check_timestamp};
use crate::{Endpoint, Error, Result};

/// Identifies a batch for exactly-once writes: `writer` is one [`CountQueue`]'s random
/// id, `seq` its batch number. A backend records applied ids and ignores a repeat.
///
/// [`CountQueue`]: crate::CountQueue
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId {
    /// The writer that made the batch.
    pub writer: Uuid,
    /// The batch's number in that writer's sequence.
    pub seq: u64,
}

impl std::fmt::Display for BatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.writer, self.seq)
    }
}

/// `n` requests to `endpoint` in the bucket that starts at `bucket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketCount {
    /// What was requested.
    pub endpoint: Endpoint,
    /// The bucket's first instant (UTC); its day is the count's day.
    pub bucket: Timestamp,
    /// How many requests, at least 1 and at most `i64::MAX`.
    pub n: u64,
}

impl BucketCount {
    /// The UTC day the count belongs to.
    pub fn day(&self) -> Day {
        Day::of(self.bucket).expect("checked when the batch was made")
    }
}

/// Aggregated counts written at once, exactly once: see [`Counter::write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    id: BatchId,
    counts: Vec<BucketCount>,
}

impl Batch {
    /// A batch of `counts`, each checked: `n` from 1 to `i64::MAX` (what a `BIGINT`
    /// holds) and a bucket in years 1 to 9999. One bad count refuses the batch here,
    /// before it can reach a backend.
    pub fn new(id: BatchId, counts: Vec<BucketCount>) -> Result<Batch> {
        for count in &counts {
            if count.n == 0 || count.n > i64::MAX as u64 {
                return Err(Error::invalid(
                    "count",
                    count.n,
                    format!("the count for {} must be 1 to {}", count.endpoint, i64::MAX),
                ));
            }
            check_timestamp(count.bucket)?;
        }
        Ok(Batch { id, counts })
    }

    /// The batch id.
    pub fn id(&self) -> BatchId {
        self.id
    }

    /// The counts.
    pub fn counts(&self) -> &[BucketCount] {
        &self.counts
    }

    /// The sum of the counts: how many requests the batch carries.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.n).sum()
    }
}

/// The count of one endpoint on one day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DailyTotal {
    /// The UTC day.
    pub day: Day,
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Requests counted that day.
    pub total: u64,
}

/// The count of one endpoint over a [`Period`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeriodTotal {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Requests counted in the period.
    pub total: u64,
}

/// Where counts are stored: PostgreSQL, CockroachDB, memory, a remote count server.
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
///   already applied changes nothing and returns `Ok`. So a caller that got an error,
///   a timeout or an [`Error::Ambiguous`] retries the same batch safely.
/// - **Rollup adds.** [`rollup`](Counter::rollup) folds the day's counts that are not
///   yet rolled up into that day's totals, adding to what is there. Running it again,
///   running it from several processes at once, and running it while counts for the
///   same day are still being written all end with exact totals; counts written after
///   a rollup are kept and rolled up by the next one.
/// - **Live reports.** [`daily_totals`](Counter::daily_totals) and
///   [`period_totals`](Counter::period_totals) include counts not yet rolled up, so
///   a rollup never changes a report. A range or period with no counts gives an
///   empty list, not an error.
/// - **Order.** Daily totals are ordered by day, then path (bytewise), then method
///   (wire number); period totals by path, then method. No total is zero.
/// - **UTC.** A count belongs to the UTC day of its bucket.
/// - **Unrolled days.** [`unrolled_days`](Counter::unrolled_days) lists, in order,
///   every day before the given one that holds counts not yet rolled up, so a
///   [`RollupScheduler`](crate::RollupScheduler) catches up after any downtime.
#[async_trait]
pub trait Counter: Send + Sync + Debug + 'static {
    /// Applies `batch` exactly once (see the contract).
    async fn write(&self, batch: &Batch) -> Result<()>;

    /// Folds `day`'s not-yet-rolled counts into its daily totals and returns that
    /// day's totals afterwards.
    async fn rollup(&self, day: Day) -> Result<Vec<DailyTotal>>;

    /// Per-day, per-endpoint totals for every day of `range`, live.
    async fn daily_totals(&self, range: DateRange) -> Result<Vec<DailyTotal>>;

    /// Per-endpoint totals over `period`, live.
    ///
    /// The default sums [`daily_totals`](Counter::daily_totals); a backend that can
    /// sum in place should.
    async fn period_totals(&self, period: Period) -> Result<Vec<PeriodTotal>> {
        let daily = self.daily_totals(period.range()).await?;
        Ok(sum_by_endpoint(daily))
    }

    /// The days before `before` that hold counts not yet rolled up, in order.
    async fn unrolled_days(&self, before: Day) -> Result<Vec<Day>>;

    /// Checks that the backend is reachable and working.
    async fn health(&self) -> Result<()> {
        Ok(())
    }
}

/// Sums daily totals per endpoint, ordered by path then method.
pub fn sum_by_endpoint(daily: impl IntoIterator<Item = DailyTotal>) -> Vec<PeriodTotal> {
    let mut sums = std::collections::BTreeMap::<Endpoint, u64>::new();
    for t in daily {
        *sums.entry(t.endpoint).or_default() += t.total;
    }
    sums.into_iter()
        .map(|(endpoint, total)| PeriodTotal { endpoint, total })
        .collect()
}

/// Conveniences over any [`Counter`].
#[async_trait]
pub trait CounterExt: Counter {
    /// The totals of one day, live.
    async fn day_totals(&self, day: Day) -> Result<Vec<DailyTotal>> {
        self.daily_totals(DateRange::day(day)).await
    }

    /// The total of one endpoint over `period`, live (0 when it was never counted).
    async fn endpoint_total(&self, endpoint: Endpoint, period: Period) -> Result<u64> {
        let totals = self.period_totals(period).await?;
        Ok(totals
            .iter()
            .find(|t| t.endpoint == endpoint)
            .map_or(0, |t| t.total))
    }
}

impl<C: Counter + ?Sized> CounterExt for C {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Method, Path};

    fn count(n: u64, bucket: Timestamp) -> BucketCount {
        BucketCount {
            endpoint: Endpoint::new(Method::Get, Path::new("/batch").unwrap()),
            bucket,
            n,
        }
    }

    fn id() -> BatchId {
        BatchId {
            writer: Uuid::nil(),
            seq: 7,
        }
    }

    #[test]
    fn a_batch_refuses_counts_a_bigint_cannot_hold_or_zero() {
        let at = Timestamp::from_second(0).unwrap();
        for bad in [0, i64::MAX as u64 + 1, u64::MAX] {
            let err = Batch::new(id(), vec![count(1, at), count(bad, at)]).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&bad.to_string()) && text.contains("GET /batch"),
                "{text}"
            );
        }
        let batch = Batch::new(id(), vec![count(2, at), count(i64::MAX as u64 - 2, at)]).unwrap();
        assert_eq!(batch.total(), i64::MAX as u64);
        assert_eq!(batch.id().to_string(), format!("{}#7", Uuid::nil()));
    }

    #[test]
    fn a_batch_refuses_buckets_out_of_range() {
        let too_early = Timestamp::from_second(crate::MIN_TIMESTAMP.as_second() - 1).unwrap();
        let err = Batch::new(id(), vec![count(1, too_early)]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "timestamp",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn period_sums_are_ordered_by_path_then_method() {
        let day = Day::new(2024, 1, 1).unwrap();
        let e = |m, p| Endpoint::new(m, Path::new(p).unwrap());
        let daily = [
            DailyTotal {
                day,
                endpoint: e(Method::Post, "/b"),
                total: 1,
            },
            DailyTotal {
                day,
                endpoint: e(Method::Get, "/b"),
                total: 2,
            },
            DailyTotal {
                day: day.next().unwrap(),
                endpoint: e(Method::Get, "/b"),
                total: 3,
            },
            DailyTotal {
                day,
                endpoint: e(Method::Get, "/a"),
                total: 4,
            },
        ];
        let sums: Vec<(Endpoint, u64)> = sum_by_endpoint(daily)
            .into_iter()
            .map(|t| (t.endpoint, t.total))
            .collect();
        assert_eq!(
            sums,
            [
                (e(Method::Get, "/a"), 4),
                (e(Method::Get, "/b"), 5),
                (e(Method::Post, "/b"), 1)
            ]
        );
    }
}
