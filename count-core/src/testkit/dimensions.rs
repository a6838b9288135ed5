//! The clauses of the contract about subjects and statuses.

use std::sync::Arc;

use crate::backend::OVERFLOW_SUBJECT;
use crate::testkit::{Scope, day};
use crate::{
    BucketCount, CountKey, CountQueue, Counter, DateRange, Dimension, GroupedTotal, Method, Period,
    Status, StatusClass, StatusFilter, TotalsQuery,
};

use Method::{Get, Grpc, Post};

/// Runs every dimension clause against `counter`.
pub async fn run_dimensions(counter: &dyn Counter) {
    endpoint_reports_sum_over_subjects_and_statuses(counter).await;
    totals_group_and_filter_by_every_dimension(counter).await;
    rollup_keeps_dimensions_exact(counter).await;
    subjects_and_paths_round_trip_byte_for_byte(counter).await;
    subjects_sort_bytewise(counter).await;
    duplicate_rows_in_a_batch_add_up(counter).await;
}

/// The counts of [`totals_group_and_filter_by_every_dimension`]: old-style counts
/// (no subject, no status) beside counts with either or both, over three days, HTTP
/// and gRPC.
fn mixed_counts(s: &Scope) -> Vec<(CountKey, &'static str, u64)> {
    let k = |m, p, sub, st| s.key(m, p, sub, st);
    vec![
        (k(Get, "/a", None, None), "2025-02-01T10:00:00Z", 1),
        (
            k(Get, "/a", Some("acme"), Some(200)),
            "2025-02-01T10:00:00Z",
            2,
        ),
        (
            k(Get, "/a", Some("acme"), Some(200)),
            "2025-02-01T11:00:00Z",
            4,
        ),
        (
            k(Get, "/a", Some("acme"), Some(503)),
            "2025-02-01T11:00:00Z",
            8,
        ),
        (
            k(Get, "/a", Some("zeta"), Some(404)),
            "2025-02-02T00:00:00Z",
            16,
        ),
        (k(Get, "/a", None, Some(500)), "2025-02-02T23:59:00Z", 32),
        (
            k(Post, "/a", Some("acme"), None),
            "2025-02-02T12:00:00Z",
            64,
        ),
        (
            k(Post, "/b", Some("zeta"), Some(201)),
            "2025-02-03T12:00:00Z",
            128,
        ),
        (
            k(Grpc, "/pkg.S/M", Some("acme"), Some(0)),
            "2025-02-03T12:00:00Z",
            256,
        ),
        (
            k(Grpc, "/pkg.S/M", Some("acme"), Some(14)),
            "2025-02-03T12:00:00Z",
            512,
        ),
        (
            k(Grpc, "/pkg.S/M", None, Some(5)),
            "2025-02-01T12:00:00Z",
            1024,
        ),
        // Another day, outside the ranges asked about.
        (
            k(Get, "/a", Some("acme"), Some(200)),
            "2025-02-04T00:00:00Z",
            2048,
        ),
    ]
}

