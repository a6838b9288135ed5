//! `CockroachCounter` on the CockroachDB emulation (count-testcluster), or on a real
//! cluster at `COUNT_TEST_COCKROACH_URL`: the contract under injected restarts and
//! ambiguous commits, INT8 everywhere, ids above 2^53, concurrent rollups at
//! SERIALIZABLE, the retry policy's caps, and what the emulation shadows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use count_cockroach::{CockroachCounter, RetryPolicy};
use count_core::testkit::{Scope, day};
use count_core::{Counter, DateRange, Error, Method};
use count_testcluster::TestCluster;
use count_testcluster::cockroach::CockroachEmulation;
use count_testcluster::wire_proxy::CommitFault;

const REAL_URL: &str = "COUNT_TEST_COCKROACH_URL";

/// A fresh emulation; `None` when a real cluster is given (fault injection needs the
/// emulation) or there is no PostgreSQL (never in CI).
async fn emulation(prefix: &str) -> Option<CockroachEmulation> {
    if std::env::var_os(REAL_URL).is_some() {
        count_testcluster::announce_skip(&format!(
            "injects faults through the emulation, not on {REAL_URL}"
        ));
        return None;
    }
    let cluster = TestCluster::shared()?;
    Some(CockroachEmulation::start(cluster, prefix).await)
}

/// The URL to test on, and a schema of the test's own: the real cluster's when
/// `COUNT_TEST_COCKROACH_URL` is set, else a fresh emulation's (kept alive by the
/// returned value).
async fn target(prefix: &str) -> Option<(String, String, Option<CockroachEmulation>)> {
    let schema = format!("{prefix}_{}", std::process::id());
    if let Ok(url) = std::env::var(REAL_URL) {
        return Some((url, schema, None));
    }
    let emulation = emulation(prefix).await?;
    Some((emulation.url(), schema, Some(emulation)))
}

/// `rows` on day `d`, as `Scope::daily` shows them.
fn on(d: count_core::Day, rows: &[(Method, &str, u64)]) -> Vec<(String, Method, String, u64)> {
    rows.iter()
        .map(|&(method, path, n)| (d.to_string(), method, path.to_owned(), n))
        .collect()
}

