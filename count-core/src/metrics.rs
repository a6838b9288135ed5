//! The pipeline's own figures through the [`metrics`] facade (feature `metrics`), so
//! they reach whatever exporter the application installed (Prometheus, StatsD, ...).
//!
//! Published by the flusher on each flush tick and after each write, and by the
//! rollup scheduler after each check — never by `record`. Counters carry
//! absolute values (`metrics`' `absolute`), so publishing twice is harmless.
//!
//! The names, with what each means, are in [`crate::figures`].

use metrics::{counter, gauge};

use crate::figures::*;
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
            stored_bytes,
            refused,
            ..
        } = usage;
        let k = [("kind", kind)];
        gauge!(INTERNER_ENTRIES, &k).set(entries as f64);
        gauge!(INTERNER_BYTES, &k).set(bytes as f64);
        gauge!(INTERNER_STORED_BYTES, &k).set(stored_bytes as f64);
        gauge!(INTERNER_LIMIT_BYTES, &k).set(limit as f64);
        counter!(INTERNER_REFUSED, &k).absolute(refused);
    }
}

/// Publishes a rollup scheduler's figures.
pub(crate) fn publish_rollup(stats: &RollupStats) {
    counter!(ROLLUP_DAYS).absolute(stats.days_rolled);
    counter!(ROLLUP_FAILURES).absolute(stats.failures);
    gauge!(ROLLUP_UNROLLED_DAYS).set(stats.unrolled_days as f64);
    gauge!(ROLLUP_FAILING_DAYS).set(stats.failing_days.len() as f64);
    if let Some(at) = stats.last_rollup {
        gauge!(ROLLUP_LAST_TIMESTAMP_SECONDS).set(at.as_millisecond() as f64 / 1000.0);
    }
}
