//! `MemoryCounter`: count-core's [`Counter`] contract kept in memory.
//!
//! The reference implementation: small enough to read in one sitting, and what an
//! app's own tests count into. Counts are lost when the process exits.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use count_core::jiff::Timestamp;
use count_core::{
    Batch, BatchDigest, BatchId, CountKey, Counter, DailyTotal, DateRange, Day, Error,
    GroupedTotal, Kept, QUARTER_SECONDS, Result, StoredPolicy, TotalsQuery, Zone,
    backend::{Source, add_saturating},
    limits::{LeaseAsk, LeaseGrant, Policy},
};

/// A [`Counter`] in memory. One mutex guards it all: a write is one short critical
/// section per batch (not per request), and rollups are atomic by construction.
#[derive(Debug, Default)]
pub struct MemoryCounter {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Every batch applied, with its digest. Kept for the life of the counter: a few
    /// dozen bytes a batch, one batch a second per writer.
    applied: HashMap<BatchId, BatchDigest>,
    /// Counts not yet rolled up, per day, per key and bucket.
    raw: BTreeMap<Day, HashMap<(CountKey, Timestamp), u64>>,
    /// Rolled-up totals, per UTC day and key.
    rolled: BTreeMap<Day, HashMap<CountKey, u64>>,
    /// Rolled-up totals per quarter hour (its first Unix second) and key.
    quarters: BTreeMap<i64, HashMap<CountKey, u64>>,
    /// The first UTC day whose quarters are kept; `None`: every day's.
    quarters_from: Option<Day>,
    /// The zones whose days are kept, as `keep_zone_days` named them.
    zones: Vec<ZoneDays>,
    /// The policy of limits.
    policy: StoredPolicy,
    /// The limits' ledger: quota taken per subject, limit and window start.
    ledger: HashMap<(String, String, i64), u64>,
}

/// One zone's days: rolled-up totals per local day and key, complete from `from`.
#[derive(Debug)]
struct ZoneDays {
    zone: Zone,
    from: Day,
    days: BTreeMap<Day, HashMap<CountKey, u64>>,
}

fn add_to<K: std::hash::Hash + Eq>(sums: &mut HashMap<K, u64>, key: K, n: u64) {
    let sum = sums.entry(key).or_default();
    *sum = add_saturating(*sum, n);
}

impl MemoryCounter {
    /// An empty counter.
    pub fn new() -> MemoryCounter {
        MemoryCounter::default()
    }

    /// How many raw rows (key, bucket) are not yet rolled up.
    pub fn raw_rows(&self) -> usize {
        self.lock().raw.values().map(HashMap::len).sum()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent (no step of one can
        // panic half way), so a poisoned lock is safe to take over.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn kept(&self) -> Kept {
        let mut kept = Kept::default();
        kept.quarters_from = Some(self.quarters_from.unwrap_or(Day::MIN));
        kept.zone_days = self
            .zones
            .iter()
            .map(|z| (z.zone.clone(), z.from))
            .collect();
        kept
    }

    /// The counts `query` reads from `source`, each at a Unix second of the day,
    /// quarter or bucket it is kept by: rolled-up and raw.
    fn counts_at(&self, query: &TotalsQuery, source: Source) -> Vec<(i64, CountKey, u64)> {
        let (start, end) = query.seconds();
        let range = query.range;
        let mut counts = Vec::new();
        fn keyed(
            at: i64,
            keys: &HashMap<CountKey, u64>,
        ) -> impl Iterator<Item = (i64, CountKey, u64)> + '_ {
            keys.iter().map(move |(&key, &n)| (at, key, n))
        }
        match source {
            Source::UtcDays => {
                for (day, keys) in self.rolled.range(range.start()..=range.end()) {
                    counts.extend(keyed(day.start_second(), keys));
                }
            }
            Source::ZoneDays => {
                let zone = self.zones.iter().find(|z| z.zone == query.zone);
                for (day, keys) in zone
                    .into_iter()
                    .flat_map(|z| z.days.range(range.start()..=range.end()))
                {
                    counts.extend(keyed(query.zone.start(*day), keys));
                }
            }
            Source::Quarters => {
                for (&quarter, keys) in self.quarters.range(start..end) {
                    counts.extend(keyed(quarter, keys));
                }
            }
        }
        let utc_days = Zone::UTC.day_of(start)..=Zone::UTC.day_of(end - 1);
        for rows in self.raw.range(utc_days).map(|(_, rows)| rows) {
            counts.extend(rows.iter().filter_map(|(&(key, bucket), &n)| {
                let at = bucket.as_second();
                (start..end).contains(&at).then_some((at, key, n))
            }));
        }
        counts
    }

