//! The compiled count.v1 keeps the Go server's wire facts: every name, number and
//! type, so its clients keep working; additions only add, under new numbers. And a
//! client built from the Go server's messages (hand-written below, as its `.proto`
//! defines them) works unchanged against the handler.

mod common;

use std::collections::BTreeMap;

use count_grpc::proto::FILE_DESCRIPTOR_SET;
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{FileDescriptorProto, FileDescriptorSet};

fn file(name: &str) -> FileDescriptorProto {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .into_iter()
        .find(|f| f.name() == name)
        .unwrap_or_else(|| panic!("{name} not in the descriptor set"))
}

/// A field: number, type, type name, repeated, proto3 `optional`.
type Field = (i32, Type, String, bool, bool);
/// A field as the API table gives it: name, number, type, type name, repeated.
type Expected<'a> = (&'a str, i32, Type, &'a str, bool);

/// `message → field → (number, type, type name, repeated)`.
fn fields(file: &FileDescriptorProto) -> BTreeMap<String, BTreeMap<String, Field>> {
    file.message_type
        .iter()
        .map(|m| {
            let fields = m
                .field
                .iter()
                .map(|f| {
                    let repeated = f.label() == Label::Repeated;
                    let optional = f.proto3_optional();
                    (
                        f.name().to_owned(),
                        (
                            f.number(),
                            f.r#type(),
                            f.type_name().to_owned(),
                            repeated,
                            optional,
                        ),
                    )
                })
                .collect();
            (m.name().to_owned(), fields)
        })
        .collect()
}

