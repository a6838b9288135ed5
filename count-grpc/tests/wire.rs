//! The compiled count.v1 matches the Go server's wire facts (COUNT_V1_API.md): every
//! name, number and type, so its clients keep working; additions only add.

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

/// A field: number, type, type name, repeated.
type Field = (i32, Type, String, bool);
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
                    (
                        f.name().to_owned(),
                        (f.number(), f.r#type(), f.type_name().to_owned(), repeated),
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
    for (message, expected) in expect {
        let actual = &messages[*message];
        let expected: BTreeMap<String, Field> = expected
            .iter()
            .map(|(name, n, ty, type_name, repeated)| {
                (
                    name.to_string(),
                    (*n, *ty, type_name.to_string(), *repeated),
                )
            })
            .collect();
        assert_eq!(actual, &expected, "{message}");
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
    assert!(rpcs.contains_key("AddCounts") && rpcs.contains_key("ListUnrolledDays"));

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
