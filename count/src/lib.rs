//! count: count API requests per endpoint — and per customer and outcome — durably,
//! without slowing the service that counts.
//!
//! One dependency: this crate re-exports [count-core](count_core)'s model, queue,
//! rollups and (feature `tower`) [`layer::CountLayer`], and opens any backend from a
//! URL with [`open`]. Each backend is a feature, re-exported as a module:
//!
//! | feature | URL | module |
//! |---|---|---|
//! | always | `memory:` | [`memory`] |
//! | `sqlite` (default) | `sqlite:count.db`, `sqlite:///abs/count.db`, `sqlite::memory:` | `sqlite` |
//! | `postgres` | `postgresql://user:pw@host/db?sslmode=verify-full` | `pg` |
//! | `cockroach` | the same URLs, told apart by the server's `version()` | `cockroach` |
//! | `grpc` | `grpc://host:7777`, `https://count.example` (a count-server) | `grpc` |
//!
//! ```no_run
//! # async fn run() -> count::Result<()> {
//! use count::{CountQueue, Method, Path};
//!
//! let opened = count::open("sqlite:count.db").await?;
//! let queue = CountQueue::builder(opened.counter()).build()?;
//! queue.record(Method::Get, Path::new("/users/{id}")?);
//! queue.shutdown().await?;
//! opened.stop().await;
//! # Ok(()) }
//! ```
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
