//! `PgCounter`: count-core's [`Counter`](count_core::Counter) contract on PostgreSQL.
//!
//! ```no_run
//! # async fn run() -> count_core::Result<()> {
//! use std::sync::Arc;
//! use count_core::CountQueue;
//! use count_pg::PgCounter;
//!
//! let counter = PgCounter::connect("postgresql://app:secret@db:5432/app?sslmode=verify-full").await?;
//! let queue = CountQueue::builder(Arc::new(counter)).build()?;
//! # Ok(()) }
//! ```
//!
//! Storage, in schema `count` by default ([`schema::POSTGRES`] describes each table):
//! `count_keys` (one id per distinct endpoint, subject and status, resolved once per
//! process and cached), `raw_batches` (counts not yet rolled up: one row per written
//! batch and day, holding arrays of key ids, buckets and counts), `daily_key_totals`,
//! and `batches` (the exactly-once record with each batch's digest, written in the
//! batch's own transaction, pruned after [`PgCounterBuilder::batch_retention`]).
//!
//! - A write is one transaction: claim the batch id (a repeat with the same digest is
//!   `Ok` and writes nothing; with another digest it is
//!   [`Error::BatchConflict`](count_core::Error::BatchConflict)), then one row per
//!   day of the batch.
//! - A rollup moves bounded chunks of a day's rows into the daily totals, one
//!   transaction each: delete the rows, unnest and sum their counts per key, add the
//!   sums. Totals stop at `i64::MAX`; no report or rollup fails on overflow.
//! - Reports are live (daily totals plus raw counts), grouped and filtered in SQL.
//! - TLS is rustls with the ring provider (no OpenSSL), with libpq's `sslmode`
//!   semantics; the system's roots are trusted unless `sslrootcert` names a file.
//!
//! Where to look: [`PgCounterBuilder`] for the settings and `connect`, `sql.rs` for
//! every statement, [`schema`] for the tables and migrations.

mod builder;
mod config;
mod counter;
mod error;
mod flavor;
mod keys;
pub mod schema;
mod sql;
mod tls;

pub use builder::PgCounterBuilder;
pub use config::SslMode;
pub use counter::PgCounter;
#[doc(hidden)]
pub use flavor::{Fills, Flavor};
pub use schema::Migration;
/// The pool and driver, for callers that need their types.
pub use {deadpool_postgres, tokio_postgres};
