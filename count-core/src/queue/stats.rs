//! What a [`CountQueue`](crate::CountQueue) has done: nothing it drops or folds is
//! silent.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use jiff::Timestamp;

use crate::Error;

/// A snapshot of a queue's counters, from [`CountQueue::stats`](crate::CountQueue::stats).
///
/// Every request recorded is, at any moment, written, pending, lost or in doubt:
/// `recorded == written + pending + lost + in_doubt` (up to requests in the middle of
/// being moved while the snapshot is taken). Drops are the requests never recorded.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Requests accepted onto the queue.
    pub recorded: u64,
    /// Requests refused because the queue was full.
    pub dropped_full: u64,
    /// Requests refused because the queue was shut down.
    pub dropped_closed: u64,
    /// Requests counted under the overflow endpoint because `max_endpoints` distinct
    /// endpoints were already counted that day.
    pub overflowed: u64,
    /// Requests counted under the overflow subject because `max_subjects` distinct
    /// subjects were already counted that day.
    pub overflowed_subjects: u64,
    /// Requests recorded with a status of the wrong kind for their method (a gRPC
    /// code on an HTTP method, or the reverse): counted without their status.
    pub statuses_dropped: u64,
    /// Requests kept in a day-wide bucket (their day stays exact) because the pending
    /// state had reached `max_pending` rows while the backend was failing.
    pub coarsened: u64,
    /// Requests recorded and never to be written: discarded because the pending
    /// state reached twice `max_pending` rows while the backend was failing, refused
    /// for good by the backend (see `rejected`), or held by a flusher that was
    /// stopped with its runtime.
    pub lost: u64,
    /// The part of `lost` that the backend refused for good (an error retrying cannot
    /// cure: see [`Error::is_retryable`]); `last_error` says why.
    pub rejected: u64,
    /// Requests the queue gave up on while a write of them had an unknown outcome (a
    /// write in flight when the flusher was stopped with its runtime, or whose last
    /// attempt at shutdown ended ambiguously): each is in the backend or lost, never
    /// both, and is counted in neither `written` nor `lost`.
    pub in_doubt: u64,
    /// Requests recorded and not yet written: queued, aggregated or in a batch.
    pub pending: u64,
    /// Requests durably written.
    pub written: u64,
    /// Batches written.
    pub batches_written: u64,
    /// Failed write attempts (each is retried with the same batch id, unless the
    /// error cannot be cured by retrying).
    pub write_failures: u64,
    /// Write attempts in which the backend panicked (contained: the batch is kept and
    /// retried).
    pub write_panics: u64,
    /// When a batch was last written.
    pub last_write: Option<Timestamp>,
    /// The error of the most recent failed write, if any write failed.
    pub last_error: Option<Error>,
}

impl Stats {
    /// All requests refused at `record`: queue full or shut down.
    pub fn dropped(&self) -> u64 {
        self.dropped_full + self.dropped_closed
    }
}

/// The live counters behind [`Stats`]. `record` touches only the drop counters, and
/// only when it drops; everything else is the flusher's, once per drain or write.
#[derive(Debug, Default)]
pub(crate) struct StatsCells {
    pub(crate) drained: AtomicU64,
    pub(crate) dropped_full: AtomicU64,
    pub(crate) dropped_closed: AtomicU64,
    pub(crate) overflowed: AtomicU64,
    pub(crate) overflowed_subjects: AtomicU64,
    pub(crate) statuses_dropped: AtomicU64,
    pub(crate) coarsened: AtomicU64,
    pub(crate) lost: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) in_doubt: AtomicU64,
    /// Drained and not yet written.
    pub(crate) aggregated: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) batches_written: AtomicU64,
    pub(crate) write_failures: AtomicU64,
    pub(crate) write_panics: AtomicU64,
    /// Unix milliseconds of the last write (the clock's now); 0: none yet.
    pub(crate) last_write_ms: AtomicI64,
    pub(crate) last_error: Mutex<Option<Error>>,
}

impl StatsCells {
    pub(crate) fn snapshot(&self, queued: u64) -> Stats {
        let drained = self.drained.load(Relaxed);
        Stats {
            recorded: drained + queued,
            dropped_full: self.dropped_full.load(Relaxed),
            dropped_closed: self.dropped_closed.load(Relaxed),
            overflowed: self.overflowed.load(Relaxed),
            overflowed_subjects: self.overflowed_subjects.load(Relaxed),
            statuses_dropped: self.statuses_dropped.load(Relaxed),
            coarsened: self.coarsened.load(Relaxed),
            lost: self.lost.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            in_doubt: self.in_doubt.load(Relaxed),
            pending: self.aggregated.load(Relaxed) + queued,
            written: self.written.load(Relaxed),
            batches_written: self.batches_written.load(Relaxed),
            write_failures: self.write_failures.load(Relaxed),
            write_panics: self.write_panics.load(Relaxed),
            last_write: match self.last_write_ms.load(Relaxed) {
                0 => None,
                ms => Timestamp::from_millisecond(ms).ok(),
            },
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    pub(crate) fn set_last_write(&self, at: Timestamp) {
        self.last_write_ms.store(at.as_millisecond(), Relaxed);
    }

    pub(crate) fn set_last_error(&self, error: Error) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }
}
