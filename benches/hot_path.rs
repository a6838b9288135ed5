//! The hot path beside what it is compared with, on 1 and on 2 threads recording at
//! once: `CountQueue::record` (flusher running), `CountQueue::record_key` with a
//! subject and a status, a bare `ArrayQueue::push` of a 24-byte event (the size of
//! `record`'s) onto one queue as large as a lane, drained on the same cadence, a
//! `metrics` counter with a Prometheus recorder and a `prometheus::IntCounterVec`,
//! each with the same labels as the record they stand beside (method and path;
//! method, path, subject and status).
//!
//! Each thread records in chunks that fit the queue; between chunks, untimed, the
//! queues are emptied by another thread (`CountQueue::flush` has the flusher drain
//! and write to memory; the bare queue's consumer thread pops it), so every timed
//! push finds room, as it does in a service that is not overloaded, and the slots
//! were last touched by the consumer's core, as they are in a service. Both consumers
//! also drain every 10 ms on their own. Every candidate runs under the same harness,
//! chunks and barriers.
//!
//! `cargo bench -p count-benches --bench hot_path`, then `python3 benches/report.py`.

use std::hint::black_box;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use crossbeam_queue::ArrayQueue;

use count_core::{CountKey, CountQueue, Method, Path, Status, Subject};
use count_memory::MemoryCounter;

const CAPACITY: usize = 65_536;
/// Per thread, per chunk: two threads' chunks fit the queue together.
const CHUNK: u64 = 16_384;
const ROUTES: [&str; 8] = [
    "/users/{id}",
    "/users",
    "/orders/{id}",
    "/orders",
    "/items/{id}/reviews",
    "/health",
    "/pkg.Service/Method",
    "/login",
];
const SUBJECTS: [&str; 8] = [
    "acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka",
];
const STATUSES: [u16; 8] = [200, 201, 200, 404, 200, 500, 0, 302];
/// The statuses as label values, made once (as an app would keep them).
const STATUS_TEXT: [&str; 8] = ["200", "201", "200", "404", "200", "500", "0", "302"];
const METHODS: [Method; 8] = [
    Method::Get,
    Method::Post,
    Method::Get,
    Method::Put,
    Method::Get,
    Method::Head,
    Method::Grpc,
    Method::Post,
];

/// The bare queue's event, the size of `CountQueue`'s (a path, a subject, a packed
/// second, status and method): a path pointer (here its address), a Unix second, a
/// method; 24 bytes.
#[derive(Clone, Copy)]
#[allow(dead_code)]
struct BareEvent {
    path: usize,
    second: i64,
    method: Method,
}

const _: () = assert!(std::mem::size_of::<BareEvent>() == 24);
const _: () = assert!(std::mem::size_of::<Path>() == 8);

/// Benchmarks `op(route)` under [`chunked`].
fn measure(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    threads: usize,
    op: impl Fn(usize) + Sync,
    between: impl Fn() + Sync,
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| chunked(threads, iters, &op, &between))
    });
}

