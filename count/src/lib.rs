#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod open;

pub use count_core::*;
pub use open::{Backend, Kind, Migrations, Opened, Options, is_schema_not_current, open};

/// The in-memory backend.
pub use count_memory as memory;

/// The SQLite backend.
#[cfg(feature = "sqlite")]
pub use count_sqlite as sqlite;

/// The PostgreSQL backend.
#[cfg(feature = "postgres")]
pub use count_pg as pg;

/// The CockroachDB backend.
#[cfg(feature = "cockroach")]
pub use count_cockroach as cockroach;

/// `count.v1` over gRPC: a counter on a remote count-server.
#[cfg(feature = "grpc")]
pub use count_grpc as grpc;
