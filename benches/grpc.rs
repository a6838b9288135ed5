//! count-grpc over loopback, one client, in one run (issue 6). The server runs in
//! this process (sharing the 2 cores with the client), on the in-memory backend and
//! on a throwaway PostgreSQL.
//!
//! - `add/{memory,postgres}`: one `Add` stream of 200,000 messages, one request
//!   each (as the Go clients send), timed until `AddResponse`, which the server sends
//!   only after a durable flush.
//! - `grpc_counter/{memory,postgres}`: 2 threads record 4,000,000 requests (1,000
//!   endpoints) into a `CountQueue` on `GrpcCounter`, timed until `flush()` returns
//!   (every batch acknowledged by `AddCounts`, which writes it before answering).
//!
//! `cargo bench -p count-benches --bench grpc`, then `python3 benches/report.py`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use count_core::{CountQueue, Counter, Method, Path, Recorded};
use count_grpc::proto::count::v1 as pb;
use count_grpc::proto::count::v1::count_service_client::CountServiceClient;
use count_grpc::{GrpcCounter, ServerConfig};
use count_memory::MemoryCounter;
use count_pg::PgCounter;
use count_testcluster::TestCluster;

const ADDS: u64 = 200_000;
const RECORDS: u64 = 4_000_000;
const ENDPOINTS: usize = 1000;

/// Starts a server on `counter`; returns its URL. Runs until the runtime ends.
async fn serve(counter: Arc<dyn Counter>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = ServerConfig {
        rollup: false,
        ..ServerConfig::default()
    };
    tokio::spawn(count_grpc::server::serve_counter(
        config,
        counter,
        listener,
        std::future::pending(),
    ));
    url
}

fn bench(c: &mut Criterion) {
    let cluster = TestCluster::shared().expect("the grpc bench needs PostgreSQL");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pg: Arc<dyn Counter> = Arc::new(
        runtime
            .block_on(PgCounter::connect(&cluster.fresh_database("bench_grpc")))
            .unwrap(),
    );
    let backends: [(&str, Arc<dyn Counter>); 2] =
        [("memory", Arc::new(MemoryCounter::new())), ("postgres", pg)];
    let urls: Vec<(&str, String)> = backends
        .into_iter()
        .map(|(name, counter)| (name, runtime.block_on(serve(counter))))
        .collect();
    let now = count_core::jiff::Timestamp::now();
    let requests: Vec<pb::AddRequest> = (0..ADDS)
        .map(|i| pb::AddRequest {
            method: pb::Method::Get as i32,
            path: format!("/bench/{}", i as usize % ENDPOINTS),
            request_timestamp: Some(prost_types::Timestamp {
                seconds: now.as_second(),
                nanos: 0,
            }),
        })
        .collect();

    let mut add = c.benchmark_group("add");
    add.sample_size(10);
    add.measurement_time(Duration::from_secs(15));
    add.throughput(Throughput::Elements(ADDS));
    for (name, url) in &urls {
        let client = runtime
            .block_on(CountServiceClient::connect(url.clone()))
            .unwrap();
        add.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let stream = tokio_stream::iter(requests.clone());
                    let started = Instant::now();
                    runtime.block_on(client.clone().add(stream)).unwrap();
                    total += started.elapsed();
                }
                total
            })
        });
    }
    add.finish();

    let paths: Vec<Path> = (0..ENDPOINTS)
        .map(|i| Path::new(&format!("/bench/{i}")).unwrap())
        .collect();
    let mut remote = c.benchmark_group("grpc_counter");
    remote.sample_size(10);
    remote.measurement_time(Duration::from_secs(15));
    remote.throughput(Throughput::Elements(RECORDS));
    for (name, url) in &urls {
        let counter = Arc::new(runtime.block_on(GrpcCounter::connect(url)).unwrap());
        let queue = CountQueue::builder(counter)
            .runtime(runtime.handle().clone())
            .drain_interval(Duration::from_millis(1))
            .build()
            .unwrap();
        remote.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    std::thread::scope(|scope| {
                        for t in 0..2usize {
                            let (queue, paths) = (&queue, &paths);
                            scope.spawn(move || {
                                for i in 0..RECORDS as usize / 2 {
                                    let path = paths[(i * 7 + t) % ENDPOINTS];
                                    while queue.record(Method::Get, path) == Recorded::DroppedFull {
                                        std::thread::yield_now();
                                    }
                                }
                            });
                        }
                    });
                    runtime.block_on(queue.flush()).unwrap();
                }
                started.elapsed()
            })
        });
        let stats = queue.stats();
        assert_eq!(stats.pending, 0, "{stats:?}");
        runtime.block_on(queue.shutdown()).unwrap();
    }
    remote.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