fn reference(query: &TotalsQuery, counts: &[(CountKey, &'static str, u64)]) -> Vec<GroupedTotal> {
    query.group(counts.iter().map(|&(key, bucket, n)| {
        let count = BucketCount::new(key, crate::testkit::at(bucket), n);
        (count.bucket.as_second(), key, n)
    }))
}

/// Daily and period totals are per endpoint, summed over every subject and status,
/// with old-style counts (neither) included.
pub async fn endpoint_reports_sum_over_subjects_and_statuses(counter: &dyn Counter) {
    let s = Scope::new();
    let counts = mixed_counts(&s);
    counter.write(&s.batch_of_keys(&counts)).await.unwrap();
    let range = DateRange::new(day("2025-02-01"), day("2025-02-03")).unwrap();
    let daily = counter.daily_totals(range).await.unwrap();
    assert_eq!(
        s.daily(&daily),
        [
            ("2025-02-01".into(), Get, "/a".into(), 1 + 2 + 4 + 8),
            ("2025-02-01".into(), Grpc, "/pkg.S/M".into(), 1024),
            ("2025-02-02".into(), Get, "/a".into(), 16 + 32),
            ("2025-02-02".into(), Post, "/a".into(), 64),
            ("2025-02-03".into(), Post, "/b".into(), 128),
            ("2025-02-03".into(), Grpc, "/pkg.S/M".into(), 256 + 512),
        ],
        "daily totals sum over subjects and statuses"
    );
    let month = counter
        .period_totals(Period::month(2025, 2).unwrap())
        .await
        .unwrap();
    assert_eq!(
        s.period(&month),
        [
            (Get, "/a".into(), 1 + 2 + 4 + 8 + 16 + 32 + 2048),
            (Post, "/a".into(), 64),
            (Post, "/b".into(), 128),
            (Grpc, "/pkg.S/M".into(), 256 + 512 + 1024),
        ]
    );
}

/// Every non-empty set of dimensions, with and without each filter, against the
/// reference grouping of the same counts; before and after a rollup of one day.
pub async fn totals_group_and_filter_by_every_dimension(counter: &dyn Counter) {
    let s = Scope::new();
    let counts = mixed_counts(&s);
    // In two batches, so rows of one key and day come from several writes.
    let (first, second) = counts.split_at(5);
    counter.write(&s.batch_of_keys(first)).await.unwrap();
    counter.write(&s.batch_of_keys(second)).await.unwrap();
    let range = DateRange::new(day("2025-02-01"), day("2025-02-03")).unwrap();
    let get_a = s.endpoint(Get, "/a");
    let acme = s.subject("acme");
    let check = |phase: &'static str| {
        let counts = &counts;
        let s = &s;
        async move {
            for dims in every_grouping() {
                let base = TotalsQuery::new(range, &dims).unwrap();
                let mut queries = vec![
                    base.clone().endpoint(get_a),
                    base.clone().subject(acme),
                    base.clone()
                        .subject(acme)
                        .status(StatusFilter::Class(StatusClass::ServerError)),
                    base.clone()
                        .endpoint(get_a)
                        .status(StatusFilter::Code(Status::http(200).unwrap())),
                    base.clone()
                        .subject(acme)
                        .status(StatusFilter::Class(StatusClass::Success)),
                    // Texts never counted match nothing.
                    base.clone().subject("never-counted"),
                    base.clone().endpoint_at(Get, "/never-counted"),
                ];
                if dims.contains(&Dimension::Endpoint) {
                    // Rows are told apart by endpoint: the unfiltered query too.
                    queries.push(base.clone());
                    queries.push(base.status(StatusFilter::Class(StatusClass::ClientError)));
                }
                for query in queries {
                    let got = counter.totals(&query).await.unwrap();
                    assert_eq!(
                        s.grouped(&got),
                        reference(&query, counts),
                        "{phase}: {query:?}"
                    );
                }
            }
        }
    };
    check("live").await;
    let rolled = counter.rollup(day("2025-02-01")).await.unwrap();
    assert_eq!(
        s.daily(&rolled),
        [
            ("2025-02-01".into(), Get, "/a".into(), 15),
            ("2025-02-01".into(), Grpc, "/pkg.S/M".into(), 1024),
        ]
    );
    check("after a rollup of one day").await;
    let empty = TotalsQuery::new(DateRange::day(day("2025-01-15")), &[Dimension::Subject])
        .unwrap()
        .subject(acme);
    assert_eq!(
        counter.totals(&empty).await.unwrap(),
        [],
        "no counts: an empty list"
    );
}

/// Every grouping of the day and the key's parts (hours have their own clauses, in
/// `zones.rs`).
fn every_grouping() -> Vec<Vec<Dimension>> {
    (1u8..16)
        .map(|mask| {
            Dimension::ALL
                .into_iter()
                .filter(|d| *d != Dimension::Hour)
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, d)| d)
                .collect()
        })
        .collect()
}

