//! The schema: version 1 databases migrate to version 2 exactly, `migrate(false)`
//! says what is missing or that a newer count wrote the schema, and schema names
//! that are reserved words work.

use std::sync::Arc;

use count_core::testkit::{Scope, day};
use count_core::{
    Counter, DateRange, Dimension, GroupedTotal, Method, Period, Status, TotalsQuery,
};
use count_pg::{Flavor, PgCounter};
use count_testcluster::TestCluster;

fn database_of(url: &str) -> String {
    let path = url.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_owned()
}

/// A fresh database migrated to version 1 only, as a deployed count left it.
async fn version_1(cluster: &TestCluster, prefix: &str) -> String {
    let url = cluster.fresh_database(prefix);
    let v1 = Flavor {
        migrations: &count_pg::schema::POSTGRES[..1],
        ..Flavor::POSTGRES
    };
    PgCounter::builder(&url)
        .flavor(v1)
        .connect()
        .await
        .expect("migrating to version 1");
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_with_raw_and_rolled_counts_migrates_exactly() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let url = version_1(&cluster, "from_v1").await;
    let database = database_of(&url);
    // Version 1's data, as its code wrote it: endpoints, rolled-up totals of
    // 2024-02-01, and 25,000 raw rows over 2024-02-01 and 2024-02-02 (more than one
    // converted row of 10,000 per day), plus an applied batch id.
    cluster
        .psql(
            &database,
            "INSERT INTO count.endpoints (method, path) VALUES ('GET', '/v1/a'), ('POST', '/v1/b'), ('GET', '/v1/c');
             INSERT INTO count.daily_totals (day, endpoint_id, total)
               SELECT DATE '2024-02-01', id, 1000 * id FROM count.endpoints;
             INSERT INTO count.raw_counts (endpoint_id, day, bucket, n)
               SELECT e.id, DATE '2024-02-01' + (r % 2), TIMESTAMPTZ '2024-02-01 00:00:00+00' + (r % 2) * INTERVAL '1 day' + (r % 1440) * INTERVAL '1 minute', 1 + r % 3
               FROM count.endpoints e, generate_series(0, 12499) r WHERE e.path <> '/v1/c'
               UNION ALL
               SELECT id, DATE '2024-02-02', TIMESTAMPTZ '2024-02-02 12:00:00+00', 7 FROM count.endpoints WHERE path = '/v1/c'
               ;
             INSERT INTO count.batches (writer, seq) VALUES ('00000000-0000-0000-0000-00000000000a', 1);",
        )
        .unwrap();
    let raw_v1 = cluster
        .psql(&database, "SELECT count(*) FROM count.raw_counts")
        .unwrap();
    assert_eq!(raw_v1, (2 * 12_500 + 1).to_string());
    // What version 1's data holds, per day and endpoint, computed from its tables.
    let expected = cluster
        .psql(
            &database,
            "SELECT string_agg(day || ' ' || method || ' ' || path || ' ' || total, ', ' ORDER BY day, path, method)
             FROM (SELECT t.day, e.method, e.path, sum(t.n) AS total
                   FROM (SELECT day, endpoint_id, total AS n FROM count.daily_totals
                         UNION ALL SELECT day, endpoint_id, n FROM count.raw_counts) t
                   JOIN count.endpoints e ON e.id = t.endpoint_id
                   GROUP BY t.day, e.method, e.path) s",
        )
        .unwrap();

    let counter = PgCounter::connect(&url)
        .await
        .expect("migrating to version 2");
    let range = DateRange::new(day("2024-02-01"), day("2024-02-02")).unwrap();
    let shown = |totals: Vec<count_core::DailyTotal>| {
        totals
            .iter()
            .map(|t| {
                format!(
                    "{} {} {} {}",
                    t.day, t.endpoint.method, t.endpoint.path, t.total
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    assert_eq!(shown(counter.daily_totals(range).await.unwrap()), expected);
    // The days rolled up by the day only have no quarters: hours are kept from the
    // day after the last of them.
    assert_eq!(
        cluster
            .psql(
                &database,
                "SELECT from_day = (SELECT max(day) - DATE '1970-01-01' + 1 FROM
                     (SELECT day FROM count.daily_key_totals UNION ALL SELECT day FROM count.raw_batches) d)
                 FROM count.quarters_kept"
            )
            .unwrap(),
        "t"
    );
    assert!(expected.contains("2024-02-02 GET /v1/c 7"), "{expected}");
    assert_eq!(
        cluster
            .psql(
                &database,
                "SELECT count(*), sum(n_counts) FROM count.raw_batches"
            )
            .unwrap(),
        format!("{}|{}", 2 + 2, raw_v1),
        "one row of arrays per day and 10,000 rows"
    );
    assert_eq!(
        cluster
            .psql(
                &database,
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'count'
                 AND table_name IN ('endpoints', 'raw_counts', 'daily_totals')"
            )
            .unwrap(),
        "0",
        "version 1's tables are gone"
    );

    // The old counts are per endpoint: no subject, no status.
    let by_subject = TotalsQuery::new(range, &[Dimension::Subject, Dimension::Status]).unwrap();
    let all = counter.totals(&by_subject).await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].subject, None);
    assert_eq!(all[0].status, None);

    // New counts with dimensions beside the old ones, on a new key id.
    let s = Scope::new();
    let key = s.key(Method::Get, "/new", Some("acme"), Some(200));
    counter
        .write(&s.batch_of_keys(&[(key, "2024-02-02T01:00:00Z", 5)]))
        .await
        .unwrap();
    let query = TotalsQuery::new(range, &[Dimension::Endpoint, Dimension::Subject])
        .unwrap()
        .subject(s.subject("acme"));
    assert_eq!(
        counter.totals(&query).await.unwrap(),
        [GroupedTotal::new(5)
            .with_endpoint(key.endpoint)
            .with_subject(key.subject)]
    );

    // A repeat of a batch applied by version 1 (no digest kept) changes nothing.
    let old = count_core::Batch::new(
        count_core::BatchId {
            writer: count_core::uuid::Uuid::from_u128(10),
            seq: 1,
        },
        vec![count_core::BucketCount::new(
            key,
            count_core::testkit::at("2024-02-02T02:00:00Z"),
            1,
        )],
    )
    .unwrap();
    counter.write(&old).await.expect("a repeat of an old batch");

    // Rolled up, every total stays.
    counter.rollup(day("2024-02-01")).await.unwrap();
    counter.rollup(day("2024-02-02")).await.unwrap();
    let after: Vec<_> = counter
        .daily_totals(range)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.endpoint.path.as_str().starts_with("/v1/"))
        .collect();
    assert_eq!(shown(after), expected);
    assert_eq!(
        cluster
            .psql(&database, "SELECT count(*) FROM count.raw_batches")
            .unwrap(),
        "0"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_migrations_connect_says_what_is_missing() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let unmigrated = |url: String| async move {
        PgCounter::builder(&url)
            .migrate(false)
            .connect()
            .await
            .unwrap_err()
            .to_string()
    };

    // No schema at all.
    let empty = cluster.fresh_database("no_schema");
    let err = unmigrated(empty.clone()).await;
    assert!(
        err.contains("\"count\"") && err.contains("no count_migrations table"),
        "{err}"
    );

    // A migrations table with nothing in it.
    cluster
        .psql(
            &database_of(&empty),
            "CREATE SCHEMA count; CREATE TABLE count.count_migrations (
               version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .unwrap();
    let err = unmigrated(empty).await;
    assert!(
        err.contains("no migration applied")
            && err.contains("missing migrations 1 (endpoints")
            && err.contains("2 (count_keys")
            && err.contains("migrate(true)"),
        "{err}"
    );

    // Version 1 only: version 2 is missing.
    let old = version_1(&cluster, "older").await;
    let err = unmigrated(old.clone()).await;
    assert!(
        err.contains("at version 1")
            && err.contains("missing migrations 2 (count_keys")
            && err.contains("3 (quarter hours")
            && err.contains("4 (limits"),
        "{err}"
    );
    // Migrating brings it to this version; then migrate(false) is content.
    PgCounter::connect(&old).await.unwrap();
    PgCounter::builder(&old)
        .migrate(false)
        .connect()
        .await
        .expect("the exact version");

    // A version this code does not know: written by a newer count, with or
    // without migrations.
    cluster
        .psql(
            &database_of(&old),
            "INSERT INTO count.count_migrations (version, name) VALUES (5, 'from the future')",
        )
        .unwrap();
    for migrate in [false, true] {
        let err = PgCounter::builder(&old)
            .migrate(migrate)
            .connect()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("written by a newer version of count")
                && err.contains("migration 5")
                && err.contains("up to 4"),
            "migrate({migrate}): {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_names_that_are_reserved_words_work() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let url = cluster.fresh_database("reserved");
    for schema in ["user", "order"] {
        let counter = PgCounter::builder(&url)
            .schema(schema)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("schema {schema}: {e}"));
        assert_eq!(counter.schema(), schema);
        let s = Scope::new();
        let key = s.key(Method::Post, "/r", Some("acme"), Some(201));
        counter
            .write(&s.batch_of_keys(&[(key, "2024-04-04T04:00:00Z", 3)]))
            .await
            .unwrap();
        let d = day("2024-04-04");
        assert_eq!(
            s.daily(&counter.rollup(d).await.unwrap()),
            [("2024-04-04".into(), Method::Post, "/r".into(), 3)]
        );
        let query = TotalsQuery::new(DateRange::day(d), &[Dimension::Status]).unwrap();
        assert_eq!(
            counter.totals(&query).await.unwrap(),
            [GroupedTotal::new(3).with_status(Some(Status::http(201).unwrap()))]
        );
        assert_eq!(
            counter.period_totals(Period::Day(d)).await.unwrap().len(),
            1
        );
        PgCounter::builder(&url)
            .schema(schema)
            .migrate(false)
            .connect()
            .await
            .unwrap();
    }
    // The whole contract on one of them.
    let counter = PgCounter::builder(&url)
        .schema("user")
        .connect()
        .await
        .unwrap();
    count_core::testkit::run_all(Arc::new(counter)).await;
}
