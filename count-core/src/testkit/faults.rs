//! [`FlakyCounter`]: a [`Counter`] wrapper that fails writes on purpose, before or
//! after applying them, to test retry and exactly-once paths on any backend.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    Batch, Counter, DailyTotal, DateRange, Day, Error, GroupedTotal, Period, PeriodTotal, Result,
    TotalsQuery,
};

/// What one write attempt does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Passes through.
    Pass,
    /// Fails with [`Error::Unavailable`] without writing.
    FailBefore,
    /// Writes, then fails with [`Error::Ambiguous`]: the caller cannot tell it applied.
    FailAfter,
    /// Waits this long, then passes through (to trip a write timeout).
    Delay(Duration),
    /// Refuses the batch for good, without writing: an error retrying cannot cure
    /// ([`Error::Backend`]).
    Reject,
    /// Panics without writing (a bug in a backend).
    Panic,
}

/// Wraps a counter and applies planned [`Fault`]s to its writes, then random ones at
/// the configured rates, then none. Reads pass through.
#[derive(Debug)]
pub struct FlakyCounter<C> {
    inner: C,
    plan: Mutex<VecDeque<Fault>>,
    /// Percent of attempts failing before / after writing, when the plan is empty.
    rates: (u8, u8),
    attempts: AtomicU64,
    failures: AtomicU64,
}

impl<C: Counter> FlakyCounter<C> {
    /// Passes every write through until told otherwise.
    pub fn new(inner: C) -> FlakyCounter<C> {
        FlakyCounter {
            inner,
            plan: Mutex::new(VecDeque::new()),
            rates: (0, 0),
            attempts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// After the plan, fail `before`% of writes without writing and `after`% after
    /// writing.
    pub fn with_rates(mut self, before: u8, after: u8) -> Self {
        self.rates = (before.min(100), after.min(100 - before.min(100)));
        self
    }

    /// Appends faults for the next write attempts, in order.
    pub fn plan(&self, faults: impl IntoIterator<Item = Fault>) {
        self.plan.lock().unwrap().extend(faults);
    }

    /// Write attempts so far.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Attempts that failed on purpose so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn next_fault(&self) -> Fault {
        if let Some(fault) = self.plan.lock().unwrap().pop_front() {
            return fault;
        }
        let roll = fastrand::u8(0..100);
        if roll < self.rates.0 {
            Fault::FailBefore
        } else if roll < self.rates.0 + self.rates.1 {
            Fault::FailAfter
        } else {
            Fault::Pass
        }
    }
}

#[async_trait]
impl<C: Counter> Counter for FlakyCounter<C> {
    async fn write(&self, batch: &Batch) -> Result<()> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        match self.next_fault() {
            Fault::Pass => self.inner.write(batch).await,
            Fault::Delay(d) => {
                tokio::time::sleep(d).await;
                self.inner.write(batch).await
            }
            Fault::FailBefore => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                Err(Error::unavailable(format!(
                    "injected: batch {} not written",
                    batch.id()
                )))
            }
            Fault::Reject => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                Err(Error::Backend {
                    message: format!("injected: batch {} refused for good", batch.id()),
                    source: std::sync::Arc::new(std::io::Error::other("injected")),
                })
            }
            Fault::Panic => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                panic!("injected: a backend panicked writing batch {}", batch.id());
            }
            Fault::FailAfter => {
                self.inner.write(batch).await?;
                self.failures.fetch_add(1, Ordering::Relaxed);
                Err(Error::ambiguous(format!(
                    "injected: batch {} written, reply lost",
                    batch.id()
                )))
            }
        }
    }

    async fn rollup(&self, day: Day) -> Result<Vec<DailyTotal>> {
        self.inner.rollup(day).await
    }

    async fn daily_totals(&self, range: DateRange) -> Result<Vec<DailyTotal>> {
        self.inner.daily_totals(range).await
    }

    async fn kept(&self) -> Result<crate::Kept> {
        self.inner.kept().await
    }

    async fn forget_quarters_before(&self, day: crate::Day) -> Result<()> {
        self.inner.forget_quarters_before(day).await
    }

    async fn keep_zone_days(&self, zone: &crate::Zone) -> Result<crate::Day> {
        self.inner.keep_zone_days(zone).await
    }

    async fn policy_since(&self, version: u64) -> crate::Result<Option<crate::StoredPolicy>> {
        self.inner.policy_since(version).await
    }

    async fn replace_policy(
        &self,
        expected: u64,
        policy: &crate::limits::Policy,
    ) -> crate::Result<u64> {
        self.inner.replace_policy(expected, policy).await
    }

    async fn lease(
        &self,
        ask: &crate::limits::LeaseAsk<'_>,
    ) -> crate::Result<crate::limits::LeaseGrant> {
        self.inner.lease(ask).await
    }

    async fn period_totals(&self, period: Period) -> Result<Vec<PeriodTotal>> {
        self.inner.period_totals(period).await
    }

    async fn totals(&self, query: &TotalsQuery) -> Result<Vec<GroupedTotal>> {
        self.inner.totals(query).await
    }

    async fn unrolled_days(&self, before: Day) -> Result<Vec<Day>> {
        self.inner.unrolled_days(before).await
    }

    async fn health(&self) -> Result<()> {
        self.inner.health().await
    }
}
