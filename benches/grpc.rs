//! count-grpc over loopback, one client, in one run. The `CountV1Handler` is served
//! by a plain tonic server in this process (sharing the 2 cores with the client), on
//! the in-memory backend and on a throwaway PostgreSQL.
//!
//! - `add_feed/{memory,postgres}`: one `Add` stream of 200,000 messages, one request
//!   each, without a deadline (as the Go clients send): a feed, written part by part,
//!   timed until `AddResponse`, which the handler sends once every part is durably
//!   written.
//! - `add_unit/{memory,postgres}`: the same stream with a deadline (60 s): one unit,
//!   aggregated and written as one batch before the answer.
//! - `grpc_counter/{memory,postgres}`: 2 threads record 4,000,000 requests (1,000
//!   endpoints) into a `CountQueue` on `GrpcCounter`, timed until `flush()` returns
//!   (every batch acknowledged by `AddCounts`, which writes it before answering).
//!
//! `cargo bench -p count-benches --bench grpc`, then `python3 benches/report.py`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use count_benches::{INGEST_REQUESTS, cluster, ingest, ingest_queue, runtime};
use count_core::{CountKey, Counter, Endpoint, Method, Path};
use count_grpc::proto::count::v1 as pb;
use count_grpc::proto::count::v1::count_service_client::CountServiceClient;
use count_grpc::{CountV1Handler, GrpcCounter};
use count_memory::MemoryCounter;
use count_pg::PgCounter;

const ADDS: u64 = 200_000;
const ENDPOINTS: usize = 1000;

/// Serves a handler over `counter` on a loopback port; returns its URL. Runs until
/// the runtime ends.
async fn serve(counter: Arc<dyn Counter>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let service = CountV1Handler::new(counter).into_service();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    url
}

fn bench(c: &mut Criterion) {
    let cluster = cluster("grpc");
    let runtime = runtime();
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
            subject: None,
            status: None,
        })
        .collect();

    for (group, deadline) in [
        ("add_feed", None),
        ("add_unit", Some(Duration::from_secs(60))),
    ] {
        let mut add = c.benchmark_group(group);
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
                        let mut request = tonic::Request::new(tokio_stream::iter(requests.clone()));
                        if let Some(deadline) = deadline {
                            request.set_timeout(deadline);
                        }
                        let started = Instant::now();
                        runtime.block_on(client.clone().add(request)).unwrap();
                        total += started.elapsed();
                    }
                    total
                })
            });
        }
        add.finish();
    }

    let keys: Vec<CountKey> = (0..ENDPOINTS)
        .map(|i| {
            let path = Path::new(&format!("/bench/{i}")).unwrap();
            CountKey::new(Endpoint::new(Method::Get, path))
        })
        .collect();
    let mut remote = c.benchmark_group("grpc_counter");
    remote.sample_size(10);
    remote.measurement_time(Duration::from_secs(15));
    remote.throughput(Throughput::Elements(INGEST_REQUESTS));
    for (name, url) in &urls {
        let counter = Arc::new(runtime.block_on(GrpcCounter::connect(url)).unwrap());
        let queue = ingest_queue(counter, &runtime);
        remote.bench_function(*name, |b| {
            b.iter_custom(|iters| ingest(&runtime, &queue, &keys, iters))
        });
        let stats = queue.stats();
        assert_eq!((stats.pending, stats.lost), (0, 0), "{stats:?}");
        runtime.block_on(queue.shutdown()).unwrap();
    }
    remote.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