/// Runs `op(route)` `iters` times on each of `threads` threads at once, rotating over
/// the routes, in chunks; times only the chunks; runs `between` (untimed) after each.
/// Generic, so `op` is inlined into the timed loop: the harness adds no call per
/// operation.
fn chunked(
    threads: usize,
    iters: u64,
    op: &(impl Fn(usize) + Sync),
    between: &(impl Fn() + Sync),
) -> Duration {
    let barrier = Barrier::new(threads);
    let mut timed = Duration::ZERO;
    std::thread::scope(|scope| {
        let barrier = &barrier;
        let work = move |thread: usize| {
            let mut elapsed = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = CHUNK.min(iters - done);
                barrier.wait();
                let start = Instant::now();
                for i in done..done + n {
                    op((i as usize + thread) & 7);
                }
                barrier.wait();
                elapsed += start.elapsed();
                if thread == 0 {
                    between();
                }
                done += n;
            }
            elapsed
        };
        for thread in 1..threads {
            scope.spawn(move || work(thread));
        }
        timed = work(0);
    });
    timed
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();

    let queue = CountQueue::builder(Arc::new(MemoryCounter::new()))
        .capacity(CAPACITY)
        // A lane as large as the bare queue: both rings hold 65,536 events, so a timed
        // push writes a slot the consumer read four chunks ago, on either. (A lane of
        // one chunk makes every push write a line the flusher's core read moments
        // before: see BENCHMARKS.md for that figure too.)
        .lane_capacity(CAPACITY)
        .runtime(runtime.handle().clone())
        .build()
        .unwrap();
    let paths: Vec<Path> = ROUTES.iter().map(|r| Path::new(r).unwrap()).collect();
    let keys: Vec<CountKey> = (0..8)
        .map(|k| {
            let status = Status::for_method(METHODS[k], STATUSES[k].into()).unwrap();
            CountKey::of(
                METHODS[k],
                paths[k],
                Some(Subject::new(SUBJECTS[k]).unwrap()),
                Some(status),
            )
        })
        .collect();

    // The bare queue, drained on the flusher's cadence by a thread of its own, and
    // at once when asked (the answer says it is empty).
    let bare = Arc::new(ArrayQueue::<BareEvent>::new(CAPACITY));
    let (drain_now, drain_requests) = mpsc::channel::<mpsc::Sender<()>>();
    {
        let bare = Arc::clone(&bare);
        std::thread::spawn(move || {
            loop {
                let request = drain_requests.recv_timeout(Duration::from_millis(10));
                while bare.pop().is_some() {}
                match request {
                    Ok(done) => done.send(()).unwrap(),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
        });
    }
    let drain_bare = || {
        let (done, wait) = mpsc::channel();
        drain_now.send(done).unwrap();
        wait.recv().unwrap();
    };

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("install the Prometheus recorder");
    let counter_vec = prometheus::IntCounterVec::new(
        prometheus::Opts::new("requests", "requests per endpoint"),
        &["method", "path"],
    )
    .unwrap();
    let counter_vec_4 = prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "requests_by_key",
            "requests per endpoint, subject and status",
        ),
        &["method", "path", "subject", "status"],
    )
    .unwrap();

    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!("record/{threads}-thread"));
        group.measurement_time(Duration::from_secs(4));
        group.sample_size(60);

        measure(
            &mut group,
            "count_queue_record",
            threads,
            |k| {
                black_box(queue.record(METHODS[k], paths[k]));
            },
            || runtime.block_on(queue.flush()).unwrap(),
        );
        measure(
            &mut group,
            "count_queue_record_key",
            threads,
            |k| {
                black_box(queue.record_key(keys[k]));
            },
            || runtime.block_on(queue.flush()).unwrap(),
        );
        measure(
            &mut group,
            "arrayqueue_push",
            threads,
            |k| {
                let event = BareEvent {
                    path: ROUTES[k].as_ptr() as usize,
                    second: black_box(1_700_000_000),
                    method: METHODS[k],
                };
                black_box(bare.push(event)).ok();
            },
            drain_bare,
        );
        measure(
            &mut group,
            "metrics_counter",
            threads,
            |k| {
                metrics::counter!("requests", "method" => METHODS[k].as_str(), "path" => ROUTES[k])
                    .increment(1)
            },
            || {},
        );
        measure(
            &mut group,
            "metrics_counter_4_labels",
            threads,
            |k| {
                metrics::counter!(
                    "requests_by_key",
                    "method" => METHODS[k].as_str(),
                    "path" => ROUTES[k],
                    "subject" => SUBJECTS[k],
                    "status" => STATUS_TEXT[k],
                )
                .increment(1)
            },
            || {},
        );
        measure(
            &mut group,
            "prometheus_counter_vec",
            threads,
            |k| {
                counter_vec
                    .with_label_values(&[METHODS[k].as_str(), ROUTES[k]])
                    .inc()
            },
            || {},
        );
        measure(
            &mut group,
            "prometheus_counter_vec_4_labels",
            threads,
            |k| {
                counter_vec_4
                    .with_label_values(&[
                        METHODS[k].as_str(),
                        ROUTES[k],
                        SUBJECTS[k],
                        STATUS_TEXT[k],
                    ])
                    .inc()
            },
            || {},
        );
        group.finish();
    }

    // Nothing was dropped: every timed record found room.
    let stats = queue.stats();
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    black_box(recorder.render().len());
}

criterion_group!(benches, bench);
criterion_main!(benches);
