//! The limits: a message over the size limit is refused before it is read, and calls
//! past the concurrency limit wait for a free slot; limits that would stop every
//! call are refused at start.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{GET, NOON, Running, add, memory};
use count_core::testkit::{Fault, FlakyCounter};
use count_grpc::proto::count::v1 as pb;
use count_memory::MemoryCounter;
use count_server::ServerConfig;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused_before_they_are_read() {
    let (_, counter) = memory();
    let config = ServerConfig::new().with_max_message_bytes(64 * 1024);
    let server = Running::start(config, counter).await;
    let mut client = server.client().await;
    let huge = add(GET, &"/x".repeat(100_000), NOON);
    let status = client
        .add(tokio_stream::iter(vec![huge]))
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{status:?}"
    );
    // The server is still there for the next call.
    client
        .add(tokio_stream::iter(vec![add(GET, "/small", NOON)]))
        .await
        .unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_concurrency_limit_wait_their_turn() {
    let (_, counter) = memory();
    let server = Running::start(ServerConfig::new().with_max_concurrent_calls(1), counter).await;
    let mut streaming = server.client().await;
    let (send, receive) = tokio::sync::mpsc::channel(4);
    send.send(add(GET, "/held", NOON)).await.unwrap();
    let held = tokio::spawn(async move {
        streaming
            .add(tokio_stream::wrappers::ReceiverStream::new(receive))
            .await
    });
    // Time for the stream's call to reach the server and take the one slot.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut other = server.client().await;
    let report = pb::GetPeriodTotalsRequest {
        period: Some(common::date(2024, 0, 0)),
    };
    let waiting =
        tokio::time::timeout(Duration::from_millis(300), other.get_period_totals(report)).await;
    assert!(
        waiting.is_err(),
        "a second call ran beside the first: {waiting:?}"
    );
    // HTTP requests share the slots.
    let http = tokio::time::timeout(Duration::from_millis(300), server.get("/healthz", &[])).await;
    assert!(
        http.is_err(),
        "an HTTP request ran beside the call: {http:?}"
    );
    drop(send);
    held.await.unwrap().unwrap();
    let totals = other.get_period_totals(report).await.unwrap().into_inner();
    assert_eq!(totals.method_counts.len(), 1);
    assert_eq!(server.get("/healthz", &[]).await.status, 200);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_that_would_stop_every_call_are_refused_at_start() {
    for (config, words) in [
        (
            ServerConfig::new().with_max_concurrent_calls(0),
            "max concurrent calls",
        ),
        (
            ServerConfig::new().with_max_streams_per_connection(0),
            "max streams per connection",
        ),
        (
            ServerConfig::new().with_max_message_bytes(100),
            "at least 1024",
        ),
    ] {
        let (_, counter) = memory();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let error = count_server::serve_counter(config, counter, listener, async {})
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(words), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_add_whose_write_outlives_the_add_timeout_is_answered_at_the_deadline() {
    let flaky = Arc::new(FlakyCounter::new(MemoryCounter::new()));
    flaky.plan([Fault::Delay(Duration::from_secs(5))]);
    let config = ServerConfig::new().with_add_timeout(Duration::from_secs(1));
    let server = Running::start(config, flaky.clone()).await;
    let started = Instant::now();
    let status = server
        .client()
        .await
        .add(tokio_stream::iter(vec![add(GET, "/slow", NOON)]))
        .await
        .unwrap_err();
    let took = started.elapsed();
    // The write may still land: the outcome is unknown, and said so.
    assert_eq!(status.code(), Code::Unknown, "{status:?}");
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    let metrics = server.get("/metrics", &[]).await.body;
    assert!(
        metrics.contains("count_add_streams_total{outcome=\"outcome_unknown\"} 1"),
        "{metrics}"
    );
    server.stop().await.unwrap();
}
