//! Faults on a cluster of this test's own: the server stopped while a `CountQueue`
//! records, and connections killed in the middle of writes. Nothing may be lost or
//! counted twice, and `record` must never wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use count_core::{CountQueue, Counter, DateRange, Method, Path, Recorded};
use count_pg::PgCounter;
use count_testcluster::TestCluster;

mod common;

const DAY: &str = "2024-06-01";

/// Records `/fault` steadily on a thread of its own until `stop`; returns how many
/// were queued and the longest single `record` call.
fn record_steadily(
    queue: CountQueue,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(u64, Duration)> {
    std::thread::spawn(move || {
        let path = Path::new("/fault").unwrap();
        let at: count_core::jiff::Timestamp = format!("{DAY}T12:00:00Z").parse().unwrap();
        let (mut queued, mut slowest) = (0, Duration::ZERO);
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let recorded = queue.record_at((Method::Get, path), at).unwrap();
            slowest = slowest.max(started.elapsed());
            assert_eq!(recorded, Recorded::Queued, "nothing may be dropped");
            queued += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
        (queued, slowest)
    })
}

async fn total(counter: &PgCounter) -> u64 {
    let day = count_core::testkit::day(DAY);
    counter
        .daily_totals(DateRange::day(day))
        .await
        .unwrap()
        .iter()
        .map(|t| t.total)
        .sum()
}

async fn flush_until_written(queue: &CountQueue) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = queue.flush().await {
        assert!(Instant::now() < deadline, "still failing after 60 s: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_for_ten_seconds_loses_and_doubles_nothing() {
    let Some((cluster, counter)) = common::own_cluster_and_counter("outage").await else {
        return;
    };
    let queue = common::retrying_queue(&counter, Duration::from_millis(100));
    let stop = Arc::new(AtomicBool::new(false));
    let recorder = record_steadily(queue.clone(), stop.clone());

    tokio::time::sleep(Duration::from_secs(1)).await;
    let written_before = queue.stats().written;
    assert!(written_before > 0, "counts flow before the outage");
    cluster.stop_immediate().unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = queue.stats();
    assert!(
        during.write_failures > 0,
        "the outage shows in stats: {during:?}"
    );
    assert!(during.last_error.is_some());
    assert!(during.pending > 0);
    cluster.restart().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (queued, slowest) = recorder.join().unwrap();
    flush_until_written(&queue).await;

    assert_eq!(total(&counter).await, queued, "every count exactly once");
    let stats = queue.stats();
    assert_eq!(
        (stats.recorded, stats.written, stats.pending),
        (queued, queued, 0)
    );
    assert_eq!(stats.dropped(), 0);
    // Not a timing test: a generous bound that only a blocked call would pass.
    assert!(
        slowest < Duration::from_millis(250),
        "record waited {slowest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_killed_mid_write_lose_and_double_nothing() {
    let Some(cluster) = TestCluster::own() else {
        return;
    };
    let url = cluster.fresh_database("terminate");
    let database = url
        .split('?')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let counter = Arc::new(PgCounter::connect(&url).await.unwrap());
    let queue = CountQueue::builder(counter.clone())
        .flush_interval(Duration::from_millis(20))
        .max_batch_rows(50)
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let recorder = record_steadily(queue.clone(), stop.clone());
    let killed = AtomicU64::new(0);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = cluster
            .psql(
                "postgres",
                &format!(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = '{database}' AND pid <> pg_backend_pid()"
                ),
            )
            .unwrap();
        killed.fetch_add(n.parse::<u64>().unwrap(), Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    let (queued, _) = recorder.join().unwrap();
    flush_until_written(&queue).await;
    assert!(
        killed.load(Ordering::Relaxed) > 0,
        "the test must kill connections"
    );
    assert_eq!(total(&counter).await, queued, "every count exactly once");
    assert_eq!(queue.stats().written, queued);
}
