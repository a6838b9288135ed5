#![doc = include_str!("../README.md")]
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
