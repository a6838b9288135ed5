//! count.v1 over gRPC: the service over any [`Counter`](count_core::Counter), and a
//! `Counter` on a remote count server.
//!
//! # count.v1
//!
//! `count.v1.CountService` is the gRPC interface of the Go server this project
//! reimplements (`muhlemmer/count`): `Add` (a stream of requests to count),
//! `CountDailyTotals` (roll up a day and report it), `ListDailyTotals` and
//! `GetPeriodTotals` (per-endpoint totals over days, a month or a year). Those RPCs,
//! their messages and the `Method` enum are kept exactly, so a client built from the
//! Go server's `.proto` works unchanged. The `.proto` (`proto/count/v1/count.proto`)
//! documents every field and code; it and these docs are the specification.
//!
//! Added, under new names and new field numbers only:
//!
//! - `PATCH = 9` in `Method` (the Go server counted PATCH as unspecified);
//! - `subject` and `status` on `AddRequest` and `BucketCount` (proto3 `optional`: an
//!   absent field means "no subject" / "status not recorded", distinct from every
//!   value, gRPC `OK` = 0 included);
//! - `AddCounts`: an aggregated batch of counts applied exactly once by its batch id
//!   (what [`GrpcCounter`] sends);
//! - `ListUnrolledDays`: the days a rollup scheduler still has to roll up;
//! - `GetTotals`: totals over a day range or a period, filtered by subject, status
//!   (code or class) and endpoint, grouped by any of day, endpoint, subject and
//!   status. A row carries exactly the grouped fields; grouping by subject (status),
//!   its subject (status) is a message whose value may be absent, so "no subject" is
//!   distinct from "not grouped by subject".
//!
//! # What `Add` answers
//!
//! A stream's requests are one unit: the handler aggregates them into a batch of its
//! own (per key and time bucket) and writes it, retrying, within the call's deadline
//! (the client's `grpc-timeout`, or else [`CountV1HandlerBuilder::add_timeout`]).
//!
//! | code | meaning | what the client does |
//! |---|---|---|
//! | `OK` | every count of the stream is durably written | nothing |
//! | `INVALID_ARGUMENT` | a message was refused (the message names its field); nothing written | fix it |
//! | `RESOURCE_EXHAUSTED` | more distinct rows than [`CountV1HandlerBuilder::max_stream_rows`]; nothing written | send smaller streams |
//! | `UNAVAILABLE` | the storage failed before writing anything | resend the stream: it is safe |
//! | `UNKNOWN` | the deadline passed with the outcome of a write unknown: all of the stream or none of it was written | do **not** resend blindly (it may count twice); use `AddCounts` to count exactly once |
//!
//! `AddCounts` answers `ALREADY_EXISTS` for a batch id already applied with other
//! counts, and `UNKNOWN` when the write may have applied (resending the same batch
//! is then safe: its id makes it apply once). Reports answer `NOT_FOUND` for no
//! counts, as the Go server did (`GetTotals` answers no rows instead).
//!
//! # Features
//!
//! - `server` (default): [`CountV1Handler`], the service over any counter. Serve it
//!   with a tonic server (the `count-server` crate adds TLS, authentication, health,
//!   limits and a backend chosen from `DB_URL`).
//! - `client` (default): [`GrpcCounter`], a counter whose storage is a remote count
//!   server, so an app counts into it through a
//!   [`CountQueue`](count_core::CountQueue) as it would locally. An app that only
//!   sends counts depends on `count-grpc` with `default-features = false,
//!   features = ["client"]`.
//!
//! The protos are compiled at build time by protox: no `protoc` needed.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "client")]
mod client;
mod convert;
#[cfg(feature = "server")]
mod handler;

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use client::{GrpcCounter, GrpcCounterBuilder};
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use handler::{CountV1Handler, CountV1HandlerBuilder, ServiceStats};

/// The fully qualified name of the service, as health and reflection know it.
pub const SERVICE_NAME: &str = "count.v1.CountService";

/// The generated count.v1 types, client and server.
// Generated code: prost re-indents the .proto's comments its own way.
#[allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::doc_lazy_continuation
)]
pub mod proto {
    /// `package count`.
    pub mod count {
        /// `package count.v1`.
        pub mod v1 {
            tonic::include_proto!("count.v1");
        }
    }
    /// The encoded `FileDescriptorSet` of count.v1 and what it imports (for
    /// reflection, or to check the wire format).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/count_descriptor.bin"));

    /// `package google`.
    pub mod google {
        /// `package google.type`.
        pub mod r#type {
            tonic::include_proto!("google.r#type");
        }
    }
}
