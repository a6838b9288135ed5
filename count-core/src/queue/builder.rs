//! [`CountQueueBuilder`]: every setting of a [`CountQueue`], with its default.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc};

use super::flusher::{Flusher, Settings};
use super::lanes::Lanes;
use super::pending::Pending;
use super::stats::StatsCells;
use super::{CountQueue, Shared, clock};
use crate::backoff::Backoff;
use crate::{BucketWidth, Counter, Error, Result};

/// Builds a [`CountQueue`]; every setter says its default.
#[derive(Debug)]
pub struct CountQueueBuilder {
    counter: Arc<dyn Counter>,
    lane_capacity: usize,
    capacity: usize,
    flush_interval: Duration,
    drain_interval: Duration,
    bucket_width: Duration,
    max_endpoints: usize,
    max_subjects: usize,
    max_pending: usize,
    max_batch_rows: usize,
    write_timeout: Duration,
    shutdown_timeout: Duration,
    retry_initial: Duration,
    retry_max: Duration,
    runtime: Option<Handle>,
    name: &'static str,
}

impl CountQueueBuilder {
    pub(crate) fn new(counter: Arc<dyn Counter>) -> CountQueueBuilder {
        CountQueueBuilder {
            counter,
            lane_capacity: 4096,
            capacity: 65_536,
            flush_interval: Duration::from_secs(1),
            drain_interval: Duration::from_millis(10),
            bucket_width: Duration::from_secs(60),
            max_endpoints: 10_000,
            max_subjects: 100_000,
            max_pending: 1_000_000,
            max_batch_rows: 10_000,
            write_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            runtime: None,
            name: "default",
        }
    }

    /// How many requests each recording thread's own lane holds (24 bytes each,
    /// allocated on the thread's first record). Default 4,096 (96 KiB a thread): with
    /// the default drain interval, 400,000 requests a second from one thread.
    pub fn lane_capacity(mut self, events: usize) -> Self {
        self.lane_capacity = events;
        self
    }

    /// How many requests the shared ring holds, which takes what a full lane cannot;
    /// when it is full too, `record` drops. Default 65,536 (1.5 MiB): with the default
    /// drain interval, bursts of over 6 million requests a second.
    pub fn capacity(mut self, events: usize) -> Self {
        self.capacity = events;
        self
    }

    /// How often a batch is written: at most one interval of counts is lost on a
    /// crash. Default 1 s.
    pub fn flush_interval(mut self, every: Duration) -> Self {
        self.flush_interval = every;
        self
    }

    /// How often the flusher moves events from the queue into its aggregate (no I/O).
    /// Default 10 ms.
    pub fn drain_interval(mut self, every: Duration) -> Self {
        self.drain_interval = every;
        self
    }

    /// The width of a raw count bucket: whole seconds that divide 24 h. Default 60 s.
    pub fn bucket_width(mut self, width: Duration) -> Self {
        self.bucket_width = width;
        self
    }

    /// How many distinct endpoints the queue counts as themselves each UTC day (by
    /// its clock); later new ones that day are counted under `(overflow)` with their
    /// method, and in [`Stats::overflowed`]. The count starts afresh every day, so a
    /// burst of junk crowds out new endpoints for the rest of that day at most.
    /// Default 10,000.
    ///
    /// [`Stats::overflowed`]: super::Stats::overflowed
    pub fn max_endpoints(mut self, endpoints: usize) -> Self {
        self.max_endpoints = endpoints;
        self
    }

    /// How many distinct subjects the queue counts as themselves each UTC day; later
    /// new ones that day are counted under [`OVERFLOW_SUBJECT`](super::OVERFLOW_SUBJECT)
    /// and in [`Stats::overflowed_subjects`]. Default 100,000.
    ///
    /// [`Stats::overflowed_subjects`]: super::Stats::overflowed_subjects
    pub fn max_subjects(mut self, subjects: usize) -> Self {
        self.max_subjects = subjects;
        self
    }

