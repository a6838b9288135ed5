//! [`RollupScheduler`]: rolls up each finished UTC day after a grace period, so no
//! cron job is needed, and catches up on every day missed while it was not running.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::{Counter, Day, Error, Result};

/// Rolls up finished days on a [`Counter`].
///
/// A day is finished `grace` after its midnight UTC end, leaving time for late counts
/// (queues flushing, clients with slow clocks). Counts that still arrive later are not
/// lost: reports are live, and the next check rolls the day up again, adding them.
/// Which days to roll up comes from [`Counter::unrolled_days`], so a scheduler that
/// was down for a week rolls up the whole week when it starts. Several schedulers on
/// one database are safe: rollups add, and concurrent rollups are exact.
///
/// A day whose rollup fails does not hold up the others: it is logged, counted in
/// [`RollupStats::failures`], skipped, and tried again at the next check (sooner,
/// with backoff, while any day is failing).
#[derive(Debug, Clone)]
pub struct RollupScheduler {
    counter: Arc<dyn Counter>,
    grace: Duration,
    hour_retention: Duration,
    check_every: Duration,
    stats: Arc<Cells>,
}

/// What a [`RollupScheduler`] has done, for monitoring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RollupStats {
    /// Days rolled up.
    pub days_rolled: u64,
    /// Rollups of a day that failed (each is tried again later).
    pub failures: u64,
    /// When a day was last rolled up.
    pub last_rollup: Option<Timestamp>,
    /// Finished days still holding counts not rolled up, as of the last check.
    pub unrolled_days: u64,
    /// Days whose last rollup failed.
    pub failing_days: Vec<Day>,
}

#[derive(Debug, Default)]
struct Cells {
    days_rolled: AtomicU64,
    failures: AtomicU64,
    last_rollup_ms: AtomicI64,
    unrolled_days: AtomicU64,
    failing: Mutex<BTreeSet<Day>>,
}

impl RollupScheduler {
    /// A scheduler for `counter` with a grace period of 1 h, checking every 15 min.
    pub fn new(counter: Arc<dyn Counter>) -> RollupScheduler {
        RollupScheduler {
            counter,
            grace: Duration::from_secs(3600),
            hour_retention: RollupScheduler::DEFAULT_HOUR_RETENTION,
            check_every: Duration::from_secs(15 * 60),
            stats: Arc::default(),
        }
    }

    /// How long hours are kept by default: 90 days.
    pub const DEFAULT_HOUR_RETENTION: Duration = Duration::from_secs(90 * 86_400);

    /// How long counts are kept by the quarter hour (for hours, and days in zones
    /// whose days are not kept) after each check: the UTC days that ended longer ago
    /// are forgotten by [`Counter::forget_quarters_before`]. Days are kept forever.
    /// Default [`DEFAULT_HOUR_RETENTION`](RollupScheduler::DEFAULT_HOUR_RETENTION).
    pub fn hour_retention(mut self, retention: Duration) -> Self {
        self.hour_retention = retention;
        self
    }

    /// The first UTC day whose quarters are kept at `now`.
    pub fn first_day_of_hours(&self, now: Timestamp) -> Day {
        SignedDuration::try_from(self.hour_retention)
            .ok()
            .and_then(|kept| now.checked_sub(kept).ok())
            .and_then(|from| Day::of(from).ok())
            .unwrap_or(Day::MIN)
    }

    /// How long after a day ends it is rolled up. Default 1 h.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How often to look for days to roll up (late counts of a finished day wait at
    /// most this long). Default 15 min.
    pub fn check_every(mut self, every: Duration) -> Self {
        self.check_every = every.max(Duration::from_secs(1));
        self
    }

    /// What the scheduler has done so far (shared by its clones and its task).
    pub fn stats(&self) -> RollupStats {
        let last = self.stats.last_rollup_ms.load(Relaxed);
        RollupStats {
            days_rolled: self.stats.days_rolled.load(Relaxed),
            failures: self.stats.failures.load(Relaxed),
            last_rollup: (last != 0)
                .then(|| Timestamp::from_millisecond(last).ok())
                .flatten(),
            unrolled_days: self.stats.unrolled_days.load(Relaxed),
            failing_days: self
                .stats
                .failing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .copied()
                .collect(),
        }
    }

