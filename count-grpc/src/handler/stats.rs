//! [`ServiceStats`]: what the handler did, for a server's metrics.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use count_core::jiff::Timestamp;

use super::budget::BudgetUse;

/// A snapshot of a [`CountV1Handler`](crate::CountV1Handler)'s figures, from
/// [`CountV1Handler::stats`](crate::CountV1Handler::stats).
///
/// Every figure counts since the handler was built and only grows (a Prometheus
/// counter), except the gauges `add_feeds_open`, `pending_rows` and
/// `pending_text_bytes` and the limits `pending_rows_limit` and
/// `pending_text_bytes_limit`; clones of a handler share them. Each `Add` stream ends
/// in exactly one of the `add_streams_*` figures, feeds included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceStats {
    /// `Add` streams answered `OK`: their counts are durably written. A feed the
    /// client cancels ends here too (the handler cannot tell a cancel from an end),
    /// with what it received written.
    pub add_streams_ok: u64,
    /// `Add` streams refused with `INVALID_ARGUMENT` (a bad message): nothing of a
    /// stream with a deadline is written; a feed's messages before the bad one are.
    pub add_streams_invalid: u64,
    /// `Add` streams refused with `RESOURCE_EXHAUSTED`: more distinct rows than the
    /// handler takes in one stream with a deadline, the handler-wide budget of
    /// pending rows full (also in `add_streams_over_budget`), or a full path or
    /// subject interner. Nothing of a stream with a deadline is written; a feed's
    /// parts before the refusal are.
    pub add_streams_too_large: u64,
    /// `Add` streams answered `UNAVAILABLE`: the storage failed; nothing of a stream
    /// with a deadline was written (resending is safe), a feed's parts before the
    /// failed one were.
    pub add_streams_unavailable: u64,
    /// `Add` streams answered `UNKNOWN`: the deadline passed with a write's outcome
    /// unknown (all of the stream, or of the feed's part, or none of it was written).
    pub add_streams_outcome_unknown: u64,
    /// `Add` streams that ended otherwise: the storage refused the batch for good
    /// (`INTERNAL`), the stream broke (the connection was lost or cut), or a stream
    /// with a deadline was cancelled before its end (nothing of it written).
    pub add_streams_failed: u64,
    /// `Add` streams without a deadline, written as feeds (part by part); each also
    /// ends in one `add_streams_*` figure.
    pub add_feeds: u64,
    /// Feeds being read or written now (a gauge).
    pub add_feeds_open: u64,
    /// `Add` streams refused because the handler-wide budget of pending rows or text
    /// bytes was full (also counted in `add_streams_too_large`).
    pub add_streams_over_budget: u64,
    /// Rows that `Add` streams hold in memory, not yet written, over all streams (a
    /// gauge).
    pub pending_rows: u64,
    /// Bytes of path and subject text those rows hold (a gauge).
    pub pending_text_bytes: u64,
    /// The most `pending_rows` may reach: the handler's
    /// [`max_pending_rows`](crate::CountV1HandlerBuilder::max_pending_rows).
    pub pending_rows_limit: u64,
    /// The most `pending_text_bytes` may reach: the handler's
    /// [`max_pending_text_bytes`](crate::CountV1HandlerBuilder::max_pending_text_bytes).
    pub pending_text_bytes_limit: u64,
    /// Requests durably written, by `Add` streams and `AddCounts` calls. An
    /// `AddCounts` batch resent after it was applied counts again: the backend
    /// answers a first write and an already-applied one alike.
    pub requests_written: u64,
    /// Batches durably written: one per `Add` stream with a deadline answered `OK`
    /// that counted something, one per part of a feed, one per `OK` `AddCounts` call.
    pub batches_written: u64,
    /// Write attempts to the counter that failed (`Add` retries included).
    pub write_attempts_failed: u64,
    /// `AddCounts` calls received.
    pub add_counts_calls: u64,
    /// `AddCounts` calls answered `ALREADY_EXISTS`: a batch id already applied with
    /// other counts.
    pub add_counts_conflicts: u64,
    /// When a write last succeeded; `None` before the first.
    pub last_write: Option<Timestamp>,
}

/// How an `Add` stream ended, for its figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddOutcome {
    Ok,
    Invalid,
    TooLarge,
    Unavailable,
    Unknown,
    Failed,
}

/// The shared cells behind [`ServiceStats`].
#[derive(Debug, Default)]
pub(crate) struct StatsCells {
    add_streams: [AtomicU64; 6],
    requests_written: AtomicU64,
    batches_written: AtomicU64,
    write_attempts_failed: AtomicU64,
    add_counts_calls: AtomicU64,
    add_counts_conflicts: AtomicU64,
    add_feeds: AtomicU64,
    over_budget: AtomicU64,
    /// Milliseconds since the Unix epoch; 0 for never.
    last_write_ms: AtomicI64,
}

impl StatsCells {
    pub(crate) fn add_stream(&self, outcome: AddOutcome) {
        self.add_streams[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn written(&self, requests: u64) {
        self.requests_written.fetch_add(requests, Ordering::Relaxed);
        self.batches_written.fetch_add(1, Ordering::Relaxed);
        let now = Timestamp::now().as_millisecond().max(1);
        self.last_write_ms.fetch_max(now, Ordering::Relaxed);
    }

    pub(crate) fn attempt_failed(&self) {
        self.write_attempts_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn feed(&self) {
        self.add_feeds.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn over_budget(&self) {
        self.over_budget.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_counts_call(&self) {
        self.add_counts_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_counts_conflict(&self) {
        self.add_counts_conflicts.fetch_add(1, Ordering::Relaxed);
    }

    /// The figures, with the budget's and the open feeds' gauges.
    pub(crate) fn snapshot(&self, budget: BudgetUse, feeds_open: u64) -> ServiceStats {
        let get = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        let stream = |outcome: AddOutcome| get(&self.add_streams[outcome as usize]);
        let last_ms = self.last_write_ms.load(Ordering::Relaxed);
        ServiceStats {
            add_streams_ok: stream(AddOutcome::Ok),
            add_streams_invalid: stream(AddOutcome::Invalid),
            add_streams_too_large: stream(AddOutcome::TooLarge),
            add_streams_unavailable: stream(AddOutcome::Unavailable),
            add_streams_outcome_unknown: stream(AddOutcome::Unknown),
            add_streams_failed: stream(AddOutcome::Failed),
            add_feeds: get(&self.add_feeds),
            add_feeds_open: feeds_open,
            add_streams_over_budget: get(&self.over_budget),
            pending_rows: budget.rows,
            pending_text_bytes: budget.text_bytes,
            pending_rows_limit: budget.max_rows,
            pending_text_bytes_limit: budget.max_text_bytes,
            requests_written: get(&self.requests_written),
            batches_written: get(&self.batches_written),
            write_attempts_failed: get(&self.write_attempts_failed),
            add_counts_calls: get(&self.add_counts_calls),
            add_counts_conflicts: get(&self.add_counts_conflicts),
            last_write: (last_ms > 0)
                .then(|| Timestamp::from_millisecond(last_ms).ok())
                .flatten(),
        }
    }
}
