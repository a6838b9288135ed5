//! The names of the figures count publishes about itself, one set wherever they are
//! exported: the `metrics` feature emits them through the [`metrics`] facade (see
//! [`crate::CountQueue`] and [`crate::RollupScheduler`]), and count-server's
//! `/metrics` serves the same names for the figures it shares with the library.
//! Counters end in `_total`, as Prometheus names them.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `count_queue_recorded_total` | counter | `queue` | requests recorded |
//! | `count_queue_dropped_total` | counter | `queue`, `cause` = `full` / `closed` | requests dropped at `record` |
//! | `count_queue_overflowed_total` | counter | `queue`, `dimension` = `endpoint` / `subject` | requests counted under the overflow endpoint or subject |
//! | `count_queue_coarsened_total` | counter | `queue` | requests whose status was dropped to keep a key |
//! | `count_queue_lost_total` | counter | `queue`, `cause` = `rejected` / `other` | requests that will not be written |
//! | `count_queue_in_doubt_total` | counter | `queue` | requests in a write whose outcome is unknown |
//! | `count_queue_statuses_dropped_total` | counter | `queue` | statuses of the wrong kind dropped |
//! | `count_queue_pending` | gauge | `queue` | requests recorded, not yet written |
//! | `count_queue_written_total` | counter | `queue` | requests written |
//! | `count_queue_batches_written_total` | counter | `queue` | batches written |
//! | `count_queue_write_failures_total` | counter | `queue` | write attempts that failed |
//! | `count_queue_write_panics_total` | counter | `queue` | writes that panicked |
//! | `count_queue_last_write_timestamp_seconds` | gauge | `queue` | the last write, Unix seconds |
//! | [`INTERNER_ENTRIES`] | gauge | `kind` = `path` / `subject` | distinct texts held in memory |
//! | [`INTERNER_BYTES`] | gauge | `kind` | the memory of those counted, as the cap counts it |
//! | [`INTERNER_STORED_BYTES`] | gauge | `kind` | the memory of those first read back from storage (outside the cap) |
//! | [`INTERNER_LIMIT_BYTES`] | gauge | `kind` | the cap |
//! | [`INTERNER_REFUSED`] | counter | `kind` | new texts refused at the cap |
//! | [`ROLLUP_DAYS`] | counter | | days rolled up |
//! | [`ROLLUP_FAILURES`] | counter | | rollups of a day that failed (retried later) |
//! | [`ROLLUP_UNROLLED_DAYS`] | gauge | | finished days still holding counts not rolled up |
//! | [`ROLLUP_FAILING_DAYS`] | gauge | | days whose last rollup failed |
//! | [`ROLLUP_LAST_TIMESTAMP_SECONDS`] | gauge | | the last successful rollup, Unix seconds |

/// Distinct texts held in memory, by `kind`.
pub const INTERNER_ENTRIES: &str = "count_interner_entries";
/// The memory of the texts counted, as the cap counts it, by `kind`.
pub const INTERNER_BYTES: &str = "count_interner_bytes";
/// The memory of the texts first read back from storage, by `kind`.
pub const INTERNER_STORED_BYTES: &str = "count_interner_stored_bytes";
/// The cap on [`INTERNER_BYTES`], by `kind`.
pub const INTERNER_LIMIT_BYTES: &str = "count_interner_limit_bytes";
/// New texts refused at the cap, by `kind`.
pub const INTERNER_REFUSED: &str = "count_interner_refused_total";
/// Days rolled up.
pub const ROLLUP_DAYS: &str = "count_rollup_days_total";
/// Rollups of a day that failed.
pub const ROLLUP_FAILURES: &str = "count_rollup_failures_total";
/// Finished days still holding counts not rolled up.
pub const ROLLUP_UNROLLED_DAYS: &str = "count_rollup_unrolled_days";
/// Days whose last rollup failed.
pub const ROLLUP_FAILING_DAYS: &str = "count_rollup_failing_days";
/// The last successful rollup, in Unix seconds.
pub const ROLLUP_LAST_TIMESTAMP_SECONDS: &str = "count_rollup_last_timestamp_seconds";
