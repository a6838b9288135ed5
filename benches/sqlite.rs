//! count-sqlite's ingest and rollup, beside `PgCounter`'s rollup of the same day on a
//! throwaway cluster, in one run.
//!
//! - `ingest/count_queue_sqlite_dimensions`: 2 threads record through a `CountQueue`
//!   into a `SqliteCounter` on a file (default durability: each commit synced) over
//!   20,000 keys (100 subjects × 50 endpoints × 4 statuses), stamped with the current
//!   time as a service's requests are, timed until `flush()` returns (the shared
//!   `count_benches::ingest` loop). The process's peak resident memory is printed
//!   after the group, before anything else runs.
//! - `rollup/count_sqlite_1m_raw_counts_dimensions`: `SqliteCounter::rollup` of a day
//!   holding 1,000,000 raw counts (20,000 keys × 50 buckets), written untimed before
//!   each rollup as a `CountQueue` writes them: 100 batches of 10,000 counts.
//! - `rollup/count_pg_1m_raw_counts_dimensions`: the same day written through
//!   `PgCounter::write` and rolled up by `PgCounter::rollup`, on the throwaway cluster.
//!
//! `cargo bench -p count-benches --bench sqlite` (criterion prints each median, the
//! middle of its `time:` and `thrpt:` lines). The PostgreSQL part needs PostgreSQL
//! server binaries (or `COUNT_TEST_DATABASE_URL`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

use count_benches::{
    ENDPOINTS, INGEST_REQUESTS, cluster, ingest, ingest_queue, keys, peak_rss, rollup_day, runtime,
    write_rollup_day,
};
use count_core::Counter;
use count_pg::PgCounter;
use count_sqlite::SqliteCounter;

/// A directory of the bench's own under the system's temporary directory (on the
/// same disk as the cluster's), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("count-sqlite-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn url(&self, file: &str) -> String {
        format!("sqlite://{}", self.0.join(file).display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bench(c: &mut Criterion) {
    let runtime = runtime();
    let scratch = Scratch::new();
    let keys = keys();

    let counter = runtime
        .block_on(SqliteCounter::connect(&scratch.url("ingest.db")))
        .unwrap();
    let mut group = c.benchmark_group("ingest");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let queue = ingest_queue(Arc::new(counter), &runtime);
    group.throughput(Throughput::Elements(INGEST_REQUESTS));
    group.bench_function("count_queue_sqlite_dimensions", |b| {
        b.iter_custom(|iters| ingest(&runtime, &queue, &keys, iters))
    });
    group.finish();
    let stats = queue.stats();
    // Every request recorded was written: the loop retries a full queue
    // (`dropped_full` counts those attempts), so none is lost.
    assert_eq!(
        (stats.pending, stats.lost, stats.written),
        (0, 0, stats.recorded),
        "{stats:?}"
    );
    runtime.block_on(queue.shutdown()).unwrap();
    let peak = peak_rss().unwrap_or(0);
    eprintln!(
        "peak RSS after the ingest: {:.1} MiB ({} requests written in {} batches; {} \
         records retried on a full queue)",
        peak as f64 / (1 << 20) as f64,
        stats.written,
        stats.batches_written,
        stats.dropped_full
    );

    let day = rollup_day();
    let keys = Arc::new(keys);
    let sqlite: Arc<dyn Counter> = Arc::new(
        runtime
            .block_on(SqliteCounter::connect(&scratch.url("rollup.db")))
            .unwrap(),
    );
    let cluster = cluster("sqlite");
    let pg: Arc<dyn Counter> = Arc::new(
        runtime
            .block_on(PgCounter::connect(
                &cluster.fresh_database("bench_sqlite_pg"),
            ))
            .unwrap(),
    );
    let mut group = c.benchmark_group("rollup");
    // Ten rollups each, not criterion's 55 of growing samples: a day takes seconds
    // to write.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(1_000_000));
    for (name, counter) in [
        ("count_sqlite_1m_raw_counts_dimensions", &sqlite),
        ("count_pg_1m_raw_counts_dimensions", &pg),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    runtime.block_on(write_rollup_day(counter, &keys));
                    let started = Instant::now();
                    let totals = runtime.block_on(counter.rollup(day)).unwrap();
                    total += started.elapsed();
                    assert_eq!(totals.len(), ENDPOINTS);
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
