//! `/metrics`: the server's own figures in the Prometheus text format (0.0.4),
//! encoded by `prometheus-client`. Nothing is copied into metric objects: at each
//! scrape a collector reads the figures where they live (the count.v1 handler's
//! stats, the rollup scheduler's, the backend's retries, the interners, the health
//! watch), so a scrape always shows the current values and nothing can drift.
//!
//! Every name is listed in the crate docs (`lib.rs`, "Metrics").

use std::fmt;
use std::sync::Arc;

use count_core::RollupScheduler;
use count_core::figures::{self, Figure, Value};
use count_core::jiff::Timestamp;
use count_grpc::CountV1Handler;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::connection::ConnectionFigures;
use crate::health::{BackendHealth, WriteHealth};
use crate::limits::Limits;
use count::{Backend, Opened};

/// The content type of [`Metrics::render`]'s text.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The registry behind `/metrics`.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub(crate) fn new(figures: Figures) -> Metrics {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(figures));
        Metrics { registry }
    }

    /// The current figures as Prometheus text.
    pub(crate) fn render(&self) -> String {
        let mut text = String::with_capacity(4096);
        // Writing to a String cannot fail; the collector only fails when writing does.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// Where the figures are read from at each scrape.
#[derive(Debug)]
pub(crate) struct Figures {
    pub(crate) handler: CountV1Handler,
    /// `None` when rollups are turned off.
    pub(crate) rollups: Option<RollupScheduler>,
    pub(crate) backend: Opened,
    pub(crate) health: Arc<BackendHealth>,
    pub(crate) writes: Arc<WriteHealth>,
    pub(crate) limits: Arc<Limits>,
    pub(crate) connections: Arc<ConnectionFigures>,
    pub(crate) usage: Arc<crate::usage::UsageWatch>,
}

/// A counter's name without Prometheus' `_total`, which the encoder adds.
fn base(name: &'static str) -> &'static str {
    name.strip_suffix("_total").unwrap_or(name)
}

impl Collector for Figures {
    fn encode(&self, mut out: DescriptorEncoder) -> fmt::Result {
        let out = &mut out;
        let stats = self.handler.stats();
        counter_family(
            out,
            "count_add_streams",
            "Add streams answered, by outcome: ok (written), invalid (a bad message; nothing \
             written), too_large (over the rows a stream may hold; nothing written), \
             unavailable (nothing written; safe to resend), outcome_unknown (do not resend \
             blindly), failed (any other error), refused (--max-add-streams were open; \
             nothing read).",
            "outcome",
            &[
                ("ok", stats.add_streams_ok),
                ("invalid", stats.add_streams_invalid),
                ("too_large", stats.add_streams_too_large),
                ("unavailable", stats.add_streams_unavailable),
                ("outcome_unknown", stats.add_streams_outcome_unknown),
                ("failed", stats.add_streams_failed),
                ("refused", self.limits.refused_add_streams()),
            ],
        )?;
        counter(
            out,
            "count_calls_timed_out",
            "Calls other than Add ended because their request body stopped coming \
             (--request-read-timeout), or their grpc-timeout passed.",
            self.limits.timed_out_calls(),
        )?;
        counter(
            out,
            "count_add_counts_calls",
            "AddCounts calls received (batches from GrpcCounter clients).",
            stats.add_counts_calls,
        )?;
        counter(
            out,
            "count_add_counts_conflicts",
            "AddCounts calls refused because their batch id was already applied with other counts.",
            stats.add_counts_conflicts,
        )?;
        counter(
            out,
            "count_requests_written",
            "Requests durably written to the backend (Add streams and AddCounts; an AddCounts \
             batch resent after it was applied counts again, as the backend answers both \
             alike).",
            stats.requests_written,
        )?;
        counter(
            out,
            "count_batches_written",
            "Batches durably written to the backend (AddCounts resends included).",
            stats.batches_written,
        )?;
        counter(
            out,
            "count_write_failures",
            "Write attempts to the backend that failed (each retried or answered as an error).",
            stats.write_attempts_failed,
        )?;
        gauge(
            out,
            "count_last_write_timestamp_seconds",
            "When a write to the backend last succeeded, in Unix seconds (0: never since start).",
            seconds(stats.last_write),
        )?;

        if let Some(rollups) = &self.rollups {
            for figure in figures::rollup(&rollups.stats()) {
                encode(out, &figure)?;
            }
        }

        if let Backend::Cockroach(cockroach) = self.backend.backend() {
            let retries = cockroach.retries();
            counter_family(
                out,
                "count_backend_retries",
                "CockroachDB transactions retried, by kind: restart (40001) or ambiguous \
                 (40003, or a connection lost during COMMIT).",
                "kind",
                &[
                    ("restart", retries.restarts),
                    ("ambiguous", retries.ambiguous),
                ],
            )?;
            counter(
                out,
                "count_backend_retries_exhausted",
                "CockroachDB operations that still failed after the retry policy's last attempt.",
                retries.gave_up,
            )?;
        }

        for figure in figures::interners() {
            encode(out, &figure)?;
        }

        let connections = &self.connections;
        gauge(
            out,
            "count_open_connections",
            "Connections open now (at most --max-connections).",
            connections.open() as f64,
        )?;
        counter(
            out,
            "count_connections_timed_out",
            "Connections closed because they sent no request, or no request head, within \
             --header-read-timeout.",
            connections.timed_out(),
        )?;
        counter(
            out,
            "count_connection_errors",
            "Connections that ended in an error (a GOAWAY sent or received, a protocol \
             error), logged at warn once every 10 s at most; clients going away are not \
             counted.",
            connections.failed(),
        )?;

        let health = self.health.snapshot();
        gauge(
            out,
            "count_backend_up",
            "1 when the backend answered its last health check, else 0.",
            if health.up { 1.0 } else { 0.0 },
        )?;
        counter(
            out,
            "count_backend_health_checks_failed",
            "Health checks of the backend that failed or timed out.",
            health.checks_failed,
        )?;
        let (failing, _) = self.writes.failing_for();
        gauge(
            out,
            "count_writes_failing_seconds",
            "How long every write has failed with none succeeding since (0 while writes \
             succeed); past --unready-after-failing-writes the server is not ready.",
            failing.as_secs_f64(),
        )?;

        usage_families(out, &self.usage)?;

        let info = ConstGauge::new(1_i64);
        let mut encoder = out.encode_descriptor(
            "count_server_info",
            "Always 1; the labels say which version serves on which backend.",
            None,
            info.metric_type(),
        )?;
        info.encode(encoder.encode_family(&[
            ("version", env!("CARGO_PKG_VERSION")),
            ("backend", self.backend.kind().as_str()),
        ])?)
    }
}

fn seconds(at: Option<Timestamp>) -> f64 {
    at.map_or(0.0, |at| at.as_millisecond() as f64 / 1000.0)
}

fn counter(out: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let metric = ConstCounter::new(value);
    metric.encode(out.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// The subjects nearest their limits: used, amount and their ratio, labelled by
/// subject and limit (at most [`crate::usage::NEAREST`] of them).
fn usage_families(out: &mut DescriptorEncoder, watch: &crate::usage::UsageWatch) -> fmt::Result {
    let nearest = watch.nearest();
    type Read = fn(&count_core::limits::Usage) -> f64;
    let families: [(&str, &str, Read); 3] = [
        (
            "count_limit_usage_ratio",
            "Used over amount in the window holding now, for the subjects nearest their limits (read every 15 s; at most 20).",
            |u| u.share(),
        ),
        (
            "count_limit_used",
            "Requests a limit counted in the window holding now, for the same subjects and limits.",
            |u| u.used as f64,
        ),
        (
            "count_limit_amount",
            "The subject's amount of the limit, for the same subjects and limits.",
            |u| u.amount as f64,
        ),
    ];
    for (name, help, value) in families {
        let mut encoder = out.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for u in &nearest {
            let labels = [("subject", u.subject.as_str()), ("limit", u.limit.as_str())];
            ConstGauge::new(value(u)).encode(encoder.encode_family(&labels)?)?;
        }
    }
    let failures = ConstCounter::new(watch.failures());
    failures.encode(out.encode_descriptor(
        "count_limit_usage_read_failures",
        "Readings of usage against limits that failed (logged).",
        None,
        failures.metric_type(),
    )?)?;
    gauge(
        out,
        "count_limit_usage_read_timestamp_seconds",
        "When usage against limits was last read (0: not yet).",
        watch.read_at() as f64,
    )
}

fn gauge(out: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(out.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn counter_family(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(&str, u64)],
) -> fmt::Result {
    let mut encoder = out.encode_descriptor(name, help, None, MetricType::Counter)?;
    for &(value, n) in values {
        ConstCounter::new(n).encode(encoder.encode_family(&[(label, value)])?)?;
    }
    Ok(())
}

/// A figure the library defines, encoded as it defines it.
fn encode(out: &mut DescriptorEncoder, figure: &Figure) -> fmt::Result {
    let kind = match figure.values.first() {
        Some((_, Value::Counter(_))) => MetricType::Counter,
        _ => MetricType::Gauge,
    };
    let mut encoder = out.encode_descriptor(base(figure.name), figure.help, None, kind)?;
    for &(label, value) in &figure.values {
        let Some(name) = figure.label else {
            // One value without a label: the descriptor's own metric.
            return encode_value(value, encoder);
        };
        let labels = [(name, label)];
        encode_value(value, encoder.encode_family(&labels)?)?;
    }
    Ok(())
}

fn encode_value(value: Value, metric: MetricEncoder<'_>) -> fmt::Result {
    match value {
        Value::Counter(n) => ConstCounter::new(n).encode(metric),
        Value::Gauge(x) => ConstGauge::new(x).encode(metric),
    }
}
