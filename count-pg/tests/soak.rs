//! A soak: four threads record through a `CountQueue` into `PgCounter` for more than
//! 30 seconds while the PostgreSQL server is killed with SIGKILL and restarted again
//! and again, and rollups of the current day run all along. Afterwards the database
//! holds exactly what was accepted, less what `Stats` shows as lost.
//!
//! `#[ignore]`d (it takes 40 s): `cargo test -p count-pg --test soak -- --ignored --nocapture`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use count_core::testkit::Scope;
use count_core::{
    CountKey, CountQueue, Counter, DateRange, Day, Dimension, Method, Recorded, TotalsQuery,
};

mod common;

const THREADS: usize = 4;
const KILLS: u32 = 6;
/// Running between kills, and down after each.
const UP: Duration = Duration::from_secs(4);
const DOWN: Duration = Duration::from_secs(1);

/// Records over `keys` until `stop`, pausing briefly every 1,000 requests; returns
/// how many were accepted (`Queued`).
fn record(queue: CountQueue, keys: Arc<Vec<CountKey>>, stop: Arc<AtomicBool>, t: usize) -> u64 {
    let mut accepted = 0;
    let mut i = t;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..1000 {
            if queue.record_key(keys[i % keys.len()]) == Recorded::Queued {
                accepted += 1;
            }
            i += THREADS;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak of 40 s: run with --ignored"]
async fn sigkills_of_the_server_during_records_and_rollups_lose_and_double_nothing() {
    let Some((cluster, counter)) = common::own_cluster_and_counter("soak").await else {
        return;
    };
    let queue = common::retrying_queue(&counter, Duration::from_millis(50));
    let s = Scope::new();
    let mut keys = Vec::new();
    for endpoint in ["/a", "/b/{id}", "/c"] {
        for subject in [None, Some("acme"), Some("zeta")] {
            for status in [None, Some(200), Some(503)] {
                keys.push(s.key(Method::Get, endpoint, subject, status));
            }
        }
    }
    let keys = Arc::new(keys);
    let first_day = Day::today();
    let started = Instant::now();

    let stop = Arc::new(AtomicBool::new(false));
    let recorders: Vec<_> = (0..THREADS)
        .map(|t| {
            let (queue, keys, stop) = (queue.clone(), keys.clone(), stop.clone());
            std::thread::spawn(move || record(queue, keys, stop, t))
        })
        .collect();
    let rollup_failures = Arc::new(AtomicU64::new(0));
    let rollups = tokio::spawn({
        let (counter, stop, failures) = (counter.clone(), stop.clone(), rollup_failures.clone());
        async move {
            let mut done = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match counter.rollup(Day::today()).await {
                    Ok(_) => done += 1,
                    Err(_) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            done
        }
    });

    for _ in 0..KILLS {
        tokio::time::sleep(UP).await;
        let cluster = &cluster;
        tokio::task::block_in_place(|| cluster.kill()).expect("SIGKILL the server");
        tokio::time::sleep(DOWN).await;
        tokio::task::block_in_place(|| cluster.restart()).expect("restart the server");
    }
    tokio::time::sleep(UP).await;
    stop.store(true, Ordering::Relaxed);
    let accepted: u64 = recorders.into_iter().map(|r| r.join().unwrap()).sum();
    let rollups_done = rollups.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(e) = queue.flush().await {
        assert!(Instant::now() < deadline, "still failing after 60 s: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stats = queue.stats();
    queue.shutdown().await.unwrap();
    let elapsed = started.elapsed();

    // Every day the run touched (it may cross midnight UTC), rolled up or not.
    let range = DateRange::new(first_day, Day::today()).unwrap();
    let query = TotalsQuery::new(range, &[Dimension::Endpoint]).unwrap();
    let stored: u64 = s
        .grouped(&counter.totals(&query).await.unwrap())
        .iter()
        .map(|t| t.total)
        .sum();
    eprintln!(
        "soak: {:.1} s, {KILLS} SIGKILLs; accepted {accepted}, recorded {}, written {}, lost {}, \
         stored {stored}; {} failed write attempts, {} rollups done and {} failed",
        elapsed.as_secs_f64(),
        stats.recorded,
        stats.written,
        stats.lost,
        stats.write_failures,
        rollups_done,
        rollup_failures.load(Ordering::Relaxed),
    );
    assert!(elapsed >= Duration::from_secs(30), "{elapsed:?}");
    assert!(accepted > 0 && stats.write_failures > 0, "{stats:?}");
    assert_eq!(stats.recorded, accepted, "{stats:?}");
    assert_eq!(stats.pending, 0, "{stats:?}");
    assert_eq!(stored, accepted - stats.lost, "{stats:?}");
    assert_eq!(stats.written, stored, "{stats:?}");
}
