//! `CountQueue` end to end against `MemoryCounter`, with faults injected.

use std::sync::Arc;
use std::time::Duration;

use count_core::backend::OVERFLOW_PATH;
use count_core::testkit::{Fault, FlakyCounter, at, day};
use count_core::{
    CountKey, CountQueue, Counter, CounterExt, DateRange, Dimension, Endpoint, Error, GroupedTotal,
    Method, Path, Period, Recorded, Status, Subject, TotalsQuery,
};
use count_memory::MemoryCounter;

fn path(text: &str) -> Path {
    Path::new(text).unwrap()
}

fn flaky() -> Arc<FlakyCounter<MemoryCounter>> {
    Arc::new(FlakyCounter::new(MemoryCounter::new()))
}

async fn total(counter: &dyn Counter, method: Method, p: &str, d: &str) -> u64 {
    let endpoint = Endpoint::new(method, path(p));
    counter
        .endpoint_total(endpoint, Period::Day(day(d)))
        .await
        .unwrap()
}

#[tokio::test]
async fn recorded_requests_are_written_on_flush_and_reported_live() {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone()).build().unwrap();
    let users = path("/users/{id}");
    for _ in 0..1000 {
        assert_eq!(queue.record(Method::Get, users), Recorded::Queued);
    }
    queue.record(Method::Post, users);
    queue.flush().await.unwrap();
    let today = count_core::Day::today();
    let totals = counter.day_totals(today).await.unwrap();
    let got: Vec<(Method, &str, u64)> = totals
        .iter()
        .map(|t| (t.endpoint.method, t.endpoint.path.as_str(), t.total))
        .collect();
    assert_eq!(
        got,
        [
            (Method::Get, "/users/{id}", 1000),
            (Method::Post, "/users/{id}", 1)
        ]
    );
    let stats = queue.stats();
    assert_eq!(
        (stats.recorded, stats.written, stats.pending),
        (1001, 1001, 0)
    );
    assert_eq!(stats.batches_written, 1);
    assert_eq!(stats.dropped(), 0);
}

#[tokio::test]
async fn record_at_puts_counts_in_the_buckets_and_days_of_their_timestamps() {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone())
        .bucket_width(Duration::from_secs(900))
        .build()
        .unwrap();
    let p = path("/at");
    for ts in [
        "2023-12-31T23:59:59.999Z",
        "2024-01-01T00:00:00Z",
        "2024-01-01T00:14:59Z",
        "1969-12-31T23:59:59.5Z",
    ] {
        assert_eq!(
            queue.record_at((Method::Get, p), at(ts)).unwrap(),
            Recorded::Queued
        );
    }
    queue.flush().await.unwrap();
    assert_eq!(total(&*counter, Method::Get, "/at", "2023-12-31").await, 1);
    assert_eq!(total(&*counter, Method::Get, "/at", "2024-01-01").await, 2);
    assert_eq!(total(&*counter, Method::Get, "/at", "1969-12-31").await, 1);
    assert_eq!(total(&*counter, Method::Get, "/at", "1970-01-01").await, 0);
}

#[tokio::test]
async fn record_at_refuses_timestamps_out_of_range_and_counts_nothing() {
    let queue = CountQueue::builder(Arc::new(MemoryCounter::new()))
        .build()
        .unwrap();
    let err = queue
        .record_at((Method::Get, path("/x")), at("0000-12-31T23:59:59Z"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "timestamp",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("0000-12-31T23:59:59Z"), "{err}");
    let before_year_1 = count_core::jiff::Timestamp::from_second(
        count_core::backend::MIN_TIMESTAMP.as_second() - 400 * 86_400,
    )
    .unwrap();
    let key = CountKey::new(Endpoint::new(Method::Get, path("/x")));
    let err = queue.record_wait(key, before_year_1).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    assert_eq!(queue.stats().recorded, 0);
}

#[tokio::test]
async fn a_failed_write_is_retried_with_the_same_id_and_never_double_counted() {
    let counter = flaky();
    // The first attempt applies the batch and then reports failure (a lost reply);
    // the second refuses outright; the third passes.
    counter.plan([Fault::FailAfter, Fault::FailBefore]);
    let queue = CountQueue::builder(counter.clone())
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(20))
        .build()
        .unwrap();
    for _ in 0..10 {
        queue
            .record_at((Method::Get, path("/retry")), at("2024-02-02T02:02:02Z"))
            .unwrap();
    }
    let err = queue.flush().await.unwrap_err();
    assert!(matches!(err, Error::Ambiguous { .. }), "{err}");
    let stats = queue.stats();
    assert_eq!(
        (stats.write_failures, stats.pending, stats.written),
        (1, 10, 0)
    );
    assert!(stats.last_error.unwrap().to_string().contains("reply lost"));

    // The flusher retries in the background until the batch is written.
    wait_until(|| queue.stats().written == 10).await;
    assert_eq!(counter.attempts(), 3);
    assert_eq!(
        total(&*counter, Method::Get, "/retry", "2024-02-02").await,
        10
    );
    assert_eq!(queue.stats().pending, 0);
}

