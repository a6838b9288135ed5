//! count-cockroach's retry path beside count-pg, on one throwaway cluster, in one run.
//! No CockroachDB can run here: the CockroachDB cases run on the emulation
//! (count-testcluster: SERIALIZABLE, restart trigger armed, through the wire proxy).
//!
//! Each iteration writes 40 batches of 1,000 rows (1,000 endpoints, one bucket each,
//! n = 1 per row) from 4 concurrent tasks; throughput is in counted requests.
//! - `ingest/pg`: `PgCounter` on a plain database;
//! - `ingest/cockroach_emulated`: `CockroachCounter`, restart trigger at 0%;
//! - `ingest/cockroach_emulated_30pct_restarts`: the same with 30% of transactions
//!   failing with 40001 and retried.
//!
//! `cargo bench -p count-benches --bench cockroach`, then `python3 benches/report.py`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use count_benches::{cluster, runtime};
use count_cockroach::CockroachCounter;
use count_core::jiff::Timestamp;
use count_core::uuid::Uuid;
use count_core::{Batch, BatchId, BucketCount, Counter, Endpoint, Method, Path};
use count_pg::PgCounter;
use count_testcluster::cockroach::CockroachEmulation;

const ROWS: usize = 1000;
const BATCHES: u64 = 40;
const TASKS: u64 = 4;

fn bench(c: &mut Criterion) {
    let cluster = cluster("cockroach");
    let runtime = runtime();
    let pg: Arc<dyn Counter> = Arc::new(
        runtime
            .block_on(PgCounter::connect(&cluster.fresh_database("bench_crdb_pg")))
            .unwrap(),
    );
    let emulated = |percent: u32| {
        runtime.block_on(async {
            let emulation = CockroachEmulation::start(cluster.clone(), "bench_crdb").await;
            let counter = CockroachCounter::connect(&emulation.url()).await.unwrap();
            emulation.inject_restarts("count");
            emulation.restart_percent(percent);
            (emulation, counter)
        })
    };
    let (calm, calm_counter) = emulated(0);
    let (faulty, faulty_counter) = emulated(30);
    let now = Timestamp::now();
    let counts: Vec<BucketCount> = (0..ROWS)
        .map(|i| {
            let endpoint = Endpoint::new(Method::Get, Path::new(&format!("/bench/{i}")).unwrap());
            BucketCount::new(endpoint, now, 1)
        })
        .collect();

    let mut ingest = c.benchmark_group("ingest");
    ingest.sample_size(10);
    ingest.measurement_time(Duration::from_secs(20));
    ingest.throughput(Throughput::Elements(BATCHES * ROWS as u64));
    let cases: [(&str, Arc<dyn Counter>); 3] = [
        ("pg", pg),
        ("cockroach_emulated", Arc::new(calm_counter.clone())),
        (
            "cockroach_emulated_30pct_restarts",
            Arc::new(faulty_counter.clone()),
        ),
    ];
    for (name, counter) in cases {
        ingest.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    runtime.block_on(write_batches(&counter, &counts));
                }
                started.elapsed()
            })
        });
    }
    ingest.finish();
    eprintln!(
        "30%: {} restarts injected in {} transactions; retries {:?}; 0%: {:?}",
        faulty.restarts_injected(),
        faulty.attempts(),
        faulty_counter.retries(),
        calm_counter.retries(),
    );
    assert_eq!(faulty_counter.retries().gave_up, 0);
    drop(calm);
}

/// `BATCHES` batches of `counts`, each with a fresh id, from `TASKS` tasks.
async fn write_batches(counter: &Arc<dyn Counter>, counts: &[BucketCount]) {
    let writer = Uuid::new_v4();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let counter = counter.clone();
            let counts = counts.to_vec();
            tokio::spawn(async move {
                for seq in (t..BATCHES).step_by(TASKS as usize) {
                    let batch = Batch::new(BatchId { writer, seq }, counts.clone()).unwrap();
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
