//! [`RollupScheduler`]: rolls up each finished UTC day after a grace period, so no
//! cron job is needed, and catches up on every day missed while it was not running.

use std::sync::Arc;
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
#[derive(Debug, Clone)]
pub struct RollupScheduler {
    counter: Arc<dyn Counter>,
    grace: Duration,
    check_every: Duration,
}

impl RollupScheduler {
    /// A scheduler for `counter` with a grace period of 1 h, checking every 15 min.
    pub fn new(counter: Arc<dyn Counter>) -> RollupScheduler {
        RollupScheduler {
            counter,
            grace: Duration::from_secs(3600),
            check_every: Duration::from_secs(15 * 60),
        }
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

    /// The first day that is not yet finished at `now`.
    pub fn first_unfinished_day(&self, now: Timestamp) -> Result<Day> {
        let grace = SignedDuration::try_from(self.grace)
            .map_err(|_| Error::invalid("grace", self.grace, "too long"))?;
        let before_year_one = || Error::invalid("grace", self.grace, "reaches before 0001-01-01");
        let cutoff = now.checked_sub(grace).map_err(|_| before_year_one())?;
        Day::of(cutoff).map_err(|_| before_year_one())
    }

    /// Rolls up every finished day that holds counts not yet rolled up, oldest first,
    /// and returns those days.
    pub async fn run_once(&self, now: Timestamp) -> Result<Vec<Day>> {
        let before = self.first_unfinished_day(now)?;
        let days = self.counter.unrolled_days(before).await?;
        for &day in &days {
            self.counter.rollup(day).await?;
            tracing::debug!(%day, "count: rolled up");
        }
        Ok(days)
    }

    /// Runs the scheduler on the current tokio runtime until [`RollupTask::stop`] or
    /// until the task is dropped.
    pub fn spawn(self) -> RollupTask {
        let (stop, mut stopped) = watch::channel(false);
        let join = tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_secs(1), self.check_every);
            loop {
                let wait = match self.run_once(Timestamp::now()).await {
                    Ok(days) => {
                        backoff.reset();
                        if !days.is_empty() {
                            tracing::info!(?days, "count: rolled up finished days");
                        }
                        self.until_next_check(Timestamp::now())
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
    stop: watch::Sender<bool>,
    join: Option<JoinHandle<()>>,
}

impl RollupTask {
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
