//! CockroachDB's schema: count-pg's tables in CockroachDB's DDL, applied by count-pg's
//! migration mechanism (which takes no advisory lock: CockroachDB has none).

use count_core::{Error, Result};
use count_pg::{Fills, Migration};

/// The migrations: count-pg's tables in CockroachDB's DDL (see
/// [`count_pg::schema::POSTGRES`] for what each holds). `{hash_sharded}` is
/// ` USING HASH` on CockroachDB and empty on the PostgreSQL emulation (PostgreSQL has
/// no hash-sharded indexes).
///
/// Every integer is `INT8`; ids are `unique_rowid()` (unique, not ordered by commit,
/// above 2^53). The time-ordered keys of `raw_batches` and `batches` are
/// hash-sharded, so that the newest rows do not all land on one range.
pub const COCKROACH: &[Migration] = &[
    V1,
    V2,
    count_pg::schema::HOURS_AND_ZONES,
    count_pg::schema::LIMITS,
];

/// The first schema, kept as deployed, so that existing databases migrate from it.
const V1: Migration = Migration {
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
};

/// Subjects and statuses, as count-pg's version 2: endpoint ids become the ids of
/// their keys without subject and status; v1's raw rows become rows of arrays.
const V2: Migration = Migration {
    version: 2,
    name: "count_keys, raw_batches, daily_key_totals, batch digests (CockroachDB)",
    sql: &[
        "CREATE TABLE {schema}.count_keys (
            id INT8 NOT NULL DEFAULT unique_rowid() PRIMARY KEY,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            subject TEXT NOT NULL,
            status INT8 NOT NULL CHECK (status = -1 OR status BETWEEN 0 AND 16 OR status BETWEEN 100 AND 599),
            UNIQUE (method, path, subject, status))",
        "INSERT INTO {schema}.count_keys (id, method, path, subject, status)
            SELECT id, method, path, '', -1 FROM {schema}.endpoints",
        "CREATE TABLE {schema}.raw_batches (
            id INT8 NOT NULL DEFAULT unique_rowid(),
            day DATE NOT NULL,
            key_ids INT8[] NOT NULL,
            buckets INT8[] NOT NULL,
            counts INT8[] NOT NULL,
            n_counts INT8 NOT NULL CHECK (n_counts > 0),
            CONSTRAINT raw_batches_pkey PRIMARY KEY (id){hash_sharded})",
        "CREATE INDEX raw_batches_day_id ON {schema}.raw_batches (day, id){hash_sharded}",
        count_pg::schema::RAW_FROM_V1,
        "DROP TABLE {schema}.raw_counts",
        "CREATE TABLE {schema}.daily_key_totals (
            day DATE NOT NULL,
            key_id INT8 NOT NULL,
            total INT8 NOT NULL CHECK (total > 0),
            PRIMARY KEY (day, key_id))",
        count_pg::schema::TOTALS_FROM_V1,
        "DROP TABLE {schema}.daily_totals",
        "DROP TABLE {schema}.endpoints",
        "ALTER TABLE {schema}.batches ADD COLUMN digest BYTEA",
    ],
};

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
