//! Every RPC through a plain tonic server on the in-memory backend: the Go server's
//! semantics and codes for its four, and the additions (subjects and statuses on
//! `Add`, `AddCounts`' batch ids, `GetTotals`).

mod common;

use common::*;
use count_core::{Counter, DateRange, Day};
use count_grpc::proto::count::v1 as pb;
use count_grpc::proto::count::v1::get_totals_request::Range;
use count_grpc::proto::count::v1::status_filter::Filter;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_as_the_go_server_did() {
    let (_, server) = Served::memory().await;
    let mut client = server.client().await;

    // Add: a stream of single requests, as Go clients send them.
    let day = 86_400;
    let requests = vec![
        add(GET, "/users/{id}", NOON),
        add(GET, "/users/{id}", NOON + 1),
        add(PATCH, "/users/{id}", NOON),
        add(GRPC, "/pkg.Service/Call", NOON),
        add(UNSPECIFIED, "/legacy", NOON),
        add(GET, "/users/{id}", NOON + day),
        add(GET, "/a", NOON + 40 * day),
    ];
    client.add(tokio_stream::iter(requests)).await.expect("Add");

    // CountDailyTotals: rolls up the date and returns its counts, dated.
    let totals = client
        .count_daily_totals(pb::CountDailyTotalsRequest {
            date: Some(date(2024, 3, 10)),
        })
        .await
        .unwrap()
        .into_inner()
        .method_counts;
    let shown: Vec<_> = totals
        .iter()
        .map(|c| (c.method, c.path.as_str(), c.count, c.date))
        .collect();
    let d = Some(date(2024, 3, 10));
    assert_eq!(
        shown,
        vec![
            (UNSPECIFIED, "/legacy", 1, d),
            (GRPC, "/pkg.Service/Call", 1, d),
            (GET, "/users/{id}", 2, d),
            (PATCH, "/users/{id}", 1, d),
        ]
    );

    // ListDailyTotals: inclusive range, by day, path, method.
    let listed = client
        .list_daily_totals(pb::ListDailyTotalsRequest {
            start_date: Some(date(2024, 3, 10)),
            end_date: Some(date(2024, 3, 11)),
        })
        .await
        .unwrap()
        .into_inner()
        .method_counts;
    let shown: Vec<_> = listed
        .iter()
        .map(|c| (c.date.unwrap().day, c.path.as_str(), c.method, c.count))
        .collect();
    assert_eq!(
        shown,
        vec![
            (10, "/legacy", UNSPECIFIED, 1),
            (10, "/pkg.Service/Call", GRPC, 1),
            (10, "/users/{id}", GET, 2),
            (10, "/users/{id}", PATCH, 1),
            (11, "/users/{id}", GET, 1),
        ]
    );

    // GetPeriodTotals: year, month, day; no dates in the answer.
    let period = |year, month, day| {
        let mut client = client.clone();
        async move {
            client
                .get_period_totals(pb::GetPeriodTotalsRequest {
                    period: Some(date(year, month, day)),
                })
                .await
                .map(|r| {
                    r.into_inner()
                        .method_counts
                        .into_iter()
                        .map(|c| {
                            assert_eq!(c.date, None);
                            (c.path, c.method, c.count)
                        })
                        .collect::<Vec<_>>()
                })
        }
    };
    let year = period(2024, 0, 0).await.unwrap();
    assert!(year.contains(&("/users/{id}".into(), GET, 3)), "{year:?}");
    assert!(year.contains(&("/a".into(), GET, 1)), "{year:?}");
    let march = period(2024, 3, 0).await.unwrap();
    assert!(!march.iter().any(|c| c.0 == "/a"), "{march:?}");
    assert_eq!(
        period(2024, 3, 11).await.unwrap(),
        vec![("/users/{id}".into(), GET, 1)]
    );

    // NOT_FOUND for nothing found.
    assert_eq!(period(2023, 0, 0).await.unwrap_err().code(), Code::NotFound);
    let empty = client
        .list_daily_totals(pb::ListDailyTotalsRequest {
            start_date: Some(date(2020, 1, 1)),
            end_date: Some(date(2020, 12, 31)),
        })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::NotFound);

    // ListUnrolledDays: 03-11 and 04-19 were never rolled up.
    let unrolled = client
        .list_unrolled_days(pb::ListUnrolledDaysRequest {
            before: Some(date(2025, 1, 1)),
        })
        .await
        .unwrap()
        .into_inner()
        .days;
    assert_eq!(unrolled, vec![date(2024, 3, 11), date(2024, 4, 19)]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_answers_only_once_its_counts_are_written() {
    let (memory, server) = Served::memory().await;
    let mut client = server.client().await;
    let requests: Vec<_> = (0..10_000)
        .map(|i| add(GET, "/many", NOON + i % 60))
        .collect();
    client.add(tokio_stream::iter(requests)).await.unwrap();
    // Read straight from the backend, with no flush of our own.
    let d = Day::new(2024, 3, 10).unwrap();
    assert_eq!(
        memory.daily_totals(DateRange::day(d)).await.unwrap()[0].total,
        10_000
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_counts_applies_a_batch_once_however_often_it_is_sent() {
    let (memory, server) = Served::memory().await;
    let mut client = server.client().await;
    let request = pb::AddCountsRequest {
        batch_id: Some(pb::BatchId {
            writer: count_core::uuid::Uuid::new_v4().as_bytes().to_vec(),
            seq: 42,
        }),
        counts: vec![bucket_count(PATCH, "/once", NOON, 1_000_000)],
    };
    for _ in 0..3 {
        client.add_counts(request.clone()).await.unwrap();
    }
    let d = Day::new(2024, 3, 10).unwrap();
    let totals = memory.daily_totals(DateRange::day(d)).await.unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!(totals[0].total, 1_000_000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_counts_refuses_the_nil_writer_and_a_reused_id_with_other_counts() {
    let (memory, server) = Served::memory().await;
    let mut client = server.client().await;
    let nil = pb::AddCountsRequest {
        batch_id: Some(pb::BatchId {
            writer: vec![0; 16],
            seq: 1,
        }),
        counts: vec![bucket_count(GET, "/nil-writer", NOON, 1)],
    };
    let status = client.add_counts(nil).await.unwrap_err();
    assert_status(
        &status,
        Code::InvalidArgument,
        &["batch_id.writer", "nil UUID"],
    );
    assert_eq!(total_of(&*memory, "/nil-writer").await, 0);

    let id = batch_id(7);
    let first = pb::AddCountsRequest {
        batch_id: id.clone(),
        counts: vec![bucket_count(GET, "/reused", NOON, 5)],
    };
    client.add_counts(first.clone()).await.unwrap();
    // The same batch again is a harmless resend.
    client.add_counts(first).await.unwrap();
    let changed = pb::AddCountsRequest {
        batch_id: id,
        counts: vec![bucket_count(GET, "/reused", NOON, 6)],
    };
    let status = client.add_counts(changed).await.unwrap_err();
    assert_status(
        &status,
        Code::AlreadyExists,
        &["already applied with other counts", "#7"],
    );
    assert_eq!(total_of(&*memory, "/reused").await, 5);
    let stats = server.handler.stats();
    assert_eq!(stats.add_counts_calls, 4);
    assert_eq!(stats.add_counts_conflicts, 1);
    assert_eq!(stats.batches_written, 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_carries_subjects_and_statuses_and_old_reports_sum_over_them() {
    let (memory, server) = Served::memory().await;
    let mut client = server.client().await;
    let stream = vec![
        add_key(GET, "/dims", NOON, Some("acme"), Some(200)),
        add_key(GET, "/dims", NOON + 1, Some("acme"), Some(200)),
        add_key(GET, "/dims", NOON, Some("acme"), Some(503)),
        add_key(GET, "/dims", NOON, None, Some(404)),
        add(GET, "/dims", NOON),
        add_key(GRPC, "/pkg.S/M", NOON, Some("zeta"), Some(0)),
        add_key(GRPC, "/pkg.S/M", NOON, Some("zeta"), None),
    ];
    client.add(tokio_stream::iter(stream)).await.unwrap();
    // The Go server's reports: per endpoint, summed over subjects and statuses.
    let listed = client
        .list_daily_totals(pb::ListDailyTotalsRequest {
            start_date: Some(date(2024, 3, 10)),
            end_date: Some(date(2024, 3, 10)),
        })
        .await
        .unwrap()
        .into_inner()
        .method_counts;
    let shown: Vec<_> = listed.iter().map(|c| (c.path.as_str(), c.count)).collect();
    assert_eq!(shown, vec![("/dims", 5), ("/pkg.S/M", 2)]);
    // The model got every dimension: gRPC OK (0) apart from "not recorded".
    let day = Day::new(2024, 3, 10).unwrap();
    let query = count_core::TotalsQuery::new(
        DateRange::day(day),
        &[
            count_core::Dimension::Subject,
            count_core::Dimension::Status,
        ],
    )
    .unwrap();
    let rows: Vec<_> = memory
        .totals(&query)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.subject.map(|s| s.as_str()),
                r.status.map(|s| s.code()),
                r.total,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (None, None, 1),
            (None, Some(404), 1),
            (Some("acme"), Some(200), 2),
            (Some("acme"), Some(503), 1),
            (Some("zeta"), None, 1),
            (Some("zeta"), Some(0), 1),
        ]
    );
    let stats = server.handler.stats();
    assert_eq!(stats.add_streams_ok, 1);
    assert_eq!(stats.requests_written, 7);
    assert_eq!(stats.batches_written, 1);
    assert!(stats.last_write.is_some());
    server.stop().await;
}

/// A `GetTotals` request over 2024-03-10 (and 11) grouped by `group_by`.
fn totals_request(group_by: &[pb::Dimension]) -> pb::GetTotalsRequest {
    pb::GetTotalsRequest {
        range: Some(Range::Days(pb::DateRange {
            start_date: Some(date(2024, 3, 10)),
            end_date: Some(date(2024, 3, 11)),
        })),
        group_by: group_by.iter().map(|d| *d as i32).collect(),
        subject: None,
        status: None,
        endpoint: None,
        time_zone: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_totals_groups_and_filters_and_tells_no_subject_from_not_grouped() {
    let (_, server) = Served::memory().await;
    let mut client = server.client().await;
    let day = 86_400;
    let keyed = |path: &str, at, subject: Option<&str>, status: Option<i32>, n| pb::BucketCount {
        subject: subject.map(str::to_owned),
        status,
        ..bucket_count(GET, path, at, n)
    };
    let counts = vec![
        keyed("/t/a", NOON, Some("acme"), Some(200), 3),
        keyed("/t/a", NOON, Some("acme"), Some(502), 2),
        keyed("/t/a", NOON + day, None, Some(404), 4),
        keyed("/t/b", NOON, None, None, 5),
        keyed("/t/b", NOON, Some("beta"), Some(201), 1),
    ];
    client
        .add_counts(pb::AddCountsRequest {
            batch_id: batch_id(1),
            counts,
        })
        .await
        .unwrap();
    let get = |request: pb::GetTotalsRequest| {
        let mut client = client.clone();
        async move { client.get_totals(request).await.unwrap().into_inner().rows }
    };

    // By endpoint: only endpoint and count are set.
    let rows = get(totals_request(&[pb::Dimension::Endpoint])).await;
    let shown: Vec<_> = rows
        .iter()
        .map(|r| {
            assert!(r.date.is_none() && r.subject.is_none() && r.status.is_none());
            (r.endpoint.clone().unwrap().path, r.count)
        })
        .collect();
    assert_eq!(shown, vec![("/t/a".into(), 9), ("/t/b".into(), 6)]);

    // By subject: "no subject" is a present group with its subject absent.
    let rows = get(totals_request(&[pb::Dimension::Subject])).await;
    let shown: Vec<_> = rows
        .iter()
        .map(|r| {
            assert!(r.endpoint.is_none() && r.status.is_none() && r.date.is_none());
            (
                r.subject.clone().expect("grouped by subject").subject,
                r.count,
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (None, 9),
            (Some("acme".into()), 5),
            (Some("beta".into()), 1)
        ]
    );

    // By status and day: "not recorded" is a present group with its code absent.
    let rows = get(totals_request(&[pb::Dimension::Status, pb::Dimension::Day])).await;
    let shown: Vec<_> = rows
        .iter()
        .map(|r| (r.date.unwrap().day, r.status.unwrap().code, r.count))
        .collect();
    assert_eq!(
        shown,
        vec![
            (10, None, 5),
            (10, Some(200), 3),
            (10, Some(201), 1),
            (10, Some(502), 2),
            (11, Some(404), 4),
        ]
    );

    // Filters: subject, status class, exact code, endpoint; a period range.
    let mut by_subject = totals_request(&[pb::Dimension::Status]);
    by_subject.subject = Some("acme".into());
    let rows = get(by_subject).await;
    let codes: Vec<_> = rows
        .iter()
        .map(|r| (r.status.unwrap().code, r.count))
        .collect();
    assert_eq!(codes, vec![(Some(200), 3), (Some(502), 2)]);

    let mut server_errors = totals_request(&[pb::Dimension::Endpoint]);
    server_errors.status = Some(pb::StatusFilter {
        filter: Some(Filter::Class(pb::StatusClass::StatusClass5xx as i32)),
    });
    let rows = get(server_errors).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].endpoint.clone().unwrap().path.as_str(),
            rows[0].count
        ),
        ("/t/a", 2)
    );

    let mut not_found = totals_request(&[pb::Dimension::Day]);
    not_found.status = Some(pb::StatusFilter {
        filter: Some(Filter::Code(404)),
    });
    not_found.range = Some(Range::Period(date(2024, 3, 0)));
    let rows = get(not_found).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].date.unwrap().day, rows[0].count), (11, 4));

    let mut one_endpoint = totals_request(&[pb::Dimension::Subject]);
    one_endpoint.endpoint = Some(pb::Endpoint {
        method: GET,
        path: "/t/b".into(),
    });
    let rows = get(one_endpoint).await;
    let shown: Vec<_> = rows
        .iter()
        .map(|r| (r.subject.clone().unwrap().subject, r.count))
        .collect();
    assert_eq!(shown, vec![(None, 5), (Some("beta".into()), 1)]);

    // No counts: no rows, not NOT_FOUND.
    let mut empty = totals_request(&[pb::Dimension::Endpoint]);
    empty.range = Some(Range::Period(date(2020, 0, 0)));
    assert!(get(empty).await.is_empty());
    server.stop().await;
}
