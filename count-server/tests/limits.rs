//! The limits: a message over the size limit is refused before it is read, an
//! answer has a larger limit of its own; calls past the concurrency limit wait for a
//! free slot, Add streams past theirs are refused, and neither holds up the probes;
//! limits that would stop every call are refused at start.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{GET, Held, NOON, Running, Switch, add, hold_a_stream, memory};
use count::memory::MemoryCounter;
use count_core::testkit::{Fault, FlakyCounter, Scope};
use count_core::{Counter, Method};
use count_grpc::proto::count::v1 as pb;
use count_grpc::proto::count::v1::count_service_client::CountServiceClient;
use count_server::ServerConfig;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

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

/// Idle streams cannot starve anything: they have their own cap (past it a stream is
/// refused at once), reports and API requests theirs (past it they wait), and the
/// probes, /metrics and the page answer while both are full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_metrics_and_the_page_answer_while_every_slot_is_taken() {
    let switch = Arc::new(Switch::default());
    let config = ServerConfig::new()
        .with_max_concurrent_calls(1)
        .with_max_add_streams(2);
    let server = Running::start(config, switch.clone()).await;
    let held = [
        hold_a_stream(server.client().await).await,
        hold_a_stream(server.client().await).await,
    ];
    // Time for both to reach the server and take the two Add slots.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        held.iter().all(|h| !h.call.is_finished()),
        "a held stream ended"
    );
    let mut client = server.client().await;
    let refused = tokio::time::timeout(
        Duration::from_secs(2),
        client.add(tokio_stream::iter(vec![add(GET, "/third", NOON)])),
    )
    .await
    .expect("an answer at once, not a wait")
    .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("--max-add-streams"),
        "{refused:?}"
    );

    // The streams hold no call slot: a report answers (NOT_FOUND while nothing is
    // written).
    let report = pb::GetPeriodTotalsRequest {
        period: Some(common::date(2024, 0, 0)),
    };
    let answer = tokio::time::timeout(Duration::from_secs(2), client.get_period_totals(report))
        .await
        .expect("a report beside the held streams");
    assert!(
        answer
            .as_ref()
            .map_or_else(|status| status.code() == Code::NotFound, |_| true),
        "{answer:?}"
    );

    // An API request takes the one call slot and waits on the backend.
    switch.hold_reports(true);
    let address = server.address;
    let api = tokio::spawn(async move {
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        common::http1_get(tcp, &address.to_string(), "/api/v1/totals?period=2024", &[]).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A second call waits its turn.
    let waiting =
        tokio::time::timeout(Duration::from_millis(300), client.get_period_totals(report)).await;
    assert!(
        waiting.is_err(),
        "a second call ran beside the first: {waiting:?}"
    );

    // Everything outside the limits answers.
    for path in ["/healthz", "/readyz", "/metrics", "/"] {
        let reply = tokio::time::timeout(Duration::from_secs(2), server.get(path, &[]))
            .await
            .unwrap_or_else(|_| panic!("{path} waited behind the held calls and streams"));
        assert_eq!(reply.status, 200, "{path}");
    }
    let mut health = HealthClient::new(server.channel().await);
    let status = tokio::time::timeout(
        Duration::from_secs(2),
        health.check(HealthCheckRequest {
            service: count_server::SERVICE_NAME.into(),
        }),
    )
    .await
    .expect("gRPC health waited behind the held calls and streams")
    .unwrap()
    .into_inner()
    .status();
    assert_eq!(status, ServingStatus::Serving);
    let metrics = server.get("/metrics", &[]).await.body;
    assert!(
        metrics.contains("count_add_streams_total{outcome=\"refused\"} 1"),
        "{metrics}"
    );

    // Once the backend answers, the waiting call runs.
    switch.hold_reports(false);
    assert_eq!(api.await.unwrap().status, 200);
    let waited = tokio::time::timeout(Duration::from_secs(2), client.get_period_totals(report))
        .await
        .expect("the waiting call runs once the slot is free");
    assert!(waited.is_ok() || waited.unwrap_err().code() == Code::NotFound);
    // The held streams end well, and free their slots.
    for Held { send, call } in held {
        drop(send);
        call.await.unwrap().unwrap();
    }
    client
        .add(tokio_stream::iter(vec![add(GET, "/after", NOON)]))
        .await
        .unwrap();
    // Both held streams, and the one after.
    let totals = client.get_period_totals(report).await.unwrap().into_inner();
    let paths: Vec<_> = totals
        .method_counts
        .iter()
        .map(|t| (t.path.as_str(), t.count))
        .collect();
    assert_eq!(paths, [("/after", 1), ("/held", 2)]);
    server.stop().await.unwrap();
}

/// A report larger than the request limit (a day of 50,000 endpoints is over 4 MiB)
/// is answered: answers have a limit of their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_over_the_request_limit_is_answered() {
    let (memory, counter) = memory();
    let rows: Vec<_> = (0..50_000)
        .map(|i| (Method::Get, format!("/{i:0>99}"), "2024-03-10T12:00:00Z", 1))
        .collect();
    let scope = Scope::new();
    let refs: Vec<_> = rows
        .iter()
        .map(|(m, p, at, n)| (*m, p.as_str(), *at, *n))
        .collect();
    memory.write(&scope.batch(&refs)).await.unwrap();
    let day = pb::CountDailyTotalsRequest {
        date: Some(common::date(2024, 3, 10)),
    };

    let server = Running::start(ServerConfig::new(), counter.clone()).await;
    let mut client =
        CountServiceClient::new(server.channel().await).max_decoding_message_size(64 << 20);
    let totals = client.count_daily_totals(day).await.unwrap().into_inner();
    assert_eq!(totals.method_counts.len(), 50_000);
    server.stop().await.unwrap();

    // The limit holds: a smaller one refuses the answer, not the server.
    let config = ServerConfig::new().with_max_response_bytes(1 << 20);
    let server = Running::start(config, counter).await;
    let mut client =
        CountServiceClient::new(server.channel().await).max_decoding_message_size(64 << 20);
    let status = client.count_daily_totals(day).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
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
        (
            ServerConfig::new().with_max_add_streams(0),
            "max add streams",
        ),
        (
            ServerConfig::new().with_max_connections(0),
            "max connections",
        ),
        (
            ServerConfig::new().with_max_streams_per_connection(1000),
            "must be from 1 to 326",
        ),
    ] {
        let error = Running::refused(config).await.to_string();
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

/// A gRPC call over its own HTTP/2 connection, whose request body is `body`; the
/// answer's `grpc-status` (from the head, or the trailers) once it comes.
async fn raw_grpc_call<B>(
    address: std::net::SocketAddr,
    method: &str,
    headers: &[(&str, &str)],
    body: B,
) -> tokio::task::JoinHandle<String>
where
    B: hyper::body::Body<Data = hyper::body::Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let mut request =
        http::Request::post(format!("http://{address}/count.v1.CountService/{method}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body).unwrap();
    tokio::spawn(async move {
        let response = sender.send_request(request).await.unwrap();
        if let Some(code) = response.headers().get("grpc-status") {
            return code.to_str().unwrap().to_owned();
        }
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap_or_default();
        trailers["grpc-status"].to_str().unwrap().to_owned()
    })
}

/// A request body that never comes.
fn never() -> http_body_util::StreamBody<
    tokio_stream::Pending<Result<hyper::body::Frame<hyper::body::Bytes>, std::io::Error>>,
> {
    http_body_util::StreamBody::new(tokio_stream::pending())
}

/// Calls that send their headers, or a byte of their body, and then nothing hold no
/// call slot: another client's report and the API answer while 16 such calls are
/// open with 4 slots, and those calls are ended (DEADLINE_EXCEEDED) once
/// `--request-read-timeout` passes without more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_whose_body_never_comes_hold_no_slot() {
    let (_, counter) = memory();
    let read_timeout = Duration::from_secs(3);
    let config = ServerConfig::new()
        .with_max_concurrent_calls(4)
        .with_request_read_timeout(read_timeout);
    let server = Running::start(config, counter).await;
    let mut stalled = Vec::new();
    for _ in 0..8 {
        stalled.push(raw_grpc_call(server.address, "GetPeriodTotals", &[], never()).await);
        let one_byte = tokio_stream::once(Ok::<_, std::io::Error>(hyper::body::Frame::data(
            hyper::body::Bytes::from_static(&[0]),
        )))
        .chain(tokio_stream::pending());
        let body = http_body_util::StreamBody::new(Box::pin(one_byte));
        stalled.push(raw_grpc_call(server.address, "GetPeriodTotals", &[], body).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let report = pb::GetPeriodTotalsRequest {
        period: Some(common::date(2024, 3, 10)),
    };
    let mut client = server.client().await;
    let answer = tokio::time::timeout(Duration::from_secs(2), client.get_period_totals(report))
        .await
        .expect("a report waited behind calls that sent nothing");
    assert_eq!(answer.unwrap_err().code(), Code::NotFound);
    let api = tokio::time::timeout(
        Duration::from_secs(2),
        server.get("/api/v1/totals?period=2024-03-10", &[]),
    )
    .await
    .expect("the API waited behind calls that sent nothing");
    assert_eq!(api.status, 200, "{}", api.body);
    assert!(
        started.elapsed() < read_timeout,
        "answered only after the timeout"
    );
    for call in stalled {
        let status = tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("a call without a body was never ended")
            .unwrap();
        assert_eq!(status, "4", "DEADLINE_EXCEEDED");
    }
    let metrics = server.get("/metrics", &[]).await.body;
    assert!(
        metrics.contains("count_calls_timed_out_total 16"),
        "{metrics}"
    );
    server.stop().await.unwrap();
}

/// A call's `grpc-timeout` is its deadline on the server too: a call waiting for a
/// slot behind a held one is answered DEADLINE_EXCEEDED when it passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_timeout_ends_a_call_waiting_for_a_slot() {
    let switch = Arc::new(Switch::default());
    let config = ServerConfig::new().with_max_concurrent_calls(1);
    let server = Running::start(config, switch.clone()).await;
    switch.hold_reports(true);
    let address = server.address;
    let held = tokio::spawn(async move {
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        common::http1_get(tcp, &address.to_string(), "/api/v1/totals?period=2024", &[]).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // An empty GetTotals message: five bytes of gRPC framing.
    let message = http_body_util::Full::new(hyper::body::Bytes::from_static(&[0, 0, 0, 0, 0]));
    let started = Instant::now();
    let call = raw_grpc_call(address, "GetTotals", &[("grpc-timeout", "500m")], message).await;
    let status = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .expect("the deadline was not kept")
        .unwrap();
    assert_eq!(status, "4", "DEADLINE_EXCEEDED");
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    switch.hold_reports(false);
    assert_eq!(held.await.unwrap().status, 200);
    server.stop().await.unwrap();
}

/// A report's body that comes slowly but steadily (each part well within the read
/// timeout, the whole well past it) is read and answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_keeps_coming_is_read_however_long_it_takes() {
    let (_, counter) = memory();
    let read_timeout = Duration::from_millis(600);
    let config = ServerConfig::new().with_request_read_timeout(read_timeout);
    let server = Running::start(config, counter).await;
    // An empty GetTotals message, a byte every 200 ms: 1 s in all.
    let parts = tokio_stream::iter([0_u8; 5]).then(|byte| async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok::<_, std::io::Error>(hyper::body::Frame::data(hyper::body::Bytes::from(vec![
            byte,
        ])))
    });
    let body = http_body_util::StreamBody::new(Box::pin(parts));
    let call = raw_grpc_call(server.address, "GetTotals", &[], body).await;
    let status = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .unwrap()
        .unwrap();
    // Read whole and answered by the handler: a bad query, not a timeout.
    assert_eq!(status, "3", "INVALID_ARGUMENT");
    server.stop().await.unwrap();
}
