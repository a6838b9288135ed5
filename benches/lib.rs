//! What the benches share: the runtime, the throwaway cluster, the ingest loop every
//! backend's end-to-end bench runs, and the keys and rollup day the backends' benches
//! fill. The benches themselves live beside this
//! file; their figures and commands are in `BENCHMARKS.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use count_core::jiff::Timestamp;
use count_core::uuid::Uuid;
use count_core::{
    Batch, BatchId, BucketCount, CountKey, CountQueue, Counter, Day, Method, Path, Recorded,
    Status, Subject,
};
use count_testcluster::TestCluster;
use tokio::runtime::Runtime;

/// A runtime like a service's: two workers (the machine's two cores), timers and I/O.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// The process's throwaway PostgreSQL cluster (or `COUNT_TEST_DATABASE_URL`'s
/// server); `bench` names the bench in the panic when there is none.
pub fn cluster(bench: &str) -> Arc<TestCluster> {
    TestCluster::shared().unwrap_or_else(|| {
        panic!("the {bench} bench needs PostgreSQL server binaries (or COUNT_TEST_DATABASE_URL)")
    })
}

/// Requests per ingest iteration, split over the two recording threads.
pub const INGEST_REQUESTS: u64 = 4_000_000;

/// A queue set up for the ingest benches: drained every millisecond, on `runtime`.
pub fn ingest_queue(counter: Arc<dyn count_core::Counter>, runtime: &Runtime) -> CountQueue {
    CountQueue::builder(counter)
        .runtime(runtime.handle().clone())
        .drain_interval(Duration::from_millis(1))
        .build()
        .expect("a queue")
}

/// The end-to-end ingest loop: `iters` times, two threads record
/// [`INGEST_REQUESTS`] requests over `keys` (the current time, as a service's
/// requests carry), then `flush()`; the elapsed time of it all. A thread whose lane
/// and the shared ring are full yields and retries, so every request is counted and
/// the rate is the whole pipeline's (recorders and flusher share the 2 cores).
pub fn ingest(runtime: &Runtime, queue: &CountQueue, keys: &[CountKey], iters: u64) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        std::thread::scope(|scope| {
            for t in 0..2usize {
                scope.spawn(move || {
                    for i in 0..(INGEST_REQUESTS / 2) as usize {
                        let key = keys[(i * 7 + t) % keys.len()];
                        while queue.record_key(key) == Recorded::DroppedFull {
                            std::thread::yield_now();
                        }
                    }
                });
            }
        });
        runtime.block_on(queue.flush()).expect("flushed");
    }
    started.elapsed()
}

/// The peak resident memory of this process so far, from `/proc/self/status`
/// (`VmHWM`), in bytes; `None` where there is no such file.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Subjects of the backends' benches' keys.
pub const SUBJECTS: usize = 100;
/// Endpoints of the backends' benches' keys.
pub const ENDPOINTS: usize = 50;
/// Statuses of the backends' benches' keys.
pub const STATUSES: [u16; 4] = [200, 201, 404, 503];
/// 2024-06-01T00:00:00Z: the day the rollup benches fill.
pub const DAY_START: i64 = 1_717_200_000;
/// Buckets of the rollup day: 20,000 keys × 50 one-minute buckets = 1,000,000 counts.
const ROLLUP_BUCKETS: usize = 50;
/// Counts per written batch: a `CountQueue`'s `max_batch_rows` default.
const BATCH_COUNTS: usize = 10_000;

/// The 20,000 keys: every one of [`SUBJECTS`] calls every one of [`ENDPOINTS`], with
/// every one of [`STATUSES`].
pub fn keys() -> Vec<CountKey> {
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

/// The day [`write_rollup_day`] fills.
pub fn rollup_day() -> Day {
    Day::of(Timestamp::from_second(DAY_START).unwrap()).unwrap()
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

/// Writes the rollup day (1,000,000 raw counts over `keys`) into `counter` as 100
/// batches under a fresh writer id, from 4 tasks.
pub async fn write_rollup_day(counter: &Arc<dyn Counter>, keys: &Arc<Vec<CountKey>>) {
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
