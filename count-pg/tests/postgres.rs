//! `PgCounter` on a throwaway PostgreSQL cluster: the whole contract, connection
//! errors, concurrency, and byte-exact paths.

use std::sync::Arc;
use std::time::{Duration, Instant};

use count_core::testkit::{Scope, day};
use count_core::{Counter, DateRange, Error, Method};
use count_pg::PgCounter;
use count_testcluster::TestCluster;

/// A counter on a fresh database of the shared cluster; `None` skips (never in CI).
async fn fresh(prefix: &str) -> Option<(Arc<TestCluster>, String, PgCounter)> {
    let cluster = TestCluster::shared()?;
    let url = cluster.fresh_database(prefix);
    let counter = PgCounter::connect(&url).await.expect("connect");
    Some((cluster, url, counter))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_to_the_counter_contract() {
    let Some((_cluster, _url, counter)) = fresh("conformance").await else {
        return;
    };
    let counter = Arc::new(counter);
    count_core::testkit::run_all(counter.clone()).await;
    count_core::testkit::run_zones(&*counter).await;
    count_core::testkit::run_limits(counter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_counters_racing_writes_and_rollups_are_exact() {
    let Some((_cluster, url, a)) = fresh("two_writers").await else {
        return;
    };
    let b = PgCounter::connect(&url).await.unwrap();
    count_core::testkit::rollups_racing_writes_are_exact(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_round_trip_byte_for_byte() {
    let Some((_cluster, _url, counter)) = fresh("paths").await else {
        return;
    };
    let s = Scope::new();
    let long = format!("/{}", "é".repeat(400)); // multi-byte, near the limit
    let locals = [
        "/it's \"quoted\"",
        r"/back\slash\\",
        "/100%_done%25",
        "/ünïcödé/😀/{id}",
        "/semi;colon --comment",
        long.as_str(),
    ];
    let rows: Vec<_> = locals
        .iter()
        .map(|p| (Method::Get, *p, "2024-03-03T03:03:03Z", 1))
        .collect();
    counter.write(&s.batch(&rows)).await.unwrap();
    let totals = counter
        .daily_totals(DateRange::day(day("2024-03-03")))
        .await
        .unwrap();
    let mut got: Vec<String> = s.daily(&totals).into_iter().map(|t| t.2).collect();
    let mut want: Vec<String> = locals.iter().map(|p| p.to_string()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // The full 1024-byte limit, scope prefix included.
    let prefix_len = s.path("").as_str().len();
    let max = format!(
        "/{}",
        "x".repeat(count_core::Path::MAX_LEN - prefix_len - 1)
    );
    counter
        .write(&s.batch(&[(Method::Get, &max, "2024-03-04T00:00:00Z", 1)]))
        .await
        .unwrap();
    let totals = counter
        .daily_totals(DateRange::day(day("2024-03-04")))
        .await
        .unwrap();
    let path = &s.daily(&totals)[0].2;
    assert_eq!(path, &max);
    assert_eq!(s.path(path).as_str().len(), count_core::Path::MAX_LEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_at_once_from_many_processes_migrates_once() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let url = cluster.fresh_database("migrate");
    let connects = (0..6).map(|_| {
        let url = url.clone();
        async move { PgCounter::connect(&url).await }
    });
    let counters: Vec<_> = futures_join_all(connects).await;
    for c in &counters {
        c.as_ref().expect("every concurrent connect succeeds");
    }
    let versions = cluster
        .psql(
            &database_of(&url),
            "SELECT count(*) FROM count.count_migrations",
        )
        .unwrap();
    assert_eq!(versions, count_pg::schema::POSTGRES.len().to_string());
    // Again, later: nothing to do.
    PgCounter::connect(&url).await.unwrap();
    // Without migrations, connect checks the schema is there.
    PgCounter::builder(&url)
        .migrate(false)
        .connect()
        .await
        .unwrap();
    let empty = cluster.fresh_database("unmigrated");
    let err = PgCounter::builder(&empty)
        .migrate(false)
        .connect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not migrated"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_integer_column_is_bigint() {
    let Some((cluster, url, _counter)) = fresh("int8").await else {
        return;
    };
    let narrow = cluster
        .psql(
            &database_of(&url),
            "SELECT table_name || '.' || column_name FROM information_schema.columns
             WHERE table_schema = 'count' AND data_type IN ('integer', 'smallint')",
        )
        .unwrap();
    assert_eq!(narrow, "", "int4/int2 columns: {narrow}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_failures_are_clear_errors_at_connect() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let Some(port) = cluster.port() else {
        count_testcluster::announce_skip(
            "COUNT_TEST_DATABASE_URL's server: its credentials are not ours to vary",
        );
        return;
    };
    let timeout = Duration::from_secs(2);
    let connect = |url: String| async move {
        PgCounter::builder(&url)
            .connect_timeout(timeout)
            .connect()
            .await
            .unwrap_err()
    };

    let err = connect(format!(
        "postgresql://postgres:wrong@127.0.0.1:{port}/postgres?sslmode=disable"
    ))
    .await;
    let text = err.to_string();
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(
        !text.contains("wrong"),
        "the password must not be shown: {text}"
    );

    let err = connect(cluster.url_of("no_such_database")).await;
    assert!(err.to_string().contains("no_such_database"), "{err}");

    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = connect(format!(
        "postgresql://u:p@127.0.0.1:{closed}/db?sslmode=disable"
    ))
    .await;
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{closed}")),
        "{err}"
    );

    // A server that accepts and never answers: the connect timeout ends the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let started = Instant::now();
    let err = connect(format!(
        "postgresql://u:p@127.0.0.1:{silent_port}/db?sslmode=disable"
    ))
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "connect hung: {err}"
    );
    drop(silent);

    let err = connect("postgresql://u@h/db?sslmode=sometimes".into()).await;
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "sslmode",
                ..
            }
        ),
        "{err}"
    );
    let err = PgCounter::builder(&cluster.url())
        .schema("x; DROP TABLE y")
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "schema",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_are_utc_whatever_the_session_time_zone() {
    let Some((cluster, url, _)) = fresh("timezone").await else {
        return;
    };
    let database = database_of(&url);
    cluster
        .psql(
            "postgres",
            &format!("ALTER DATABASE {database} SET timezone TO 'Pacific/Kiritimati'"),
        )
        .unwrap();
    let counter = PgCounter::connect(&url).await.unwrap();
    let s = Scope::new();
    counter
        .write(&s.batch(&[(Method::Get, "/tz", "2024-05-05T23:30:00Z", 1)]))
        .await
        .unwrap();
    let totals = counter
        .daily_totals(DateRange::day(day("2024-05-05")))
        .await
        .unwrap();
    assert_eq!(
        s.daily(&totals),
        [("2024-05-05".into(), Method::Get, "/tz".into(), 1)]
    );
}

fn database_of(url: &str) -> String {
    let path = url.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_owned()
}

/// Runs the futures at once, each on a task of its own, and collects their outputs.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
