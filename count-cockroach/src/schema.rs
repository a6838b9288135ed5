//! CockroachDB's schema: count-pg's tables in CockroachDB's DDL, applied by count-pg's
//! migration mechanism (which takes no advisory lock: CockroachDB has none).

use count_core::{Error, Result};
use count_pg::{Fills, Migration};

/// The migrations. `{hash_sharded}` is ` USING HASH` on CockroachDB and empty on the
/// PostgreSQL emulation (PostgreSQL has no hash-sharded indexes).
///
/// Every integer is `INT8`; ids are `unique_rowid()` (unique, not ordered by commit,
/// above 2^53). The time-ordered keys of `raw_counts` and `batches` are hash-sharded,
/// so that the newest rows do not all land on one range.
pub const COCKROACH: &[Migration] = &[Migration {
    version: 1,
    name: "endpoints, raw_counts, daily_totals, batches (CockroachDB)",
    sql: &[
        "CREATE TABLE IF NOT EXISTS {schema}.endpoints (
            id INT8 NOT NULL DEFAULT unique_rowid() PRIMARY KEY,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            UNIQUE (method, path))",
        "CREATE TABLE IF NOT EXISTS {schema}.raw_counts (
            id INT8 NOT NULL DEFAULT unique_rowid(),
            endpoint_id INT8 NOT NULL,
            day DATE NOT NULL,
            bucket TIMESTAMPTZ NOT NULL,
            n INT8 NOT NULL CHECK (n > 0),
            CONSTRAINT raw_counts_pkey PRIMARY KEY (id){hash_sharded})",
        "CREATE INDEX IF NOT EXISTS raw_counts_day_id ON {schema}.raw_counts (day, id){hash_sharded}",
        "CREATE TABLE IF NOT EXISTS {schema}.daily_totals (
            day DATE NOT NULL,
            endpoint_id INT8 NOT NULL,
            total INT8 NOT NULL,
            PRIMARY KEY (day, endpoint_id))",
        "CREATE TABLE IF NOT EXISTS {schema}.batches (
            writer UUID NOT NULL,
            seq INT8 NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (writer, seq))",
        "CREATE INDEX IF NOT EXISTS batches_applied_at ON {schema}.batches (applied_at){hash_sharded}",
    ],
}];

/// Marks the emulation's `version()` (count-testcluster's `CockroachEmulation`).
const EMULATED: &str = "(emulated on PostgreSQL";

/// The migrations' fills for the server that answered `version()`.
pub(crate) fn fills(version: &str) -> Result<Fills> {
    if version.starts_with("CockroachDB") && version.contains(EMULATED) {
        Ok(&[("{hash_sharded}", "")])
    } else if version.starts_with("CockroachDB") {
        Ok(&[("{hash_sharded}", " USING HASH")])
    } else {
        Err(Error::invalid(
            "server",
            version,
            "CockroachCounter needs CockroachDB; for PostgreSQL use count_pg::PgCounter",
        ))
    }
}

/// Whether `version()` names CockroachDB (the emulation included).
pub fn is_cockroach(version: &str) -> bool {
    version.starts_with("CockroachDB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_version_chooses_the_ddl() {
        let real =
            "CockroachDB CCL v23.2.4 (x86_64-pc-linux-gnu, built 2024/04/08 21:49:19, go1.21.5)";
        assert_eq!(fills(real).unwrap(), &[("{hash_sharded}", " USING HASH")]);
        let emulated =
            "CockroachDB CCL v23.2.0 (emulated on PostgreSQL 15.8 on x86_64-pc-linux-gnu)";
        assert_eq!(fills(emulated).unwrap(), &[("{hash_sharded}", "")]);
        let postgres = "PostgreSQL 15.8 (Debian 15.8-0+deb12u1) on x86_64-pc-linux-gnu";
        let refused = fills(postgres).unwrap_err().to_string();
        assert!(
            refused.contains("PostgreSQL 15.8") && refused.contains("PgCounter"),
            "{refused}"
        );
        assert!(is_cockroach(real) && is_cockroach(emulated) && !is_cockroach(postgres));
    }
}
