//! The count.v1 service in process, over loopback, on the in-memory backend: every
//! RPC, every status code, bad input, auth, limits, health, reflection, shutdown;
//! and `GrpcCounter` through it against the conformance suite.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{NOON, Running, add, date};
use count_core::testkit::Scope;
use count_core::{Counter, DateRange, Day};
use count_grpc::proto::count::v1 as pb;
use count_grpc::{GrpcCounter, ServerConfig};
use count_memory::MemoryCounter;
use tonic::Code;

fn memory() -> (Arc<MemoryCounter>, Arc<dyn Counter>) {
    let counter = Arc::new(MemoryCounter::new());
    (counter.clone(), counter)
}

async fn sum(counter: &dyn Counter, range: DateRange) -> u64 {
    let totals = counter.daily_totals(range).await.unwrap();
    totals.iter().map(|t| t.total).sum()
}

const GET: i32 = pb::Method::Get as i32;
const PATCH: i32 = pb::Method::Patch as i32;
const GRPC: i32 = pb::Method::Grpc as i32;
const UNSPECIFIED: i32 = pb::Method::Unspecified as i32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_as_the_go_server_did() {
    let (_, counter) = memory();
    // No rollup scheduler: ListUnrolledDays is checked below.
    let config = ServerConfig {
        rollup: false,
        ..ServerConfig::default()
    };
    let server = Running::start(config, counter).await;
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
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_answers_only_once_its_counts_are_written() {
    let (memory, counter) = memory();
    let server = Running::start(ServerConfig::default(), counter).await;
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
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_naming_the_field_and_value() {
    let (memory, counter) = memory();
    let server = Running::start(ServerConfig::default(), counter).await;
    let mut client = server.client().await;
    let ts = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
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
                method: GET,
                path: "/ok".into(),
                request_timestamp: None,
            },
            &["request_timestamp", "missing"],
        ),
        (
            "timestamp out of range",
            pb::AddRequest {
                method: GET,
                path: "/ok".into(),
                request_timestamp: ts(253_402_300_800),
            },
            &["request_timestamp", "253402300800"],
        ),
        (
            "negative nanos",
            pb::AddRequest {
                method: GET,
                path: "/ok".into(),
                request_timestamp: Some(prost_types::Timestamp {
                    seconds: NOON,
                    nanos: -1,
                }),
            },
            &["request_timestamp"],
        ),
        ("unknown method", add(42, "/ok", NOON), &["method", "42"]),
    ];
    for (case, bad, words) in adds {
        // One good count, then the bad message, then a good one never read.
        let stream = vec![add(GET, "/before", NOON), bad, add(GET, "/after", NOON)];
        let status = match client.add(tokio_stream::iter(stream)).await {
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
        assert!(status.message().len() < 400, "{case}: a long message");
    }
    // The counts before each bad message stay counted; none after it.
    client
        .add(tokio_stream::iter(vec![add(GET, "/flush", NOON)]))
        .await
        .unwrap();
    let d = Day::new(2024, 3, 10).unwrap();
    let totals = memory.daily_totals(DateRange::day(d)).await.unwrap();
    let total_of = |path: &str| {
        totals
            .iter()
            .find(|t| t.endpoint.path.as_str() == path)
            .map_or(0, |t| t.total)
    };
    assert_eq!((total_of("/before"), total_of("/after")), (8, 0));

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
            pb::BucketCount {
                method: GET,
                path: "/batch-good".into(),
                bucket: ts(NOON),
                n: 1,
            },
            pb::BucketCount {
                method: GET,
                path: "/bad\0".into(),
                bucket: ts(NOON),
                n: 1,
            },
        ],
    };
    let status = client.add_counts(bad_batch).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
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
    let totals = memory.daily_totals(DateRange::day(d)).await.unwrap();
    assert!(
        !totals
            .iter()
            .any(|t| t.endpoint.path.as_str() == "/batch-good")
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_counts_applies_a_batch_once_however_often_it_is_sent() {
    let (memory, counter) = memory();
    let server = Running::start(ServerConfig::default(), counter).await;
    let mut client = server.client().await;
    let request = pb::AddCountsRequest {
        batch_id: Some(pb::BatchId {
            writer: count_core::uuid::Uuid::new_v4().as_bytes().to_vec(),
            seq: 42,
        }),
        counts: vec![pb::BucketCount {
            method: PATCH,
            path: "/once".into(),
            bucket: Some(prost_types::Timestamp {
                seconds: NOON,
                nanos: 0,
            }),
            n: 1_000_000,
        }],
    };
    for _ in 0..3 {
        client.add_counts(request.clone()).await.unwrap();
    }
    let d = Day::new(2024, 3, 10).unwrap();
    let totals = memory.daily_totals(DateRange::day(d)).await.unwrap();
    assert_eq!(totals.len(), 1);
    assert_eq!(totals[0].total, 1_000_000);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_every_call_health_and_reflection_included() {
    let (_, counter) = memory();
    let config = ServerConfig {
        token: Some("s3cret-token".into()),
        ..ServerConfig::default()
    };
    let server = Running::start(config, counter).await;
    let report = pb::GetPeriodTotalsRequest {
        period: Some(date(2024, 0, 0)),
    };
    let mut client = server.client().await;
    let status = client.get_period_totals(report).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    for token in ["wrong", "s3cret-toke", "s3cret-token2"] {
        let counter = GrpcCounter::builder(&server.url())
            .token(token)
            .connect()
            .await
            .unwrap();
        let error = counter.health().await.unwrap_err();
        assert!(error.to_string().contains("Bearer"), "{error}");
    }
    let anonymous = GrpcCounter::connect(&server.url()).await.unwrap();
    assert!(anonymous.health().await.is_err());
    let counter = GrpcCounter::builder(&server.url())
        .token("s3cret-token")
        .connect()
        .await
        .unwrap();
    counter.health().await.unwrap();
    let s = Scope::new();
    counter
        .write(&s.batch(&[(count_core::Method::Get, "/t", "2024-03-10T00:00:00Z", 2)]))
        .await
        .unwrap();
    server.stop().await.unwrap();

    // No token set: no header needed.
    let (_, counter) = memory();
    let open = Running::start(ServerConfig::default(), counter).await;
    GrpcCounter::connect(&open.url())
        .await
        .unwrap()
        .health()
        .await
        .unwrap();
    open.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_counter_conforms_through_the_server() {
    let (_, counter) = memory();
    let server = Running::start(ServerConfig::default(), counter).await;
    let remote = GrpcCounter::connect(&server.url()).await.unwrap();
    count_core::testkit::run_all(&remote).await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_counter_behind_a_queue_counts_every_request() {
    let (memory, counter) = memory();
    let server = Running::start(ServerConfig::default(), counter).await;
    let remote = Arc::new(GrpcCounter::connect(&server.url()).await.unwrap());
    let queue = count_core::CountQueue::builder(remote).build().unwrap();
    let path = count_core::Path::new("/remote").unwrap();
    for _ in 0..100_000 {
        while queue.record(count_core::Method::Get, path) != count_core::Recorded::Queued {
            tokio::task::yield_now().await;
        }
    }
    queue.flush().await.unwrap();
    let totals = memory.daily_totals(DateRange::day(Day::today())).await;
    let today: u64 = totals.unwrap().iter().map(|t| t.total).sum();
    // Near midnight some may land on the next day: count both.
    let tomorrow: u64 = match Day::today().next() {
        Some(d) => sum(&*memory, DateRange::day(d)).await,
        None => 0,
    };
    assert!(
        today + tomorrow >= 100_000 && today <= 100_000,
        "{today} + {tomorrow}"
    );
    queue.shutdown().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer_standard_tooling() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let (_, counter) = memory();
    let server = Running::start(ServerConfig::default(), counter).await;
    let channel = tonic::transport::Channel::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    for service in ["", "count.v1.CountService"] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving
        );
    }
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("{response:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"count.v1.CountService"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused_before_they_are_read() {
    let (_, counter) = memory();
    let config = ServerConfig {
        max_message_bytes: 64 * 1024,
        ..ServerConfig::default()
    };
    let server = Running::start(config, counter).await;
    let mut client = server.client().await;
    let huge = add(GET, &"/x".repeat(100_000), NOON);
    let status = client
        .add(tokio_stream::iter(vec![huge]))
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{status:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_finishes_streams_in_progress_and_loses_nothing() {
    let (memory, counter) = memory();
    let server = Running::start(ServerConfig::default(), counter).await;
    let mut client = server.client().await;
    let (send, receive) = tokio::sync::mpsc::channel(16);
    let call = tokio::spawn(async move {
        client
            .add(tokio_stream::wrappers::ReceiverStream::new(receive))
            .await
    });
    for i in 0..5_000 {
        send.send(add(GET, "/inflight", NOON + i % 100))
            .await
            .unwrap();
    }
    // Stop while the stream is open; it still may finish.
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..5_000 {
        send.send(add(GET, "/inflight", NOON + i % 100))
            .await
            .unwrap();
    }
    drop(send);
    call.await.unwrap().expect("the stream finishes");
    stopping.await.unwrap().expect("a clean stop");
    let d = Day::new(2024, 3, 10).unwrap();
    assert_eq!(sum(&*memory, DateRange::day(d)).await, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollup_scheduler_runs_unless_turned_off() {
    let s = Scope::new();
    let d = Day::new(2024, 1, 2).unwrap();
    let later = Day::new(2025, 1, 1).unwrap();
    for rollup in [false, true] {
        let (memory, counter) = memory();
        memory
            .write(&s.batch(&[(count_core::Method::Get, "/r", "2024-01-02T03:00:00Z", 5)]))
            .await
            .unwrap();
        let config = ServerConfig {
            rollup,
            ..ServerConfig::default()
        };
        let server = Running::start(config, counter).await;
        let mut unrolled = memory.unrolled_days(later).await.unwrap();
        for _ in 0..100 {
            if unrolled.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            unrolled = memory.unrolled_days(later).await.unwrap();
        }
        if rollup {
            assert!(unrolled.is_empty(), "{unrolled:?}");
        } else {
            assert_eq!(unrolled, vec![d]);
        }
        server.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_concurrency_limit_wait_their_turn() {
    let (_, counter) = memory();
    let config = ServerConfig {
        max_concurrent_calls: 1,
        ..ServerConfig::default()
    };
    let server = Running::start(config, counter).await;
    let mut streaming = server.client().await;
    let (send, receive) = tokio::sync::mpsc::channel(4);
    send.send(add(GET, "/held", NOON)).await.unwrap();
    let held = tokio::spawn(async move {
        streaming
            .add(tokio_stream::wrappers::ReceiverStream::new(receive))
            .await
    });
    // Time for the stream's call to reach the server and take the one slot.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut other = server.client().await;
    let report = pb::GetPeriodTotalsRequest {
        period: Some(date(2024, 0, 0)),
    };
    let waiting =
        tokio::time::timeout(Duration::from_millis(300), other.get_period_totals(report)).await;
    assert!(
        waiting.is_err(),
        "a second call ran beside the first: {waiting:?}"
    );
    drop(send);
    held.await.unwrap().unwrap();
    let totals = other.get_period_totals(report).await.unwrap().into_inner();
    assert_eq!(totals.method_counts.len(), 1);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_ends_calls_at_the_timeout() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = std::time::Instant::now();
    let result = async {
        let counter = GrpcCounter::builder(&format!("http://{address}"))
            .connect_timeout(Duration::from_millis(300))
            .timeout(Duration::from_millis(300))
            .connect()
            .await?;
        counter.health().await
    }
    .await;
    assert!(result.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let refused = GrpcCounter::connect("http://127.0.0.1:1")
        .await
        .unwrap_err();
    assert!(
        matches!(refused, count_core::Error::Unavailable { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("127.0.0.1:1"), "{refused}");
    let bad = GrpcCounter::connect("not a url").await.unwrap_err();
    assert!(
        matches!(bad, count_core::Error::InvalidInput { .. }),
        "{bad}"
    );
}

/// A CA and a server certificate for `localhost` it signed, made with `openssl`.
fn certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=count test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_counter_speaks_tls_to_a_tls_server() {
    use tonic::transport::{Certificate, ClientTlsConfig};

    let dir = std::env::temp_dir().join(format!("count-grpc-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ca, cert, key) = certificates(&dir);
    let (memory, counter) = memory();
    let config = ServerConfig {
        tls: Some(count_grpc::server::TlsFiles { cert, key }),
        ..ServerConfig::default()
    };
    let server = Running::start(config, counter).await;
    let url = format!("https://localhost:{}", server.address.port());
    let trusted = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&ca).unwrap()))
        .domain_name("localhost");
    let counter = GrpcCounter::builder(&url)
        .tls(trusted)
        .connect()
        .await
        .unwrap();
    let s = Scope::new();
    counter
        .write(&s.batch(&[(count_core::Method::Get, "/tls", "2024-03-10T00:00:00Z", 3)]))
        .await
        .unwrap();
    let d = Day::new(2024, 3, 10).unwrap();
    assert_eq!(sum(&*memory, DateRange::day(d)).await, 3);

    // Without the CA the server is not trusted; in plaintext it is not understood.
    let untrusted = async {
        GrpcCounter::builder(&url)
            .tls(ClientTlsConfig::new().domain_name("localhost"))
            .connect()
            .await?
            .health()
            .await
    };
    assert!(untrusted.await.is_err());
    let plaintext = async {
        GrpcCounter::builder(&format!("http://localhost:{}", server.address.port()))
            .timeout(Duration::from_secs(2))
            .connect()
            .await?
            .health()
            .await
    };
    assert!(plaintext.await.is_err());
    server.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_certificate_stops_the_server_naming_the_file() {
    let (_, counter) = memory();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = ServerConfig {
        tls: Some(count_grpc::server::TlsFiles {
            cert: "/nonexistent/count.pem".into(),
            key: "/nonexistent/count.key".into(),
        }),
        ..ServerConfig::default()
    };
    let error = count_grpc::server::serve_counter(config, counter, listener, async {})
        .await
        .unwrap_err();
    assert!(
        matches!(error, count_core::Error::InvalidInput { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("/nonexistent/count.pem"),
        "{error}"
    );
}
