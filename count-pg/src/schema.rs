//! The tables and their versioned, idempotent migrations, which need no advisory
//! lock (CockroachDB has none): each runs in one transaction that first claims its
//! version row, so a process starting at the same time waits on that row and then
//! finds the version applied.

use std::time::Duration;

use count_core::backend::Backoff;
use count_core::{Error, Result};
use tokio_postgres::Client;

use crate::config::quote_ident;
use crate::error::classify;

/// One schema change. `sql` may hold `{schema}`, replaced by the quoted schema name.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Applied in increasing order; never reused.
    pub version: i64,
    /// What it does, recorded beside the version.
    pub name: &'static str,
    /// Statements, run in order in one transaction.
    pub sql: &'static [&'static str],
}

/// PostgreSQL's schema, version 2. Every integer is `BIGINT`; days are `DATE` values
/// computed in Rust (never from the session time zone).
///
/// - `count_keys`: one id per distinct key (method, path, subject, status); a count
///   without a subject has subject `''` (never a valid subject), one without a status
///   has status `-1` (never a valid code), so one `UNIQUE` constraint covers every
///   key on PostgreSQL and CockroachDB alike (NULLs would never be equal there).
/// - `raw_batches`: counts not yet rolled up, one row per written batch and day,
///   holding parallel arrays (key ids, bucket starts in Unix seconds, counts). A row
///   is never updated, so writers never contend; a rollup deletes whole rows, so a
///   day of a million counts is a few hundred rows to delete, not a million.
/// - `daily_key_totals`: rolled-up totals per day and key id.
/// - `batches`: the exactly-once record (writer, seq, digest of the counts), written
///   in the batch's own transaction, pruned after the batch retention.
pub const POSTGRES: &[Migration] = &[V1, V2, HOURS_AND_ZONES, LIMITS];

/// The first schema, per endpoint only; kept as deployed, so that existing databases
/// migrate from it.
const V1: Migration = Migration {
    version: 1,
    name: "endpoints, raw_counts, daily_totals, batches",
    sql: &[
        "CREATE TABLE IF NOT EXISTS {schema}.endpoints (
            id BIGSERIAL PRIMARY KEY,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            UNIQUE (method, path))",
        "CREATE TABLE IF NOT EXISTS {schema}.raw_counts (
            id BIGSERIAL PRIMARY KEY,
            endpoint_id BIGINT NOT NULL,
            day DATE NOT NULL,
            bucket TIMESTAMPTZ NOT NULL,
            n BIGINT NOT NULL CHECK (n > 0))",
        "CREATE INDEX IF NOT EXISTS raw_counts_day_id ON {schema}.raw_counts (day, id)",
        "CREATE TABLE IF NOT EXISTS {schema}.daily_totals (
            day DATE NOT NULL,
            endpoint_id BIGINT NOT NULL,
            total BIGINT NOT NULL,
            PRIMARY KEY (day, endpoint_id))",
        "CREATE TABLE IF NOT EXISTS {schema}.batches (
            writer UUID NOT NULL,
            seq BIGINT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (writer, seq))",
        "CREATE INDEX IF NOT EXISTS batches_applied_at ON {schema}.batches (applied_at)",
    ],
};

/// Subjects and statuses. An endpoint's v1 id becomes the id of its key without
/// subject and status, so daily totals keep their ids; v1's raw rows become rows of
/// arrays (one per day and 10,000 rows, in id order); batches gain their digest
/// (NULL for those applied before: a repeat of one is taken as the same batch).
const V2: Migration = Migration {
    version: 2,
    name: "count_keys, raw_batches, daily_key_totals, batch digests",
    sql: &[
        "CREATE TABLE {schema}.count_keys (
            id BIGSERIAL PRIMARY KEY,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            subject TEXT NOT NULL,
            status BIGINT NOT NULL CHECK (status = -1 OR status BETWEEN 0 AND 16 OR status BETWEEN 100 AND 599),
            UNIQUE (method, path, subject, status))",
        "INSERT INTO {schema}.count_keys (id, method, path, subject, status)
            SELECT id, method, path, '', -1 FROM {schema}.endpoints",
        "SELECT setval(pg_get_serial_sequence('{schema}.count_keys', 'id'),
            (SELECT coalesce(max(id), 0) + 1 FROM {schema}.count_keys), false)",
        RAW_BATCHES_POSTGRES,
        // (day, id): a rollup walks a day's rows in id order, each chunk starting
        // after the last, so it never rescans the dead entries of chunks it deleted.
        "CREATE INDEX raw_batches_day_id ON {schema}.raw_batches (day, id)",
        RAW_FROM_V1,
        "DROP TABLE {schema}.raw_counts",
        "CREATE TABLE {schema}.daily_key_totals (
            day DATE NOT NULL,
            key_id BIGINT NOT NULL,
            total BIGINT NOT NULL CHECK (total > 0),
            PRIMARY KEY (day, key_id))",
        TOTALS_FROM_V1,
        "DROP TABLE {schema}.daily_totals",
        "DROP TABLE {schema}.endpoints",
        "ALTER TABLE {schema}.batches ADD COLUMN digest BYTEA",
    ],
};

