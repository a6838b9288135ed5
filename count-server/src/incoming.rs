//! Accepting connections: never more open at once than the cap (past it, new ones
//! wait in the listen backlog until one closes), and when accepting fails (out of file
//! descriptors, say) backing off instead of spinning, with a warning at most every
//! ten seconds.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use count_core::backend::Backoff;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// The first wait after a failed accept; it doubles with each failure in a row.
const FIRST_DELAY: Duration = Duration::from_millis(10);
/// The longest wait between two accepts that fail.
const MAX_DELAY: Duration = Duration::from_secs(1);
/// At most one warning this often about the same trouble.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

/// A connection just accepted, holding its place under the cap until dropped.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) tcp: TcpStream,
    pub(crate) info: TcpConnectInfo,
    pub(crate) slot: OwnedSemaphorePermit,
}

/// Accepts connections from a listener, at most `cap` open at once.
#[derive(Debug)]
pub(crate) struct Acceptor {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    cap: usize,
    failures: Failures,
    cap_warnings: RateLimit,
}

impl Acceptor {
    pub(crate) fn new(listener: TcpListener, cap: usize) -> Acceptor {
        Acceptor {
            listener,
            slots: Arc::new(Semaphore::new(cap)),
            cap,
            failures: Failures::default(),
            cap_warnings: RateLimit::default(),
        }
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.cap - self.slots.available_permits()
    }

    /// The next connection, once fewer than the cap are open. Cancel-safe: dropping
    /// the future loses no connection.
    pub(crate) async fn accept(&mut self) -> Accepted {
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if let Some(missed) = self.cap_warnings.allow(Instant::now()) {
                    tracing::warn!(
                        cap = self.cap,
                        times = missed + 1,
                        "count-server: the connection cap is reached (--max-connections): new \
                         connections wait in the listen backlog until one closes"
                    );
                }
                // The semaphore is never closed.
                let Ok(slot) = self.slots.clone().acquire_owned().await else {
                    return std::future::pending().await;
                };
                slot
            }
        };
        loop {
            match self.listener.accept().await {
                Ok((tcp, _peer)) => {
                    self.failures.succeeded();
                    let _ = tcp.set_nodelay(true);
                    let info = tcp.connect_info();
                    return Accepted { tcp, info, slot };
                }
                Err(error) => {
                    let delay = self.failures.failed(&error, Instant::now());
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

/// Accept failures in a row: how long to wait before the next try, and when to say so.
#[derive(Debug)]
struct Failures {
    in_a_row: u32,
    backoff: Backoff,
    warnings: RateLimit,
}

impl Default for Failures {
    fn default() -> Self {
        Failures {
            in_a_row: 0,
            backoff: Backoff::new(FIRST_DELAY, MAX_DELAY),
            warnings: RateLimit::default(),
        }
    }
}

impl Failures {
    /// Records a failure at `now`, logs it unless a warning was logged less than
    /// [`WARN_EVERY`] ago, and returns how long to wait: up to [`FIRST_DELAY`],
    /// doubling with each failure in a row up to [`MAX_DELAY`] (the backends'
    /// backoff, with its jitter).
    fn failed(&mut self, error: &io::Error, now: Instant) -> Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        if let Some(missed) = self.warnings.allow(now) {
            tracing::warn!(
                %error,
                times = missed + 1,
                "count-server: accepting a connection failed: waiting up to {} s between tries",
                MAX_DELAY.as_secs_f64()
            );
        }
        self.backoff.next_delay()
    }

    fn succeeded(&mut self) {
        if self.in_a_row > 0 {
            tracing::info!(
                failures = self.in_a_row,
                "count-server: accepting connections again"
            );
            self.in_a_row = 0;
            self.backoff.reset();
        }
    }
}

/// Lets one event through every [`WARN_EVERY`], counting the ones held back.
#[derive(Debug, Default)]
pub(crate) struct RateLimit {
    last: Option<Instant>,
    held_back: u64,
}

impl RateLimit {
    /// `Some(events held back since the last one let through)` when an event at
    /// `now` may be reported.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < WARN_EVERY)
        {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_and_warn_once_every_ten_seconds() {
        let start = Instant::now();
        let error = io::Error::other("Too many open files");
        let mut failures = Failures::default();
        let mut now = start;
        for ceiling in [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000, 1000] {
            let delay = failures.failed(&error, now).as_millis();
            assert!(delay >= ceiling / 2 && delay <= ceiling, "{delay} ms");
            now += Duration::from_millis(delay as u64);
        }
        // Spinning would be thousands of tries a second; this is a dozen in 3 to 6 s.
        assert!(
            now - start >= Duration::from_millis(3135),
            "{:?}",
            now - start
        );
        // One warning, the first: the other eleven wait for the next, ten seconds on.
        assert_eq!(failures.warnings.held_back, 11);
        assert_eq!(failures.warnings.allow(start + WARN_EVERY), Some(11));
        failures.succeeded();
        assert!(failures.failed(&error, now) <= FIRST_DELAY);
    }

    #[test]
    fn a_rate_limit_lets_one_through_every_ten_seconds() {
        let start = Instant::now();
        let mut limit = RateLimit::default();
        assert_eq!(limit.allow(start), Some(0));
        assert_eq!(limit.allow(start + Duration::from_secs(1)), None);
        assert_eq!(limit.allow(start + Duration::from_secs(9)), None);
        assert_eq!(limit.allow(start + Duration::from_secs(10)), Some(2));
        assert_eq!(limit.allow(start + Duration::from_secs(30)), Some(0));
    }
}
