//! Hours and time zones: reports in another zone and by the hour beside the same
//! report in UTC by the day, on SQLite and on PostgreSQL (a throwaway cluster), in one
//! run; and what a day's quarter hours take on disk beside its UTC day totals.
//!
//! The data, the same in both: 1,000 endpoints over the year 2025, rolled up, with
//! Asia/Kolkata's days kept. On each of the first 358 days one count per endpoint at
//! ten past hour `endpoint % 24` (UTC); on the last 7, one count per endpoint at ten
//! past every hour.
//!
//! - `reports/<backend>/year_by_day_utc`: the year grouped by day and endpoint in UTC
//!   (365,000 rows, from the UTC days).
//! - `reports/<backend>/year_by_day_kolkata`: the same in Asia/Kolkata (from its kept
//!   days); target: within 1.5× of UTC's.
//! - `reports/<backend>/week_by_hour_utc`: the last 7 days grouped by hour and
//!   endpoint (168,000 rows, from the quarter hours); target: no slower than the year
//!   by day in UTC.
//!
//! Then, untimed and printed: a day of 1,000 endpoints × 50 subjects × 4 statuses
//! (200,000 keys), each key counted once an hour (4,800,000 key-quarters), rolled up:
//! the rows and bytes its UTC day totals and its quarter hours take in each backend.
//!
//! `cargo bench -p count-benches --bench zones` (criterion prints each median).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};

use count_benches::{cluster, runtime};
use count_core::jiff::Timestamp;
use count_core::{
    Batch, BatchId, BucketCount, CountKey, Counter, DateRange, Day, Dimension, Endpoint, Method,
    Path, Period, Status, Subject, TotalsQuery, Zone, uuid::Uuid,
};
use count_pg::PgCounter;
use count_sqlite::SqliteCounter;
use tokio::runtime::Runtime;

const ENDPOINTS: usize = 1000;

fn day(text: &str) -> Day {
    text.parse().unwrap()
}

/// Writes `counts` (Unix second, key, n) as batches of 10,000.
async fn write(counter: &dyn Counter, counts: Vec<(i64, CountKey, u64)>) {
    let writer = Uuid::new_v4();
    for (seq, chunk) in counts.chunks(10_000).enumerate() {
        let batch = chunk
            .iter()
            .map(|&(at, key, n)| BucketCount::new(key, Timestamp::from_second(at).unwrap(), n))
            .collect();
        let id = BatchId {
            writer,
            seq: seq as u64,
        };
        counter
            .write(&Batch::new(id, batch).unwrap())
            .await
            .unwrap();
    }
}

/// The year of 1,000 endpoints, written and rolled up, Asia/Kolkata's days kept.
async fn fill_year(counter: &dyn Counter) {
    counter
        .keep_zone_days(&Zone::new("Asia/Kolkata").unwrap())
        .await
        .unwrap();
    let endpoints: Vec<CountKey> = (0..ENDPOINTS)
        .map(|e| {
            let path = Path::new(&format!("/api/{e}/{{id}}")).unwrap();
            CountKey::new(Endpoint::new(Method::Get, path))
        })
        .collect();
    let year = Period::year(2025).unwrap().range();
    let hourly_from = day("2025-12-25");
    let mut counts = Vec::new();
    for d in year.days() {
        for (e, &key) in endpoints.iter().enumerate() {
            if d < hourly_from {
                counts.push((
                    d.start_second() + (e % 24) as i64 * 3600 + 600,
                    key,
                    1 + e as u64 % 7,
                ));
            } else {
                for h in 0..24 {
                    counts.push((
                        d.start_second() + h * 3600 + 600,
                        key,
                        1 + (e as u64 + h as u64) % 7,
                    ));
                }
            }
        }
    }
    write(counter, counts).await;
    for d in year.days() {
        counter.rollup(d).await.unwrap();
    }
}

fn reports(c: &mut Criterion, runtime: &Runtime, name: &str, counter: &dyn Counter) {
    let year = Period::year(2025).unwrap().range();
    let week = DateRange::new(day("2025-12-25"), day("2025-12-31")).unwrap();
    let by_day = [Dimension::Day, Dimension::Endpoint];
    let kolkata = Zone::new("Asia/Kolkata").unwrap();
    let cases = [
        (
            "year_by_day_utc",
            TotalsQuery::new(year, &by_day).unwrap(),
            365_000,
        ),
        (
            "year_by_day_kolkata",
            TotalsQuery::new(year, &by_day).unwrap().in_zone(kolkata),
            0,
        ),
        (
            "week_by_hour_utc",
            TotalsQuery::new(week, &[Dimension::Hour, Dimension::Endpoint]).unwrap(),
            168_000,
        ),
    ];
    let mut group = c.benchmark_group(format!("reports/{name}"));
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (case, query, rows) in &cases {
        let got = runtime.block_on(counter.totals(query)).unwrap();
        if *rows > 0 {
            assert_eq!(got.len(), *rows, "{name} {case}");
        }
        eprintln!("{name} {case}: {} rows", got.len());
        group.bench_function(*case, |b| {
            b.iter(|| runtime.block_on(counter.totals(query)).unwrap())
        });
    }
    group.finish();
}