    /// Every count of `range` as (day, key, n): rolled totals and raw rows.
    fn counts(&self, range: DateRange) -> impl Iterator<Item = (Day, CountKey, u64)> + '_ {
        let rolled = self
            .rolled
            .range(range.start()..=range.end())
            .flat_map(|(&day, keys)| keys.iter().map(move |(&key, &n)| (day, key, n)));
        let raw = self
            .raw
            .range(range.start()..=range.end())
            .flat_map(|(&day, rows)| rows.iter().map(move |(&(key, _), &n)| (day, key, n)));
        rolled.chain(raw)
    }
}

#[async_trait]
impl Counter for MemoryCounter {
    async fn write(&self, batch: &Batch) -> Result<()> {
        let mut state = self.lock();
        if let Some(digest) = state.applied.get(&batch.id()) {
            return if *digest == batch.digest() {
                Ok(())
            } else {
                Err(Error::BatchConflict { id: batch.id() })
            };
        }
        state.applied.insert(batch.id(), batch.digest());
        for count in batch.counts() {
            let n = state
                .raw
                .entry(count.day())
                .or_default()
                .entry((count.key, count.bucket))
                .or_default();
            *n = add_saturating(*n, count.n);
        }
        Ok(())
    }

    async fn rollup(&self, day: Day) -> Result<Vec<DailyTotal>> {
        {
            let mut state = self.lock();
            let state = &mut *state;
            let raw = state.raw.remove(&day).unwrap_or_default();
            let keep_quarters = state.quarters_from.is_none_or(|from| day >= from);
            let rolled = state.rolled.entry(day).or_default();
            for ((key, bucket), n) in raw {
                let at = bucket.as_second();
                add_to(rolled, key, n);
                if keep_quarters {
                    let quarter = at - at.rem_euclid(QUARTER_SECONDS);
                    add_to(state.quarters.entry(quarter).or_default(), key, n);
                }
                for zone in &mut state.zones {
                    let local = zone.zone.day_of(at);
                    add_to(zone.days.entry(local).or_default(), key, n);
                }
            }
        }
        self.daily_totals(DateRange::day(day)).await
    }

    async fn daily_totals(&self, range: DateRange) -> Result<Vec<DailyTotal>> {
        let state = self.lock();
        let mut sums = BTreeMap::<_, u64>::new();
        for (day, key, n) in state.counts(range) {
            let sum = sums.entry((day, key.endpoint)).or_default();
            *sum = add_saturating(*sum, n);
        }
        Ok(sums
            .into_iter()
            .map(|((day, endpoint), total)| DailyTotal::new(day, endpoint, total))
            .collect())
    }

    async fn totals(&self, query: &TotalsQuery) -> Result<Vec<GroupedTotal>> {
        let state = self.lock();
        let source = query.source(&state.kept())?;
        Ok(query.group(state.counts_at(query, source)))
    }

    async fn kept(&self) -> Result<Kept> {
        Ok(self.lock().kept())
    }

    async fn forget_quarters_before(&self, day: Day) -> Result<()> {
        let mut state = self.lock();
        let from = state.quarters_from.map_or(day, |from| from.max(day));
        state.quarters_from = Some(from);
        state.quarters = state.quarters.split_off(&from.start_second());
        Ok(())
    }

    async fn policy_since(&self, version: u64) -> Result<Option<StoredPolicy>> {
        let state = self.lock();
        Ok((state.policy.version != version).then(|| state.policy.clone()))
    }