#[tokio::test]
async fn counts_arriving_during_an_outage_merge_and_are_written_once_it_ends() {
    let counter = flaky();
    counter.plan([Fault::FailBefore; 5]);
    let queue = CountQueue::builder(counter.clone())
        .flush_interval(Duration::from_millis(10))
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(10))
        .build()
        .unwrap();
    let p = path("/outage");
    let mut recorded = 0;
    while counter.failures() < 5 {
        queue
            .record_at((Method::Get, p), at("2024-03-03T03:03:03Z"))
            .unwrap();
        recorded += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for _ in 0..100 {
        queue
            .record_at((Method::Get, p), at("2024-03-03T03:03:03Z"))
            .unwrap();
    }
    recorded += 100;
    queue.flush().await.unwrap();
    assert_eq!(
        total(&*counter, Method::Get, "/outage", "2024-03-03").await,
        recorded
    );
    let stats = queue.stats();
    assert_eq!(
        (stats.recorded, stats.written, stats.pending),
        (recorded, recorded, 0)
    );
    assert_eq!(stats.write_failures, 5);
}

#[tokio::test]
async fn ambiguous_failures_at_random_never_lose_or_double_a_count() {
    let counter = Arc::new(FlakyCounter::new(MemoryCounter::new()).with_rates(20, 20));
    let queue = CountQueue::builder(counter.clone())
        .flush_interval(Duration::from_millis(5))
        .max_batch_rows(3)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(4))
        .build()
        .unwrap();
    let paths: Vec<Path> = (0..7).map(|i| path(&format!("/random/{i}"))).collect();
    for round in 0..200u64 {
        for (i, &p) in paths.iter().enumerate() {
            if !(round + i as u64).is_multiple_of(3) {
                queue
                    .record_at((Method::Put, p), at("2024-04-04T04:04:04Z"))
                    .unwrap();
            }
        }
        if round % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    while queue.flush().await.is_err() {}
    let totals = counter
        .period_totals(Period::Day(day("2024-04-04")))
        .await
        .unwrap();
    let sum: u64 = totals.iter().map(|t| t.total).sum();
    let expected = (0..200u64)
        .flat_map(|r| (0..7u64).map(move |i| (r + i) % 3 != 0))
        .filter(|&x| x)
        .count() as u64;
    assert_eq!(sum, expected);
    assert!(counter.failures() > 0, "the test must inject failures");
    assert_eq!(queue.stats().written, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_never_blocks_on_a_hung_backend_and_counts_what_it_drops() {
    let counter = flaky();
    counter.plan([Fault::Delay(Duration::from_secs(3600))]);
    let queue = CountQueue::builder(counter.clone())
        .capacity(64)
        .lane_capacity(64)
        .flush_interval(Duration::from_millis(5))
        .write_timeout(Duration::from_secs(3600))
        .max_pending(10)
        .build()
        .unwrap();
    queue.record(Method::Get, path("/hung"));
    // Let the first write start and hang.
    wait_until(|| counter.attempts() == 1).await;
    let started = std::time::Instant::now();
    let mut dropped = 0;
    for i in 0..100_000u64 {
        // Distinct hours of many days, past max_pending: folded into their days, then
        // lost, all counted.
        let ts = count_core::jiff::Timestamp::from_second(1_700_000_000 + (i % 5000) as i64 * 3600)
            .unwrap();
        if queue.record_at((Method::Get, path("/hung")), ts).unwrap() == Recorded::DroppedFull {
            dropped += 1;
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "record must not wait"
    );
    assert!(
        dropped > 0,
        "a queue of 64 must overflow while the flusher is stuck"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    let stats = queue.stats();
    assert_eq!(stats.dropped_full, dropped);
    assert_eq!(stats.recorded + stats.dropped_full, 100_001);
    assert!(stats.coarsened > 0 && stats.lost > 0, "{stats:?}");
    assert_eq!(
        stats.recorded,
        stats.written + stats.pending + stats.lost,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_wait_waits_for_room_instead_of_dropping() {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone())
        .capacity(4)
        .lane_capacity(4)
        .drain_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    let p = path("/wait");
    let ts = at("2024-05-05T05:05:05Z");
    let key = CountKey::new(Endpoint::new(Method::Get, p));
    for _ in 0..10_000 {
        queue.record_wait(key, ts).await.unwrap();
    }
    queue.flush().await.unwrap();
    assert_eq!(
        total(&*counter, Method::Get, "/wait", "2024-05-05").await,
        10_000
    );
    assert_eq!(queue.stats().dropped(), 0);
}

#[tokio::test]
async fn record_wait_is_cancellable_and_records_nothing_when_cancelled() {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone())
        .capacity(1)
        .lane_capacity(1)
        .drain_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    // Let the flusher start and take its first (immediate) drain tick.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let p = path("/cancel");
    // One in this thread's lane, one in the shared ring: full now.
    assert_eq!(queue.record(Method::Get, p), Recorded::Queued);
    assert_eq!(queue.record(Method::Get, p), Recorded::Queued);
    assert_eq!(queue.record(Method::Get, p), Recorded::DroppedFull);
    // Poll the wait once, then drop it mid-wait.
    tokio::select! {
        biased;
        _ = queue.record_wait((Method::Get, p), count_core::jiff::Timestamp::now()) => panic!("the queue was full"),
        _ = std::future::ready(()) => {}
    }
    queue.flush().await.unwrap();
    let stats = queue.stats();
    assert_eq!((stats.written, stats.dropped_full), (2, 1), "{stats:?}");
}

#[tokio::test]
async fn shutdown_writes_everything_then_refuses_clearly() {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone()).build().unwrap();
    let other_handle = queue.clone();
    let p = path("/shutdown");
    let ts = at("2024-06-06T06:06:06Z");
    for _ in 0..5 {
        queue.record_at((Method::Get, p), ts).unwrap();
    }
    queue.shutdown().await.unwrap();
    assert_eq!(
        total(&*counter, Method::Get, "/shutdown", "2024-06-06").await,
        5
    );

    assert!(queue.is_closed() && other_handle.is_closed());
    assert_eq!(other_handle.record(Method::Get, p), Recorded::DroppedClosed);
    assert_eq!(
        queue.record_at((Method::Get, p), ts).unwrap(),
        Recorded::DroppedClosed
    );
    assert!(matches!(
        queue
            .record_wait((Method::Get, p), count_core::jiff::Timestamp::now())
            .await,
        Err(Error::Closed)
    ));
    assert!(matches!(other_handle.flush().await, Err(Error::Closed)));
    queue.shutdown().await.expect("a second shutdown is Ok");
    let stats = queue.stats();
    assert_eq!((stats.written, stats.dropped_closed), (5, 2));
}

#[tokio::test]
async fn shutdown_wakes_waiting_record_wait_callers() {
    let queue = CountQueue::builder(Arc::new(MemoryCounter::new()))
        .capacity(1)
        .lane_capacity(1)
        .drain_interval(Duration::from_secs(3600))
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let p = path("/wake");
    queue.record(Method::Get, p);
    queue.record(Method::Get, p);
    let waiter = {
        let queue = queue.clone();
        tokio::spawn(async move {
            // Room appears when shutdown drains; the queue is closed by then.
            loop {
                if let Err(e) = queue
                    .record_wait((Method::Get, p), count_core::jiff::Timestamp::now())
                    .await
                {
                    return e;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    queue.shutdown().await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter must wake")
        .unwrap();
    assert!(matches!(err, Error::Closed));
}

#[tokio::test]
async fn shutdown_reports_the_error_when_the_backend_stays_down() {
    let counter = Arc::new(FlakyCounter::new(MemoryCounter::new()).with_rates(100, 0));
    let queue = CountQueue::builder(counter.clone())
        .shutdown_timeout(Duration::from_millis(100))
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(20))
        .build()
        .unwrap();
    queue.record(Method::Get, path("/down"));
    let err = queue.shutdown().await.unwrap_err();
    match &err {
        Error::NotWritten {
            count: 1,
            in_doubt: 0,
            reason,
        } => {
            assert!(
                reason.contains("injected"),
                "the backend's error is named: {reason}"
            )
        }
        other => panic!("expected NotWritten for 1, got {other}"),
    }
    assert!(counter.attempts() >= 2, "it retried until the timeout");
    let stats = queue.stats();
    assert_eq!(
        (stats.pending, stats.written, stats.lost, stats.in_doubt),
        (0, 0, 1, 0),
        "the loss is visible"
    );
    assert!(
        matches!(
            queue.shutdown().await,
            Err(Error::NotWritten { count: 1, .. })
        ),
        "asking again says the same"
    );
}

#[tokio::test]
async fn dropping_every_handle_writes_what_was_recorded() {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone()).build().unwrap();
    queue
        .record_at(
            (Method::Delete, path("/dropped")),
            at("2024-07-07T07:07:07Z"),
        )
        .unwrap();
    drop(queue);
    wait_until(|| counter.raw_rows() == 1).await;
    assert_eq!(
        total(&*counter, Method::Delete, "/dropped", "2024-07-07").await,
        1
    );
}

#[tokio::test]
async fn endpoints_past_the_cap_are_counted_under_overflow() {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone())
        .max_endpoints(3)
        .build()
        .unwrap();
    let ts = at("2024-08-08T08:08:08Z");
    for i in 0..10 {
        queue
            .record_at((Method::Get, path(&format!("/cap/{i}"))), ts)
            .unwrap();
    }
    queue.record_at((Method::Get, path("/cap/0")), ts).unwrap();
    queue.flush().await.unwrap();
    let totals = counter.day_totals(day("2024-08-08")).await.unwrap();
    let got: Vec<(&str, u64)> = totals
        .iter()
        .map(|t| (t.endpoint.path.as_str(), t.total))
        .collect();
    assert_eq!(
        got,
        [
            (OVERFLOW_PATH, 7),
            ("/cap/0", 2),
            ("/cap/1", 1),
            ("/cap/2", 1)
        ]
    );
    assert_eq!(queue.stats().overflowed, 7);
}

#[tokio::test]
async fn large_flushes_are_split_into_bounded_batches() {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone())
        .max_batch_rows(10)
        .build()
        .unwrap();
    let ts = at("2024-09-09T09:09:09Z");
    for i in 0..95 {
        queue
            .record_at((Method::Get, path(&format!("/split/{i}"))), ts)
            .unwrap();
    }
    queue.flush().await.unwrap();
    let stats = queue.stats();
    assert_eq!((stats.batches_written, stats.written), (10, 95));
    let totals = counter
        .daily_totals(DateRange::day(day("2024-09-09")))
        .await
        .unwrap();
    assert_eq!(totals.len(), 95);
}

#[tokio::test]
async fn a_timed_out_write_is_retried_and_counted_once() {
    let counter = flaky();
    counter.plan([Fault::Delay(Duration::from_millis(300))]);
    let queue = CountQueue::builder(counter.clone())
        .write_timeout(Duration::from_millis(50))
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(10))
        .build()
        .unwrap();
    queue
        .record_at((Method::Head, path("/slow")), at("2024-10-10T10:10:10Z"))
        .unwrap();
    let err = queue.flush().await.unwrap_err();
    assert!(matches!(err, Error::Ambiguous { .. }), "{err}");
    wait_until(|| queue.stats().written == 1).await;
    // The slow first attempt may still land after its timeout: the id stops a repeat.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        total(&*counter, Method::Head, "/slow", "2024-10-10").await,
        1
    );
}

#[tokio::test]
async fn builder_refuses_bad_settings_naming_them() {
    let memory = || Arc::new(MemoryCounter::new()) as Arc<dyn Counter>;
    let cases: Vec<(count_core::CountQueueBuilder, &str)> = vec![
        (
            CountQueue::builder(memory()).capacity(0),
            "invalid capacity 0: must be at least 1",
        ),
        (
            CountQueue::builder(memory()).max_endpoints(0),
            "invalid max_endpoints 0",
        ),
        (
            CountQueue::builder(memory()).max_pending(0),
            "invalid max_pending 0",
        ),
        (
            CountQueue::builder(memory()).max_batch_rows(0),
            "invalid max_batch_rows 0",
        ),
        (
            CountQueue::builder(memory()).bucket_width(Duration::from_secs(7)),
            "invalid bucket width 7s: must be whole seconds",
        ),
        (
            CountQueue::builder(memory()).flush_interval(Duration::ZERO),
            "invalid flush_interval 0ns: must be longer than zero",
        ),
        (
            CountQueue::builder(memory()).drain_interval(Duration::ZERO),
            "invalid drain_interval 0ns",
        ),
    ];
    for (builder, message) in cases {
        let err = builder.build().unwrap_err().to_string();
        assert!(err.contains(message), "{err} should contain {message}");
    }
}

#[test]
fn build_outside_a_runtime_is_a_clear_error() {
    let err = CountQueue::builder(Arc::new(MemoryCounter::new()))
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a tokio runtime"), "{err}");
}

#[test]
fn build_on_a_given_runtime_works_from_outside_it() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone())
        .runtime(runtime.handle().clone())
        .build()
        .unwrap();
    queue.record(Method::Options, path("/outside"));
    runtime.block_on(queue.flush()).unwrap();
    assert_eq!(queue.stats().written, 1);
}

