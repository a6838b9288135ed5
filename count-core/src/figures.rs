//! The figures count publishes about itself, one set wherever they are exported: the
//! `metrics` feature emits them through the `metrics` facade (see
//! [`crate::CountQueue`] and [`crate::RollupScheduler`]), and count-server's
//! `/metrics` encodes the same [`Figure`]s ([`interners`], [`rollup`]) for what it
//! shares with the library: names, help and values are made here once. Counters end
//! in `_total`, as Prometheus names them.
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

use crate::{InternerUse, Path, RollupStats, Subject};

/// A figure's value: a counter only grows, a gauge goes up and down.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// The total so far.
    Counter(u64),
    /// The value now.
    Gauge(f64),
}

/// One figure, as every exporter shows it: a name, what it means, and its values,
/// each under one value of the figure's label (or one value without a label).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Figure {
    /// The name, e.g. [`INTERNER_ENTRIES`].
    pub name: &'static str,
    /// What it means, for the exporter's help text.
    pub help: &'static str,
    /// The label's name (`kind`); `None`: one value without a label.
    pub label: Option<&'static str>,
    /// The values, each with its label's value (`""` without a label).
    pub values: Vec<(&'static str, Value)>,
}

impl Figure {
    fn one(name: &'static str, help: &'static str, value: Value) -> Figure {
        Figure {
            name,
            help,
            label: None,
            values: vec![("", value)],
        }
    }
}

/// What the path and subject interners hold now, under the label `kind`.
pub fn interners() -> Vec<Figure> {
    let uses = [("path", Path::interned()), ("subject", Subject::interned())];
    let by_kind = |name, help, value: fn(&InternerUse) -> Value| Figure {
        name,
        help,
        label: Some("kind"),
        values: uses
            .iter()
            .map(|(kind, use_)| (*kind, value(use_)))
            .collect(),
    };
    vec![
        by_kind(
            INTERNER_ENTRIES,
            "Distinct texts held in memory, by kind (path or subject).",
            |u| Value::Gauge(u.entries as f64),
        ),
        by_kind(
            INTERNER_BYTES,
            "Memory held by distinct texts, by kind, as the cap counts it.",
            |u| Value::Gauge(u.bytes as f64),
        ),
        by_kind(
            INTERNER_STORED_BYTES,
            "Memory held by distinct texts first read back from storage, by kind \
             (outside the cap).",
            |u| Value::Gauge(u.stored_bytes as f64),
        ),
        by_kind(
            INTERNER_LIMIT_BYTES,
            "The cap on count_interner_bytes for new texts, by kind.",
            |u| Value::Gauge(u.limit as f64),
        ),
        by_kind(
            INTERNER_REFUSED,
            "New texts refused because the cap was reached, by kind.",
            |u| Value::Counter(u.refused),
        ),
    ]
}

/// A rollup scheduler's figures.
pub fn rollup(stats: &RollupStats) -> Vec<Figure> {
    let last = stats
        .last_rollup
        .map_or(0.0, |at| at.as_millisecond() as f64 / 1000.0);
    vec![
        Figure::one(
            ROLLUP_DAYS,
            "Days rolled up.",
            Value::Counter(stats.days_rolled),
        ),
        Figure::one(
            ROLLUP_FAILURES,
            "Rollups of a day that failed (each is tried again later).",
            Value::Counter(stats.failures),
        ),
        Figure::one(
            ROLLUP_LAST_TIMESTAMP_SECONDS,
            "When a day was last rolled up, in Unix seconds (0: never since start).",
            Value::Gauge(last),
        ),
        Figure::one(
            ROLLUP_UNROLLED_DAYS,
            "Finished days still holding counts not rolled up, as of the last check.",
            Value::Gauge(stats.unrolled_days as f64),
        ),
        Figure::one(
            ROLLUP_FAILING_DAYS,
            "Days whose last rollup failed.",
            Value::Gauge(stats.failing_days.len() as f64),
        ),
    ]
}
