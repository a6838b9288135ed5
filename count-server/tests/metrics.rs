//! `/metrics` read with a Prometheus text parser: the figures move as counts flow and
//! rollups run, and follow the backend down (with `/readyz` and gRPC health) and back.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{GET, NOON, Running, Switch, add, add_all, eventually, memory};
use count_core::testkit::Scope;
use count_core::{Counter, Method};
use count_grpc::proto::count::v1 as pb;
use count_server::ServerConfig;
use prometheus_parse::{Scrape, Value};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// The scrape, parsed; the content type checked.
async fn scrape(server: &Running) -> Scrape {
    let reply = server.get("/metrics", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    Scrape::parse(reply.body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// The value of `name` whose labels include `labels`; panics when absent.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no {name}{labels:?} in {:#?}", scrape.samples));
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{name}: {other:?}"),
    }
}

fn has(scrape: &Scrape, name: &str) -> bool {
    scrape.samples.iter().any(|s| s.metric == name)
}

async fn health_of(server: &Running) -> ServingStatus {
    let mut health = HealthClient::new(server.channel().await);
    health
        .check(HealthCheckRequest {
            service: count_server::SERVICE_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_move_as_counts_flow_and_days_roll_up() {
    let (memory, counter) = memory();
    // A finished day waiting to be rolled up, written before the server starts.
    let s = Scope::new();
    memory
        .write(&s.batch(&[(Method::Get, "/old", "2024-01-02T03:00:00Z", 5)]))
        .await
        .unwrap();
    let server = Running::start(ServerConfig::new(), counter).await;
    let mut client = server.client().await;
    let before = scrape(&server).await;
    assert_eq!(
        value(&before, "count_add_streams_total", &[("outcome", "ok")]),
        0.0
    );
    assert_eq!(value(&before, "count_requests_written_total", &[]), 0.0);
    assert_eq!(
        value(&before, "count_last_write_timestamp_seconds", &[]),
        0.0
    );
    assert_eq!(value(&before, "count_backend_up", &[]), 1.0);
    assert_eq!(
        value(
            &before,
            "count_server_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert!(
        !has(&before, "count_backend_retries_total"),
        "not CockroachDB"
    );
    for kind in ["path", "subject"] {
        assert!(value(&before, "count_interner_limit_bytes", &[("kind", kind)]) > 0.0);
        assert_eq!(
            value(&before, "count_interner_refused_total", &[("kind", kind)]),
            0.0
        );
    }
    let paths_before = value(&before, "count_interner_entries", &[("kind", "path")]);

    // A report filtered by subjects nobody counted interns nothing: a filter is text.
    let counted_subjects = value(&before, "count_interner_entries", &[("kind", "subject")]);
    for i in 0..20 {
        let query = format!("/api/v1/totals?period=2024&subject=made-up-filter-{i}");
        let reply = server.get(&query, &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.error());
    }
    let filtered = scrape(&server).await;
    assert_eq!(
        value(&filtered, "count_interner_entries", &[("kind", "subject")]),
        counted_subjects
    );

    add_all(
        &mut client,
        (0..7)
            .map(|i| add(GET, &format!("/metrics-path-{i}"), NOON))
            .collect(),
    )
    .await;
    add_all(&mut client, vec![add(GET, "/again", NOON + 60)]).await;
    let bad = client
        .add(tokio_stream::iter(vec![add(GET, "", NOON)]))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);

    let after = scrape(&server).await;
    assert_eq!(
        value(&after, "count_add_streams_total", &[("outcome", "ok")]),
        2.0
    );
    assert_eq!(
        value(&after, "count_add_streams_total", &[("outcome", "invalid")]),
        1.0
    );
    assert_eq!(value(&after, "count_requests_written_total", &[]), 8.0);
    assert_eq!(value(&after, "count_batches_written_total", &[]), 2.0);
    assert_eq!(value(&after, "count_write_failures_total", &[]), 0.0);
    let now = count_core::jiff::Timestamp::now().as_second() as f64;
    let last_write = value(&after, "count_last_write_timestamp_seconds", &[]);
    assert!(
        (now - 60.0..=now + 1.0).contains(&last_write),
        "{last_write} vs {now}"
    );
    assert!(value(&after, "count_interner_entries", &[("kind", "path")]) >= paths_before + 8.0);
    assert!(value(&after, "count_interner_bytes", &[("kind", "path")]) > 0.0);

    // The rollup scheduler rolled 2024-01-02 up at start.
    eventually("the finished day is rolled up", || async {
        value(&scrape(&server).await, "count_rollup_days_total", &[]) >= 1.0
    })
    .await;
    let rolled = scrape(&server).await;
    assert_eq!(value(&rolled, "count_rollup_unrolled_days", &[]), 0.0);
    assert_eq!(value(&rolled, "count_rollup_failures_total", &[]), 0.0);
    assert!(value(&rolled, "count_rollup_last_timestamp_seconds", &[]) > 0.0);
    server.stop().await.unwrap();

    // Without rollups there are no rollup figures.
    let (_, counter) = common::memory();
    let quiet = Running::start(ServerConfig::new().with_rollup(false), counter).await;
    assert!(!has(&scrape(&quiet).await, "count_rollup_days_total"));
    quiet.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_going_down_and_back_shows_everywhere() {
    let switch = Arc::new(Switch::default());
    let config = ServerConfig::new()
        .with_health_check_every(Duration::from_millis(50))
        .with_add_timeout(Duration::from_secs(1));
    let server = Running::start(config, switch.clone()).await;
    assert_eq!(health_of(&server).await, ServingStatus::Serving);
    assert_eq!(server.get("/readyz", &[]).await.status, 200);

    switch.set_down(true);
    eventually("gRPC health says NOT_SERVING", || async {
        health_of(&server).await == ServingStatus::NotServing
    })
    .await;
    let ready = server.get("/readyz", &[]).await;
    assert_eq!(ready.status, 503);
    // The kind of failure, not the backend's own words (they may name hosts and users).
    assert_eq!(ready.json()["kind"], "unavailable", "{}", ready.error());
    assert!(!ready.error().contains("switched off"), "{}", ready.error());
    let down = scrape(&server).await;
    assert_eq!(value(&down, "count_backend_up", &[]), 0.0);
    assert!(value(&down, "count_backend_health_checks_failed_total", &[]) >= 1.0);
    // A stream now finds nothing written and says so; the failures are counted.
    let status = server
        .client()
        .await
        .add(tokio_stream::iter(vec![add(GET, "/down", NOON)]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let failed = scrape(&server).await;
    assert_eq!(
        value(
            &failed,
            "count_add_streams_total",
            &[("outcome", "unavailable")]
        ),
        1.0
    );
    assert!(value(&failed, "count_write_failures_total", &[]) >= 1.0);
    assert_eq!(value(&failed, "count_requests_written_total", &[]), 0.0);

    switch.set_down(false);
    eventually("gRPC health says SERVING again", || async {
        health_of(&server).await == ServingStatus::Serving
    })
    .await;
    assert_eq!(server.get("/readyz", &[]).await.status, 200);
    assert_eq!(value(&scrape(&server).await, "count_backend_up", &[]), 1.0);
    let mut client = server.client().await;
    client
        .add(tokio_stream::iter(vec![add(GET, "/up", NOON)]))
        .await
        .unwrap();
    let back = scrape(&server).await;
    assert_eq!(value(&back, "count_requests_written_total", &[]), 1.0);
    let totals = client
        .get_period_totals(pb::GetPeriodTotalsRequest {
            period: Some(common::date(2024, 3, 10)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(totals.method_counts.len(), 1);
    server.stop().await.unwrap();
}
