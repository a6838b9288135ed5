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

    // The log's index deleted: a process opening the file now would make a new one
    // and write to the log without this one's lock.
    let shm = beside(&path, "-shm");
    let kept_shm = dir.path().join("kept-shm");
    std::fs::hard_link(&shm, &kept_shm).unwrap();
    std::fs::remove_file(&shm).unwrap();
    let err = counter.write(&lost).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(
        err.to_string().contains(&shm.display().to_string()),
        "{err}"
    );
    std::fs::hard_link(&kept_shm, &shm).unwrap();
    std::fs::remove_file(&kept_shm).unwrap();
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

/// A file and when it was last changed.
fn bytes_and_mtime(path: &Path) -> (Vec<u8>, std::time::SystemTime) {
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    (std::fs::read(path).unwrap(), modified)
}

fn read_only(path: &Path) -> count_sqlite::SqliteCounterBuilder {
    SqliteCounter::builder(&url_of(path)).read_only(true)
}

/// A database written and stopped cleanly: no `-wal`, no `-shm` beside it.
async fn stopped_database(path: &Path, n: u64) {
    let counter = SqliteCounter::connect(&url_of(path)).await.unwrap();
    counter
        .write(&batch(&[("/r", "2025-05-05T05:00:00Z", n)]))
        .await
        .unwrap();
    counter.checkpoint().await.unwrap();
    drop(counter);
    // The last connection to close removes the log and the shared memory (the
    // writer thread closes its own on its time).
    let gone = || !beside(path, "-wal").exists() && !beside(path, "-shm").exists();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !gone() && std::time::Instant::now() < deadline {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch("SELECT count(*) FROM sqlite_schema")
            .unwrap();
        drop(conn);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(gone());
}

/// Read-only, a database is read and nothing is changed: not its bytes, not its
/// time, and nothing is created beside it; writes are refused naming the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_open_reads_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count.db");
    stopped_database(&path, 5).await;
    let before = bytes_and_mtime(&path);
    std::thread::sleep(std::time::Duration::from_millis(20));

    let counter = read_only(&path).connect().await.unwrap();
    assert_eq!(total(&counter, "2025-05-05").await, 5);
    assert_eq!(total(&counter, "2025-05-05").await, 5);
    counter.health().await.unwrap();
    for err in [
        counter
            .write(&batch(&[("/r", "2025-05-05T05:00:00Z", 1)]))
            .await
            .unwrap_err(),
        counter.rollup(day("2025-05-05")).await.unwrap_err(),
        counter.checkpoint().await.unwrap_err(),
    ] {
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidInput { .. }), "{text}");
        assert!(
            text.contains(&path.display().to_string()) && text.contains("read-only"),
            "{text}"
        );
    }
    drop(counter);
    assert_eq!(bytes_and_mtime(&path), before, "the file was changed");
    for suffix in ["-wal", "-shm", "-journal"] {
        assert!(!beside(&path, suffix).exists(), "{suffix} was created");
    }
}

/// Beside a running writer, a read-only counter reads what it commits, also after
/// its first read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_counter_reads_what_a_running_writer_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count.db");
    stopped_database(&path, 5).await;
    let reading = read_only(&path).connect().await.unwrap();
    assert_eq!(total(&reading, "2025-05-05").await, 5);
    let writing = SqliteCounter::connect(&url_of(&path)).await.unwrap();
    let t = "2025-05-05T06:00:00Z";
    writing.write(&batch(&[("/r", t, 2)])).await.unwrap();
    assert_eq!(total(&reading, "2025-05-05").await, 7);
    writing.write(&batch(&[("/r", t, 3)])).await.unwrap();
    assert_eq!(total(&reading, "2025-05-05").await, 10);
}

/// Read-only, a missing file is not found and a file without this version's schema
/// is refused, and neither is created or changed; memory cannot be read-only.
#[tokio::test]
async fn a_read_only_open_refuses_what_it_cannot_read_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("sub/count.db");
    let err = read_only(&missing).connect().await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    assert!(err.to_string().contains(&missing.display().to_string()));
    assert!(!dir.path().join("sub").exists());

    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let err = read_only(&empty).connect().await.unwrap_err().to_string();
    assert!(err.contains("has no count schema"), "{err}");
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);

    let text = dir.path().join("notes.db");
    std::fs::write(
        &text,
        b"not a database, but long enough to have a header ...........",
    )
    .unwrap();
    let err = read_only(&text).connect().await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { .. }) && err.to_string().contains("not a SQLite"),
        "{err}"
    );

    let err = SqliteCounter::builder("sqlite::memory:")
        .read_only(true)
        .connect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only"), "{err}");
}

/// A backup taken while a writer writes is one snapshot: it holds every batch
/// acknowledged before it started, and whole batches only (each writes the same
/// count to two endpoints, so a torn copy would show them apart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_while_writes_go_on_holds_every_count_written_before_it_exactly() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count.db");
    let counter = SqliteCounter::connect(&url_of(&path)).await.unwrap();
    let t = "2025-06-06T06:00:00Z";
    let (stop, written) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let writing = tokio::spawn({
        let (counter, stop, written) = (counter.clone(), stop.clone(), written.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let both = batch(&[("/a", t, 1), ("/b", t, 1)]);
                counter.write(&both).await.unwrap();
                written.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    while written.load(Ordering::SeqCst) < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let before = written.load(Ordering::SeqCst);
    let dest = dir.path().join("backup.db");
    counter.backup(&dest).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    stop.store(true, Ordering::Relaxed);
    writing.await.unwrap();
    let after = written.load(Ordering::SeqCst);
    assert!(after > before, "the writes went on during the backup");

    assert!(!beside(&dest, "-wal").exists() && !beside(&dest, ".partial").exists());
    let copy = read_only(&dest).connect().await.unwrap();
    let rows = copy
        .daily_totals(DateRange::day(day("2025-06-06")))
        .await
        .unwrap();
    let totals: Vec<u64> = rows.iter().map(|r| r.total).collect();
    assert_eq!(totals.len(), 2, "{rows:?}");
    assert_eq!(totals[0], totals[1], "a torn copy: {rows:?}");
    assert!(
        (before..=after).contains(&totals[0]),
        "{before} ≤ {} ≤ {after}",
        totals[0]
    );
    assert_eq!(total(&counter, "2025-06-06").await, 2 * after);

    let err = counter.backup(&dest).await.unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
}
