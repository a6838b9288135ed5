//! Opening: the file and its directories are created; every bad open is refused
//! with an error that names the path (or URL) and the rule.

use std::path::Path;

use count_core::{Counter, DateRange, Error};
use count_sqlite::{Durability, SCHEMA_VERSION, SqliteCounter};

fn url_of(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// The error of opening `url`, as text, after checking it is not retryable (the
/// cause must be fixed first) and names `shown`.
async fn refused(url: &str, shown: &str) -> String {
    let err = SqliteCounter::connect(url)
        .await
        .expect_err("the open must be refused");
    let text = err.to_string();
    assert!(!err.is_retryable(), "{text}");
    assert!(text.contains(shown), "the error must name {shown}: {text}");
    text
}

#[tokio::test]
async fn the_file_and_its_directories_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b c/ünï/count.db");
    let counter = SqliteCounter::connect(&url_of(&path)).await.unwrap();
    assert!(path.is_file());
    assert_eq!(counter.path(), Some(path.as_path()));
    counter.health().await.unwrap();
    let memory = SqliteCounter::connect("sqlite::memory:").await.unwrap();
    assert_eq!(memory.path(), None);
    memory.health().await.unwrap();
}

#[tokio::test]
async fn a_bad_url_is_refused_naming_it() {
    for (url, rule) in [
        (
            "postgresql://localhost/count",
            "expected sqlite:path/to/count.db",
        ),
        ("sqlite://db-host/count.db", "a host is not supported"),
        (
            "sqlite:count.db?mode=ro",
            "query parameters are not supported",
        ),
    ] {
        let text = refused(url, &format!("{url:?}")).await;
        assert!(text.contains(rule), "{text}");
    }
}

#[tokio::test]
async fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shown = dir.path().display().to_string();
    let text = refused(&url_of(dir.path()), &shown).await;
    assert!(text.contains("is a directory"), "{text}");
    assert!(text.contains("count.db"), "suggests a file name: {text}");
}

#[tokio::test]
async fn an_unwritable_place_is_refused() {
    // Places no process may write, root included: under a regular file, and in
    // /proc (no file can be created there; its subdirectories cannot be made).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.txt");
    std::fs::write(&file, "not a directory").unwrap();
    let under_file = file.join("count.db");
    let text = refused(&url_of(&under_file), &under_file.display().to_string()).await;
    assert!(
        text.contains("plain.txt is a file, not a directory"),
        "{text}"
    );

    let text = refused(
        "sqlite:///proc/count-test/count.db",
        "/proc/count-test/count.db",
    )
    .await;
    assert!(
        text.contains("cannot create its directory /proc/count-test"),
        "{text}"
    );

    let text = refused("sqlite:///proc/count.db", "/proc/count.db").await;
    assert!(text.contains("cannot be opened for writing"), "{text}");
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    let text_file = "these are notes, not a database\n".repeat(200);
    std::fs::write(&path, &text_file).unwrap();
    let text = refused(&url_of(&path), &path.display().to_string()).await;
    assert!(text.contains("is not a SQLite database"), "{text}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text_file);
}

#[tokio::test]
async fn another_applications_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        .unwrap();
    let text = refused(&url_of(&path), &path.display().to_string()).await;
    assert!(
        text.contains("another application") && text.contains("invoices"),
        "{text}"
    );
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1, "nothing was added to the file");
}

#[tokio::test]
async fn a_database_of_a_newer_count_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count.db");
    drop(SqliteCounter::connect(&url_of(&path)).await.unwrap());
    let newer = SCHEMA_VERSION + 1;
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO count_migrations (version, name, applied_at) VALUES (?1, 'from the future', 0)",
        [newer],
    )
    .unwrap();
    let text = refused(&url_of(&path), &path.display().to_string()).await;
    assert!(
        text.contains("newer version of count")
            && text.contains(&format!("schema version {newer}"))
            && text.contains(&format!("up to {SCHEMA_VERSION}")),
        "{text}"
    );
    let versions: i64 = conn
        .query_row("SELECT count(*) FROM count_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions, SCHEMA_VERSION + 1);
}

/// An empty file (as `touch` leaves) is an empty database: it gets the schema.
#[tokio::test]
async fn an_empty_file_gets_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count.db");
    std::fs::write(&path, b"").unwrap();
    let counter = SqliteCounter::connect(&url_of(&path)).await.unwrap();
    let range = DateRange::day("2025-01-01".parse().unwrap());
    assert_eq!(counter.daily_totals(range).await.unwrap(), []);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("SELECT max(version) FROM count_migrations", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[tokio::test]
async fn the_file_is_in_wal_mode_with_the_durability_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count.db");
    let _full = SqliteCounter::connect(&url_of(&path)).await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let normal = SqliteCounter::builder(&url_of(&dir.path().join("fast.db")))
        .durability(Durability::Normal)
        .connect()
        .await
        .unwrap();
    normal.health().await.unwrap();
}

#[tokio::test]
async fn no_read_connection_is_refused() {
    let err = SqliteCounter::builder("sqlite::memory:")
        .read_connections(0)
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "read_connections",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn health_fails_once_the_file_is_deleted_or_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count.db");
    let counter = SqliteCounter::connect(&url_of(&path)).await.unwrap();
    counter.health().await.unwrap();
    std::fs::remove_file(&path).unwrap();
    let err = counter.health().await.unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("deleted or replaced"),
        "{err}"
    );
}

/// Without migrations, nothing is created or changed: a missing file is not found,
/// a file without count's schema is refused, a migrated one opens.
#[tokio::test]
async fn without_migrations_nothing_is_created_or_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/count.db");
    let checking = |path: &Path| {
        SqliteCounter::builder(&url_of(path))
            .migrate(false)
            .connect()
    };
    let err = checking(&path).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::NotFound(_)), "{text}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(!dir.path().join("sub").exists(), "no directory was made");

    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let text = checking(&empty).await.unwrap_err().to_string();
    assert!(
        text.contains(&empty.display().to_string()) && text.contains("has no count schema"),
        "{text}"
    );
    let conn = rusqlite::Connection::open(&empty).unwrap();
    let tables: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 0, "nothing was created");

    drop(SqliteCounter::connect(&url_of(&path)).await.unwrap());
    let counter = checking(&path).await.unwrap();
    counter.health().await.unwrap();
}
