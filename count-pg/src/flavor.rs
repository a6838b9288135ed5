//! The hook that count-cockroach fills: what differs between PostgreSQL and a
//! database that speaks its protocol. It exists for count-cockroach only (hidden from
//! the docs); the SQL of writes, rollups and reports is shared.

use count_core::Result;

use crate::schema::{self, Migration};

/// Placeholders of a flavour's migrations and their text: `("{hash_sharded}", " USING HASH")`.
#[doc(hidden)]
pub type Fills = &'static [(&'static str, &'static str)];

/// What differs between PostgreSQL and CockroachDB: the schema, and how reports read.
/// For count-cockroach only.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Flavor {
    /// For messages: `PostgreSQL`, `CockroachDB`.
    pub name: &'static str,
    /// The migrations, in order.
    pub migrations: &'static [Migration],
    /// Given the server's `SELECT version()`, the placeholders to fill in the
    /// migrations beyond `{schema}`, or an error if this flavour cannot run on that
    /// server.
    pub fills: fn(server_version: &str) -> Result<Fills>,
    /// A statement run first in each report's read-only transaction (CockroachDB's
    /// `SET TRANSACTION AS OF SYSTEM TIME ...`); `None` reads without a transaction.
    pub report_prelude: Option<&'static str>,
    /// The default of [`rollup_chunk`](crate::PgCounterBuilder::rollup_chunk): raw
    /// counts moved per rollup transaction.
    pub rollup_chunk: i64,
}

impl Flavor {
    /// PostgreSQL.
    pub const POSTGRES: Flavor = Flavor {
        name: "PostgreSQL",
        migrations: schema::POSTGRES,
        // CockroachDB speaks the protocol but needs its own DDL and retries.
        fills: |version| match version.starts_with("CockroachDB") {
            false => Ok(&[]),
            true => Err(count_core::Error::invalid(
                "server",
                version,
                "this is CockroachDB: use count_cockroach::CockroachCounter (count's \
                 `cockroach` feature)",
            )),
        },
        report_prelude: None,
        rollup_chunk: 1_000_000,
    };
}
