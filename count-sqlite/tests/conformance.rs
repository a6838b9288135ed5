//! The `Counter` contract, on a file and in memory, and through two counters on one
//! file.

use std::sync::Arc;

use count_core::testkit;
use count_sqlite::SqliteCounter;

fn file_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("count.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_conforms_to_the_counter_contract() {
    let dir = tempfile::tempdir().unwrap();
    let counter = Arc::new(SqliteCounter::connect(&file_url(&dir)).await.unwrap());
    testkit::run_all(counter.clone()).await;
    testkit::run_zones(&*counter).await;
    testkit::run_limits(counter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_conforms_to_the_counter_contract() {
    let counter = Arc::new(SqliteCounter::connect("sqlite::memory:").await.unwrap());
    testkit::run_all(counter.clone()).await;
    testkit::run_zones(&*counter).await;
    testkit::run_limits(counter).await;
}

/// Small rollup steps, so every rollup of the suite takes several transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_in_small_steps_conform() {
    let dir = tempfile::tempdir().unwrap();
    let counter = SqliteCounter::builder(&file_url(&dir))
        .rollup_chunk(7)
        .connect()
        .await
        .unwrap();
    let counter = Arc::new(counter);
    testkit::run_all(counter.clone()).await;
    testkit::run_zones(&*counter).await;
}

/// Two counters on one file, as two processes would be: writers and rollups split
/// between them end exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_counters_on_one_file_race_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let a = SqliteCounter::builder(&file_url(&dir))
        .rollup_chunk(3)
        .connect()
        .await
        .unwrap();
    let b = SqliteCounter::builder(&file_url(&dir))
        .rollup_chunk(5)
        .connect()
        .await
        .unwrap();
    testkit::rollups_racing_writes_are_exact(&a, &b).await;
    testkit::write_is_exactly_once(&b).await;
}
