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

use count_benches::{INGEST_REQUESTS, cluster, ingest, ingest_queue, peak_rss, runtime};
use count_core::jiff::Timestamp;
use count_core::uuid::Uuid;
use count_core::{
    Batch, BatchId, BucketCount, CountKey, Counter, Day, Method, Path, Status, Subject,
};
use count_pg::PgCounter;
use count_sqlite::SqliteCounter;

/// 100 subjects × 50 endpoints × 4 statuses, as the PostgreSQL bench counts.
const SUBJECTS: usize = 100;
const ENDPOINTS: usize = 50;
const STATUSES: [u16; 4] = [200, 201, 404, 503];
/// 2024-06-01T00:00:00Z: the day the rollup benches fill.
const DAY_START: i64 = 1_717_200_000;
/// Buckets of the rollup day: 20,000 keys × 50 one-minute buckets = 1,000,000 counts.
const ROLLUP_BUCKETS: usize = 50;
/// Counts per written batch: a `CountQueue`'s `max_batch_rows` default.
const BATCH_COUNTS: usize = 10_000;

/// The 20,000 keys: every subject calls every endpoint, with every status.
fn keys() -> Vec<CountKey> {
    let mut keys = Vec::with_capacity(SUBJECTS * ENDPOINTS * STATUSES.len());
    for s in 0..SUBJECTS {
        let subject = Subject::new(&format!("tenant-{s}")).unwrap();
        for e in 0..ENDPOINTS {
            let path = Path::new(&format!("/api/{e}/{{id}}")).unwrap();
            for code in STATUSES {
                let status = Status::http(code).unwrap();
                keys.push(CountKey::of(Method::Get, path, Some(subject), Some(status)));
            }
        }
    }
    keys
}

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

    let day = Day::of(Timestamp::from_second(DAY_START).unwrap()).unwrap();
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
                    runtime.block_on(write_day(counter, &keys));
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

/// Batch `seq` of the rollup day: every key in each of 50 one-minute buckets (n 1 to
/// 7), in batches of 10,000 counts as a `CountQueue` writes them. Made when written,
/// so the process never holds the day.
fn rollup_batch(keys: &[CountKey], writer: Uuid, seq: usize) -> Batch {
    let counts = (seq * BATCH_COUNTS..(seq + 1) * BATCH_COUNTS)
        .map(|i| {
            let (b, k) = (i / keys.len(), i % keys.len());
            let bucket = Timestamp::from_second(DAY_START + b as i64 * 60).unwrap();
            BucketCount::new(keys[k], bucket, 1 + (i + b) as u64 % 7)
        })
        .collect();
    let id = BatchId {
        writer,
        seq: seq as u64,
    };
    Batch::new(id, counts).unwrap()
}

/// Writes the rollup day's 100 batches, under a fresh writer id, from 4 tasks.
async fn write_day(counter: &Arc<dyn Counter>, keys: &Arc<Vec<CountKey>>) {
    let writer = Uuid::new_v4();
    let batches = keys.len() * ROLLUP_BUCKETS / BATCH_COUNTS;
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let (counter, keys) = (Arc::clone(counter), Arc::clone(keys));
            tokio::spawn(async move {
                for seq in (t..batches).step_by(4) {
                    let batch = rollup_batch(&keys, writer, seq);
                    counter.write(&batch).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
