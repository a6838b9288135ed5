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
//! # What `Add` does: a unit, or a feed
//!
//! How an `Add` stream is written depends on whether the client gave the call a
//! deadline (a `grpc-timeout`; one that cannot be read counts as none).
//!
//! **With a deadline, the stream is one unit.** The handler aggregates its requests
//! into a batch of its own (per key and time bucket) and writes it when the client
//! ends the stream, retrying, before the deadline (less a small margin, so that the
//! answer arrives in time) and within [`CountV1HandlerBuilder::add_timeout`] from the
//! stream's end. It is written whole or not at all:
//!
//! | code | meaning | what the client does |
//! |---|---|---|
//! | `OK` | every count of the stream is durably written | nothing |
//! | `INVALID_ARGUMENT` | a message was refused (the answer names its index and field); nothing written | fix it |
//! | `RESOURCE_EXHAUSTED` | more distinct rows than [`CountV1HandlerBuilder::max_stream_rows`], or the handler-wide budget of pending rows full ([`CountV1HandlerBuilder::max_pending_rows`]); nothing written | send smaller streams, or later |
//! | `UNAVAILABLE` with the trailer `count-written-messages: 0` | the storage failed before writing anything | resend the stream: it is safe |
//! | `UNKNOWN` | the deadline passed with the outcome of a write unknown: all of the stream or none of it was written | do **not** resend blindly (it may count twice); use `AddCounts` to count exactly once |
//!
//! Every error but `UNKNOWN` carries that trailer. An `UNAVAILABLE` without it comes
//! from the client's library: the connection was lost, and the stream may have been
//! written before it was (all of it or none), so the outcome is unknown. A client
//! that cancels such a stream before ending it sees `CANCELLED`, and nothing of it is
//! written; one that gives up while its batch is being written cannot know the
//! outcome (all of the stream or none of it).
//!
//! **Without a deadline, the stream is a feed**, as the Go project's client keeps
//! one stream open for its process's life, sending each request as it happens. The
//! handler writes what has arrived every [`CountV1HandlerBuilder::feed_flush`]
//! (default 1 s) and when the stream ends: each such part is a batch of its own,
//! written exactly once (retried with backoff within `add_timeout` from the start of
//! its write), one part at a time and in order, so the messages written are always
//! the stream's first ones. While a part is being written, newer messages gather into
//! the next part; a part that reaches `max_stream_rows` rows is written at once, and
//! the feed is not read until the part before it is written (the client waits, by
//! HTTP/2 flow control). The row bound applies per part, not to the whole feed, and a
//! feed has no time limit: `add_timeout` bounds each write, not the stream.
//!
//! A feed is answered when it ends. `OK`: every message is durably written. An error
//! ends the feed at once, and its trailers carry `count-written-messages: <n>`: the
//! stream's first `n` messages are durably written and none after them (except, for
//! `UNKNOWN`, the next `count-unknown-messages: <m>`, written all together or not at
//! all); the message says the same. A client that resends skips the first `n`.
//!
//! | code | meaning |
//! |---|---|
//! | `INVALID_ARGUMENT` | message `n` was refused (named with its field); the `n` before it are written |
//! | `RESOURCE_EXHAUSTED` | message `n` would pass the handler-wide budget of pending rows or text bytes, or a new path or subject cannot be interned; the messages before it are written |
//! | `UNAVAILABLE`, `INTERNAL` | a part could not be written (the storage is down, or refused it for good); the parts before it are written |
//! | `UNKNOWN` | a part's write has an unknown outcome: the `n` before it are written, its `m` messages were written all together or not at all |
//!
//! A feed whose call is cut off (the client cancels, the connection is lost, the
//! server closes it at shutdown) still writes what it had received: a cancel reads,
//! to the handler, as the end of the stream. The feed runs in a task of its own,
//! so this holds after the call is gone; a server that shuts down awaits
//! [`CountV1Handler::wait_for_feeds`] before it exits.
//!
//! ## Memory
//!
//! A stream's rows are held by text until they are written: its paths and subjects
//! go into the process-wide interners only when its batch (or the feed's part) is
//! written, so a refused stream leaves nothing there. Each stream holds at most
//! `max_stream_rows` rows (a feed, two parts of that), and all streams together at
//! most [`CountV1HandlerBuilder::max_pending_rows`] rows (default 2,000,000, about
//! 100 bytes each) and [`CountV1HandlerBuilder::max_pending_text_bytes`] of text
//! (default 256 MiB): about 450 MiB at worst. [`ServiceStats`] shows both in use.
//!
//! ## Storage per stream (known)
//!
//! Every batch the handler writes (one per stream with a deadline that counted
//! something, one per feed part) is kept by the storage under its batch id for the
//! backend's batch retention (7 days by default in the SQLite and PostgreSQL
//! backends), so that a retried write applies once: about 90 bytes each in SQLite.
//! The handler cannot write without an id (the storage's exactly-once contract needs
//! one), nor share one batch between streams (one stream's failure would become
//! another's). So a client that opens one stream per request makes storage grow per
//! request (1,000 such streams a second: ~7.5 GB a day, ~52 GB held), and a busy
//! feed adds one batch row per `feed_flush` (86,400 a day at 1 s). Clients that
//! count a lot keep one feed open, or send aggregated batches with `AddCounts` (what
//! [`GrpcCounter`] does).
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
pub use handler::{
    ClientScope, CountV1Handler, CountV1HandlerBuilder, ServiceStats, parse_grpc_timeout,
};

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
