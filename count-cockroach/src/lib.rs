//! `CockroachCounter`: count-core's [`Counter`](count_core::Counter) contract on CockroachDB.
//!
//! ```no_run
//! # async fn run() -> count_core::Result<()> {
//! use std::sync::Arc;
//! use count_cockroach::CockroachCounter;
//! use count_core::CountQueue;
//!
//! let counter = CockroachCounter::connect(
//!     "postgresql://app:secret@free-tier.gcp-us-central1.cockroachlabs.cloud:26257/defaultdb\
//!      ?sslmode=verify-full&options=--cluster%3Dmy-cluster-123",
//! ).await?;
//! let queue = CountQueue::builder(Arc::new(counter)).build()?;
//! # Ok(()) }
//! ```
//!
//! It is count-pg's [`PgCounter`](count_pg::PgCounter) with CockroachDB's schema (the
//! same tables in CockroachDB's DDL, [`schema::COCKROACH`]) and a retry loop around
//! every transaction:
//!
//! - SQLSTATE 40001 (`restart transaction`, CockroachDB's answer to contention at
//!   SERIALIZABLE) is retried with exponential backoff and jitter, up to
//!   [`RetryPolicy`]'s attempts and time;
//! - 40003 (`result is ambiguous`) and a connection lost during COMMIT are retried
//!   too: a write's batch id is claimed in its own transaction, so a retry of a batch
//!   that did apply finds the claim and does nothing; a rollup chunk moves rows out of
//!   `raw_batches` atomically, so a retry only finds the rows not yet moved;
//! - every other error surfaces at once. [`CockroachCounter::retries`] counts what
//!   was retried and what was given up on.
//!
//! Each write is one bounded transaction (a `CountQueue` batch: at most
//! `max_batch_rows` counts, 10,000 by default) inserting one row of arrays per day of
//! the batch (never `COPY`: cockroach#52722); rollups move
//! [`rollup_chunk`](count_pg::PgCounterBuilder::rollup_chunk) counts per transaction
//! (10,000 by default here, below CockroachDB's transaction size limits).
//! Reports can read at `follower_read_timestamp()` ([`follower_reads`]), which is
//! cheaper across regions and some seconds stale.
//!
//! [`follower_reads`]: CockroachCounterBuilder::follower_reads
//!
//! # What is tested, and how
//!
//! No CockroachDB binary can run where this crate is built, so its tests run against
//! an emulation on PostgreSQL 15 (count-testcluster's `CockroachEmulation`):
//!
//! | CockroachDB behaviour | emulated by | verified here |
//! |---|---|---|
//! | SERIALIZABLE for every transaction | `default_transaction_isolation` | yes (PostgreSQL's SSI, which also raises real 40001s) |
//! | 40001 restarts, with CockroachDB's message | a deferred trigger failing chosen transactions at COMMIT (30%, or the next N) | retry, backoff, caps, exact totals |
//! | 40003 on COMMIT; connection lost before or after COMMIT | a wire-protocol proxy | exactly-once writes and rollups |
//! | `INT` = INT8, `unique_rowid()` ids above 2^53 | a shadow `unique_rowid()` | no `int4` column; ids round-trip |
//! | no `pg_advisory_lock`; `pg_try_advisory_lock` always true | shadow functions | concurrent migrations without locks |
//! | `options=--cluster=<name>` in the URL | the proxy strips and records it | passed through to the server |
//! | `version()` names CockroachDB | a shadow `version()` | detection |
//! | schema version 2 (keys, rows of arrays) and its migration from version 1 | the same DDL on PostgreSQL | a v1 database with raw and rolled counts migrates exactly |
//!
//! Not verified without a real cluster: the DDL's CockroachDB-only clauses (`USING
//! HASH` is left out on the emulation; `INT8[]` columns in a hash-sharded table),
//! that CockroachDB's planner accepts every statement (multi-array `unnest` in `FROM`
//! and over a `DELETE ... RETURNING` in a data-modifying CTE, `sum() OVER (ORDER BY
//! ...)` in a subquery, `array_agg(... ORDER BY ...)`, `date + int`, `LEAST` over
//! `DECIMAL` sums), that version 2's migration (tables created, filled from version
//! 1's and dropped, a column added, in one transaction) runs as one transaction under
//! CockroachDB's online schema changes, the real conditions and frequency of
//! 40001/40003, follower reads being stale (the proxy only sees that reports ask for
//! them), and TLS against CockroachDB Cloud.
//!
//! To run the tests against a real cluster, set `COUNT_TEST_COCKROACH_URL` to a URL
//! of a database that may be written to (each test works in a schema of its own):
//! the contract, INT8, id and concurrency tests then run there, with contention's
//! own 40001s; the fault-injection tests need the emulation and are skipped.

mod counter;
mod retry;
pub mod schema;

pub use counter::{CockroachCounter, CockroachCounterBuilder, PgOrCockroach};
pub use retry::{RetryPolicy, RetryStats};
pub use schema::is_cockroach;