#[test]
fn count_v1_keeps_the_go_servers_names_numbers_and_types() {
    let count = file("count/v1/count.proto");
    assert_eq!(count.package(), "count.v1");
    assert_eq!(count.syntax(), "proto3");

    let method = &count.enum_type[0];
    assert_eq!(method.name(), "Method");
    let values: Vec<(&str, i32)> = method
        .value
        .iter()
        .map(|v| (v.name(), v.number()))
        .collect();
    for go in [
        ("METHOD_UNSPECIFIED", 0),
        ("CONNECT", 1),
        ("DELETE", 2),
        ("GET", 3),
        ("HEAD", 4),
        ("OPTIONS", 5),
        ("POST", 6),
        ("PUT", 7),
        ("TRACE", 8),
        ("GRPC", 100),
    ] {
        assert!(values.contains(&go), "{go:?} in {values:?}");
    }
    assert!(values.contains(&("PATCH", 9)));
    assert_eq!(values.len(), 11, "{values:?}");

    let messages = fields(&count);
    let date = ".google.type.Date";
    let ts = ".google.protobuf.Timestamp";
    let method = ".count.v1.Method";
    let method_count = ".count.v1.MethodCount";
    let expect: &[(&str, &[Expected])] = &[
        (
            "AddRequest",
            &[
                ("method", 1, Type::Enum, method, false),
                ("path", 2, Type::String, "", false),
                ("request_timestamp", 3, Type::Message, ts, false),
            ],
        ),
        ("AddResponse", &[]),
        (
            "CountDailyTotalsRequest",
            &[("date", 1, Type::Message, date, false)],
        ),
        (
            "MethodCount",
            &[
                ("method", 1, Type::Enum, method, false),
                ("path", 2, Type::String, "", false),
                ("count", 3, Type::Int64, "", false),
                ("date", 4, Type::Message, date, false),
            ],
        ),
        (
            "CountDailyTotalsResponse",
            &[("method_counts", 1, Type::Message, method_count, true)],
        ),
        (
            "ListDailyTotalsRequest",
            &[
                ("start_date", 1, Type::Message, date, false),
                ("end_date", 2, Type::Message, date, false),
            ],
        ),
        (
            "ListDailyTotalsResponse",
            &[("method_counts", 1, Type::Message, method_count, true)],
        ),
        (
            "GetPeriodTotalsRequest",
            &[("period", 1, Type::Message, date, false)],
        ),
        (
            "GetPeriodTotalsResponse",
            &[("method_counts", 1, Type::Message, method_count, true)],
        ),
    ];
    // The Go server's fields are all there, unchanged; the only other fields of its
    // messages are the additions checked below, under new numbers.
    let added: &[(&str, &str)] = &[("AddRequest", "subject"), ("AddRequest", "status")];
    for (message, expected) in expect {
        let actual = &messages[*message];
        for (name, n, ty, type_name, repeated) in expected.iter() {
            assert_eq!(
                actual.get(*name),
                Some(&(*n, *ty, type_name.to_string(), *repeated, false)),
                "{message}.{name}"
            );
        }
        for name in actual.keys() {
            assert!(
                expected.iter().any(|e| e.0 == name) || added.contains(&(*message, name)),
                "{message}.{name} is neither the Go server's nor a known addition"
            );
        }
        let go_numbers: Vec<i32> = expected.iter().map(|e| e.1).collect();
        for (name, field) in actual {
            if !expected.iter().any(|e| e.0 == name) {
                assert!(
                    !go_numbers.contains(&field.0),
                    "{message}.{name} reuses number {}",
                    field.0
                );
            }
        }
    }

    let service = &count.service[0];
    assert_eq!(service.name(), "CountService");
    let rpcs: BTreeMap<&str, (&str, &str, bool, bool)> = service
        .method
        .iter()
        .map(|m| {
            (
                m.name(),
                (
                    m.input_type(),
                    m.output_type(),
                    m.client_streaming(),
                    m.server_streaming(),
                ),
            )
        })
        .collect();
    let go = [
        (
            "Add",
            (".count.v1.AddRequest", ".count.v1.AddResponse", true, false),
        ),
        (
            "CountDailyTotals",
            (
                ".count.v1.CountDailyTotalsRequest",
                ".count.v1.CountDailyTotalsResponse",
                false,
                false,
            ),
        ),
        (
            "ListDailyTotals",
            (
                ".count.v1.ListDailyTotalsRequest",
                ".count.v1.ListDailyTotalsResponse",
                false,
                false,
            ),
        ),
        (
            "GetPeriodTotals",
            (
                ".count.v1.GetPeriodTotalsRequest",
                ".count.v1.GetPeriodTotalsResponse",
                false,
                false,
            ),
        ),
    ];
    for (name, shape) in go {
        assert_eq!(rpcs[name], shape, "{name}");
    }
    let added = [
        (
            "AddCounts",
            (
                ".count.v1.AddCountsRequest",
                ".count.v1.AddCountsResponse",
                false,
                false,
            ),
        ),
        (
            "ListUnrolledDays",
            (
                ".count.v1.ListUnrolledDaysRequest",
                ".count.v1.ListUnrolledDaysResponse",
                false,
                false,
            ),
        ),
        (
            "GetTotals",
            (
                ".count.v1.GetTotalsRequest",
                ".count.v1.GetTotalsResponse",
                false,
                false,
            ),
        ),
    ];
    for (name, shape) in added {
        assert_eq!(rpcs[name], shape, "{name}");
    }
    for name in [
        "GetKept",
        "ForgetQuartersBefore",
        "KeepZoneDays",
        "GetPolicy",
        "ReplacePolicy",
        "Lease",
    ] {
        let shape = (
            format!(".count.v1.{name}Request"),
            format!(".count.v1.{name}Response"),
        );
        let got = &rpcs[name];
        assert_eq!((got.0.to_string(), got.1.to_string()), shape, "{name}");
        assert!(!got.2 && !got.3, "{name} streams nothing");
    }
    assert_eq!(rpcs.len(), 13, "{rpcs:?}");

    // Reflection clients need every imported file too.
    file("google/protobuf/timestamp.proto");
    let google = fields(&file("google/type/date.proto"));
    assert_eq!(
        google["Date"]
            .iter()
            .map(|(n, f)| (n.as_str(), f.0, f.1))
            .collect::<Vec<_>>(),
        vec![
            ("day", 3, Type::Int32),
            ("month", 2, Type::Int32),
            ("year", 1, Type::Int32)
        ]
    );
}

/// Expected fields of an added message: name, number, type, type name, repeated,
/// proto3 `optional`.
type Added<'a> = (&'a str, i32, Type, &'a str, bool, bool);

