//! The pipeline's own figures through the [`metrics`] facade (feature `metrics`), so
//! they reach whatever exporter the application installed (Prometheus, StatsD, ...).
//!
//! Published by the flusher on each flush tick and after each write, and by the
//! rollup scheduler after each check — never by `record`. Counters carry
//! absolute values (`metrics`' `absolute`), so publishing twice is harmless.
//!
//! The names, with what each means, are in [`crate::figures`].

use metrics::{counter, gauge};

use crate::figures::{self, Figure, Value};
use crate::{RollupStats, Stats};

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
    publish(figures::interners());
}

/// Publishes a rollup scheduler's figures.
pub(crate) fn publish_rollup(stats: &RollupStats) {
    publish(figures::rollup(stats));
}

fn publish(figures: Vec<Figure>) {
    for figure in figures {
        for (label, value) in figure.values {
            let labels: &[(&str, &str)] = match figure.label {
                Some(name) => &[(name, label)],
                None => &[],
            };
            match value {
                Value::Counter(n) => counter!(figure.name, labels).absolute(n),
                Value::Gauge(x) => gauge!(figure.name, labels).set(x),
            }
        }
    }
}
