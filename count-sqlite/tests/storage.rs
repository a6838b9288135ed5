//! What the file holds: texts byte for byte, one row per key and bucket however many
//! requests and batches, totals that saturate, pruned batch ids, and exact totals
//! from many writers racing rollups.

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use count_core::testkit::{at, day, fresh_id};
use count_core::{
    Batch, BucketCount, CountKey, CountQueue, Counter, CounterExt, DateRange, Dimension, Endpoint,
    GroupedTotal, Method, Path, Period, Status, Subject, TotalsQuery,
};
use count_sqlite::SqliteCounter;

async fn open(dir: &tempfile::TempDir) -> SqliteCounter {
    SqliteCounter::connect(&format!("sqlite://{}", db_path(dir).display()))
        .await
        .unwrap()
}

fn db_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("count.db")
}

/// Rows of `table`, read beside the counter.
fn rows(path: &FsPath, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// A path of exactly `Path::MAX_LEN` bytes: quotes, a backslash, SQL wildcards and
/// multi-byte characters, padded.
fn longest_path(tag: &str) -> String {
    let mut text = format!("/'\"\\%_😀ünï/{tag}/");
    while text.len() + "é".len() <= Path::MAX_LEN {
        text.push('é');
    }
    while text.len() < Path::MAX_LEN {
        text.push('x');
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_longest_paths_and_subjects_come_back_byte_for_byte_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path_text = longest_path("round-trip");
    assert_eq!(path_text.len(), Path::MAX_LEN);
    let mut subject_text = String::from("it's \"ü\" 😀 ");
    while subject_text.len() < Subject::MAX_LEN {
        subject_text.push('s');
    }
    let endpoint = Endpoint::new(Method::Patch, Path::new(&path_text).unwrap());
    let key = CountKey::new(endpoint)
        .with_subject(Subject::new(&subject_text).unwrap())
        .with_status(Status::http(418).unwrap());
    let bucket = at("2025-05-05T05:05:00Z");
    {
        let counter = open(&dir).await;
        let batch = Batch::new(fresh_id(), vec![BucketCount::new(key, bucket, 3)]).unwrap();
        counter.write(&batch).await.unwrap();
    }
    let counter = open(&dir).await;
    let query = TotalsQuery::new(
        DateRange::day(day("2025-05-05")),
        &[Dimension::Endpoint, Dimension::Subject, Dimension::Status],
    )
    .unwrap();
    let got = counter.totals(&query).await.unwrap();
    assert_eq!(
        got,
        [GroupedTotal::new(3)
            .with_endpoint(endpoint)
            .with_subject(key.subject)
            .with_status(key.status)]
    );
    let row = got[0];
    assert_eq!(
        row.endpoint.unwrap().path.as_str().as_bytes(),
        path_text.as_bytes()
    );
    assert_eq!(
        row.subject.unwrap().as_str().as_bytes(),
        subject_text.as_bytes()
    );
    // And as stored: the text itself, not an escaped form.
    let conn = rusqlite::Connection::open(db_path(&dir)).unwrap();
    let stored: (Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT CAST(path AS BLOB), CAST(subject AS BLOB) FROM keys",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(stored, (path_text.into_bytes(), subject_text.into_bytes()));
}

/// Storage grows with distinct keys × buckets: a thousand batches of the same two
/// keys in one bucket are one raw bucket holding two counts, and two daily rows
/// once rolled up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_grows_with_keys_and_buckets_not_requests_or_batches() {
    let dir = tempfile::tempdir().unwrap();
    let counter = open(&dir).await;
    let get = Endpoint::new(Method::Get, Path::new("/grow").unwrap());
    let post = Endpoint::new(Method::Post, Path::new("/grow").unwrap());
    let bucket = at("2025-06-06T06:00:00Z");
    for i in 0..1000 {
        let batch = Batch::new(
            fresh_id(),
            vec![
                BucketCount::new(get, bucket, i + 1),
                BucketCount::new(post, bucket, 1),
            ],
        )
        .unwrap();
        counter.write(&batch).await.unwrap();
    }
    assert_eq!(rows(&db_path(&dir), "raw_buckets"), 1);
    let conn = rusqlite::Connection::open(db_path(&dir)).unwrap();
    let packed: i64 = conn
        .query_row("SELECT length(counts) FROM raw_buckets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(packed, 2 * 16, "two (key id, count) pairs");
    assert_eq!(rows(&db_path(&dir), "keys"), 2);
    let d = day("2025-06-06");
    let totals = counter.rollup(d).await.unwrap();
    assert_eq!(
        totals.iter().map(|t| t.total).collect::<Vec<_>>(),
        [1000 * 1001 / 2, 1000]
    );
    assert_eq!(rows(&db_path(&dir), "raw_buckets"), 0);
    assert_eq!(rows(&db_path(&dir), "daily_totals"), 2);
}

/// Batch ids are kept for the retention, then pruned by a rollup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_prune_batch_ids_past_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", db_path(&dir).display());
    let keeping = SqliteCounter::connect(&url).await.unwrap();
    let batch = count_core::testkit::batch(&[("/prune", "2025-07-07T07:00:00Z", 1)]);
    keeping.write(&batch).await.unwrap();
    keeping.rollup(day("2025-07-07")).await.unwrap();
    assert_eq!(
        rows(&db_path(&dir), "batches"),
        1,
        "kept within the retention"
    );
    let pruning = SqliteCounter::builder(&url)
        .batch_retention(Duration::ZERO)
        .connect()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    pruning.rollup(day("2025-07-07")).await.unwrap();
    assert_eq!(
        rows(&db_path(&dir), "batches"),
        0,
        "pruned past the retention"
    );
}

/// Totals past `i64::MAX` stop there, rolled up or raw, in every report; other
/// endpoints are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_saturate_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let counter = open(&dir).await;
    let big = Endpoint::new(Method::Get, Path::new("/saturate").unwrap());
    let small = Endpoint::new(Method::Get, Path::new("/small").unwrap());
    let bucket = at("2025-08-08T08:00:00Z");
    let d = day("2025-08-08");
    let write = |counts| {
        let counter = counter.clone();
        async move {
            counter
                .write(&Batch::new(fresh_id(), counts).unwrap())
                .await
                .unwrap()
        }
    };
    write(vec![
        BucketCount::new(big, bucket, 5),
        BucketCount::new(small, bucket, 3),
    ])
    .await;
    counter.rollup(d).await.unwrap();
    // A total near the limit, as a long-running counter could reach.
    let conn = rusqlite::Connection::open(db_path(&dir)).unwrap();
    conn.execute(
        "UPDATE daily_totals SET total = 9223372036854775800 WHERE total = 5",
        [],
    )
    .unwrap();
    write(vec![BucketCount::new(big, bucket, Batch::MAX_COUNT)]).await;
    write(vec![BucketCount::new(big, bucket, Batch::MAX_COUNT)]).await;
    let max = i64::MAX as u64;
    let live = counter.day_totals(d).await.unwrap();
    assert_eq!(live.iter().map(|t| t.total).collect::<Vec<_>>(), [max, 3]);
    let year = counter
        .period_totals(Period::year(2025).unwrap())
        .await
        .unwrap();
    assert_eq!(year.iter().map(|t| t.total).collect::<Vec<_>>(), [max, 3]);
    let grouped = counter
        .totals(&TotalsQuery::new(DateRange::day(d), &[Dimension::Endpoint]).unwrap())
        .await
        .unwrap();
    assert_eq!(
        grouped.iter().map(|t| t.total).collect::<Vec<_>>(),
        [max, 3]
    );
    let rolled = counter.rollup(d).await.unwrap();
    assert_eq!(rolled.iter().map(|t| t.total).collect::<Vec<_>>(), [max, 3]);
    let stored: i64 = conn
        .query_row("SELECT max(total) FROM daily_totals", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, i64::MAX);
}

/// Four queues record into one counter while rollups of the same day run: every
/// recorded request is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_queues_and_rollups_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let counter: Arc<dyn Counter> = Arc::new(
        SqliteCounter::builder(&format!("sqlite://{}", db_path(&dir).display()))
            .rollup_chunk(10)
            .connect()
            .await
            .unwrap(),
    );
    let d = day("2025-09-09");
    let stamp = |i: u64| {
        at(&format!(
            "2025-09-09T{:02}:{:02}:00Z",
            (i / 60) % 24,
            i % 60
        ))
    };
    let keys: Vec<CountKey> = (0..20)
        .map(|i| {
            CountKey::new(Endpoint::new(
                Method::Get,
                Path::new(&format!("/q/{i}")).unwrap(),
            ))
            .with_subject(Subject::new(&format!("tenant-{}", i % 3)).unwrap())
        })
        .collect();
    let recorders = (0..4u64).map(|q| {
        let (counter, keys) = (Arc::clone(&counter), keys.clone());
        tokio::spawn(async move {
            let queue = CountQueue::builder(counter)
                .flush_interval(Duration::from_millis(5))
                .build()
                .unwrap();
            for i in 0..5_000u64 {
                let key = keys[((i + q) % 20) as usize];
                queue.record_wait(key, stamp(i % 1440)).await.unwrap();
                if i % 1000 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            queue.shutdown().await.unwrap();
        })
    });
    let rollups = (0..2).map(|_| {
        let counter = Arc::clone(&counter);
        tokio::spawn(async move {
            for _ in 0..20 {
                counter.rollup(d).await.unwrap();
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    });
    let tasks: Vec<_> = recorders.chain(rollups).collect();
    for task in tasks {
        task.await.unwrap();
    }
    let totals = counter.day_totals(d).await.unwrap();
    assert_eq!(totals.len(), 20);
    assert_eq!(totals.iter().map(|t| t.total).sum::<u64>(), 4 * 5_000);
    assert!(totals.iter().all(|t| t.total == 1_000), "{totals:?}");
    let by_subject = counter
        .totals(&TotalsQuery::new(DateRange::day(d), &[Dimension::Subject]).unwrap())
        .await
        .unwrap();
    assert_eq!(
        by_subject.iter().map(|t| t.total).collect::<Vec<_>>(),
        [7_000, 7_000, 6_000]
    );
    counter.rollup(d).await.unwrap();
    assert!(
        !counter
            .unrolled_days(d.next().unwrap())
            .await
            .unwrap()
            .contains(&d)
    );
    assert_eq!(counter.day_totals(d).await.unwrap(), totals);
}

/// Batches that wait for the writer are committed together; a reused id among them
/// is refused on its own, and the others (repeats included) are applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_written_at_once_apply_each_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let counter = open(&dir).await;
    let endpoint = Endpoint::new(Method::Get, Path::new("/together").unwrap());
    let bucket = at("2025-11-11T11:00:00Z");
    let batches: Vec<Batch> = (1..=60)
        .map(|n| Batch::new(fresh_id(), vec![BucketCount::new(endpoint, bucket, n)]).unwrap())
        .collect();
    let reused = Batch::new(
        batches[7].id(),
        vec![BucketCount::new(endpoint, bucket, 1000)],
    )
    .unwrap();
    // Every batch twice, and the reused id, all at once.
    let writes = batches
        .iter()
        .chain(&batches)
        .chain([&reused])
        .map(|batch| {
            let (counter, batch) = (counter.clone(), batch.clone());
            tokio::spawn(async move { counter.write(&batch).await })
        })
        .collect::<Vec<_>>();
    let mut conflicts = 0;
    for write in writes {
        match write.await.unwrap() {
            Ok(()) => {}
            Err(count_core::Error::BatchConflict { id }) => {
                assert_eq!(id, reused.id());
                conflicts += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    // The reused id lost the race, or its batch did (and then the originals
    // conflicted): either way one id, one set of counts.
    let total = counter
        .endpoint_total(endpoint, Period::Day(day("2025-11-11")))
        .await
        .unwrap();
    let expected = (1..=60).sum::<u64>();
    assert!(
        (conflicts == 1 && total == expected) || (conflicts == 2 && total == expected - 8 + 1000),
        "{conflicts} conflicts, total {total}"
    );
}