#[test]
fn the_additions_have_their_own_numbers() {
    let count = file("count/v1/count.proto");
    let messages = fields(&count);
    let date = ".google.type.Date";
    let ts = ".google.protobuf.Timestamp";
    let method = ".count.v1.Method";
    let expect: &[(&str, &[Added])] = &[
        (
            "AddRequest",
            &[
                ("method", 1, Type::Enum, method, false, false),
                ("path", 2, Type::String, "", false, false),
                ("request_timestamp", 3, Type::Message, ts, false, false),
                ("subject", 4, Type::String, "", false, true),
                ("status", 5, Type::Int32, "", false, true),
            ],
        ),
        (
            "BatchId",
            &[
                ("writer", 1, Type::Bytes, "", false, false),
                ("seq", 2, Type::Uint64, "", false, false),
            ],
        ),
        (
            "BucketCount",
            &[
                ("method", 1, Type::Enum, method, false, false),
                ("path", 2, Type::String, "", false, false),
                ("bucket", 3, Type::Message, ts, false, false),
                ("n", 4, Type::Uint64, "", false, false),
                ("subject", 5, Type::String, "", false, true),
                ("status", 6, Type::Int32, "", false, true),
            ],
        ),
        (
            "AddCountsRequest",
            &[
                (
                    "batch_id",
                    1,
                    Type::Message,
                    ".count.v1.BatchId",
                    false,
                    false,
                ),
                (
                    "counts",
                    2,
                    Type::Message,
                    ".count.v1.BucketCount",
                    true,
                    false,
                ),
            ],
        ),
        ("AddCountsResponse", &[]),
        (
            "ListUnrolledDaysRequest",
            &[("before", 1, Type::Message, date, false, false)],
        ),
        (
            "ListUnrolledDaysResponse",
            &[("days", 1, Type::Message, date, true, false)],
        ),
        (
            "Endpoint",
            &[
                ("method", 1, Type::Enum, method, false, false),
                ("path", 2, Type::String, "", false, false),
            ],
        ),
        (
            "DateRange",
            &[
                ("start_date", 1, Type::Message, date, false, false),
                ("end_date", 2, Type::Message, date, false, false),
            ],
        ),
        (
            "StatusFilter",
            &[
                ("code", 1, Type::Int32, "", false, false),
                (
                    "class",
                    2,
                    Type::Enum,
                    ".count.v1.StatusClass",
                    false,
                    false,
                ),
            ],
        ),
        (
            "GetTotalsRequest",
            &[
                (
                    "days",
                    1,
                    Type::Message,
                    ".count.v1.DateRange",
                    false,
                    false,
                ),
                ("period", 2, Type::Message, date, false, false),
                (
                    "group_by",
                    3,
                    Type::Enum,
                    ".count.v1.Dimension",
                    true,
                    false,
                ),
                ("subject", 4, Type::String, "", false, true),
                (
                    "status",
                    5,
                    Type::Message,
                    ".count.v1.StatusFilter",
                    false,
                    false,
                ),
                (
                    "endpoint",
                    6,
                    Type::Message,
                    ".count.v1.Endpoint",
                    false,
                    false,
                ),
                ("time_zone", 7, Type::String, "", false, true),
            ],
        ),
        (
            "SubjectGroup",
            &[("subject", 1, Type::String, "", false, true)],
        ),
        ("StatusGroup", &[("code", 1, Type::Int32, "", false, true)]),
        (
            "TotalsRow",
            &[
                ("date", 1, Type::Message, date, false, false),
                (
                    "endpoint",
                    2,
                    Type::Message,
                    ".count.v1.Endpoint",
                    false,
                    false,
                ),
                (
                    "subject",
                    3,
                    Type::Message,
                    ".count.v1.SubjectGroup",
                    false,
                    false,
                ),
                (
                    "status",
                    4,
                    Type::Message,
                    ".count.v1.StatusGroup",
                    false,
                    false,
                ),
                ("count", 5, Type::Int64, "", false, false),
                (
                    "hour",
                    6,
                    Type::Message,
                    ".google.protobuf.Timestamp",
                    false,
                    false,
                ),
            ],
        ),
        (
            "GetTotalsResponse",
            &[
                ("rows", 1, Type::Message, ".count.v1.TotalsRow", true, false),
                ("time_zone", 2, Type::String, "", false, true),
            ],
        ),
    ];
    for (message, expected) in expect {
        let expected: BTreeMap<String, Field> = expected
            .iter()
            .map(|(name, n, ty, type_name, repeated, optional)| {
                (
                    name.to_string(),
                    (*n, *ty, type_name.to_string(), *repeated, *optional),
                )
            })
            .collect();
        assert_eq!(messages[*message], expected, "{message}");
    }
    let enums: BTreeMap<&str, Vec<(&str, i32)>> = count
        .enum_type
        .iter()
        .map(|e| {
            let values = e.value.iter().map(|v| (v.name(), v.number())).collect();
            (e.name(), values)
        })
        .collect();
    assert_eq!(
        enums["Dimension"],
        vec![
            ("DIMENSION_UNSPECIFIED", 0),
            ("DIMENSION_DAY", 1),
            ("DIMENSION_ENDPOINT", 2),
            ("DIMENSION_SUBJECT", 3),
            ("DIMENSION_STATUS", 4),
            ("DIMENSION_HOUR", 5),
        ]
    );
    assert_eq!(
        enums["StatusClass"],
        vec![
            ("STATUS_CLASS_UNSPECIFIED", 0),
            ("STATUS_CLASS_1XX", 1),
            ("STATUS_CLASS_2XX", 2),
            ("STATUS_CLASS_3XX", 3),
            ("STATUS_CLASS_4XX", 4),
            ("STATUS_CLASS_5XX", 5),
        ]
    );
}

