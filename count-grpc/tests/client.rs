//! `GrpcCounter` through a plain tonic server: the conformance suite, batches larger
//! than the message limit, answers retrying cannot cure, timeouts.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use count_core::jiff::Timestamp;
use count_core::testkit::Scope;
use count_core::{
    Batch, BatchId, BucketCount, CountQueue, Counter, DateRange, Day, Endpoint, Error, Method, Path,
};
use count_grpc::{CountV1Handler, GrpcCounter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_counter_conforms_through_the_server() {
    let (_, server) = Served::memory().await;
    let remote = GrpcCounter::connect(&server.url()).await.unwrap();
    remote.health().await.unwrap();
    let remote = Arc::new(remote);
    count_core::testkit::run_all(remote.clone()).await;
    count_core::testkit::run_zones(&*remote).await;
    count_core::testkit::run_limits(remote).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_counter_behind_a_queue_counts_every_request() {
    let (memory, server) = Served::memory().await;
    let remote = Arc::new(GrpcCounter::connect(&server.url()).await.unwrap());
    let queue = count_core::CountQueue::builder(remote).build().unwrap();
    let path = count_core::Path::new("/remote").unwrap();
    for _ in 0..100_000 {
        while queue.record(count_core::Method::Get, path) != count_core::Recorded::Queued {
            tokio::task::yield_now().await;
        }
    }
    queue.flush().await.unwrap();
    let totals = memory.daily_totals(DateRange::day(Day::today())).await;
    let today: u64 = totals.unwrap().iter().map(|t| t.total).sum();
    // Near midnight some may land on the next day: count both.
    let tomorrow: u64 = match Day::today().next() {
        Some(d) => sum(&*memory, DateRange::day(d)).await,
        None => 0,
    };
    assert!(
        today + tomorrow >= 100_000 && today <= 100_000,
        "{today} + {tomorrow}"
    );
    queue.shutdown().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_ends_calls_at_the_timeout() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = std::time::Instant::now();
    let result = async {
        let counter = GrpcCounter::builder(&format!("http://{address}"))
            .connect_timeout(Duration::from_millis(300))
            .timeout(Duration::from_millis(300))
            .connect()
            .await?;
        counter.health().await
    }
    .await;
    assert!(result.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let refused = GrpcCounter::connect("http://127.0.0.1:1")
        .await
        .unwrap_err();
    assert!(
        matches!(refused, count_core::Error::Unavailable { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("127.0.0.1:1"), "{refused}");
    let bad = GrpcCounter::connect("not a url").await.unwrap_err();
    assert!(
        matches!(bad, count_core::Error::InvalidInput { .. }),
        "{bad}"
    );
}

/// `count` distinct paths of `len` bytes each (`/<prefix>/<index>ppp…`).
fn long_paths(prefix: &str, count: usize, len: usize) -> Vec<Path> {
    (0..count)
        .map(|i| {
            let head = format!("/{prefix}/{i:05}");
            Path::new(&format!("{head}{}", "p".repeat(len - head.len()))).unwrap()
        })
        .collect()
}

fn batch_of(paths: &[Path], id: BatchId) -> Batch {
    let bucket = Timestamp::from_second(NOON).unwrap();
    let counts = paths
        .iter()
        .map(|&path| BucketCount::new(Endpoint::new(Method::Get, path), bucket, 2))
        .collect();
    Batch::new(id, counts).unwrap()
}

async fn prefix_total(counter: &dyn Counter, prefix: &str) -> u64 {
    let day = Day::new(2024, 3, 10).unwrap();
    let totals = counter.daily_totals(DateRange::day(day)).await.unwrap();
    totals
        .iter()
        .filter(|t| t.endpoint.path.as_str().starts_with(prefix))
        .map(|t| t.total)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_the_message_limit_goes_in_parts_each_applied_once() {
    // tonic's default limit on the server: 4 MiB.
    let (memory, server) = Served::memory().await;
    let remote = GrpcCounter::connect(&server.url()).await.unwrap();
    let paths = long_paths("big", 4200, 1000);
    let batch = batch_of(&paths, count_core::testkit::fresh_id());
    remote.write(&batch).await.expect("a batch of about 4.3 MB");
    assert_eq!(prefix_total(&*memory, "/big/").await, 8400);
    // Sent again (a retry): each part is recognised by its id.
    remote.write(&batch).await.unwrap();
    assert_eq!(prefix_total(&*memory, "/big/").await, 8400);
    let stats = server.handler.stats();
    assert!(stats.batches_written >= 2, "{stats:?}");

    // The same through a queue, whose batch holds all 4,200 rows.
    let queue = CountQueue::builder(Arc::new(remote)).build().unwrap();
    let paths = long_paths("queued", 4200, 1000);
    let at = Timestamp::from_second(NOON).unwrap();
    for &path in &paths {
        queue.record_at((Method::Get, path), at).unwrap();
    }
    queue.flush().await.expect("the queue is not stuck");
    assert_eq!(prefix_total(&*memory, "/queued/").await, 4200);
    queue.shutdown().await.unwrap();
    assert_eq!(queue.stats().lost, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_for_good_is_lost_and_later_counts_go_on() {
    // This server takes messages up to 64 KiB; the client believes 4 MiB.
    let memory = Arc::new(count_memory::MemoryCounter::new());
    let server = Served::start_with(CountV1Handler::new(memory.clone()), 64 << 10).await;
    let remote = GrpcCounter::connect(&server.url()).await.unwrap();
    let queue = CountQueue::builder(Arc::new(remote))
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
        .build()
        .unwrap();
    let at = Timestamp::from_second(NOON).unwrap();
    for &path in &long_paths("refused", 200, 1000) {
        queue.record_at((Method::Get, path), at).unwrap();
    }
    let refused = queue.flush().await.unwrap_err();
    assert!(refused.to_string().contains("200"), "{refused}");
    let stats = queue.stats();
    assert_eq!(stats.lost, 200, "{stats:?}");
    assert!(
        stats.last_error.as_ref().is_some_and(|e| !e.is_retryable()),
        "{stats:?}"
    );
    // Later counts are written.
    let later = Path::new("/refused-later").unwrap();
    for _ in 0..10 {
        queue.record_at((Method::Get, later), at).unwrap();
    }
    queue.flush().await.expect("later counts");
    assert_eq!(total_of(&*memory, "/refused-later").await, 10);
    assert_eq!(prefix_total(&*memory, "/refused/").await, 0);
    let _ = queue.shutdown().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_batch_id_is_a_batch_conflict_not_a_retry() {
    let (memory, server) = Served::memory().await;
    let remote = GrpcCounter::connect(&server.url()).await.unwrap();
    let s = Scope::new();
    let first = s.batch(&[(Method::Get, "/conflict", "2024-03-10T12:00:00Z", 1)]);
    remote.write(&first).await.unwrap();
    let reused = Batch::new(
        first.id(),
        vec![BucketCount::new(
            s.endpoint(Method::Get, "/conflict"),
            Timestamp::from_second(NOON).unwrap(),
            2,
        )],
    )
    .unwrap();
    let error = remote.write(&reused).await.unwrap_err();
    assert!(
        matches!(error, Error::BatchConflict { id } if id == first.id()),
        "{error}"
    );
    assert!(!error.is_retryable());
    assert_eq!(total_of(&*memory, s.path("/conflict").as_str()).await, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_larger_than_the_send_limit_is_received() {
    let (memory, server) = Served::memory().await;
    // 40,000 endpoints of 120-byte paths on one day: each report is over 5 MB, more
    // than the 4 MiB the client sends at most.
    let paths = long_paths("big-report", 40_000, 120);
    let id = BatchId {
        writer: count_core::uuid::Uuid::new_v4(),
        seq: 0,
    };
    memory.write(&batch_of(&paths, id)).await.unwrap();
    let remote = GrpcCounter::connect(&server.url()).await.unwrap();
    let day = Day::new(2024, 3, 10).unwrap();
    let period = remote
        .period_totals(count_core::Period::Day(day))
        .await
        .expect("a report over 4 MiB");
    assert_eq!(period.len(), 40_000);
    let query =
        count_core::TotalsQuery::new(DateRange::day(day), &[count_core::Dimension::Endpoint])
            .unwrap();
    let rows = remote.totals(&query).await.expect("totals over 4 MiB");
    assert_eq!(rows.len(), 40_000);
    assert!(rows.iter().all(|row| row.total == 2));
    // The receive limit is the client's setting.
    let small = GrpcCounter::builder(&server.url())
        .max_receive_bytes(4 << 20)
        .connect()
        .await
        .unwrap();
    let refused = small.totals(&query).await.unwrap_err();
    assert!(refused.to_string().contains("too large"), "{refused}");
    server.stop().await;
}
