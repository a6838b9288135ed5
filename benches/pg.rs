//! count-pg beside the Go project's write and rollup paths, on one throwaway cluster,
//! in one run (issue 3).
//!
//! - `ingest/count_queue_pg`: 2 threads record through a `CountQueue` into `PgCounter`
//!   (1,000 endpoints, stamped with the current time as a service's requests are, in
//!   one-minute buckets), timed until `flush()` returns. A thread
//!   whose lane and the shared ring are full yields and retries, so every request is
//!   counted: the rate is the whole pipeline's, bound by the slower of the recorders
//!   and the flusher (which shares the 2 cores with them).
//! - `ingest/seed_per_request`: the Go server's write path: one statement per request,
//!   the `methods` upsert and the `requests` insert in one CTE, from 8 connections.
//! - `rollup/count_pg_1m_raw_rows`: `PgCounter::rollup` of a day holding 1,000,000
//!   raw rows (1,000 endpoints × 1,000 buckets).
//! - `rollup/seed_1m_requests`: the Go server's rollup of a day of 1,000,000 request
//!   rows: delete them returning their method ids, group, insert the daily totals.
//!
//! `cargo bench -p count-benches --bench pg`, then `python3 benches/report.py`.
//! Needs PostgreSQL server binaries (or `COUNT_TEST_DATABASE_URL`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use count_core::jiff::Timestamp;
use count_core::{CountQueue, Counter, Day, Method, Path, Recorded};
use count_pg::PgCounter;
use count_testcluster::TestCluster;

const ENDPOINTS: usize = 1000;
/// Requests per ingest iteration, split over the two recording threads.
const INGEST_BATCH: u64 = 4_000_000;
/// 2024-06-01T00:00:00Z: the day the rollup benches fill.
const DAY_START: i64 = 1_717_200_000;

const SEED_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS methods (
        id BIGSERIAL PRIMARY KEY, method TEXT NOT NULL, path TEXT NOT NULL, UNIQUE (method, path));
    CREATE TABLE IF NOT EXISTS requests (
        method_id BIGINT NOT NULL REFERENCES methods (id), ts TIMESTAMPTZ NOT NULL);
    CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
    CREATE TABLE IF NOT EXISTS daily_method_totals (
        day DATE NOT NULL, method_id BIGINT NOT NULL REFERENCES methods (id),
        count BIGINT NOT NULL, PRIMARY KEY (day, method_id));";

const SEED_ADD: &str = "
    WITH m AS (
        INSERT INTO methods (method, path) VALUES ($1, $2)
        ON CONFLICT (method, path) DO NOTHING RETURNING id)
    INSERT INTO requests (method_id, ts)
    SELECT coalesce((SELECT id FROM m), (SELECT id FROM methods WHERE method = $1 AND path = $2)), $3::text::timestamptz";

const SEED_ROLLUP: &str = "
    WITH deleted AS (
        DELETE FROM requests
        WHERE ts >= $1::text::timestamptz AND ts < $1::text::timestamptz + interval '1 day'
        RETURNING method_id),
    counted AS (SELECT method_id, count(*) AS n FROM deleted GROUP BY method_id)
    INSERT INTO daily_method_totals (day, method_id, count)
    SELECT ($1::text::timestamptz AT TIME ZONE 'UTC')::date, method_id, n FROM counted
    ON CONFLICT (day, method_id) DO UPDATE SET count = daily_method_totals.count + excluded.count";

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