/// A rollup keeps every subject and status apart, adds late counts, and two rollups
/// racing writes of the same keys end exact.
pub async fn rollup_keeps_dimensions_exact(counter: &dyn Counter) {
    let s = Scope::new();
    let d = day("2025-03-03");
    let k = |sub, st| s.key(Get, "/r", sub, st);
    let rows = [
        (k(Some("a"), Some(200)), "2025-03-03T01:00:00Z", 3),
        (k(Some("a"), Some(500)), "2025-03-03T01:00:00Z", 5),
        (k(Some("b"), Some(200)), "2025-03-03T02:00:00Z", 7),
        (k(None, None), "2025-03-03T02:00:00Z", 11),
    ];
    let query = TotalsQuery::new(DateRange::day(d), &[Dimension::Subject, Dimension::Status])
        .unwrap()
        .endpoint(s.endpoint(Get, "/r"));
    counter.write(&s.batch_of_keys(&rows)).await.unwrap();
    let again = s.batch_of_keys(&rows);
    let (x, y, z) = tokio::join!(counter.rollup(d), counter.write(&again), counter.rollup(d));
    x.unwrap();
    y.unwrap();
    z.unwrap();
    counter.rollup(d).await.unwrap();
    counter
        .write(&s.batch_of_keys(&[(k(Some("a"), Some(500)), "2025-03-03T23:00:00Z", 1)]))
        .await
        .unwrap();
    let status = |code| Some(Status::http(code).unwrap());
    let expected = vec![
        GroupedTotal::new(22),
        GroupedTotal::new(6)
            .with_subject(Some(s.subject("a")))
            .with_status(status(200)),
        GroupedTotal::new(11)
            .with_subject(Some(s.subject("a")))
            .with_status(status(500)),
        GroupedTotal::new(14)
            .with_subject(Some(s.subject("b")))
            .with_status(status(200)),
    ];
    assert_eq!(
        counter.totals(&query).await.unwrap(),
        expected,
        "live, late count included"
    );
    counter.rollup(d).await.unwrap();
    assert_eq!(
        counter.totals(&query).await.unwrap(),
        expected,
        "after the last rollup"
    );
    assert!(
        !counter
            .unrolled_days(d.next().unwrap())
            .await
            .unwrap()
            .contains(&d),
        "no raw counts left"
    );
}

/// Subjects with quotes, backslashes, percent signs, unicode and the longest
/// allowed length come back byte for byte.
pub async fn subjects_and_paths_round_trip_byte_for_byte(counter: &dyn Counter) {
    let s = Scope::new();
    let long = "ü".repeat(100);
    let texts = [
        "it's \"quoted\"",
        "back\\slash %_ like",
        "😀 ünï",
        long.as_str(),
    ];
    let rows: Vec<(CountKey, &str, u64)> = texts
        .iter()
        .enumerate()
        .map(|(i, &text)| {
            (
                s.key(Get, text, Some(text), None),
                "2025-04-04T04:00:00Z",
                i as u64 + 1,
            )
        })
        .collect();
    counter.write(&s.batch_of_keys(&rows)).await.unwrap();
    for &(key, _, n) in &rows {
        let query = TotalsQuery::new(
            DateRange::day(day("2025-04-04")),
            &[Dimension::Endpoint, Dimension::Subject],
        )
        .unwrap()
        .subject(key.subject.unwrap());
        let got = counter.totals(&query).await.unwrap();
        assert_eq!(
            got,
            [GroupedTotal::new(n)
                .with_endpoint(key.endpoint)
                .with_subject(key.subject)],
            "{key}"
        );
    }
}