/// The tables of hours and zones (count-pg's and count-cockroach's version 3; see `zones.rs`). A
/// database migrated from version 2 keeps quarters from the day after the last day it
/// holds counts of (the days before were rolled up by the UTC day only, or counted
/// by a version that allowed buckets wider than a quarter hour).
pub const HOURS_AND_ZONES: Migration = Migration {
    version: 3,
    name: "quarter hours, and days in time zones",
    sql: &[
        // One row of arrays per quarter hour and rollup chunk, appended (reports and
        // the zones' backfill sum them): 16 bytes a key-quarter, no upsert.
        "CREATE TABLE {schema}.quarter_batches (
            quarter BIGINT NOT NULL,
            key_ids BIGINT[] NOT NULL,
            totals BIGINT[] NOT NULL)",
        "CREATE INDEX quarter_batches_quarter ON {schema}.quarter_batches (quarter)",
        "CREATE TABLE {schema}.quarters_kept (
            one BIGINT NOT NULL PRIMARY KEY CHECK (one = 1),
            from_day BIGINT NOT NULL)",
        "INSERT INTO {schema}.quarters_kept (one, from_day)
            SELECT 1, LEAST(coalesce(max(day - DATE '1970-01-01') + 1, -719162), 2932895)
            FROM (SELECT day FROM {schema}.daily_key_totals
                  UNION ALL SELECT day FROM {schema}.raw_batches) days",
        "CREATE TABLE {schema}.zones (
            name TEXT NOT NULL PRIMARY KEY,
            kept_from BIGINT NOT NULL)",
        "CREATE TABLE {schema}.zone_day_totals (
            zone TEXT NOT NULL,
            day BIGINT NOT NULL,
            key_id BIGINT NOT NULL,
            total BIGINT NOT NULL CHECK (total > 0),
            PRIMARY KEY (zone, day, key_id))",
    ],
};

/// The tables of limits (count-pg's and count-cockroach's version 4; see `limits.rs`):
/// the policy, one row of JSON and its version; the ledger of quota handed out per
/// subject, limit and window, forgotten a day after the window ends.
pub const LIMITS: Migration = Migration {
    version: 4,
    name: "limits: the policy, and the ledger of quota handed out",
    sql: &[
        "CREATE TABLE {schema}.limits_policy (
            one BIGINT NOT NULL PRIMARY KEY CHECK (one = 1),
            version BIGINT NOT NULL,
            policy TEXT NOT NULL)",
        "CREATE TABLE {schema}.limit_ledger (
            subject TEXT NOT NULL,
            limit_name TEXT NOT NULL,
            window_start BIGINT NOT NULL,
            window_end BIGINT NOT NULL,
            taken BIGINT NOT NULL,
            PRIMARY KEY (subject, limit_name, window_start))",
        "CREATE INDEX limit_ledger_ends ON {schema}.limit_ledger (window_end)",
    ],
};

const RAW_BATCHES_POSTGRES: &str = "CREATE TABLE {schema}.raw_batches (
    id BIGSERIAL PRIMARY KEY,
    day DATE NOT NULL,
    key_ids BIGINT[] NOT NULL,
    buckets BIGINT[] NOT NULL,
    counts BIGINT[] NOT NULL,
    n_counts BIGINT NOT NULL CHECK (n_counts > 0))";

/// v1's raw rows as rows of arrays: one per day and 10,000 rows. Shared with
/// count-cockroach's migrations.
#[doc(hidden)]
pub const RAW_FROM_V1: &str =
    "INSERT INTO {schema}.raw_batches (day, key_ids, buckets, counts, n_counts)
    SELECT day, array_agg(endpoint_id ORDER BY id),
           array_agg(extract(epoch FROM bucket)::BIGINT ORDER BY id),
           array_agg(n ORDER BY id), count(*)
    FROM (SELECT id, endpoint_id, day, bucket, n,
                 (row_number() OVER (PARTITION BY day ORDER BY id) - 1) / 10000 AS part
          FROM {schema}.raw_counts) v1
    GROUP BY day, part";

/// v1's daily totals, under the ids their endpoints' keys kept. Shared with
/// count-cockroach's migrations.
#[doc(hidden)]
pub const TOTALS_FROM_V1: &str = "INSERT INTO {schema}.daily_key_totals (day, key_id, total)
    SELECT day, endpoint_id, total FROM {schema}.daily_totals";