fn bench(c: &mut Criterion) {
    let cluster = TestCluster::shared().expect("the pg bench needs PostgreSQL");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ours_url = cluster.fresh_database("bench_ours");
    let seed_url = cluster.fresh_database("bench_seed");
    let counter = Arc::new(runtime.block_on(PgCounter::connect(&ours_url)).unwrap());
    runtime.block_on(async {
        client(&seed_url)
            .await
            .batch_execute(SEED_SCHEMA)
            .await
            .unwrap()
    });
    let paths: Vec<Path> = (0..ENDPOINTS)
        .map(|i| Path::new(&format!("/bench/{i}")).unwrap())
        .collect();

    let mut ingest = c.benchmark_group("ingest");
    ingest.sample_size(10);
    ingest.measurement_time(Duration::from_secs(20));

    let queue = CountQueue::builder(counter.clone())
        .runtime(runtime.handle().clone())
        .drain_interval(Duration::from_millis(1))
        .build()
        .unwrap();
    ingest.throughput(Throughput::Elements(INGEST_BATCH));
    ingest.bench_function("count_queue_pg", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                std::thread::scope(|scope| {
                    for t in 0..2u64 {
                        let (queue, paths) = (&queue, &paths);
                        scope.spawn(move || {
                            for i in 0..INGEST_BATCH / 2 {
                                let path = paths[(i as usize * 7 + t as usize) % ENDPOINTS];
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

    // The seed's path: as many single-request statements as 8 connections manage in a
    // fixed time; criterion is told the count it reached.
    let seed_window = Duration::from_secs(3);
    let seed_rate = runtime.block_on(seed_ingest(&seed_url, seed_window));
    let per_window = (seed_rate * seed_window.as_secs_f64()) as u64;
    ingest.throughput(Throughput::Elements(per_window.max(1)));
    ingest.bench_function("seed_per_request", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let rate = runtime.block_on(seed_ingest(&seed_url, seed_window));
                // Time for `per_window` statements at the rate reached this time.
                total += Duration::from_secs_f64(per_window as f64 / rate);
            }
            total
        })
    });
    ingest.finish();
    let stats = queue.stats();
    assert_eq!(stats.pending, 0, "{stats:?}");
    runtime.block_on(queue.shutdown()).unwrap();

    let mut rollup = c.benchmark_group("rollup");
    rollup.sample_size(10);
    rollup.measurement_time(Duration::from_secs(30));
    rollup.throughput(Throughput::Elements(1_000_000));
    let day = Day::of(Timestamp::from_second(DAY_START).unwrap()).unwrap();
    rollup.bench_function("count_pg_1m_raw_rows", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                runtime.block_on(fill_raw_counts(&ours_url, counter.schema()));
                let started = Instant::now();
                runtime.block_on(counter.rollup(day)).unwrap();
                total += started.elapsed();
            }
            total
        })
    });
    rollup.bench_function("seed_1m_requests", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let client = runtime.block_on(client(&seed_url));
                runtime.block_on(fill_requests(&client));
                let started = Instant::now();
                runtime
                    .block_on(client.execute(SEED_ROLLUP, &[&"2024-06-01T00:00:00Z"]))
                    .unwrap();
                total += started.elapsed();
            }
            total
        })
    });
    rollup.finish();
}

/// Statements per second from 8 connections over `window`, one request each.
async fn seed_ingest(url: &str, window: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + window;
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (url, done) = (url.to_owned(), done.clone());
        tasks.push(tokio::spawn(async move {
            let client = client(&url).await;
            let statement = client.prepare(SEED_ADD).await.unwrap();
            let mut i = c;
            while tokio::time::Instant::now() < deadline {
                let path = format!("/bench/{}", i % ENDPOINTS);
                client
                    .execute(&statement, &[&"GET", &path, &"2024-06-02T12:00:00Z"])
                    .await
                    .unwrap();
                done.fetch_add(1, Ordering::Relaxed);
                i += 8;
            }
        }));
    }
    let started = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// 1,000 endpoints × 1,000 one-minute buckets of the day: 1,000,000 raw rows.
async fn fill_raw_counts(url: &str, schema: &str) {
    let client = client(url).await;
    client
        .batch_execute(&format!(
            "INSERT INTO {schema}.endpoints (method, path)
               SELECT 'GET', '/bench/' || e FROM generate_series(0, 999) e ON CONFLICT DO NOTHING;
             INSERT INTO {schema}.raw_counts (endpoint_id, day, bucket, n)
               SELECT id, DATE '2024-06-01', to_timestamp({DAY_START} + b * 60), 1 + b % 7
               FROM {schema}.endpoints, generate_series(0, 999) b
               WHERE path LIKE '/bench/%' AND method = 'GET';
             ANALYZE {schema}.raw_counts;"
        ))
        .await
        .unwrap();
}

/// 1,000,000 request rows of the day, as the seed stores them.
async fn fill_requests(client: &tokio_postgres::Client) {
    client
        .batch_execute(&format!(
            "INSERT INTO methods (method, path)
               SELECT 'GET', '/bench/' || e FROM generate_series(0, 999) e ON CONFLICT DO NOTHING;
             INSERT INTO requests (method_id, ts)
               SELECT id, to_timestamp({DAY_START} + (r % 86400))
               FROM methods, generate_series(0, 999) r WHERE path LIKE '/bench/%';
             ANALYZE requests;"
        ))
        .await
        .unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
