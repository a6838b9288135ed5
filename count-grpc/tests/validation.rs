//! Bad input of every RPC is refused where it enters: `INVALID_ARGUMENT` naming the
//! field and the rule, and nothing of the request written.

mod common;

use common::*;
use count_grpc::proto::count::v1 as pb;
use count_grpc::proto::count::v1::get_totals_request::Range;
use count_grpc::proto::count::v1::status_filter::Filter;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_and_value() {
    let (memory, server) = Served::memory().await;
    let mut client = server.client().await;
    let long_path = format!("/{}", "x".repeat(1 << 20));
    let adds: Vec<(&str, pb::AddRequest, &[&str])> = vec![
        ("NUL in path", add(GET, "/a\0b", NOON), &["path", "U+0000"]),
        ("1 MiB path", add(GET, &long_path, NOON), &["path", "1024"]),
        ("empty path", add(GET, "", NOON), &["path", "empty"]),
        (
            "control byte",
            add(GET, "/a\u{7}b", NOON),
            &["path", "control"],
        ),
        (
            "missing timestamp",
            pb::AddRequest {
                request_timestamp: None,
                ..add(GET, "/ok", NOON)
            },
            &["request_timestamp", "missing"],
        ),
        (
            "timestamp out of range",
            add(GET, "/ok", 253_402_300_800),
            &["request_timestamp", "253402300800"],
        ),
        (
            "negative nanos",
            pb::AddRequest {
                request_timestamp: Some(prost_types::Timestamp {
                    seconds: NOON,
                    nanos: -1,
                }),
                ..add(GET, "/ok", NOON)
            },
            &["request_timestamp"],
        ),
        ("unknown method", add(42, "/ok", NOON), &["method", "42"]),
        (
            "HTTP status for a gRPC call",
            add_key(GRPC, "/pkg.S/M", NOON, None, Some(200)),
            &["status", "200", "0 (OK) to 16"],
        ),
        (
            "gRPC status for an HTTP call",
            add_key(GET, "/ok", NOON, None, Some(14)),
            &["status", "14", "100 to 599"],
        ),
        (
            "HTTP status 600",
            add_key(POST, "/ok", NOON, None, Some(600)),
            &["status", "600", "100 to 599"],
        ),
        (
            "gRPC status -1",
            add_key(GRPC, "/pkg.S/M", NOON, None, Some(-1)),
            &["status", "-1"],
        ),
        (
            "empty subject",
            add_key(GET, "/ok", NOON, Some(""), None),
            &["subject", "leave it out"],
        ),
        (
            "long subject",
            add_key(GET, "/ok", NOON, Some(&"k".repeat(257)), None),
            &["subject", "257 bytes", "256"],
        ),
        (
            "control character in subject",
            add_key(GET, "/ok", NOON, Some("a\u{1b}[31m"), None),
            &["subject", "U+001B"],
        ),
    ];
    for (case, bad, words) in adds {
        // One good count, then the bad message, then a good one never read; with a
        // deadline, so the stream is one unit (a feed's refusals are in feed.rs).
        let stream = vec![add(GET, "/before", NOON), bad, add(GET, "/after", NOON)];
        let mut request = tonic::Request::new(tokio_stream::iter(stream));
        request.set_timeout(std::time::Duration::from_secs(10));
        let status = match client.add(request).await {
            Err(status) => status,
            Ok(_) => panic!("{case}: accepted"),
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        for word in words {
            assert!(
                status.message().contains(word),
                "{case}: {word:?} not in {:?}",
                status.message()
            );
        }
        assert!(
            status.message().contains("message 1 of the stream")
                && status
                    .message()
                    .contains("nothing of the stream was written"),
            "{case}: {status:?}"
        );
        assert!(status.message().len() < 500, "{case}: a long message");
    }
    // A refused message refuses its whole stream: nothing before it is written.
    assert_eq!(total_of(&*memory, "/before").await, 0);
    assert_eq!(total_of(&*memory, "/after").await, 0);
    assert_eq!(server.handler.stats().add_streams_invalid, 15);

    let daily = |start, end| {
        let mut client = client.clone();
        async move {
            client
                .list_daily_totals(pb::ListDailyTotalsRequest {
                    start_date: start,
                    end_date: end,
                })
                .await
                .unwrap_err()
        }
    };
    let dates: Vec<(&str, Option<_>, Option<_>, &[&str])> = vec![
        (
            "month 13",
            Some(date(2024, 13, 1)),
            Some(date(2024, 13, 2)),
            &["start_date", "2024-13-01"],
        ),
        (
            "day 32",
            Some(date(2024, 1, 1)),
            Some(date(2024, 1, 32)),
            &["end_date", "2024-01-32"],
        ),
        (
            "Feb 30",
            Some(date(2023, 2, 30)),
            Some(date(2023, 3, 1)),
            &["start_date", "2023-02-30"],
        ),
        (
            "missing start",
            None,
            Some(date(2024, 1, 1)),
            &["start_date", "missing"],
        ),
        (
            "missing end",
            Some(date(2024, 1, 1)),
            None,
            &["end_date", "missing"],
        ),
        (
            "negative month",
            Some(date(2024, -1, 1)),
            Some(date(2024, 1, 1)),
            &["start_date"],
        ),
        (
            "reversed",
            Some(date(2024, 2, 1)),
            Some(date(2024, 1, 1)),
            &["2024-02-01", "2024-01-01"],
        ),
        (
            "year 0",
            Some(date(0, 1, 1)),
            Some(date(1, 1, 1)),
            &["start_date", "0000-01-01"],
        ),
    ];
    for (case, start, end, words) in dates {
        let status = daily(start, end).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        for word in words {
            assert!(
                status.message().contains(word),
                "{case}: {word:?} not in {status:?}"
            );
        }
    }
    let missing = client
        .count_daily_totals(pb::CountDailyTotalsRequest { date: None })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert!(missing.message().contains("date"), "{missing:?}");
    for (period, word) in [
        (None, "missing"),
        (Some(date(2024, 0, 5)), "without a month"),
        (Some(date(2024, 13, 0)), "2024-13-00"),
        (Some(date(10_000, 0, 0)), "10000"),
    ] {
        let status = client
            .get_period_totals(pb::GetPeriodTotalsRequest { period })
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{period:?}: {status:?}"
        );
        assert!(
            status.message().contains(word),
            "{word:?} not in {status:?}"
        );
    }
    // AddCounts: a bad row refuses the whole batch, which is then not applied.
    let bad_batch = pb::AddCountsRequest {
        batch_id: Some(pb::BatchId {
            writer: vec![7; 16],
            seq: 1,
        }),
        counts: vec![
            bucket_count(GET, "/batch-good", NOON, 1),
            bucket_count(GET, "/bad\0", NOON, 1),
        ],
    };
    let status = client.add_counts(bad_batch).await.unwrap_err();
    assert_status(&status, Code::InvalidArgument, &["counts[1]", "path"]);
    let short_writer = pb::AddCountsRequest {
        batch_id: Some(pb::BatchId {
            writer: vec![1, 2, 3],
            seq: 1,
        }),
        counts: vec![],
    };
    let status = client.add_counts(short_writer).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("batch_id.writer"), "{status:?}");
    assert_eq!(total_of(&*memory, "/batch-good").await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_counts_names_the_row_and_field_it_refuses() {
    let (memory, server) = Served::memory().await;
    let mut client = server.client().await;
    let keyed = |subject: Option<&str>, status: Option<i32>, n| pb::BucketCount {
        subject: subject.map(str::to_owned),
        status,
        ..bucket_count(GET, "/rows", NOON, n)
    };
    let cases: Vec<(&str, pb::BucketCount, &[&str])> = vec![
        (
            "n = 0",
            keyed(None, None, 0),
            &["counts[1]", "invalid n 0", "1 to"],
        ),
        (
            "n over 2^40",
            keyed(None, None, (1 << 40) + 1),
            &["counts[1]", "invalid n", "2^40"],
        ),
        (
            "status 99",
            keyed(None, Some(99), 1),
            &["counts[1]", "invalid status 99", "100 to 599"],
        ),
        (
            "gRPC status for an HTTP row",
            keyed(None, Some(0), 1),
            &["counts[1]", "invalid status 0"],
        ),
        (
            "empty subject",
            keyed(Some(""), None, 1),
            &["counts[1]", "invalid subject", "leave it out"],
        ),
        (
            "subject with a newline",
            keyed(Some("a\nb"), None, 1),
            &["counts[1]", "invalid subject", "U+000A"],
        ),
        (
            "missing bucket",
            pb::BucketCount {
                bucket: None,
                ..keyed(None, None, 1)
            },
            &["counts[1]", "invalid bucket", "missing"],
        ),
    ];
    for (case, bad, words) in cases {
        let request = pb::AddCountsRequest {
            batch_id: batch_id(1),
            counts: vec![bucket_count(GET, "/rows-good", NOON, 1), bad],
        };
        let status = client.add_counts(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        for word in words {
            assert!(
                status.message().contains(word),
                "{case}: {word:?} in {status:?}"
            );
        }
    }
    let ids: Vec<(Option<pb::BatchId>, &[&str])> = vec![
        (None, &["batch_id", "missing"]),
        (
            Some(pb::BatchId {
                writer: vec![9; 16],
                seq: u64::MAX,
            }),
            &["batch_id.seq", "9223372036854775807"],
        ),
    ];
    for (batch_id, words) in ids {
        let request = pb::AddCountsRequest {
            batch_id,
            counts: vec![bucket_count(GET, "/rows-good", NOON, 1)],
        };
        let status = client.add_counts(request).await.unwrap_err();
        assert_status(&status, Code::InvalidArgument, words);
    }
    assert_eq!(total_of(&*memory, "/rows-good").await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_totals_refuses_bad_queries_naming_the_field() {
    let (_, server) = Served::memory().await;
    let mut client = server.client().await;
    let good = || pb::GetTotalsRequest {
        range: Some(Range::Period(date(2024, 3, 0))),
        group_by: vec![pb::Dimension::Endpoint as i32],
        subject: None,
        status: None,
        endpoint: None,
        time_zone: None,
    };
    client.get_totals(good()).await.expect("a good query");
    let filter = |filter| {
        Some(pb::StatusFilter {
            filter: Some(filter),
        })
    };
    let cases: Vec<(&str, pb::GetTotalsRequest, &[&str])> = vec![
        (
            "no range",
            pb::GetTotalsRequest {
                range: None,
                ..good()
            },
            &["range", "missing"],
        ),
        (
            "empty group_by",
            pb::GetTotalsRequest {
                group_by: vec![],
                ..good()
            },
            &["group_by", "at least one"],
        ),
        (
            "unspecified dimension",
            pb::GetTotalsRequest {
                group_by: vec![0],
                ..good()
            },
            &["group_by", "DIMENSION_DAY"],
        ),
        (
            "unknown dimension",
            pb::GetTotalsRequest {
                group_by: vec![9],
                ..good()
            },
            &["group_by", "9"],
        ),
        (
            "a dimension twice",
            pb::GetTotalsRequest {
                group_by: vec![2, 2],
                ..good()
            },
            &["group_by", "endpoint is named twice"],
        ),
        (
            "unknown time zone",
            pb::GetTotalsRequest {
                time_zone: Some("Mars/Olympus".into()),
                ..good()
            },
            &["time_zone", "Mars/Olympus", "IANA"],
        ),
        (
            "hours the memory backend never dropped, in a zone of local mean time",
            pb::GetTotalsRequest {
                range: Some(Range::Period(date(1900, 1, 0))),
                group_by: vec![pb::Dimension::Hour as i32],
                time_zone: Some("Asia/Kolkata".into()),
                ..good()
            },
            &["Asia/Kolkata", "quarter hour"],
        ),
        (
            "unknown class",
            pb::GetTotalsRequest {
                status: filter(Filter::Class(6)),
                ..good()
            },
            &["status.class", "6", "STATUS_CLASS_1XX"],
        ),
        (
            "unspecified class",
            pb::GetTotalsRequest {
                status: filter(Filter::Class(0)),
                ..good()
            },
            &["status.class", "0"],
        ),
        (
            "bad code",
            pb::GetTotalsRequest {
                status: filter(Filter::Code(600)),
                ..good()
            },
            &["status.code", "600"],
        ),
        (
            "empty filter",
            pb::GetTotalsRequest {
                status: Some(pb::StatusFilter { filter: None }),
                ..good()
            },
            &["status", "code or class"],
        ),
        (
            "empty subject",
            pb::GetTotalsRequest {
                subject: Some(String::new()),
                ..good()
            },
            &["subject", "leave it out"],
        ),
        (
            "long subject",
            pb::GetTotalsRequest {
                subject: Some("s".repeat(300)),
                ..good()
            },
            &["subject", "300 bytes"],
        ),
        (
            "bad endpoint path",
            pb::GetTotalsRequest {
                endpoint: Some(pb::Endpoint {
                    method: GET,
                    path: "/a\u{0}".into(),
                }),
                ..good()
            },
            &["endpoint.path", "U+0000"],
        ),
        (
            "unknown endpoint method",
            pb::GetTotalsRequest {
                endpoint: Some(pb::Endpoint {
                    method: 55,
                    path: "/a".into(),
                }),
                ..good()
            },
            &["endpoint.method", "55"],
        ),
        (
            "reversed days",
            pb::GetTotalsRequest {
                range: Some(Range::Days(pb::DateRange {
                    start_date: Some(date(2024, 3, 2)),
                    end_date: Some(date(2024, 3, 1)),
                })),
                ..good()
            },
            &["2024-03-02", "2024-03-01"],
        ),
        (
            "missing end date",
            pb::GetTotalsRequest {
                range: Some(Range::Days(pb::DateRange {
                    start_date: Some(date(2024, 3, 2)),
                    end_date: None,
                })),
                ..good()
            },
            &["days.end_date", "missing"],
        ),
        (
            "bad period",
            pb::GetTotalsRequest {
                range: Some(Range::Period(date(2024, 0, 3))),
                ..good()
            },
            &["period"],
        ),
    ];
    for (case, request, words) in cases {
        let status = client.get_totals(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
        for word in words {
            assert!(
                status.message().contains(word),
                "{case}: {word:?} in {status:?}"
            );
        }
    }
    server.stop().await;
}
