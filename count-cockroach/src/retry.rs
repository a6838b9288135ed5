//! The retry loop around every transaction: [`RetryPolicy`] says how long to try,
//! [`RetryStats`] what was done.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use count_core::backend::Backoff;
use count_core::{Error, Result};
use count_pg::tokio_postgres::error::SqlState;

/// How transactions that CockroachDB asks to restart, or whose outcome is unknown,
/// are retried. Made with [`RetryPolicy::new`] (or `default()`) and the setters.
///
/// ```
/// use std::time::Duration;
/// use count_cockroach::RetryPolicy;
///
/// let patient = RetryPolicy::new().max_attempts(50).max_time(Duration::from_secs(60));
/// assert_eq!(patient.max_attempts, 50);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// The first delay; each next one doubles (with jitter in its upper half).
    pub initial_delay: Duration,
    /// No delay is longer.
    pub max_delay: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// No retry starts after this long since the first attempt.
    pub max_time: Duration,
}

impl RetryPolicy {
    /// The default policy: 2 ms doubling to 1 s, at most 20 attempts within 15 s.
    pub const fn new() -> RetryPolicy {
        RetryPolicy {
            initial_delay: Duration::from_millis(2),
            max_delay: Duration::from_secs(1),
            max_attempts: 20,
            max_time: Duration::from_secs(15),
        }
    }

    /// The first delay. Default 2 ms.
    pub const fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The longest delay. Default 1 s.
    pub const fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Attempts in all, the first included (at least 1). Default 20.
    pub const fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// No retry starts after this long since the first attempt. Default 15 s.
    pub const fn max_time(mut self, time: Duration) -> Self {
        self.max_time = time;
        self
    }
}

impl Default for RetryPolicy {
    /// [`RetryPolicy::new`].
    fn default() -> Self {
        RetryPolicy::new()
    }
}

/// What the retry loop did, since the counter was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryStats {
    /// Transactions retried after a 40001.
    pub restarts: u64,
    /// Transactions retried after a 40003 or a connection lost during COMMIT.
    pub ambiguous: u64,
    /// Operations that failed with a retryable error after the policy's last attempt.
    pub gave_up: u64,
}

/// The live counters behind [`RetryStats`].
#[derive(Debug, Default)]
pub(crate) struct RetryCells {
    restarts: AtomicU64,
    ambiguous: AtomicU64,
    gave_up: AtomicU64,
}

impl RetryCells {
    pub(crate) fn snapshot(&self) -> RetryStats {
        RetryStats {
            restarts: self.restarts.load(Ordering::Relaxed),
            ambiguous: self.ambiguous.load(Ordering::Relaxed),
            gave_up: self.gave_up.load(Ordering::Relaxed),
        }
    }
}

/// Runs `op` until it succeeds, fails with an error not worth retrying, or `policy`
/// runs out; counts what it did in `cells`.
pub(crate) async fn retrying<T, F>(
    policy: &RetryPolicy,
    cells: &RetryCells,
    op: impl Fn() -> F,
) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut backoff = Backoff::new(policy.initial_delay, policy.max_delay);
    let mut attempts = 1;
    loop {
        let error = match op().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let cell = match retry_kind(&error) {
            Some(Retry::Restart) => &cells.restarts,
            Some(Retry::Ambiguous) => &cells.ambiguous,
            None => return Err(error),
        };
        if attempts >= policy.max_attempts || started.elapsed() >= policy.max_time {
            cells.gave_up.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(attempts, %error, "count: giving up on a CockroachDB transaction");
            return Err(error);
        }
        cell.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(attempts, %error, "count: retrying a CockroachDB transaction");
        tokio::time::sleep(backoff.next_delay()).await;
        attempts += 1;
    }
}

enum Retry {
    Restart,
    Ambiguous,
}

/// Whether `error` is worth retrying the whole transaction for: a 40001, or an
/// unknown outcome (writes are idempotent by batch id, rollup chunks move rows
/// atomically).
fn retry_kind(error: &Error) -> Option<Retry> {
    match error {
        Error::Ambiguous { .. } => Some(Retry::Ambiguous),
        Error::Unavailable {
            source: Some(source),
            ..
        } => {
            let db = source.downcast_ref::<count_pg::tokio_postgres::Error>()?;
            (db.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)).then_some(Retry::Restart)
        }
        _ => None,
    }
}
