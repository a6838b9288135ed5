//! The pipeline's own figures through the [`metrics`] facade (feature `metrics`), so
//! they reach whatever exporter the application installed (Prometheus, StatsD, ...).
//!
//! Published by the flusher on each flush tick and after each write, and by the
//! rollup scheduler after each check — never by `record`. Counters carry
//! absolute values (`metrics`' `absolute`), so publishing twice is harmless.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `count_queue_recorded_total` | counter | `queue` |
//! | `count_queue_dropped_total` | counter | `queue`, `cause` = `full` / `closed` |
//! | `count_queue_overflowed_total` | counter | `queue`, `dimension` = `endpoint` / `subject` |
//! | `count_queue_coarsened_total` | counter | `queue` |
//! | `count_queue_lost_total` | counter | `queue`, `cause` = `rejected` / `other` |
//! | `count_queue_in_doubt_total` | counter | `queue` |
//! | `count_queue_statuses_dropped_total` | counter | `queue` |
//! | `count_queue_pending` | gauge | `queue` |
//! | `count_queue_written_total` | counter | `queue` |
//! | `count_queue_batches_written_total` | counter | `queue` |
//! | `count_queue_write_failures_total` | counter | `queue` |
//! | `count_queue_write_panics_total` | counter | `queue` |
//! | `count_queue_last_write_timestamp_seconds` | gauge | `queue` |
//! | `count_interner_entries` | gauge | `kind` = `path` / `subject` |
//! | `count_interner_bytes` | gauge | `kind` |
//! | `count_interner_limit_bytes` | gauge | `kind` |
//! | `count_interner_refused_total` | counter | `kind` |
//! | `count_rollup_days_total` | counter | |
//! | `count_rollup_failures_total` | counter | |
//! | `count_rollup_last_timestamp_seconds` | gauge | |
//! | `count_rollup_unrolled_days` | gauge | |

use metrics::{counter, gauge};

use crate::{InternerUse, Path, RollupStats, Stats, Subject};

/// Publishes a queue's figures under the label `queue = name`.
pub(crate) fn publish_queue(name: &'static str, stats: &Stats) {
    let q = [("queue", name)];
    counter!("count_queue_recorded_total", &q).absolute(stats.recorded);
    counter!("count_queue_dropped_total", "queue" => name, "cause" => "full")
        .absolute(stats.dropped_full);
    counter!("count_queue_dropped_total", "queue" => name, "cause" => "closed")
        .absolute(stats.dropped_closed);
    counter!("count_queue_overflowed_total", "queue" => name, "dimension" => "endpoint")
        .absolute(stats.overflowed);
    counter!("count_queue_overflowed_total", "queue" => name, "dimension" => "subject")
        .absolute(stats.overflowed_subjects);
    counter!("count_queue_coarsened_total", &q).absolute(stats.coarsened);
    counter!("count_queue_lost_total", "queue" => name, "cause" => "rejected")
        .absolute(stats.rejected);
    counter!("count_queue_lost_total", "queue" => name, "cause" => "other")
        .absolute(stats.lost - stats.rejected);
    counter!("count_queue_in_doubt_total", &q).absolute(stats.in_doubt);
    counter!("count_queue_statuses_dropped_total", &q).absolute(stats.statuses_dropped);
    gauge!("count_queue_pending", &q).set(stats.pending as f64);
    counter!("count_queue_written_total", &q).absolute(stats.written);
    counter!("count_queue_batches_written_total", &q).absolute(stats.batches_written);
    counter!("count_queue_write_failures_total", &q).absolute(stats.write_failures);
    counter!("count_queue_write_panics_total", &q).absolute(stats.write_panics);
    if let Some(at) = stats.last_write {
        gauge!("count_queue_last_write_timestamp_seconds", &q)
            .set(at.as_millisecond() as f64 / 1000.0);
    }
    publish_interners();
}

/// Publishes what the path and subject interners hold.
pub(crate) fn publish_interners() {
    for (kind, usage) in [("path", Path::interned()), ("subject", Subject::interned())] {
        let InternerUse {
            entries,
            bytes,
            limit,
            refused,
            ..
        } = usage;
        let k = [("kind", kind)];
        gauge!("count_interner_entries", &k).set(entries as f64);
        gauge!("count_interner_bytes", &k).set(bytes as f64);
        gauge!("count_interner_limit_bytes", &k).set(limit as f64);
        counter!("count_interner_refused_total", &k).absolute(refused);
    }
}

/// Publishes a rollup scheduler's figures.
pub(crate) fn publish_rollup(stats: &RollupStats) {
    counter!("count_rollup_days_total").absolute(stats.days_rolled);
    counter!("count_rollup_failures_total").absolute(stats.failures);
    gauge!("count_rollup_unrolled_days").set(stats.unrolled_days as f64);
    if let Some(at) = stats.last_rollup {
        gauge!("count_rollup_last_timestamp_seconds").set(at.as_millisecond() as f64 / 1000.0);
    }
}