async fn wait_until(condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_recording_at_once_lose_nothing() {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone())
        .capacity(1 << 20)
        .build()
        .unwrap();
    let paths: Vec<Path> = (0..8).map(|i| path(&format!("/threads/{i}"))).collect();
    let ts = at("2024-11-11T11:11:11Z");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (queue, paths) = (queue.clone(), paths.clone());
            std::thread::spawn(move || {
                for i in 0..50_000 {
                    let p = paths[(i + t) % paths.len()];
                    assert_eq!(
                        queue.record_at((Method::Get, p), ts).unwrap(),
                        Recorded::Queued
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    queue.flush().await.unwrap();
    let totals = counter.day_totals(day("2024-11-11")).await.unwrap();
    assert_eq!(totals.len(), 8);
    assert!(totals.iter().all(|t| t.total == 25_000), "{totals:?}");
    let stats = queue.stats();
    assert_eq!(
        (stats.recorded, stats.written, stats.dropped()),
        (200_000, 200_000, 0)
    );
}

/// Threads recording while `shutdown` runs. Every record
/// that answered `Queued` is written once `shutdown` returns `Ok`.
#[test]
fn records_racing_shutdown_are_written() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let p = path("/race/shutdown");
    for round in 0..150 {
        let counter = Arc::new(MemoryCounter::new());
        let queue = CountQueue::builder(counter.clone())
            .runtime(runtime.handle().clone())
            .build()
            .unwrap();
        let recorders: Vec<_> = (0..6)
            .map(|_| {
                let queue = queue.clone();
                std::thread::spawn(move || {
                    let mut queued = 0u64;
                    loop {
                        match queue.record(Method::Get, p) {
                            Recorded::Queued => queued += 1,
                            Recorded::DroppedClosed => return queued,
                            _ => std::thread::yield_now(),
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_micros(200 + round * 7));
        runtime.block_on(queue.shutdown()).expect("shutdown");
        let queued: u64 = recorders.into_iter().map(|r| r.join().unwrap()).sum();
        let written = runtime
            .block_on(counter.endpoint_total(
                Endpoint::new(Method::Get, p),
                Period::Day(count_core::Day::today()),
            ))
            .unwrap();
        assert_eq!(
            written, queued,
            "round {round}: every Queued record is written"
        );
        let stats = queue.stats();
        assert_eq!(
            (stats.written, stats.pending, stats.lost),
            (queued, 0, 0),
            "round {round}"
        );
    }
}

/// A backend whose write panics does not end counting: the
/// panic is counted, and the batch is kept and written by a later attempt.
#[tokio::test]
async fn a_backend_that_panics_is_contained_and_retried() {
    let counter = flaky();
    counter.plan([Fault::Panic]);
    let queue = CountQueue::builder(counter.clone())
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(10))
        .build()
        .unwrap();
    queue
        .record_at((Method::Get, path("/panics")), at("2024-12-12T12:12:12Z"))
        .unwrap();
    let err = queue.flush().await.unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    wait_until(|| queue.stats().written == 1).await;
    assert_eq!(queue.record(Method::Get, path("/panics")), Recorded::Queued);
    queue.flush().await.unwrap();
    let stats = queue.stats();
    assert_eq!(
        (stats.write_panics, stats.written, stats.lost),
        (1, 2, 0),
        "{stats:?}"
    );
    assert_eq!(
        total(&*counter, Method::Get, "/panics", "2024-12-12").await,
        1
    );
}

/// When the runtime the flusher runs on is shut down, the
/// queue closes: `record` answers `DroppedClosed`, and `flush`/`shutdown` fail saying
/// how many counts were never written (`Stats::lost`) and how many were in a write
/// still in flight, which may yet land (`Stats::in_doubt`).
#[test]
fn a_queue_whose_runtime_is_gone_refuses_records_and_says_what_was_not_written() {
    let counter = flaky();
    // The first write hangs, so its counts are in flight when the runtime goes.
    counter.plan([Fault::Delay(Duration::from_secs(3600))]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let queue = CountQueue::builder(counter.clone())
        .runtime(runtime.handle().clone())
        .flush_interval(Duration::from_millis(5))
        .write_timeout(Duration::from_secs(3600))
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(queue.record(Method::Get, path("/gone")), Recorded::Queued);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while counter.attempts() == 0 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(queue.record(Method::Get, path("/gone")), Recorded::Queued);
    runtime.shutdown_timeout(Duration::from_millis(100));

    assert!(queue.is_closed());
    assert_eq!(
        queue.record(Method::Get, path("/gone")),
        Recorded::DroppedClosed
    );
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for result in [
        other.block_on(queue.flush()),
        other.block_on(queue.shutdown()),
    ] {
        match result {
            Err(Error::NotWritten {
                count: 1,
                in_doubt: 3,
                reason,
            }) => assert!(reason.contains("runtime"), "{reason}"),
            other => panic!("expected NotWritten for 1 and 3 in doubt, got {other:?}"),
        }
    }
    let stats = queue.stats();
    assert_eq!(
        (
            stats.recorded,
            stats.lost,
            stats.in_doubt,
            stats.written,
            stats.pending
        ),
        (4, 1, 3, 0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.dropped_closed, 1);
}

/// A backend that hangs cannot hold `shutdown` past its timeout: the write in flight
/// is given up at the deadline and its counts are reported in doubt.
#[tokio::test]
async fn shutdown_gives_up_on_a_hung_write_at_its_timeout() {
    let counter = flaky();
    counter.plan([Fault::Delay(Duration::from_secs(3600))]);
    let queue = CountQueue::builder(counter.clone())
        .shutdown_timeout(Duration::from_millis(200))
        .write_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    queue.record(Method::Get, path("/hung/at/shutdown"));
    let started = std::time::Instant::now();
    match queue.shutdown().await {
        Err(Error::NotWritten {
            count: 0,
            in_doubt: 1,
            ..
        }) => {}
        other => panic!("expected 1 in doubt, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "shutdown waited for the write timeout instead of its own"
    );
    let stats = queue.stats();
    assert_eq!((stats.in_doubt, stats.lost, stats.pending), (1, 0, 0));
}

/// A batch the backend refuses for good is counted as lost
/// with its error, and the counts behind it are written.
#[tokio::test]
async fn a_batch_refused_for_good_is_lost_loudly_and_counting_goes_on() {
    let counter = flaky();
    counter.plan([Fault::Reject]);
    let queue = CountQueue::builder(counter.clone()).build().unwrap();
    for _ in 0..3 {
        queue
            .record_at((Method::Get, path("/refused")), at("2025-01-01T00:00:00Z"))
            .unwrap();
    }
    match queue.flush().await {
        Err(Error::NotWritten {
            count: 3,
            in_doubt: 0,
            reason,
        }) => {
            assert!(reason.contains("refused for good"), "{reason}")
        }
        other => panic!("expected NotWritten for 3, got {other:?}"),
    }
    queue
        .record_at((Method::Get, path("/after")), at("2025-01-01T00:00:00Z"))
        .unwrap();
    queue.flush().await.expect("later counts are written");
    let stats = queue.stats();
    assert_eq!(
        (
            stats.lost,
            stats.rejected,
            stats.written,
            stats.pending,
            stats.recorded
        ),
        (3, 3, 1, 0, 4),
        "{stats:?}"
    );
    assert!(
        stats
            .last_error
            .unwrap()
            .to_string()
            .contains("refused for good")
    );
    assert_eq!(
        total(&*counter, Method::Get, "/after", "2025-01-01").await,
        1
    );
    assert_eq!(
        total(&*counter, Method::Get, "/refused", "2025-01-01").await,
        0
    );
}

#[tokio::test]
async fn record_key_counts_subjects_and_statuses_apart_and_endpoints_summed() {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone()).build().unwrap();
    let orders = Endpoint::new(Method::Post, path("/orders"));
    let acme = Subject::new("acme").unwrap();
    let created = Status::http(201).unwrap();
    let ts = at("2025-02-02T02:02:02Z");
    for _ in 0..3 {
        queue
            .record_at(
                CountKey::new(orders)
                    .with_subject(acme)
                    .with_status(created),
                ts,
            )
            .unwrap();
    }
    queue
        .record_at(
            CountKey::new(orders).with_status(Status::http(500).unwrap()),
            ts,
        )
        .unwrap();
    queue
        .record_at((Method::Post, path("/orders")), ts)
        .unwrap();
    queue.flush().await.unwrap();
    assert_eq!(
        total(&*counter, Method::Post, "/orders", "2025-02-02").await,
        5
    );
    let query = TotalsQuery::new(
        DateRange::day(day("2025-02-02")),
        &[Dimension::Subject, Dimension::Status],
    )
    .unwrap();
    assert_eq!(
        counter.totals(&query).await.unwrap(),
        [
            GroupedTotal::new(1),
            GroupedTotal::new(1).with_status(Some(Status::http(500).unwrap())),
            GroupedTotal::new(3)
                .with_subject(Some(acme))
                .with_status(Some(created)),
        ]
    );
}

/// A status of the wrong kind for its method would make a backend refuse the whole
/// batch: the request is counted without it, and the drop is shown.
#[tokio::test]
async fn a_status_of_the_wrong_kind_is_dropped_not_the_request() {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone()).build().unwrap();
    let ts = at("2025-03-03T03:03:03Z");
    let get = Endpoint::new(Method::Get, path("/kinds"));
    let grpc = Endpoint::new(Method::Grpc, path("/pkg.Kinds/M"));
    queue
        .record_at(CountKey::new(get).with_status(Status::grpc(5).unwrap()), ts)
        .unwrap();
    queue
        .record_at(
            CountKey::new(grpc).with_status(Status::http(404).unwrap()),
            ts,
        )
        .unwrap();
    queue
        .record_at(
            CountKey::new(get).with_status(Status::http(404).unwrap()),
            ts,
        )
        .unwrap();
    queue.flush().await.expect("the batch is not refused");
    let query = TotalsQuery::new(
        DateRange::day(day("2025-03-03")),
        &[Dimension::Endpoint, Dimension::Status],
    )
    .unwrap();
    let got: Vec<(String, Option<u16>, u64)> = counter
        .totals(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|t| {
            (
                t.endpoint.unwrap().to_string(),
                t.status.map(|s| s.code()),
                t.total,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("GET /kinds".into(), None, 1),
            ("GET /kinds".into(), Some(404), 1),
            ("GRPC /pkg.Kinds/M".into(), None, 1),
        ]
    );
    let stats = queue.stats();
    assert_eq!((stats.statuses_dropped, stats.written), (2, 3));
}
