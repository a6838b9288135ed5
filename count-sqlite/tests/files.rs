//! The database file as an operator handles it: deleted or replaced under a running
//! counter, opened read-only, copied after a clean stop, backed up while written.

use std::path::{Path, PathBuf};

use count_core::testkit::{batch, day};
use count_core::{Counter, DateRange, Error};
use count_sqlite::SqliteCounter;

fn url_of(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// `path` with `suffix` appended: the `-wal` and `-shm` beside a database.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Every count of `day` the counter reads.
async fn total(counter: &dyn Counter, on: &str) -> u64 {
    counter
        .daily_totals(DateRange::day(day(on)))
        .await
        .unwrap()
        .iter()
        .map(|t| t.total)
        .sum()
}

/// A write into a file deleted or renamed after the open would be acknowledged and
/// lost: it is refused, writing nothing, and works again once the file is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_into_a_moved_or_deleted_file_are_refused_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count.db");
    let counter = SqliteCounter::connect(&url_of(&path)).await.unwrap();
    let t = "2025-03-03T03:00:00Z";
    counter.write(&batch(&[("/a", t, 1)])).await.unwrap();

    // The database renamed away.
    let away = dir.path().join("away.db");
    std::fs::rename(&path, &away).unwrap();
    let lost = batch(&[("/a", t, 10)]);
    let err = counter.write(&lost).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Unavailable { .. }), "{text}");
    assert!(
        text.contains(&path.display().to_string()) && text.contains("deleted or replaced"),
        "{text}"
    );
    let err = counter.rollup(day("2025-03-03")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    std::fs::rename(&away, &path).unwrap();
    assert_eq!(
        total(&counter, "2025-03-03").await,
        1,
        "nothing was written"
    );
    counter.write(&batch(&[("/a", t, 100)])).await.unwrap();

    // The log deleted (kept by a second name, to put it back).
    let wal = beside(&path, "-wal");
    let kept = dir.path().join("kept-wal");
    std::fs::hard_link(&wal, &kept).unwrap();
    std::fs::remove_file(&wal).unwrap();
    let err = counter.write(&lost).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(
        err.to_string().contains(&wal.display().to_string()),
        "{err}"
    );
    std::fs::hard_link(&kept, &wal).unwrap();
    counter.write(&batch(&[("/a", t, 1000)])).await.unwrap();
    counter.rollup(day("2025-03-03")).await.unwrap();
    assert_eq!(total(&counter, "2025-03-03").await, 1101);

    // All three files deleted: refused for good.
    drop(std::fs::remove_file(dir.path().join("kept-wal")));
    for suffix in ["", "-wal", "-shm"] {
        std::fs::remove_file(beside(&path, suffix)).unwrap();
    }
    let err = counter.write(&lost).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(counter.health().await.is_err());
}

/// The counts of a file's bytes alone, copied elsewhere (without its `-wal`).
async fn total_of_a_copy(path: &Path, on: &str) -> u64 {
    let copy = tempfile::tempdir().unwrap();
    let copied = copy.path().join("copy.db");
    std::fs::copy(path, &copied).unwrap();
    let counter = SqliteCounter::connect(&url_of(&copied)).await.unwrap();
    total(&counter, on).await
}

/// Whether the log beside `path` is gone or empty.
fn log_is_empty(path: &Path) -> bool {
    std::fs::metadata(beside(path, "-wal")).map_or(true, |m| m.len() == 0)
}

/// After a checkpoint, or once the last clone is dropped, the log is empty and a
/// plain copy of the database file holds every count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_checkpoint_or_the_last_drop_a_copy_of_the_file_holds_every_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count.db");
    let counter = SqliteCounter::connect(&url_of(&path)).await.unwrap();
    let t = "2025-04-04T04:00:00Z";
    counter.write(&batch(&[("/a", t, 3)])).await.unwrap();
    total(&counter, "2025-04-04").await; // a read connection open beside the writer
    assert!(!log_is_empty(&path), "the counts are in the log at first");
    counter.checkpoint().await.unwrap();
    assert!(log_is_empty(&path));
    assert_eq!(total_of_a_copy(&path, "2025-04-04").await, 3);

    counter.write(&batch(&[("/a", t, 4)])).await.unwrap();
    total(&counter, "2025-04-04").await;
    drop(counter);
    // The writer thread checkpoints as it stops, on its own time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !log_is_empty(&path) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(log_is_empty(&path), "the last drop left counts in the log");
    assert_eq!(total_of_a_copy(&path, "2025-04-04").await, 7);
}
