//! count-pg beside the Go project's write and rollup paths, on one throwaway cluster,
//! in one run.
//!
//! - `ingest/count_queue_pg_dimensions`: 2 threads record through a `CountQueue` into
//!   `PgCounter` over 20,000 keys (100 subjects × 50 endpoints × 4 statuses), stamped
//!   with the current time as a service's requests are, timed until `flush()`
//!   returns (the shared `count_benches::ingest` loop). The process's peak resident
//!   memory is printed after the group.
//! - `ingest/go_per_request`: the Go server's write path: one statement per request,
//!   the `methods` upsert and the `requests` insert in one CTE, from 8 connections.
//! - `rollup/count_pg_1m_raw_counts_dimensions`: `PgCounter::rollup` of a day holding
//!   1,000,000 raw counts (20,000 keys × 50 buckets), written untimed before each
//!   rollup as a `CountQueue` writes them: 100 batches of 10,000 counts.
//! - `rollup/go_1m_requests`: the Go server's rollup of a day of 1,000,000 request
//!   rows: delete them returning their method ids, group, insert the daily totals.
//!
//! `cargo bench -p count-benches --bench pg`, then `python3 benches/report.py`.
//! Needs PostgreSQL server binaries (or `COUNT_TEST_DATABASE_URL`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use count_benches::{
    DAY_START, INGEST_REQUESTS, cluster, ingest, ingest_queue, keys, peak_rss, rollup_day, runtime,
    write_rollup_day,
};
use count_core::Counter;
use count_pg::PgCounter;

/// The Go server's paths: 1,000 endpoints.
const GO_ENDPOINTS: usize = 1000;

const GO_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS methods (
        id BIGSERIAL PRIMARY KEY, method TEXT NOT NULL, path TEXT NOT NULL, UNIQUE (method, path));
    CREATE TABLE IF NOT EXISTS requests (
        method_id BIGINT NOT NULL REFERENCES methods (id), ts TIMESTAMPTZ NOT NULL);
    CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
    CREATE TABLE IF NOT EXISTS daily_method_totals (
        day DATE NOT NULL, method_id BIGINT NOT NULL REFERENCES methods (id),
        count BIGINT NOT NULL, PRIMARY KEY (day, method_id));";

const GO_ADD: &str = "
    WITH m AS (
        INSERT INTO methods (method, path) VALUES ($1, $2)
        ON CONFLICT (method, path) DO NOTHING RETURNING id)
    INSERT INTO requests (method_id, ts)
    SELECT coalesce((SELECT id FROM m), (SELECT id FROM methods WHERE method = $1 AND path = $2)), $3::text::timestamptz";

const GO_ROLLUP: &str = "
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
    let cluster = cluster("pg");
    let runtime = runtime();
    let ours_url = cluster.fresh_database("bench_ours");
    let go_url = cluster.fresh_database("bench_go");
    let counter = Arc::new(runtime.block_on(PgCounter::connect(&ours_url)).unwrap());
    runtime.block_on(async {
        client(&go_url)
            .await
            .batch_execute(GO_SCHEMA)
            .await
            .unwrap()
    });
    let keys = keys();

    let mut group = c.benchmark_group("ingest");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let queue = ingest_queue(counter.clone(), &runtime);
    group.throughput(Throughput::Elements(INGEST_REQUESTS));
    group.bench_function("count_queue_pg_dimensions", |b| {
        b.iter_custom(|iters| ingest(&runtime, &queue, &keys, iters))
    });
    let stats = queue.stats();
    assert_eq!((stats.pending, stats.lost), (0, 0), "{stats:?}");
    runtime.block_on(queue.shutdown()).unwrap();
    let peak = peak_rss().unwrap_or(0);
    eprintln!(
        "peak RSS after the ingest: {:.1} MiB ({} requests written in {} batches)",
        peak as f64 / (1 << 20) as f64,
        stats.written,
        stats.batches_written
    );

    // The Go server's path: as many single-request statements as 8 connections manage
    // in a fixed time; criterion is told the count it reached.
    let window = Duration::from_secs(3);
    let go_rate = runtime.block_on(go_ingest(&go_url, window));
    let per_window = (go_rate * window.as_secs_f64()) as u64;
    group.throughput(Throughput::Elements(per_window.max(1)));
    group.bench_function("go_per_request", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let rate = runtime.block_on(go_ingest(&go_url, window));
                // Time for `per_window` statements at the rate reached this time.
                total += Duration::from_secs_f64(per_window as f64 / rate);
            }
            total
        })
    });
    group.finish();

    let mut group = c.benchmark_group("rollup");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(1_000_000));
    let day = rollup_day();
    let keys = Arc::new(keys);
    let pg: Arc<dyn Counter> = counter.clone();
    group.bench_function("count_pg_1m_raw_counts_dimensions", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                runtime.block_on(write_rollup_day(&pg, &keys));
                let started = Instant::now();
                runtime.block_on(pg.rollup(day)).unwrap();
                total += started.elapsed();
            }
            total
        })
    });
    group.bench_function("go_1m_requests", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let client = runtime.block_on(client(&go_url));
                runtime.block_on(fill_requests(&client));
                let started = Instant::now();
                runtime
                    .block_on(client.execute(GO_ROLLUP, &[&"2024-06-01T00:00:00Z"]))
                    .unwrap();
                total += started.elapsed();
            }
            total
        })
    });
    group.finish();
}

/// Statements per second from 8 connections over `window`, one request each.
async fn go_ingest(url: &str, window: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + window;
    let mut tasks = Vec::new();
    for c in 0..8 {
        let (url, done) = (url.to_owned(), done.clone());
        tasks.push(tokio::spawn(async move {
            let client = client(&url).await;
            let statement = client.prepare(GO_ADD).await.unwrap();
            let mut i = c;
            while tokio::time::Instant::now() < deadline {
                let path = format!("/bench/{}", i % GO_ENDPOINTS);
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

/// 1,000,000 request rows of the day, as the Go server stores them (1,000 endpoints).
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
