//! Connections: a connection that sends nothing useful is closed after the header
//! read timeout (whatever it sent: nothing, half a head, only the HTTP/2 preface);
//! past the connection cap new ones wait; many small-message Add streams share one
//! HTTP/2 connection without it being closed under them; a connection closed for a
//! protocol error is counted.

mod common;

use std::time::{Duration, Instant};

use common::{GET, NOON, Running, add, memory, sum, temp_dir};
use count::Migrations;
use count_core::{DateRange, Day};
use count_grpc::proto::count::v1 as pb;
use count_grpc::proto::count::v1::count_service_client::CountServiceClient;
use count_server::ServerConfig;
use count_server::backend::{self, Backend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What gRPC clients do: many Add streams on one connection, each message its own
/// small HTTP/2 DATA frame (the client flushes each message as it is produced).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_message_streams_share_one_connection() {
    const STREAMS: usize = 24;
    const MESSAGES: usize = 400;
    // SQLite: its writes keep the runtime's workers busy, so the streams' handlers
    // fall behind what the connection receives (as on a loaded server).
    let dir = temp_dir("small-frames");
    let url = backend::sqlite_url(&dir.join("count.db")).unwrap();
    let opened = backend::open(&url, Backend::Auto, Migrations::Apply)
        .await
        .unwrap();
    let counter = opened.counter().clone();
    let server = Running::start_backend(ServerConfig::new(), opened).await;
    // The client on threads of its own, as a client in another process: it sends
    // while the server's workers are busy.
    let url = server.url();
    let failed = std::thread::spawn(move || {
        let client_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        client_runtime.block_on(async move {
            // One channel: one HTTP/2 connection for every stream.
            let channel = tonic::transport::Channel::from_shared(url)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let calls: Vec<_> = (0..STREAMS)
                .map(|_| {
                    let mut client = CountServiceClient::new(channel.clone());
                    tokio::spawn(async move { client.add(one_frame_each(MESSAGES)).await })
                })
                .collect();
            let mut failed = Vec::new();
            for call in calls {
                if let Err(status) = call.await.unwrap() {
                    failed.push(format!("{status:?}"));
                }
            }
            failed
        })
    })
    .join()
    .unwrap();
    assert!(
        failed.is_empty(),
        "{} of {STREAMS} failed: {failed:?}",
        failed.len()
    );
    let metrics = server.get("/metrics", &[]).await.body;
    assert!(
        metrics.contains("count_connection_errors_total 0"),
        "{metrics}"
    );
    let day = Day::new(2024, 3, 10).unwrap();
    assert_eq!(
        sum(&*counter, DateRange::day(day)).await,
        (STREAMS * MESSAGES) as u64
    );
    server.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `n` tiny Add messages. The stream says "not ready yet" (and asks to be polled
/// again at once) after each one, so the client's encoder sends every message as
/// its own DATA frame, as fast as it can.
fn one_frame_each(n: usize) -> OneFrameEach {
    OneFrameEach {
        left: n,
        just_sent: false,
    }
}

struct OneFrameEach {
    left: usize,
    just_sent: bool,
}

impl tokio_stream::Stream for OneFrameEach {
    type Item = pb::AddRequest;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<pb::AddRequest>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        if self.just_sent {
            self.just_sent = false;
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        self.just_sent = true;
        self.left -= 1;
        std::task::Poll::Ready(Some(add(GET, "/g", NOON)))
    }
}

/// The HTTP/2 client preface and an empty SETTINGS frame: a connection that says it
/// speaks HTTP/2, and nothing more.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Reads from `tcp` until the server closes it (or resets it); the time that took,
/// or `None` when it is still open after `limit`.
async fn closed_after(tcp: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0_u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), tcp.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Slowloris: connections that send nothing, half a request head or only the HTTP/2
/// preface are closed once the header read timeout has passed, as is an HTTP/1.1
/// connection left idle after its request; the server serves others meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_nothing_useful_are_closed() {
    let timeout = Duration::from_millis(500);
    let (_, counter) = memory();
    let config = ServerConfig::new().with_header_read_timeout(timeout);
    let server = Running::start(config, counter).await;

    let mut silent = TcpStream::connect(server.address).await.unwrap();
    let mut half_head = TcpStream::connect(server.address).await.unwrap();
    half_head
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let mut preface_only = TcpStream::connect(server.address).await.unwrap();
    preface_only.write_all(H2_PREFACE).await.unwrap();
    let mut idle_after_a_request = TcpStream::connect(server.address).await.unwrap();
    idle_after_a_request
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"ok\n") {
        let mut buffer = [0_u8; 1024];
        let n = idle_after_a_request.read(&mut buffer).await.unwrap();
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buffer[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));

    // Others are served meanwhile.
    assert_eq!(server.get("/healthz", &[]).await.status, 200);
    for (name, tcp) in [
        ("silent", &mut silent),
        ("half a head", &mut half_head),
        ("the HTTP/2 preface only", &mut preface_only),
        ("idle after a request", &mut idle_after_a_request),
    ] {
        let took = closed_after(tcp, Duration::from_secs(10)).await;
        let took = took.unwrap_or_else(|| panic!("{name}: still open after 10 s"));
        assert!(
            took < Duration::from_secs(5),
            "{name}: closed after {took:?}"
        );
    }
    let metrics = server.get("/metrics", &[]).await.body;
    let timed_out: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("count_connections_timed_out_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(timed_out >= 4.0, "{metrics}");
    server.stop().await.unwrap();
}

/// Past the connection cap, a new connection waits (in the listen backlog) until one
/// closes; it is then served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_wait_for_one_to_close() {
    let (_, counter) = memory();
    let config = ServerConfig::new()
        .with_max_connections(2)
        .with_header_read_timeout(Duration::from_secs(60));
    let server = Running::start(config, counter).await;
    let first = TcpStream::connect(server.address).await.unwrap();
    let _second = TcpStream::connect(server.address).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let address = server.address;
    let third = tokio::spawn(async move {
        let tcp = TcpStream::connect(address).await.unwrap();
        common::http1_get(tcp, &address.to_string(), "/healthz", &[]).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served past the cap of 2"
    );
    drop(first);
    let reply = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(reply.status, 200);
    server.stop().await.unwrap();
}

/// A connection the server closes for a protocol error (GOAWAY PROTOCOL_ERROR) is
/// counted (and logged at warn); a client that only goes away is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_for_an_error_is_counted() {
    let (_, counter) = memory();
    let server = Running::start(ServerConfig::new(), counter).await;
    // A client that goes away: no error.
    drop(TcpStream::connect(server.address).await.unwrap());
    let mut bad = TcpStream::connect(server.address).await.unwrap();
    bad.write_all(H2_PREFACE).await.unwrap();
    // A DATA frame on stream 0, which HTTP/2 forbids.
    bad.write_all(b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), bad.read_to_end(&mut answer)).await;
    assert_eq!(
        goaway_error(&answer),
        Some(1),
        "no GOAWAY PROTOCOL_ERROR in {answer:?}"
    );
    common::eventually("the error is counted", || async {
        server
            .get("/metrics", &[])
            .await
            .body
            .contains("count_connection_errors_total 1")
    })
    .await;
    server.stop().await.unwrap();
}

