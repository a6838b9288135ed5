//! Which backend a database URL opens: PostgreSQL, or CockroachDB told apart by the
//! server's `version()` (here, count-testcluster's emulation), forced or refused;
//! SQLite files and memory; checking a schema without migrating it; CockroachDB's
//! retry figures in `/metrics`.

mod common;

use common::Running;
use count::{Kind, Migrations};
use count_server::ServerConfig;
use count_server::backend::{self, Backend};
use count_testcluster::TestCluster;
use count_testcluster::cockroach::CockroachEmulation;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_urls_open_postgresql_or_cockroachdb() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let postgres = cluster.fresh_database("server_backend_pg");
    let cockroach = CockroachEmulation::start(cluster.clone(), "server_backend_crdb").await;

    let auto_pg = backend::open(&postgres, Backend::Auto, Migrations::Apply)
        .await
        .unwrap();
    assert_eq!(auto_pg.kind(), Kind::Postgres);
    // The URL holds the cluster's password (count-testcluster's own cluster); the
    // description never does.
    let password = postgres
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password);
    assert!(
        auto_pg.description().starts_with("PostgreSQL at ")
            && password.is_none_or(|password| !auto_pg.description().contains(password)),
        "{}",
        auto_pg.description()
    );
    // Each flavour's rollup chunk: PostgreSQL's million, CockroachDB's 10,000 (below
    // its transaction size limits), unless the builder names one.
    let count::Backend::Postgres(pg) = auto_pg.backend() else {
        panic!("not PostgreSQL");
    };
    assert_eq!(pg.rollup_chunk(), 1_000_000);
    let auto_crdb = backend::open(&cockroach.url(), Backend::Auto, Migrations::Apply)
        .await
        .unwrap();
    assert_eq!(auto_crdb.kind(), Kind::Cockroach);
    assert!(auto_crdb.description().starts_with("CockroachDB at "));
    let count::Backend::Cockroach(crdb) = auto_crdb.backend() else {
        panic!("not CockroachDB");
    };
    assert_eq!(crdb.retries().restarts, 0);
    assert_eq!(crdb.pg().rollup_chunk(), 10_000);
    let chosen = count::cockroach::CockroachCounter::builder(&cockroach.url())
        .pg(|pg| pg.rollup_chunk(500))
        .connect()
        .await
        .unwrap();
    assert_eq!(chosen.pg().rollup_chunk(), 500);
    // PostgreSQL's counter refuses CockroachDB by name.
    let refused = count::pg::PgCounter::connect(&cockroach.url())
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("CockroachCounter"), "{refused}");
    auto_crdb.counter().health().await.unwrap();
    let server = Running::start_backend(ServerConfig::new(), auto_crdb).await;
    let metrics = server.get("/metrics", &[]).await.body;
    for line in [
        "count_backend_retries_total{kind=\"restart\"} 0",
        "count_backend_retries_total{kind=\"ambiguous\"} 0",
        "count_backend_retries_exhausted_total 0",
        "count_server_info{version=",
        "backend=\"cockroach\"",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    server.stop().await.unwrap();

    // Forced: CockroachDB on PostgreSQL is refused by name.
    let refused = backend::open(&postgres, Backend::Cockroach, Migrations::Apply)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("PostgreSQL"), "{refused}");
    let forced_pg = backend::open(&postgres, Backend::Postgres, Migrations::Check)
        .await
        .unwrap();
    assert_eq!(forced_pg.kind(), Kind::Postgres);

    // Checking a database nobody migrated says so, and changes nothing.
    let empty = cluster.fresh_database("server_backend_empty");
    let unmigrated = backend::open(&empty, Backend::Auto, Migrations::Check)
        .await
        .unwrap_err();
    assert!(count::is_schema_not_current(&unmigrated), "{unmigrated}");
    let still = backend::open(&empty, Backend::Postgres, Migrations::Check)
        .await
        .unwrap_err();
    assert!(count::is_schema_not_current(&still), "{still}");

    // A URL that cannot work is an error, not a fallback to anything.
    let bad = backend::open(
        "postgresql://nobody@127.0.0.1:1/x?sslmode=disable",
        Backend::Auto,
        Migrations::Apply,
    )
    .await
    .unwrap_err();
    assert!(bad.to_string().contains("127.0.0.1"), "{bad}");
    assert!(!count::is_schema_not_current(&bad));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_and_memory_open_without_a_database_server() {
    let dir = std::env::temp_dir().join(format!("count-server-backends-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join("nested/dirs/count.db");
    let url = backend::sqlite_url(&file).unwrap();
    let sqlite = backend::open(&url, Backend::Auto, Migrations::Apply)
        .await
        .unwrap();
    assert_eq!(sqlite.kind(), Kind::Sqlite);
    assert_eq!(
        sqlite.description(),
        format!("SQLite file {}", file.display())
    );
    assert!(sqlite.is_durable());
    assert!(file.exists());
    let forced = backend::open(&url, Backend::Sqlite, Migrations::Apply)
        .await
        .unwrap();
    assert_eq!(forced.kind(), Kind::Sqlite);
    // Checked, a migrated file opens...
    let checked = backend::open(&url, Backend::Auto, Migrations::Check)
        .await
        .unwrap();
    assert_eq!(checked.description(), sqlite.description());
    // ...a missing one is not created...
    let missing = dir.join("missing/count.db");
    let error = backend::open(
        &backend::sqlite_url(&missing).unwrap(),
        Backend::Auto,
        Migrations::Check,
    )
    .await
    .unwrap_err();
    assert!(matches!(error, count_core::Error::NotFound(_)), "{error}");
    assert!(!missing.exists() && !dir.join("missing").exists());
    // ...and one that is not count's is neither migrated nor changed.
    let empty = dir.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let error = backend::open(
        &backend::sqlite_url(&empty).unwrap(),
        Backend::Sqlite,
        Migrations::Check,
    )
    .await
    .unwrap_err();
    assert!(count::is_schema_not_current(&error), "{error}");
    assert!(error.to_string().contains("not migrated"), "{error}");
    assert_eq!(std::fs::read(&empty).unwrap().len(), 0);
    let junk = dir.join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let error = backend::open(
        &backend::sqlite_url(&junk).unwrap(),
        Backend::Sqlite,
        Migrations::Check,
    )
    .await
    .unwrap_err();
    assert!(!count::is_schema_not_current(&error), "{error}");
    assert!(error.to_string().contains("junk.db"), "{error}");

    let in_memory = backend::open("sqlite::memory:", Backend::Auto, Migrations::Apply)
        .await
        .unwrap();
    assert!(!in_memory.is_durable());
    let memory = backend::open("memory:", Backend::Memory, Migrations::Apply)
        .await
        .unwrap();
    assert_eq!(memory.kind(), Kind::Memory);
    assert!(!memory.is_durable());

    for (url, backend, words) in [
        ("mysql://root:pw@h/x", Backend::Auto, "expected sqlite:"),
        (url.as_str(), Backend::Postgres, "is SQLite"),
        ("memory:", Backend::Sqlite, "is memory"),
        (
            "postgresql://h/d",
            Backend::Memory,
            "PostgreSQL or CockroachDB",
        ),
    ] {
        let error = backend::open(url, backend, Migrations::Apply)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(words), "{url} {backend}: {error}");
        assert!(!error.contains(":pw@"), "{error}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// OK means durably written in the file the server was started on: once that file
/// (and its `-wal` and `-shm`) is deleted, a unit `Add` and an `AddCounts` are
/// answered UNAVAILABLE with nothing acknowledged, and `/readyz` is 503; once the
/// file is back, writes are acknowledged again and survive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_into_a_deleted_sqlite_file_are_never_acknowledged() {
    use common::{GET, NOON, add};
    use count_core::{DateRange, Day};

    let dir = common::temp_dir("deleted-file");
    let file = dir.join("count.db");
    let url = backend::sqlite_url(&file).unwrap();
    let opened = backend::open(&url, Backend::Auto, Migrations::Apply)
        .await
        .unwrap();
    let server = Running::start_backend(ServerConfig::new(), opened).await;
    let mut client = server.client().await;
    let unit = |n: i64| {
        let messages: Vec<_> = (0..n).map(|i| add(GET, "/kept", NOON + i)).collect();
        let mut request = tonic::Request::new(tokio_stream::iter(messages));
        request.set_timeout(std::time::Duration::from_secs(5));
        request
    };
    let batch = |seq: u64, n: u64| common::add_counts(9, seq, "/kept", n);
    client.add(unit(3)).await.unwrap();

    let aside = dir.join("aside");
    std::fs::create_dir(&aside).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let name = format!("count.db{suffix}");
        std::fs::rename(dir.join(&name), aside.join(&name)).unwrap();
    }
    let status = client.add(unit(7)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let status = client.add_counts(batch(1, 11)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(server.get("/readyz", &[]).await.status, 503);

    for suffix in ["", "-wal", "-shm"] {
        let name = format!("count.db{suffix}");
        std::fs::rename(aside.join(&name), dir.join(&name)).unwrap();
    }
    client.add_counts(batch(2, 5)).await.unwrap();
    let day = Day::new(2024, 3, 10).unwrap();
    let sum = |totals: Vec<count_core::DailyTotal>| totals.iter().map(|t| t.total).sum::<u64>();
    let copy = dir.join("copy.db");
    std::fs::copy(dir.join("count.db"), &copy).unwrap();
    let _ = std::fs::copy(dir.join("count.db-wal"), dir.join("copy.db-wal"));
    let copied = backend::open(
        &backend::sqlite_url(&copy).unwrap(),
        Backend::Auto,
        Migrations::Apply,
    )
    .await
    .unwrap();
    assert_eq!(
        sum(copied
            .counter()
            .daily_totals(DateRange::day(day))
            .await
            .unwrap()),
        3 + 5,
        "what was acknowledged is in the file itself"
    );

    // Deleted, as the review did: nothing is acknowledged into the unlinked file.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("count.db{suffix}")));
    }
    let status = client.add(unit(7)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    let status = client.add_counts(batch(3, 11)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(server.get("/readyz", &[]).await.status, 503);
    server.stop().await.unwrap();

    // Nothing of the unlinked file's is reported as if it were stored.
    let reopened = backend::open(&url, Backend::Auto, Migrations::Apply)
        .await
        .unwrap();
    let total = sum(reopened
        .counter()
        .daily_totals(DateRange::day(day))
        .await
        .unwrap());
    assert_eq!(total, 0, "the file was deleted: the new one holds nothing");
}