/// The Go server's messages, as its `.proto` defines them (no additions).
mod go {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct AddRequest {
        #[prost(int32, tag = "1")]
        pub(crate) method: i32,
        #[prost(string, tag = "2")]
        pub(crate) path: String,
        #[prost(message, optional, tag = "3")]
        pub(crate) request_timestamp: Option<prost_types::Timestamp>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct AddResponse {}

    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub(crate) struct Date {
        #[prost(int32, tag = "1")]
        pub(crate) year: i32,
        #[prost(int32, tag = "2")]
        pub(crate) month: i32,
        #[prost(int32, tag = "3")]
        pub(crate) day: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct MethodCount {
        #[prost(int32, tag = "1")]
        pub(crate) method: i32,
        #[prost(string, tag = "2")]
        pub(crate) path: String,
        #[prost(int64, tag = "3")]
        pub(crate) count: i64,
        #[prost(message, optional, tag = "4")]
        pub(crate) date: Option<Date>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct ListDailyTotalsRequest {
        #[prost(message, optional, tag = "1")]
        pub(crate) start_date: Option<Date>,
        #[prost(message, optional, tag = "2")]
        pub(crate) end_date: Option<Date>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct MethodCounts {
        #[prost(message, repeated, tag = "1")]
        pub(crate) method_counts: Vec<MethodCount>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct GetPeriodTotalsRequest {
        #[prost(message, optional, tag = "1")]
        pub(crate) period: Option<Date>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct CountDailyTotalsRequest {
        #[prost(message, optional, tag = "1")]
        pub(crate) date: Option<Date>,
    }
}

/// A plain gRPC client to `server`, for calls with the Go server's messages.
async fn go_client(server: &common::Served) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_the_go_servers_proto_works_unchanged() {
    use tonic::codegen::http::uri::PathAndQuery;
    use tonic_prost::ProstCodec;

    let (memory, server) = common::Served::memory().await;
    // Counts with subjects and statuses, which the Go client cannot see, beside its
    // own: its reports sum over them.
    let mut modern = server.client().await;
    modern
        .add(tokio_stream::iter(vec![common::add_key(
            common::GET,
            "/go/users",
            common::NOON,
            Some("acme"),
            Some(500),
        )]))
        .await
        .unwrap();

    let mut grpc = go_client(&server).await;
    let call = |method: &'static str| PathAndQuery::from_static(method);
    let requests: Vec<go::AddRequest> = (0..3)
        .map(|i| go::AddRequest {
            method: 3,
            path: "/go/users".into(),
            request_timestamp: common::ts(common::NOON + i),
        })
        .collect();
    grpc.ready().await.unwrap();
    grpc.client_streaming::<_, _, go::AddResponse, _>(
        tonic::Request::new(tokio_stream::iter(requests)),
        call("/count.v1.CountService/Add"),
        ProstCodec::<go::AddRequest, go::AddResponse>::default(),
    )
    .await
    .expect("the Go client's Add");
    assert_eq!(common::total_of(&*memory, "/go/users").await, 4);

    let march_10 = go::Date {
        year: 2024,
        month: 3,
        day: 10,
    };
    grpc.ready().await.unwrap();
    let listed: go::MethodCounts = grpc
        .unary(
            tonic::Request::new(go::ListDailyTotalsRequest {
                start_date: Some(march_10),
                end_date: Some(march_10),
            }),
            call("/count.v1.CountService/ListDailyTotals"),
            ProstCodec::<go::ListDailyTotalsRequest, go::MethodCounts>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.method_counts,
        vec![go::MethodCount {
            method: 3,
            path: "/go/users".into(),
            count: 4,
            date: Some(march_10),
        }]
    );
    grpc.ready().await.unwrap();
    let empty = grpc
        .unary(
            tonic::Request::new(go::GetPeriodTotalsRequest {
                period: Some(go::Date {
                    year: 2023,
                    month: 0,
                    day: 0,
                }),
            }),
            call("/count.v1.CountService/GetPeriodTotals"),
            ProstCodec::<go::GetPeriodTotalsRequest, go::MethodCounts>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(empty.code(), tonic::Code::NotFound);
    grpc.ready().await.unwrap();
    let rolled: go::MethodCounts = grpc
        .unary(
            tonic::Request::new(go::CountDailyTotalsRequest {
                date: Some(march_10),
            }),
            call("/count.v1.CountService/CountDailyTotals"),
            ProstCodec::<go::CountDailyTotalsRequest, go::MethodCounts>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rolled.method_counts.len(), 1);
    assert_eq!(rolled.method_counts[0].count, 4);
    server.stop().await;
}

/// The Go project's client opens one `Add` stream per process, with no deadline, and
/// sends each request as it happens for as long as the process lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_shaped_client_streaming_for_seconds_is_counted_as_it_goes() {
    use tonic::codegen::http::uri::PathAndQuery;
    use tonic_prost::ProstCodec;

    let memory = std::sync::Arc::new(count_memory::MemoryCounter::new());
    // An add timeout far shorter than the stream: it bounds writes, not the stream.
    let handler = count_grpc::CountV1Handler::builder(memory.clone())
        .add_timeout(std::time::Duration::from_secs(1))
        .build();
    let server = common::Served::start(handler).await;
    let mut grpc = go_client(&server).await;
    grpc.ready().await.unwrap();
    let (send, receive) = tokio::sync::mpsc::channel::<go::AddRequest>(64);
    let call = tokio::spawn(async move {
        grpc.client_streaming::<_, _, go::AddResponse, _>(
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(receive)),
            PathAndQuery::from_static("/count.v1.CountService/Add"),
            ProstCodec::<go::AddRequest, go::AddResponse>::default(),
        )
        .await
    });
    // A request every 200 ms for four seconds.
    for i in 0..20 {
        send.send(go::AddRequest {
            method: 3,
            path: "/go/live".into(),
            request_timestamp: common::ts(common::NOON + i),
        })
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let counted = common::wait_for(
        std::time::Duration::from_secs(3),
        || common::total_of(&*memory, "/go/live"),
        |&n| n >= 15,
    )
    .await;
    assert!(counted >= 15, "counted while the stream is open: {counted}");
    assert!(!call.is_finished());
    // The process stops: the client closes its stream.
    drop(send);
    call.await.unwrap().expect("answered OK");
    assert_eq!(common::total_of(&*memory, "/go/live").await, 20);
    server.stop().await;
}