    /// How many aggregated rows (distinct endpoint and bucket) may wait for a failing
    /// backend. Past it new rows fold into day-wide buckets; past twice it they are
    /// discarded. Both are counted in [`Stats`]. Default 1,000,000 (a row takes 50 to 60
    /// bytes, so up to about 120 MiB at twice the bound).
    ///
    /// [`Stats`]: super::Stats
    pub fn max_pending(mut self, rows: usize) -> Self {
        self.max_pending = rows;
        self
    }

    /// The most rows in one batch, so a write stays a bounded transaction.
    /// Default 10,000.
    pub fn max_batch_rows(mut self, rows: usize) -> Self {
        self.max_batch_rows = rows;
        self
    }

    /// How long one write may take before it counts as failed (and ambiguous: it is
    /// retried with the same batch id). Default 30 s.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// How long [`CountQueue::shutdown`] keeps retrying failed writes. Default 10 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// The backoff between retries of a failed write: from `initial`, doubling, up to
    /// `max`, with jitter. Default 100 ms to 30 s.
    pub fn retry_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.retry_initial = initial;
        self.retry_max = max;
        self
    }

    /// The queue's name: the `queue` label of its metrics (feature `metrics`).
    /// Default `"default"`.
    pub fn name(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The tokio runtime to run the flusher on. Default: the current one.
    pub fn runtime(mut self, handle: Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Checks the settings and starts the flusher.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming a setting out of range (a bucket width that does
    /// not divide a day, a zero capacity or interval), or when there is no tokio
    /// runtime to run the flusher on; [`Error::Unavailable`] if the clock thread
    /// cannot be started.
    pub fn build(self) -> Result<CountQueue> {
        let bucket_width = BucketWidth::new(self.bucket_width)?;
        at_least_one("capacity", self.capacity)?;
        at_least_one("lane_capacity", self.lane_capacity)?;
        at_least_one("max_endpoints", self.max_endpoints)?;
        at_least_one("max_subjects", self.max_subjects)?;
        at_least_one("max_pending", self.max_pending)?;
        at_least_one("max_batch_rows", self.max_batch_rows)?;
        for (name, value) in [
            ("flush_interval", self.flush_interval),
            ("drain_interval", self.drain_interval),
            ("write_timeout", self.write_timeout),
            ("retry_backoff initial", self.retry_initial),
        ] {
            if value.is_zero() {
                return Err(Error::invalid(name, value, "must be longer than zero"));
            }
        }
        let runtime = match self.runtime {
            Some(handle) => handle,
            None => Handle::try_current().map_err(|_| {
                Error::invalid(
                    "runtime",
                    "none",
                    "CountQueue::build needs a tokio runtime: call it inside one, or pass one with .runtime(handle)",
                )
            })?,
        };
        clock::start().map_err(Error::unavailable)?;

        let shared = Arc::new(Shared {
            lanes: Lanes::new(self.lane_capacity, self.capacity),
            stats: StatsCells::default(),
            room: Notify::new(),
            full: Notify::new(),
            ended: Mutex::new(None),
        });
        let settings = Settings {
            flush_interval: self.flush_interval,
            drain_interval: self.drain_interval,
            max_batch_rows: self.max_batch_rows,
            write_timeout: self.write_timeout,
            shutdown_timeout: self.shutdown_timeout,
            backoff: Backoff::new(self.retry_initial, self.retry_max),
            name: self.name,
        };
        let pending = Pending::new(
            bucket_width,
            self.max_endpoints,
            self.max_subjects,
            self.max_pending,
        );
        let flusher = Flusher::new(Arc::clone(&shared), self.counter, settings, pending);
        let (commands, receiver) = mpsc::unbounded_channel();
        runtime.spawn(flusher.run(receiver));
        Ok(CountQueue { shared, commands })
    }
}

fn at_least_one(name: &'static str, value: usize) -> Result<()> {
    if value == 0 {
        return Err(Error::invalid(name, value, "must be at least 1"));
    }
    Ok(())
}
