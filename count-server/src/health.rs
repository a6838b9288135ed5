//! The backend's health, watched: a background task asks [`Counter::health`] every
//! few seconds and sets the gRPC health service (SERVING / NOT_SERVING) and the
//! `count_backend_up` figure from the answer. `/readyz` asks the backend itself.
//!
//! A backend can answer its health check while every write fails (a full disk, a
//! corrupted file): so the counter the server writes through is [`WriteWatched`],
//! whose health also fails once writes have failed for `--unready-after-failing-writes`
//! with none succeeding since. It is well again at the next write that succeeds, or
//! once no write has failed for that long: an unready server gets no traffic from a
//! load balancer, so it must not wait for a write to tell it the disk was freed (if
//! writes still fail, it turns unready again).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use count_core::{
    Batch, Counter, DailyTotal, DateRange, Day, Error, GroupedTotal, Period, PeriodTotal,
    TotalsQuery,
};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// The outcome of the latest writes, shared with `/readyz` and `/metrics`.
#[derive(Debug)]
pub(crate) struct WriteHealth {
    unready_after: Duration,
    /// While writes fail: since when (none succeeding since), the last failure, and
    /// its kind.
    failing: Mutex<Option<Failing>>,
}

#[derive(Debug, Clone, Copy)]
struct Failing {
    since: Instant,
    last: Instant,
    kind: &'static str,
}

impl WriteHealth {
    pub(crate) fn new(unready_after: Duration) -> WriteHealth {
        WriteHealth {
            unready_after,
            failing: Mutex::new(None),
        }
    }

    fn note(&self, outcome: &count_core::Result<()>) {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(()) => *failing = None,
            // A refused batch is the client's fault, not the storage's.
            Err(
                Error::InvalidInput { .. } | Error::BatchConflict { .. } | Error::LimitReached(_),
            ) => {}
            Err(error) => {
                let now = Instant::now();
                // A failure long after the last one starts a new spell.
                let since = failing
                    .filter(|f| now - f.last < self.unready_after)
                    .map_or(now, |f| f.since);
                *failing = Some(Failing {
                    since,
                    last: now,
                    kind: crate::http::error::kind_of(error),
                });
            }
        }
    }

    /// How long writes have failed with none succeeding since (zero when the last
    /// write succeeded, or none failed for `--unready-after-failing-writes`), and the
    /// last failure's kind.
    pub(crate) fn failing_for(&self) -> (Duration, Option<&'static str>) {
        let failing = *self.failing.lock().unwrap_or_else(|e| e.into_inner());
        match failing {
            Some(f) if f.last.elapsed() < self.unready_after => (f.since.elapsed(), Some(f.kind)),
            _ => (Duration::ZERO, None),
        }
    }

    /// Why the server is not ready for writes, when it is not.
    pub(crate) fn unready_reason(&self) -> Option<String> {
        let (failing, kind) = self.failing_for();
        let kind = kind?;
        (failing >= self.unready_after).then(|| {
            format!(
                "every write for {} s has failed ({kind}), none succeeding since \
                 (--unready-after-failing-writes is {} s)",
                failing.as_secs(),
                self.unready_after.as_secs_f64()
            )
        })
    }
}

/// The counter the server writes through: the backend's, its writes' outcomes noted
/// in a [`WriteHealth`], its health failing while they fail.
#[derive(Debug)]
pub(crate) struct WriteWatched {
    inner: Arc<dyn Counter>,
    writes: Arc<WriteHealth>,
}

impl WriteWatched {
    pub(crate) fn new(inner: Arc<dyn Counter>, writes: Arc<WriteHealth>) -> WriteWatched {
        WriteWatched { inner, writes }
    }
}

#[async_trait]
impl Counter for WriteWatched {
    async fn write(&self, batch: &Batch) -> count_core::Result<()> {
        let outcome = self.inner.write(batch).await;
        self.writes.note(&outcome);
        outcome
    }

    async fn rollup(&self, day: Day) -> count_core::Result<Vec<DailyTotal>> {
        self.inner.rollup(day).await
    }

    async fn daily_totals(&self, range: DateRange) -> count_core::Result<Vec<DailyTotal>> {
        self.inner.daily_totals(range).await
    }

    async fn period_totals(&self, period: Period) -> count_core::Result<Vec<PeriodTotal>> {
        self.inner.period_totals(period).await
    }

    async fn totals(&self, query: &TotalsQuery) -> count_core::Result<Vec<GroupedTotal>> {
        self.inner.totals(query).await
    }

    async fn unrolled_days(&self, before: Day) -> count_core::Result<Vec<Day>> {
        self.inner.unrolled_days(before).await
    }

