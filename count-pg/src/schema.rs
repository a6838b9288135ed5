//! Versioned, idempotent migrations that need no advisory lock (CockroachDB has none):
//! each runs in one transaction that first claims its version row, so a process
//! starting at the same time waits on that row and then finds the version applied.

use count_core::Result;
use tokio_postgres::Client;

use crate::error::classify;

/// One schema change. `sql` may hold `{schema}`, replaced by the checked schema name.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Applied in increasing order; never reused.
    pub version: i64,
    /// What it does, recorded beside the version.
    pub name: &'static str,
    /// Statements, run in order in one transaction.
    pub sql: &'static [&'static str],
}

/// PostgreSQL's schema. Every integer is `BIGINT`; days are `DATE` values computed in
/// Rust (never from the session time zone); raw counts are append-only rows.
pub const POSTGRES: &[Migration] = &[Migration {
    version: 1,
    name: "endpoints, raw_counts, daily_totals, batches",
    sql: &[
        "CREATE TABLE IF NOT EXISTS {schema}.endpoints (
            id BIGSERIAL PRIMARY KEY,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            UNIQUE (method, path))",
        // No foreign key: an insert of a batch is one statement of many rows, and the
        // ids come from `endpoints` itself.
        "CREATE TABLE IF NOT EXISTS {schema}.raw_counts (
            id BIGSERIAL PRIMARY KEY,
            endpoint_id BIGINT NOT NULL,
            day DATE NOT NULL,
            bucket TIMESTAMPTZ NOT NULL,
            n BIGINT NOT NULL CHECK (n > 0))",
        // (day, id): a rollup walks a day's rows in id order, each chunk starting
        // after the last, so it never rescans the dead entries of chunks it deleted.
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
}];

/// Applies every migration of `migrations` not yet applied; returns how many it applied.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: &str,
    migrations: &[Migration],
    fills: &[(&str, &str)],
) -> Result<usize> {
    let fill = |sql: &str| {
        fills
            .iter()
            .fold(sql.replace("{schema}", schema), |sql, (from, to)| {
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
        let mut attempt = 0;
        let done = loop {
            match apply(client, migration, &fill).await {
                Err(e) if attempt < 10 && is_serialization_failure(&e) => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(10 << attempt.min(6)))
                        .await;
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
    Ok(applied)
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