    /// The first day that is not yet finished at `now`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the grace period reaches before 0001-01-01.
    pub fn first_unfinished_day(&self, now: Timestamp) -> Result<Day> {
        let grace = SignedDuration::try_from(self.grace)
            .map_err(|_| Error::invalid("grace", self.grace, "too long"))?;
        let before_year_one = || Error::invalid("grace", self.grace, "reaches before 0001-01-01");
        let cutoff = now.checked_sub(grace).map_err(|_| before_year_one())?;
        Day::of(cutoff).map_err(|_| before_year_one())
    }

    /// Rolls up every finished day that holds counts not yet rolled up, oldest first,
    /// and returns the days it rolled up. A day whose rollup fails is logged, counted
    /// and skipped; the others are still rolled up.
    ///
    /// # Errors
    ///
    /// When the days to roll up cannot be listed, or when every rollup tried failed
    /// (the last error).
    pub async fn run_once(&self, now: Timestamp) -> Result<Vec<Day>> {
        let before = self.first_unfinished_day(now)?;
        let days = self.counter.unrolled_days(before).await?;
        let mut rolled = Vec::with_capacity(days.len());
        let mut last_error = None;
        for &day in &days {
            match self.counter.rollup(day).await {
                Ok(_) => {
                    tracing::debug!(%day, "count: rolled up");
                    rolled.push(day);
                    self.stats.days_rolled.fetch_add(1, Relaxed);
                    self.stats
                        .last_rollup_ms
                        .store(Timestamp::now().as_millisecond(), Relaxed);
                    self.failing().remove(&day);
                }
                Err(error) => {
                    tracing::warn!(%day, %error, "count: rolling up a day failed; it will be tried again");
                    self.stats.failures.fetch_add(1, Relaxed);
                    self.failing().insert(day);
                    last_error = Some(error);
                }
            }
        }
        self.stats
            .unrolled_days
            .store((days.len() - rolled.len()) as u64, Relaxed);
        let forget = self.first_day_of_hours(now);
        if let Err(error) = self.counter.forget_quarters_before(forget).await {
            tracing::warn!(%forget, %error, "count: forgetting old quarter hours failed; it will be tried again");
            last_error = Some(error);
        }
        #[cfg(feature = "metrics")]
        crate::metrics::publish_rollup(&self.stats());
        match last_error {
            Some(error) if rolled.is_empty() => Err(error),
            _ => Ok(rolled),
        }
    }

    fn failing(&self) -> std::sync::MutexGuard<'_, BTreeSet<Day>> {
        self.stats.failing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the scheduler on the current tokio runtime until [`RollupTask::stop`] or
    /// until the task is dropped.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn spawn(self) -> RollupTask {
        let scheduler = self.clone();
        let (stop, mut stopped) = watch::channel(false);
        let join = tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_secs(1), self.check_every);
            loop {
                let wait = match self.run_once(Timestamp::now()).await {
                    Ok(days) => {
                        if !days.is_empty() {
                            tracing::info!(?days, "count: rolled up finished days");
                        }
                        if self.failing().is_empty() {
                            backoff.reset();
                            self.until_next_check(Timestamp::now())
                        } else {
                            // Some day failed: try it again sooner than the next check.
                            backoff.next_delay()
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "count: rollup failed; retrying");
                        backoff.next_delay()
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
        RollupTask {
            scheduler,
            stop,
            join: Some(join),
        }
    }

    /// The wait until the next check: `check_every`, or less when a day finishes sooner.
    fn until_next_check(&self, now: Timestamp) -> Duration {
        let day_finishes = self
            .first_unfinished_day(now)
            .ok()
            .and_then(Day::next)
            .map(|next| next.start())
            .and_then(|end| {
                end.checked_add(SignedDuration::try_from(self.grace).ok()?)
                    .ok()
            })
            .and_then(|due| Duration::try_from(due.duration_since(now)).ok());
        match day_finishes {
            Some(d) => d.min(self.check_every),
            None => self.check_every,
        }
    }
}

/// A running [`RollupScheduler`]; dropping it stops the scheduler.
#[derive(Debug)]
pub struct RollupTask {
    scheduler: RollupScheduler,
    stop: watch::Sender<bool>,
    join: Option<JoinHandle<()>>,
}

impl RollupTask {
    /// What the scheduler has done so far.
    pub fn stats(&self) -> RollupStats {
        self.scheduler.stats()
    }

    /// Stops the scheduler, letting a rollup in progress finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(join) = self.join.take() {
            let _ = join.await;
        }
    }
}

impl Drop for RollupTask {
    fn drop(&mut self) {
        if let Some(join) = &self.join {
            join.abort();
        }
    }
}