/// Applies every migration of `migrations` not yet applied; returns how many it applied.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: &str,
    migrations: &[Migration],
    fills: &[(&str, &str)],
) -> Result<usize> {
    let quoted = quote_ident(schema);
    let fill = |sql: &str| {
        fills
            .iter()
            .fold(sql.replace("{schema}", &quoted), |sql, (from, to)| {
                sql.replace(from, to)
            })
    };
    // Two processes creating the same object at once can collide in the catalogs
    // (a unique violation) even with IF NOT EXISTS: the loser retries and finds it.
    for attempt in 0.. {
        let created = client
            .batch_execute(&fill(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS {schema}.count_migrations (
                    version BIGINT PRIMARY KEY,
                    name TEXT NOT NULL,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            ))
            .await;
        match created {
            Ok(()) => break,
            Err(e) if attempt < 3 && is_catalog_race(&e) => continue,
            Err(e) => return Err(classify("creating the migrations table", e)),
        }
    }
    let mut applied = 0;
    for migration in migrations {
        // At SERIALIZABLE (CockroachDB's only level), a process that loses the race
        // for a version row gets a serialization failure instead of waiting: retry,
        // and find the version applied.
        let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(640));
        let mut attempt = 0;
        let done = loop {
            match apply(client, migration, &fill).await {
                Err(e) if attempt < 10 && is_serialization_failure(&e) => {
                    attempt += 1;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                result => break result,
            }
        };
        let applied_now = done.map_err(|(doing, e)| {
            classify(
                &format!(
                    "migration {} ({}): {doing}",
                    migration.version, migration.name
                ),
                e,
            )
        })?;
        if applied_now {
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "count: migrated"
            );
            applied += 1;
        }
    }
    check_version(client, schema, migrations).await?;
    Ok(applied)
}

/// Checks that `schema` is at exactly the version `migrations` end with: every one of
/// them applied, and none this code does not know.
///
/// # Errors
///
/// [`Error::InvalidInput`] for `schema` naming what is missing (no migrations table,
/// migrations not applied) or that a newer version of count wrote it; the database's
/// error when it cannot be read.
pub(crate) async fn check_version(
    client: &Client,
    schema: &str,
    migrations: &[Migration],
) -> Result<()> {
    use tokio_postgres::error::SqlState;
    let sql = format!(
        "SELECT version FROM {}.count_migrations ORDER BY version",
        quote_ident(schema)
    );
    let applied: Vec<i64> = match client.query(&sql, &[]).await {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(e)
            if e.code() == Some(&SqlState::UNDEFINED_TABLE)
                || e.code() == Some(&SqlState::INVALID_SCHEMA_NAME) =>
        {
            return Err(Error::invalid(
                "schema",
                schema,
                "is not migrated: it has no count_migrations table (connect with migrate(true) to create the tables)",
            ));
        }
        Err(e) => return Err(classify("reading the applied migrations", e)),
    };
    let known = migrations.last().map_or(0, |m| m.version);
    if let Some(&newer) = applied.iter().find(|&&v| v > known) {
        return Err(Error::invalid(
            "schema",
            schema,
            format!(
                "was written by a newer version of count: it has migration {newer}, this \
                 version knows migrations up to {known}; upgrade count to use it"
            ),
        ));
    }
    let missing: Vec<String> = migrations
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| format!("{} ({})", m.version, m.name))
        .collect();
    if !missing.is_empty() {
        let at = applied
            .last()
            .map_or("no migration applied".to_owned(), |v| {
                format!("at version {v}")
            });
        return Err(Error::invalid(
            "schema",
            schema,
            format!(
                "is not migrated ({at}): missing migration{} {}; connect with migrate(true) to apply {}",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                if missing.len() == 1 { "it" } else { "them" },
            ),
        ));
    }
    Ok(())
}

/// One migration in one transaction; whether it was applied now (not before).
async fn apply(
    client: &mut Client,
    migration: &Migration,
    fill: &impl Fn(&str) -> String,
) -> std::result::Result<bool, (&'static str, tokio_postgres::Error)> {
    let tx = client.transaction().await.map_err(|e| ("starting", e))?;
    let claimed = tx
        .execute(
            &fill("INSERT INTO {schema}.count_migrations (version, name) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING"),
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(|e| ("claiming its version", e))?;
    if claimed == 0 {
        return Ok(false);
    }
    for statement in migration.sql {
        tx.batch_execute(&fill(statement))
            .await
            .map_err(|e| ("applying", e))?;
    }
    tx.commit().await.map_err(|e| ("committing", e))?;
    Ok(true)
}

fn is_serialization_failure(e: &(&str, tokio_postgres::Error)) -> bool {
    e.1.code() == Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE)
}

fn is_catalog_race(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    matches!(
        e.code(),
        Some(c) if *c == SqlState::UNIQUE_VIOLATION || *c == SqlState::DUPLICATE_TABLE || *c == SqlState::DUPLICATE_SCHEMA
    )
}