async fn connect(url: &str, schema: &str) -> CockroachCounter {
    CockroachCounter::builder(url)
        .pg(|pg| pg.schema(schema))
        .connect()
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_to_the_counter_contract() {
    let Some((url, schema, _emulation)) = target("crdb_conformance").await else {
        return;
    };
    let counter = connect(&url, &schema).await;
    let counter = Arc::new(counter);
    count_core::testkit::run_all(counter.clone()).await;
    count_core::testkit::run_zones(&*counter).await;
    count_core::testkit::run_limits(counter.clone()).await;
    assert_eq!(counter.retries().gave_up, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforms_with_30_percent_restarts_and_5_percent_ambiguous_commits() {
    let Some(emulation) = emulation("crdb_faults").await else {
        return;
    };
    let counter = connect(&emulation.url(), "count").await;
    emulation.inject_restarts("count");
    emulation.restart_percent(30);
    emulation.proxy().set_fault_percent(5);

    let counter = Arc::new(counter);
    count_core::testkit::run_all(counter.clone()).await;
    count_core::testkit::run_zones(&*counter).await;

    let retries = counter.retries();
    let injected = emulation.restarts_injected();
    let attempts = emulation.attempts();
    eprintln!(
        "{injected} restarts in {attempts} transactions, {} commits ({} dropped before, {} after, {} ambiguous), {retries:?}",
        emulation.proxy().commits(),
        emulation.proxy().injected(CommitFault::DropBeforeCommit),
        emulation.proxy().injected(CommitFault::DropAfterCommit),
        emulation.proxy().injected(CommitFault::Ambiguous),
    );
    assert!(attempts > 100, "the suite ran only {attempts} transactions");
    // 30% of transactions, exactly, by the trigger's rule (a transaction in flight
    // when the rate was read may make it one off).
    assert!(
        injected.abs_diff(attempts * 30 / 100) <= 2,
        "{injected} of {attempts}"
    );
    for kind in [
        CommitFault::DropBeforeCommit,
        CommitFault::DropAfterCommit,
        CommitFault::Ambiguous,
    ] {
        assert!(emulation.proxy().injected(kind) > 0, "no {kind:?} injected");
    }
    assert!(retries.restarts >= injected, "{retries:?}");
    assert!(retries.ambiguous > 0, "{retries:?}");
    assert_eq!(retries.gave_up, 0);

    // The ledger under the same faults, after the figures above: its eight leases
    // in flight at once would blur the injected share they check.
    count_core::testkit::the_ledger_never_overgrants_under_faults(&*counter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_integer_column_is_int8() {
    let Some((url, schema, _emulation)) = target("crdb_int8").await else {
        return;
    };
    let counter = connect(&url, &schema).await;
    let client = counter.pg().client().await.unwrap();
    let columns = client
        .query(
            "SELECT table_name::text, column_name::text, data_type::text
             FROM information_schema.columns WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .unwrap();
    let columns: Vec<(String, String, String)> = columns
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert!(columns.len() >= 15, "{columns:?}");
    let narrow: Vec<_> = columns
        .iter()
        .filter(|(_, _, ty)| matches!(ty.as_str(), "integer" | "smallint"))
        .collect();
    assert!(narrow.is_empty(), "narrow integer columns: {narrow:?}");
    assert!(columns.iter().any(|(_, _, ty)| ty == "bigint"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_above_2_pow_53_round_trip() {
    let Some((url, schema, _emulation)) = target("crdb_ids").await else {
        return;
    };
    let counter = connect(&url, &schema).await;
    let s = Scope::new();
    // An id an f64 cannot hold (2^53 + 1), given to a key before any count.
    let exact: i64 = (1 << 53) + 1;
    let client = counter.pg().client().await.unwrap();
    client
        .execute(
            &format!(
                "INSERT INTO {schema}.count_keys (id, method, path, subject, status)
                 VALUES ($1, 'GET', $2, '', -1)"
            ),
            &[&exact, &s.path("/exact").as_str()],
        )
        .await
        .unwrap();
    let d = day("2024-03-04");
    let batch = s.batch(&[
        (Method::Get, "/exact", "2024-03-04T10:00:00Z", 5),
        (Method::Post, "/generated", "2024-03-04T10:00:00Z", 7),
    ]);
    counter.write(&batch).await.unwrap();

    let ids: Vec<i64> = client
        .query(
            &format!("SELECT unnest(key_ids) FROM {schema}.raw_batches"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(ids.contains(&exact), "{ids:?}");
    assert!(ids.iter().all(|&id| id > 1 << 53), "{ids:?}");
    let row_ids: i64 = client
        .query_one(&format!("SELECT min(id) FROM {schema}.raw_batches"), &[])
        .await
        .unwrap()
        .get(0);
    assert!(row_ids > 1 << 53, "raw row id {row_ids}");

    let expected = on(
        d,
        &[(Method::Get, "/exact", 5), (Method::Post, "/generated", 7)],
    );
    assert_eq!(s.daily(&counter.rollup(d).await.unwrap()), expected);
    assert_eq!(
        s.daily(&counter.daily_totals(DateRange::day(d)).await.unwrap()),
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_counters_rolling_up_at_serializable_are_exact() {
    let Some((url, schema, emulation)) = target("crdb_rollups").await else {
        return;
    };
    let a = connect(&url, &schema).await;
    let b = connect(&url, &schema).await;
    let isolation: String = a
        .pg()
        .client()
        .await
        .unwrap()
        .query_one("SHOW transaction_isolation", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(isolation, "serializable");
    if let Some(emulation) = &emulation {
        emulation.inject_restarts(&schema);
        emulation.restart_percent(30);
    }
    count_core::testkit::rollups_racing_writes_are_exact(&a, &b).await;
    let client = a.pg().client().await.unwrap();
    let raw: i64 = client
        .query_one(&format!("SELECT count(*) FROM {schema}.raw_batches"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(raw, 0, "rows left unrolled");
    eprintln!("retries: {:?} and {:?}", a.retries(), b.retries());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_are_retried_within_the_policy_and_other_errors_are_not() {
    let Some(emulation) = emulation("crdb_policy").await else {
        return;
    };
    let policy = RetryPolicy::new()
        .initial_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(20))
        .max_attempts(5)
        .max_time(Duration::from_secs(30));
    let counter = CockroachCounter::builder(&emulation.url())
        .retry(policy)
        .connect()
        .await
        .unwrap();
    emulation.inject_restarts("count");
    let s = Scope::new();
    let d = day("2024-05-06");

    // Four restarts: the fifth attempt applies (two transactions: the new key's
    // insert, then the batch's).
    emulation.fail_next(4);
    let before = emulation.attempts();
    let batch = s.batch(&[(Method::Get, "/four", "2024-05-06T01:00:00Z", 3)]);
    counter.write(&batch).await.unwrap();
    assert_eq!(emulation.attempts() - before, 6);
    assert_eq!(counter.retries().restarts, 4);

    // Five: the policy's last attempt fails, and the error says why.
    emulation.fail_next(5);
    let before = emulation.attempts();
    let batch = s.batch(&[(Method::Get, "/five", "2024-05-06T01:00:00Z", 1)]);
    let error = counter.write(&batch).await.unwrap_err();
    assert_eq!(emulation.attempts() - before, 5);
    assert!(matches!(error, Error::Unavailable { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("restart transaction") && text.contains("40001"),
        "{text}"
    );
    assert_eq!(counter.retries().gave_up, 1);
    // The batch was never applied: a later retry of it counts it once.
    counter.write(&batch).await.unwrap();

    // The time cap: many attempts allowed, 300 ms of retrying.
    let by_time = CockroachCounter::builder(&emulation.url())
        .retry(
            policy
                .max_attempts(1_000_000)
                .max_time(Duration::from_millis(300)),
        )
        .connect()
        .await
        .unwrap();
    emulation.fail_next(1_000_000);
    let started = Instant::now();
    let batch = s.batch(&[(Method::Get, "/timed", "2024-05-06T01:00:00Z", 1)]);
    assert!(by_time.write(&batch).await.is_err());
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert_eq!(by_time.retries().gave_up, 1);
    emulation.fail_next(0);
    emulation
        .psql("SELECT setval('crdb_emulation.fail_until', 0)")
        .unwrap();

    assert_eq!(
        s.daily(&counter.daily_totals(DateRange::day(d)).await.unwrap()),
        on(d, &[(Method::Get, "/five", 1), (Method::Get, "/four", 3)])
    );

    // Any other error surfaces at once: here, a table gone. (One restart draw: the
    // new endpoint's insert; the batch's transaction fails before COMMIT, where
    // restarts are drawn.)
    emulation.psql("DROP TABLE count.raw_batches").unwrap();
    let before = (emulation.attempts(), counter.retries());
    let batch = s.batch(&[(Method::Get, "/gone", "2024-05-06T01:00:00Z", 1)]);
    let error = counter.write(&batch).await.unwrap_err();
    assert!(matches!(error, Error::Backend { .. }), "{error}");
    assert!(error.to_string().contains("42P01"), "{error}");
    assert_eq!(
        (emulation.attempts(), counter.retries()),
        (before.0 + 1, before.1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_and_ambiguous_commits_apply_exactly_once() {
    let Some(emulation) = emulation("crdb_commits").await else {
        return;
    };
    let counter = connect(&emulation.url(), "count").await;
    let s = Scope::new();
    let d = day("2024-07-08");
    let kinds = [
        CommitFault::DropBeforeCommit,
        CommitFault::DropAfterCommit,
        CommitFault::Ambiguous,
    ];
    for (i, kind) in kinds.into_iter().enumerate() {
        emulation.proxy().queue(kind);
        let batch = s.batch(&[(Method::Get, "/commit", "2024-07-08T02:00:00Z", 10)]);
        counter.write(&batch).await.unwrap();
        assert_eq!(emulation.proxy().injected(kind), 1);
        assert_eq!(counter.retries().ambiguous, i as u64 + 1);
    }
    assert_eq!(
        s.daily(&counter.daily_totals(DateRange::day(d)).await.unwrap()),
        on(d, &[(Method::Get, "/commit", 30)])
    );
    // A rollup chunk's commit, each way.
    for kind in kinds {
        let batch = s.batch(&[(Method::Get, "/commit", "2024-07-08T03:00:00Z", 1)]);
        counter.write(&batch).await.unwrap();
        emulation.proxy().queue(kind);
        counter.rollup(d).await.unwrap();
    }
    assert_eq!(
        s.daily(&counter.rollup(d).await.unwrap()),
        on(d, &[(Method::Get, "/commit", 33)])
    );
    assert_eq!(counter.retries().ambiguous, 6);
    assert_eq!(counter.retries().gave_up, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_need_no_advisory_locks() {
    let Some(emulation) = emulation("crdb_locks").await else {
        return;
    };
    // The shadows behave as CockroachDB does.
    let missing = emulation.psql("SELECT pg_advisory_lock(1)").unwrap_err();
    assert!(
        missing.contains("unknown function: pg_advisory_lock()"),
        "{missing}"
    );
    assert_eq!(
        emulation
            .psql("SELECT pg_try_advisory_lock(1), pg_try_advisory_lock(1)")
            .unwrap(),
        "t|t"
    );
    // Six processes connecting at once: one applies the migration, all connect.
    let url = emulation.url();
    let connects = (0..6).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { CockroachCounter::connect(&url).await })
    });
    for connect in connects {
        connect
            .await
            .unwrap()
            .expect("connect while others migrate");
    }
    assert_eq!(
        emulation
            .psql("SELECT count(*) FROM count.count_migrations")
            .unwrap(),
        count_cockroach::schema::COCKROACH.len().to_string()
    );
    assert_eq!(
        emulation.proxy().cluster_name().as_deref(),
        Some("emulated-cluster")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_reads_are_asked_for_by_reports_only() {
    let Some(emulation) = emulation("crdb_follower").await else {
        return;
    };
    let counter = CockroachCounter::builder(&emulation.url())
        .follower_reads(true)
        .connect()
        .await
        .unwrap();
    let s = Scope::new();
    let d = day("2024-09-10");
    counter
        .write(&s.batch(&[(Method::Get, "/f", "2024-09-10T00:00:00Z", 4)]))
        .await
        .unwrap();
    assert_eq!(emulation.proxy().follower_reads(), 0);
    assert_eq!(
        s.daily(&counter.daily_totals(DateRange::day(d)).await.unwrap()),
        on(d, &[(Method::Get, "/f", 4)])
    );
    assert_eq!(emulation.proxy().follower_reads(), 1);
    counter.rollup(d).await.unwrap();
    assert_eq!(
        emulation.proxy().follower_reads(),
        1,
        "a rollup reads current data"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_postgresql_is_refused_by_name() {
    if std::env::var_os(REAL_URL).is_some() {
        return;
    }
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let url = cluster.fresh_database("crdb_refused");
    let error = CockroachCounter::connect(&url).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::InvalidInput { .. }), "{text}");
    assert!(
        text.contains("PostgreSQL") && text.contains("PgCounter"),
        "{text}"
    );
    drop(Arc::clone(&cluster));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_migrates_exactly() {
    let Some(emulation) = emulation("crdb_from_v1").await else {
        return;
    };
    // Version 1 only, in CockroachDB's DDL (as the emulation fills it).
    let v1 = count_pg::Flavor {
        name: "CockroachDB version 1",
        migrations: &count_cockroach::schema::COCKROACH[..1],
        fills: |_| Ok(&[("{hash_sharded}", "")]),
        report_prelude: None,
        rollup_chunk: 10_000,
    };
    count_pg::PgCounter::builder(&emulation.url())
        .flavor(v1)
        .connect()
        .await
        .expect("version 1");
    emulation
        .psql(
            "INSERT INTO count.endpoints (method, path) VALUES ('GET', '/v1/a'), ('POST', '/v1/b');
             INSERT INTO count.daily_totals (day, endpoint_id, total)
               SELECT DATE '2024-02-01', id, 100 FROM count.endpoints;
             INSERT INTO count.raw_counts (endpoint_id, day, bucket, n)
               SELECT e.id, DATE '2024-02-01' + (r % 2), TIMESTAMPTZ '2024-02-01 10:00:00+00' + (r % 2) * INTERVAL '1 day', 1 + r % 3
               FROM count.endpoints e, generate_series(0, 10999) r;",
        )
        .unwrap();
    let counter = connect(&emulation.url(), "count").await;
    let range = DateRange::new(day("2024-02-01"), day("2024-02-02")).unwrap();
    // Per endpoint and day: 5,500 rows of 1, 2, 3 in turn (r even: day 1, odd: day 2).
    let sum = |parity: u64| {
        (0..11_000u64)
            .filter(|r| r % 2 == parity)
            .map(|r| 1 + r % 3)
            .sum::<u64>()
    };
    let expected: Vec<(String, Method, String, u64)> = vec![
        (
            "2024-02-01".into(),
            Method::Get,
            "/v1/a".into(),
            100 + sum(0),
        ),
        (
            "2024-02-01".into(),
            Method::Post,
            "/v1/b".into(),
            100 + sum(0),
        ),
        ("2024-02-02".into(), Method::Get, "/v1/a".into(), sum(1)),
        ("2024-02-02".into(), Method::Post, "/v1/b".into(), sum(1)),
    ];
    let shown = |totals: Vec<count_core::DailyTotal>| -> Vec<(String, Method, String, u64)> {
        totals
            .into_iter()
            .map(|t| {
                (
                    t.day.to_string(),
                    t.endpoint.method,
                    t.endpoint.path.to_string(),
                    t.total,
                )
            })
            .collect()
    };
    assert_eq!(shown(counter.daily_totals(range).await.unwrap()), expected);
    counter.rollup(day("2024-02-01")).await.unwrap();
    counter.rollup(day("2024-02-02")).await.unwrap();
    assert_eq!(shown(counter.daily_totals(range).await.unwrap()), expected);
}
