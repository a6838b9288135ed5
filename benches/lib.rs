//! What the benches share: the runtime, the throwaway cluster, and the ingest loop
//! every backend's end-to-end bench runs. The benches themselves live beside this
//! file; their figures and commands are in `BENCHMARKS.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use count_core::{CountKey, CountQueue, Recorded};
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