    async fn replace_policy(&self, expected: u64, policy: &Policy) -> Result<u64> {
        policy.check()?;
        let mut state = self.lock();
        let current = state.policy.version;
        if current != expected {
            return Err(Error::Conflict(format!(
                "the policy is at version {current}, not {expected}: read it again"
            )));
        }
        state.policy = StoredPolicy {
            version: current + 1,
            policy: policy.clone(),
        };
        Ok(current + 1)
    }

    async fn lease(&self, ask: &LeaseAsk<'_>) -> Result<LeaseGrant> {
        let mut state = self.lock();
        let key = (
            ask.subject.to_owned(),
            ask.limit.to_owned(),
            ask.window.start,
        );
        let grant = ask.apply(state.ledger.get(&key).copied());
        state.ledger.insert(key, grant.taken);
        Ok(grant)
    }

    async fn keep_zone_days(&self, zone: &Zone) -> Result<Day> {
        let mut state = self.lock();
        if zone.is_utc() {
            return Ok(Day::MIN);
        }
        if let Some(kept) = state.zones.iter().find(|z| z.zone == *zone) {
            return Ok(kept.from);
        }
        let from = state.quarters_from.unwrap_or(Day::MIN);
        let mut days = BTreeMap::<Day, HashMap<CountKey, u64>>::new();
        for (&quarter, keys) in &state.quarters {
            let local = days.entry(zone.day_of(quarter)).or_default();
            for (&key, &n) in keys {
                add_to(local, key, n);
            }
        }
        state.zones.push(ZoneDays {
            zone: zone.clone(),
            from,
            days,
        });
        Ok(from)
    }

    async fn unrolled_days(&self, before: Day) -> Result<Vec<Day>> {
        Ok(self
            .lock()
            .raw
            .range(..before)
            .map(|(&day, _)| day)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use count_core::testkit::{batch, day};
    use count_core::{BucketCount, Endpoint, Method, Path, Period};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conforms_to_the_counter_contract() {
        let counter = Arc::new(MemoryCounter::new());
        count_core::testkit::run_all(counter.clone()).await;
        count_core::testkit::run_zones(&*counter).await;
        count_core::testkit::run_limits(counter).await;
    }

    #[tokio::test]
    async fn rollup_empties_the_raw_rows() {
        let counter = MemoryCounter::new();
        counter
            .write(&batch(&[("/a", "2024-01-01T10:00:00Z", 2)]))
            .await
            .unwrap();
        assert_eq!(counter.raw_rows(), 1);
        counter.rollup(day("2024-01-01")).await.unwrap();
        assert_eq!(counter.raw_rows(), 0);
    }

    /// Totals past `i64::MAX` stop there: no panic, the raw counts stay summed, and
    /// other endpoints and days are unaffected.
    #[tokio::test]
    async fn totals_saturate_instead_of_overflowing() {
        let counter = MemoryCounter::new();
        let big = Endpoint::new(Method::Get, Path::new("/saturate").unwrap());
        let small = Endpoint::new(Method::Get, Path::new("/small").unwrap());
        let at = count_core::testkit::at("2024-02-02T00:00:00Z");
        // Past i64::MAX in the rolled totals, as a long-running counter could get to.
        counter
            .lock()
            .rolled
            .entry(day("2024-02-02"))
            .or_default()
            .insert(CountKey::new(big), i64::MAX as u64 - 5);
        let counts = vec![
            BucketCount::new(big, at, Batch::MAX_COUNT),
            BucketCount::new(small, at, 3),
        ];
        let id = count_core::testkit::fresh_id();
        counter
            .write(&Batch::new(id, counts).unwrap())
            .await
            .unwrap();
        let totals = counter.rollup(day("2024-02-02")).await.unwrap();
        let got: Vec<u64> = totals.iter().map(|t| t.total).collect();
        assert_eq!(got, [i64::MAX as u64, 3]);
        let year = counter
            .period_totals(Period::year(2024).unwrap())
            .await
            .unwrap();
        assert_eq!(
            year.iter().map(|t| t.total).collect::<Vec<_>>(),
            [i64::MAX as u64, 3]
        );
    }
}