/// Subjects sort by their bytes (upper case before lower case, ASCII before the rest),
/// whatever the storage's collation, with counts without a subject first.
pub async fn subjects_sort_bytewise(counter: &dyn Counter) {
    let s = Scope::new();
    let rows: Vec<(CountKey, &str, u64)> = ["é", "a", "Z", "B", "aa"]
        .iter()
        .map(|&sub| {
            (
                s.key(Get, "/sorted", Some(sub), None),
                "2025-05-05T05:00:00Z",
                1,
            )
        })
        .chain([(s.key(Get, "/sorted", None, None), "2025-05-05T05:00:00Z", 1)])
        .collect();
    counter.write(&s.batch_of_keys(&rows)).await.unwrap();
    let query = TotalsQuery::new(DateRange::day(day("2025-05-05")), &[Dimension::Subject])
        .unwrap()
        .endpoint(s.endpoint(Get, "/sorted"));
    let got: Vec<Option<&str>> = counter
        .totals(&query)
        .await
        .unwrap()
        .iter()
        .map(|t| {
            t.subject
                .map(|sub| s.local_subject(&sub).expect("this scope's"))
        })
        .collect();
    assert_eq!(
        got,
        [None, Some("B"), Some("Z"), Some("a"), Some("aa"), Some("é")]
    );
}

/// A batch may hold two counts of one key and bucket (a queue splits a count over
/// [`Batch::MAX_COUNT`](crate::Batch::MAX_COUNT) so): both are added.
pub async fn duplicate_rows_in_a_batch_add_up(counter: &dyn Counter) {
    let s = Scope::new();
    let key = s.key(Post, "/twice", Some("acme"), Some(201));
    let bucket = "2025-06-06T06:00:00Z";
    counter
        .write(&s.batch_of_keys(&[(key, bucket, 3), (key, bucket, 4)]))
        .await
        .expect("two counts of one key and bucket in one batch");
    let range = DateRange::day(day("2025-06-06"));
    let query = TotalsQuery::new(range, &[Dimension::Subject, Dimension::Status])
        .unwrap()
        .endpoint(key.endpoint);
    let expected = [GroupedTotal::new(7)
        .with_subject(key.subject)
        .with_status(key.status)];
    assert_eq!(counter.totals(&query).await.unwrap(), expected);
    counter.rollup(day("2025-06-06")).await.unwrap();
    assert_eq!(
        counter.totals(&query).await.unwrap(),
        expected,
        "after the rollup"
    );
}

/// Through a [`CountQueue`] capped at two subjects a day: the third subject's counts
/// land under [`OVERFLOW_SUBJECT`], are reported as such, and are counted in
/// `Stats::overflowed_subjects`.
pub async fn overflow_subjects_through_a_queue(counter: Arc<dyn Counter>) {
    let s = Scope::new();
    let queue = CountQueue::builder(Arc::clone(&counter))
        .max_subjects(2)
        .build()
        .expect("a queue");
    // A fixed day, so the test does not depend on which day it runs.
    let at = crate::testkit::at("2025-07-07T07:07:07Z");
    for (subject, n) in [("one", 1), ("two", 2), ("three", 3), ("four", 4)] {
        for _ in 0..n {
            queue
                .record_at(s.key(Post, "/o", Some(subject), Some(201)), at)
                .expect("a valid timestamp");
        }
    }
    queue
        .record_at(s.key(Post, "/o", None, None), at)
        .expect("a valid timestamp");
    queue.flush().await.expect("flushed");
    let stats = queue.stats();
    queue.shutdown().await.expect("shut down");
    assert_eq!(stats.overflowed_subjects, 7, "{stats:?}");
    let query = TotalsQuery::new(DateRange::day(day("2025-07-07")), &[Dimension::Subject])
        .unwrap()
        .endpoint(s.endpoint(Post, "/o"));
    let got: Vec<(Option<String>, u64)> = counter
        .totals(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.subject.map(|x| x.to_string()), t.total))
        .collect();
    let scoped = |local: &str| Some(s.subject(local).to_string());
    let mut expected = vec![
        (None, 1),
        (Some(OVERFLOW_SUBJECT.to_string()), 7),
        (scoped("one"), 1),
        (scoped("two"), 2),
    ];
    expected.sort();
    assert_eq!(got, expected);
}
