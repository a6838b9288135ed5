//! `MemoryCounter`: count-core's [`Counter`] contract kept in memory.
//!
//! The reference implementation: small enough to read in one sitting, and what an
//! app's own tests count into. Counts are lost when the process exits.
#![warn(missing_docs)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use count_core::jiff::Timestamp;
use count_core::{Batch, BatchId, Counter, DailyTotal, DateRange, Day, Endpoint, Result};

/// A [`Counter`] in memory. One mutex guards it all: a write is one short critical
/// section per batch (not per request), and rollups are atomic by construction.
#[derive(Debug, Default)]
pub struct MemoryCounter {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Every batch applied. Kept for the life of the counter: a few dozen bytes a
    /// batch, one batch a second per writer.
    applied: HashSet<BatchId>,
    /// Counts not yet rolled up, per day, per endpoint and bucket.
    raw: BTreeMap<Day, HashMap<(Endpoint, Timestamp), u64>>,
    /// Rolled-up totals, per day.
    rolled: BTreeMap<Day, HashMap<Endpoint, u64>>,
}

impl MemoryCounter {
    /// An empty counter.
    pub fn new() -> MemoryCounter {
        MemoryCounter::default()
    }

    /// How many raw rows (endpoint, bucket) are not yet rolled up.
    pub fn raw_rows(&self) -> usize {
        self.lock().raw.values().map(HashMap::len).sum()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, even one that panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Counter for MemoryCounter {
    async fn write(&self, batch: &Batch) -> Result<()> {
        let mut state = self.lock();
        if !state.applied.insert(batch.id()) {
            return Ok(());
        }
        for count in batch.counts() {
            *state
                .raw
                .entry(count.day())
                .or_default()
                .entry((count.endpoint, count.bucket))
                .or_default() += count.n;
        }
        Ok(())
    }

    async fn rollup(&self, day: Day) -> Result<Vec<DailyTotal>> {
        let mut state = self.lock();
        let raw = state.raw.remove(&day).unwrap_or_default();
        let rolled = state.rolled.entry(day).or_default();
        for ((endpoint, _bucket), n) in raw {
            *rolled.entry(endpoint).or_default() += n;
        }
        let mut totals: Vec<DailyTotal> = rolled
            .iter()
            .map(|(&endpoint, &total)| DailyTotal {
                day,
                endpoint,
                total,
            })
            .collect();
        totals.sort_unstable();
        Ok(totals)
    }

    async fn daily_totals(&self, range: DateRange) -> Result<Vec<DailyTotal>> {
        let state = self.lock();
        let mut sums = BTreeMap::<(Day, Endpoint), u64>::new();
        for (&day, rolled) in state.rolled.range(range.start()..=range.end()) {
            for (&endpoint, &n) in rolled {
                *sums.entry((day, endpoint)).or_default() += n;
            }
        }
        for (&day, raw) in state.raw.range(range.start()..=range.end()) {
            for (&(endpoint, _bucket), &n) in raw {
                *sums.entry((day, endpoint)).or_default() += n;
            }
        }
        Ok(sums
            .into_iter()
            .map(|((day, endpoint), total)| DailyTotal {
                day,
                endpoint,
                total,
            })
            .collect())
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
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conforms_to_the_counter_contract() {
        count_core::testkit::run_all(&MemoryCounter::new()).await;
    }

    #[tokio::test]
    async fn rollup_empties_the_raw_rows() {
        use count_core::testkit::{batch, day};
        let counter = MemoryCounter::new();
        counter
            .write(&batch(&[("/a", "2024-01-01T10:00:00Z", 2)]))
            .await
            .unwrap();
        assert_eq!(counter.raw_rows(), 1);
        counter.rollup(day("2024-01-01")).await.unwrap();
        assert_eq!(counter.raw_rows(), 0);
    }
}