/// The 200,000 keys of the storage day, each counted once an hour, in the quarter
/// `key % 4` of the hour.
fn storage_day(d: Day) -> Vec<(i64, CountKey, u64)> {
    let mut counts = Vec::with_capacity(200_000 * 24);
    let mut k = 0i64;
    for e in 0..ENDPOINTS {
        let path = Path::new(&format!("/api/{e}/{{id}}")).unwrap();
        for s in 0..50 {
            let subject = Subject::new(&format!("tenant-{s}")).unwrap();
            for code in [200, 201, 404, 503] {
                let key = CountKey::of(
                    Method::Get,
                    path,
                    Some(subject),
                    Some(Status::http(code).unwrap()),
                );
                for h in 0..24 {
                    counts.push((d.start_second() + h * 3600 + (k % 4) * 900, key, 1));
                }
                k += 1;
            }
        }
    }
    counts
}

fn bench(c: &mut Criterion) {
    let runtime = runtime();
    let dir = std::env::temp_dir().join(format!("count-zones-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str| dir.join(name);

    let sqlite = runtime
        .block_on(SqliteCounter::connect(&format!(
            "sqlite://{}",
            file("year.db").display()
        )))
        .unwrap();
    let cluster = cluster("zones");
    let pg_url = cluster.fresh_database("bench_zones");
    let pg = runtime.block_on(PgCounter::connect(&pg_url)).unwrap();
    for (name, counter) in [("sqlite", &sqlite as &dyn Counter), ("pg", &pg)] {
        runtime.block_on(fill_year(counter));
        reports(c, &runtime, name, counter);
    }

    // Storage of one dense day, untimed.
    let d = day("2025-06-02");
    let storage_url = format!("sqlite://{}", file("storage.db").display());
    let sqlite = Arc::new(
        runtime
            .block_on(SqliteCounter::connect(&storage_url))
            .unwrap(),
    );
    runtime.block_on(write(&*sqlite, storage_day(d)));
    runtime.block_on(sqlite.rollup(d)).unwrap();
    runtime.block_on(sqlite.checkpoint()).unwrap();
    let storage = file("storage.db");
    let conn = count_sqlite_stat(&storage);
    for (table, what) in [
        ("daily_totals", "UTC day totals"),
        ("quarter_totals", "quarter hours"),
    ] {
        eprintln!("sqlite {what}: {}", conn(table));
    }
    let pg_storage = cluster.fresh_database("bench_zones_storage");
    let pg = runtime.block_on(PgCounter::connect(&pg_storage)).unwrap();
    runtime.block_on(write(&pg, storage_day(d)));
    runtime.block_on(pg.rollup(d)).unwrap();
    let client = runtime.block_on(pg.client()).unwrap();
    for table in ["daily_key_totals", "quarter_batches"] {
        runtime
            .block_on(client.batch_execute(&format!("VACUUM FULL count.{table}")))
            .unwrap();
    }
    // (table, what, how many day totals or key-quarters it holds)
    for (table, what, units) in [
        ("daily_key_totals", "UTC day totals", "count(*)"),
        (
            "quarter_batches",
            "quarter hours",
            "sum(cardinality(key_ids))",
        ),
    ] {
        let row = runtime
            .block_on(client.query_one(
                &format!(
                    "SELECT count(*), {units}::bigint, pg_total_relation_size('count.{table}') \
                     FROM count.{table}"
                ),
                &[],
            ))
            .unwrap();
        let (rows, units, bytes): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        eprintln!(
            "pg {what}: {rows} rows holding {units}, {:.1} MiB ({:.1} bytes each)",
            bytes as f64 / (1 << 20) as f64,
            bytes as f64 / units.max(1) as f64
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reader of SQLite's page statistics for a file: a table's rows, key-quarters
/// (for the packed quarter hours) and bytes (its pages, overflow included).
fn count_sqlite_stat(path: &std::path::Path) -> impl Fn(&str) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    move |table: &str| {
        let rows: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        let bytes: i64 = conn
            .query_row(
                "SELECT sum(d.pgsize) FROM dbstat d JOIN sqlite_schema s ON s.name = d.name
                 WHERE s.tbl_name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        let pairs = if table == "quarter_totals" {
            let pairs: i64 = conn
                .query_row(
                    "SELECT sum(length(counts)) / 16 FROM quarter_totals",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            format!(" holding {pairs} key-quarters")
        } else {
            String::new()
        };
        // Bytes a day total, or a key-quarter.
        let units: i64 = if table == "quarter_totals" {
            conn.query_row(
                "SELECT sum(length(counts)) / 16 FROM quarter_totals",
                [],
                |r| r.get(0),
            )
            .unwrap()
        } else {
            rows
        };
        let per = bytes as f64 / units.max(1) as f64;
        format!(
            "{rows} rows{pairs}, {:.1} MiB ({per:.1} bytes each)",
            bytes as f64 / (1 << 20) as f64
        )
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