    async fn kept(&self) -> count_core::Result<count_core::Kept> {
        self.inner.kept().await
    }

    async fn forget_quarters_before(&self, day: count_core::Day) -> count_core::Result<()> {
        self.inner.forget_quarters_before(day).await
    }

    async fn keep_zone_days(&self, zone: &count_core::Zone) -> count_core::Result<count_core::Day> {
        self.inner.keep_zone_days(zone).await
    }

    async fn policy_since(
        &self,
        version: u64,
    ) -> count_core::Result<Option<count_core::StoredPolicy>> {
        self.inner.policy_since(version).await
    }

    async fn replace_policy(
        &self,
        expected: u64,
        policy: &count_core::limits::Policy,
    ) -> count_core::Result<u64> {
        self.inner.replace_policy(expected, policy).await
    }

    async fn lease(
        &self,
        ask: &count_core::limits::LeaseAsk<'_>,
    ) -> count_core::Result<count_core::limits::LeaseGrant> {
        self.inner.lease(ask).await
    }

    async fn health(&self) -> count_core::Result<()> {
        self.inner.health().await?;
        match self.writes.unready_reason() {
            Some(reason) => Err(Error::unavailable(reason)),
            None => Ok(()),
        }
    }
}

/// The last health check's outcome, shared with `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct BackendHealth {
    up: AtomicBool,
    checks_failed: AtomicU64,
}

/// A copy of [`BackendHealth`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HealthSnapshot {
    pub(crate) up: bool,
    pub(crate) checks_failed: u64,
}

impl BackendHealth {
    pub(crate) fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot {
            up: self.up.load(Relaxed),
            checks_failed: self.checks_failed.load(Relaxed),
        }
    }
}

/// Asks `counter` whether it is healthy, within `timeout`.
///
/// # Errors
///
/// The backend's error, or [`Error::Unavailable`] when it did not answer in time.
pub(crate) async fn check(counter: &dyn Counter, timeout: Duration) -> count_core::Result<()> {
    match tokio::time::timeout(timeout, counter.health()).await {
        Ok(answer) => answer,
        Err(_) => Err(Error::unavailable(format!(
            "the backend did not answer a health check within {} ms",
            timeout.as_millis()
        ))),
    }
}

/// The services whose gRPC health follows the backend's.
const SERVICES: [&str; 2] = ["", count_grpc::SERVICE_NAME];

/// A running health watch; [`HealthWatch::stop`] ends it.
#[derive(Debug)]
pub(crate) struct HealthWatch {
    task: JoinHandle<()>,
}

impl HealthWatch {
    /// Checks once now (so the first answers are right), then every `every` in the
    /// background.
    pub(crate) async fn start(
        counter: Arc<dyn Counter>,
        reporter: HealthReporter,
        state: Arc<BackendHealth>,
        every: Duration,
        timeout: Duration,
    ) -> HealthWatch {
        let checker = Checker {
            counter,
            reporter,
            state,
            timeout,
        };
        checker.run_once(None).await;
        let task = tokio::spawn(async move {
            let mut was_up = Some(checker.state.up.load(Relaxed));
            loop {
                tokio::time::sleep(every).await;
                was_up = Some(checker.run_once(was_up).await);
            }
        });
        HealthWatch { task }
    }

    /// Stops checking (a check in progress is given up), then marks every service
    /// NOT_SERVING (the server is stopping).
    pub(crate) async fn stop(self, reporter: &HealthReporter) {
        self.task.abort();
        let _ = self.task.await;
        for service in SERVICES {
            reporter
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
    }
}

struct Checker {
    counter: Arc<dyn Counter>,
    reporter: HealthReporter,
    state: Arc<BackendHealth>,
    timeout: Duration,
}

impl Checker {
    /// One check; logs a change from `was_up`. Returns whether the backend is up.
    async fn run_once(&self, was_up: Option<bool>) -> bool {
        let outcome = check(&*self.counter, self.timeout).await;
        let up = outcome.is_ok();
        self.state.up.store(up, Relaxed);
        let status = match &outcome {
            Ok(()) => ServingStatus::Serving,
            Err(error) => {
                self.state.checks_failed.fetch_add(1, Relaxed);
                if was_up != Some(false) {
                    tracing::warn!(%error, "count-server: the backend is down: NOT_SERVING");
                }
                ServingStatus::NotServing
            }
        };
        if up && was_up == Some(false) {
            tracing::info!("count-server: the backend is back: SERVING");
        }
        for service in SERVICES {
            self.reporter.set_service_status(service, status).await;
        }
        up
    }
}