/// The error code of the first GOAWAY frame among the HTTP/2 `frames`.
fn goaway_error(mut frames: &[u8]) -> Option<u32> {
    while frames.len() >= 9 {
        let length =
            usize::from(frames[0]) << 16 | usize::from(frames[1]) << 8 | usize::from(frames[2]);
        let payload = frames.get(9..9 + length)?;
        if frames[3] == 7 {
            return Some(u32::from_be_bytes(payload.get(4..8)?.try_into().ok()?));
        }
        frames = &frames[9 + length..];
    }
    None
}

/// The header read timeout is for a connection's first request (and, on HTTP/1.1,
/// each head): a connection busy with requests is never closed by it, whether it is
/// an HTTP/1.1 keep-alive connection or a gRPC client's HTTP/2 one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_connections_outlive_the_header_read_timeout() {
    let timeout = Duration::from_millis(600);
    let (_, counter) = memory();
    let config = ServerConfig::new().with_header_read_timeout(timeout);
    let server = Running::start(config, counter).await;

    let tcp = TcpStream::connect(server.address).await.unwrap();
    let (mut http1, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut grpc = server.client().await;
    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < 4 * timeout {
        let request = http::Request::get("/healthz")
            .header("host", "count")
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())
            .unwrap();
        let answer = http1.send_request(request).await.unwrap_or_else(|e| {
            panic!(
                "the HTTP/1.1 connection was closed after {:?}: {e}",
                started.elapsed()
            )
        });
        assert_eq!(answer.status(), 200);
        let report = grpc
            .get_period_totals(pb::GetPeriodTotalsRequest {
                period: Some(common::date(2024, 3, 10)),
            })
            .await;
        // Nothing is counted: NOT_FOUND is the answer.
        assert_eq!(report.unwrap_err().code(), tonic::Code::NotFound);
        requests += 1;
        tokio::time::sleep(timeout / 5).await;
    }
    assert!(requests >= 10, "{requests} rounds");
    let metrics = server.get("/metrics", &[]).await.body;
    let timed_out = metrics
        .lines()
        .find_map(|l| l.strip_prefix("count_connections_timed_out_total "))
        .unwrap();
    assert_eq!(timed_out, "0", "a busy connection was closed:\n{metrics}");
    server.stop().await.unwrap();
}
