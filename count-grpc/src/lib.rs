//! count.v1 over gRPC.
//!
//! - [`CountServer`]: the `count.v1.CountService` over any [`Counter`](count_core::Counter),
//!   wire-compatible with the Go server (`muhlemmer/count`), plus `PATCH`,
//!   `AddCounts` (aggregated, idempotent batches) and `ListUnrolledDays`.
//! - [`GrpcCounter`]: a `Counter` on a remote `count-server`: a service counts into
//!   it through a [`CountQueue`](count_core::CountQueue) as it would locally.
//! - [`server`]: the `count-server` binary as a library (backend from `DB_URL`,
//!   health, reflection, bearer auth, limits, rollups, graceful shutdown).
//!
//! The protos (`proto/`) are compiled at build time by protox: no `protoc` needed.
#![warn(missing_docs)]

mod client;
mod convert;
mod service;

pub use client::{GrpcCounter, GrpcCounterBuilder};
pub use service::CountServer;

/// The fully qualified name of the service, as health and reflection know it.
pub const SERVICE_NAME: &str = "count.v1.CountService";

/// The generated count.v1 types, client and server.
#[allow(missing_docs, unreachable_pub, missing_debug_implementations)]
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
