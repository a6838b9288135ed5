//! The schema and its versioned migrations.
//!
//! `count_migrations` lists the versions applied. Opening a database applies the
//! missing ones in one write transaction (so two processes opening a new file at
//! once apply each exactly once), and refuses a database whose latest version is
//! newer than this build knows: an older count would misread it.

use count_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::error::{classify, commit_failed};

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    /// Applied in increasing order; never reused.
    pub(crate) version: i64,
    /// What it does, recorded beside the version.
    pub(crate) name: &'static str,
    /// The statements, run in the migration's transaction.
    pub(crate) sql: &'static str,
}

/// The latest schema version this build writes.
pub const SCHEMA_VERSION: i64 = 3;

/// The schema. Storage grows with distinct keys × buckets, never with requests or
/// batches: a bucket holds each of its keys once, added to in place, and a rollup
/// folds a day's buckets into one row per key.
///
/// - `keys`: one row per distinct count key, so counts carry an integer id. The
///   method is its `count.v1` wire number; a missing subject is `''` (a subject is
///   never empty) and a missing status `-1`, so the unique constraint holds (SQLite
///   treats NULLs as distinct).
/// - `raw_buckets`: counts not yet rolled up, per UTC day (days since 1970-01-01)
///   and bucket (its first Unix second): one row per bucket, its `(key id, n)` pairs
///   packed in one value (see `packed.rs`). A flush merges into the current
///   bucket's row; a rollup reads and deletes whole buckets.
/// - `daily_totals`: rolled-up counts per day and key.
/// - `batches`: the exactly-once record: each applied batch id with the digest of
///   its counts, pruned after the retention.
///
/// Version 2, for hours and time zones (see `zones.rs`):
/// - `quarter_totals`: rolled-up counts per quarter hour (its first Unix second),
///   packed as the raw buckets are, kept from `quarters_kept.from_day` on.
/// - `quarters_kept`: the first UTC day whose quarters are all kept. A database
///   migrated from version 1 keeps them from the day after the last day it holds
///   counts of (the days before were rolled up by the day only, or counted by a
///   version that allowed buckets wider than a quarter hour); a new one from
///   0001-01-01.
/// - `zones` and `zone_day_totals`: the zones whose days are kept, each complete
///   from `kept_from` (a UTC day), and their rolled-up totals per local day and key.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "keys, raw buckets, daily totals, batches",
        sql: "
        CREATE TABLE keys (
            id INTEGER PRIMARY KEY,
            method INTEGER NOT NULL,
            path TEXT NOT NULL,
            subject TEXT NOT NULL,
            status INTEGER NOT NULL,
            UNIQUE (method, path, subject, status));
        CREATE TABLE raw_buckets (
            day INTEGER NOT NULL,
            bucket INTEGER NOT NULL,
            counts BLOB NOT NULL,
            PRIMARY KEY (day, bucket));
        CREATE TABLE daily_totals (
            day INTEGER NOT NULL,
            key_id INTEGER NOT NULL,
            total INTEGER NOT NULL,
            PRIMARY KEY (day, key_id)) WITHOUT ROWID;
        CREATE TABLE batches (
            writer BLOB NOT NULL,
            seq INTEGER NOT NULL,
            digest BLOB NOT NULL,
            applied_at INTEGER NOT NULL,
            PRIMARY KEY (writer, seq)) WITHOUT ROWID;
        CREATE INDEX batches_applied_at ON batches (applied_at);",
    },
    Migration {
        version: 2,
        name: "quarter hours, and days in time zones",
        sql: "
        CREATE TABLE quarter_totals (
            quarter INTEGER PRIMARY KEY,
            counts BLOB NOT NULL);
        CREATE TABLE quarters_kept (
            one INTEGER PRIMARY KEY CHECK (one = 1),
            from_day INTEGER NOT NULL);
        INSERT INTO quarters_kept (one, from_day)
            SELECT 1, min(coalesce(max(day) + 1, -719162), 2932895)
            FROM (SELECT day FROM daily_totals UNION ALL SELECT day FROM raw_buckets);
        CREATE TABLE zones (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kept_from INTEGER NOT NULL);
        CREATE TABLE zone_day_totals (
            zone_id INTEGER NOT NULL,
            day INTEGER NOT NULL,
            key_id INTEGER NOT NULL,
            total INTEGER NOT NULL,
            PRIMARY KEY (zone_id, day, key_id)) WITHOUT ROWID;",
    },
    Migration {
        version: 3,
        name: "limits: the policy, and the ledger of quota handed out",
        sql: "
        CREATE TABLE limits_policy (
            one INTEGER PRIMARY KEY CHECK (one = 1),
            version INTEGER NOT NULL,
            policy TEXT NOT NULL);
        CREATE TABLE limit_ledger (
            subject TEXT NOT NULL,
            limit_name TEXT NOT NULL,
            window_start INTEGER NOT NULL,
            window_end INTEGER NOT NULL,
            taken INTEGER NOT NULL,
            PRIMARY KEY (subject, limit_name, window_start)) WITHOUT ROWID;
        CREATE INDEX limit_ledger_ends ON limit_ledger (window_end);",
    },
];

/// Applies the migrations of `migrations` that `conn`'s database lacks; returns how
/// many. `shown` names the database in errors.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming the database when it was written by a newer
/// version of count, or holds another application's tables; the database's error
/// otherwise.
pub(crate) fn migrate(
    conn: &mut Connection,
    migrations: &[Migration],
    shown: &str,
) -> Result<usize> {
    let doing = |what: &str| format!("migrating {shown}: {what}");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| classify(&doing("starting"), e))?;
    let tracked: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'count_migrations')",
            [],
            |row| row.get(0),
        )
        .map_err(|e| classify(&doing("reading the schema"), e))?;
    if !tracked {
        let foreign: Option<String> = tx
            .query_row(
                "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| classify(&doing("reading the schema"), e))?;
        if let Some(table) = foreign {
            return Err(Error::invalid(
                "database",
                shown,
                format!(
                    "holds tables of another application (such as {table:?}) and no \
                     count_migrations table: name a new file for count's counts"
                ),
            ));
        }
        tx.execute_batch(
            "CREATE TABLE count_migrations (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at INTEGER NOT NULL)",
        )
        .map_err(|e| classify(&doing("creating count_migrations"), e))?;
    }
    let current: i64 = tx
        .query_row(
            "SELECT coalesce(max(version), 0) FROM count_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(|e| classify(&doing("reading the schema version"), e))?;
    let latest = migrations.last().map_or(0, |m| m.version);
    if current > latest {
        return Err(newer(shown, current, latest));
    }
    let now = count_core::jiff::Timestamp::now().as_second();
    let mut applied = 0;
    for migration in migrations.iter().filter(|m| m.version > current) {
        let what = format!("version {} ({})", migration.version, migration.name);
        tx.execute_batch(migration.sql)
            .map_err(|e| classify(&doing(&what), e))?;
        tx.execute(
            "INSERT INTO count_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            (migration.version, migration.name, now),
        )
        .map_err(|e| classify(&doing(&what), e))?;
        tracing::info!(
            database = shown,
            version = migration.version,
            name = migration.name,
            "count: migrated"
        );
        applied += 1;
    }
    tx.commit()
        .map_err(|e| commit_failed(&doing("committing"), e))?;
    Ok(applied)
}

/// Checks, changing nothing, that `conn`'s database is at the latest version of
/// `migrations`.
///
/// # Errors
///
/// [`Error::InvalidInput`] naming the database when it has no schema, an older one
/// (it needs migrating), or a newer one; the database's error otherwise.
pub(crate) fn check(conn: &Connection, migrations: &[Migration], shown: &str) -> Result<()> {
    let latest = migrations.last().map_or(0, |m| m.version);
    let current: Option<i64> = conn
        .query_row("SELECT max(version) FROM count_migrations", [], |row| {
            row.get(0)
        })
        .map_err(|e| match e.sqlite_error_code() {
            // No such table: a SQLite file count never migrated.
            Some(rusqlite::ErrorCode::Unknown) => Error::invalid(
                "schema",
                shown,
                "is not migrated: it has no count schema (no count_migrations table); open it \
                 with migrations on to create it",
            ),
            _ => classify(&format!("checking the schema of {shown}"), e),
        })?;
    match current.unwrap_or(0) {
        current if current > latest => Err(newer(shown, current, latest)),
        current if current < latest => {
            let missing: Vec<String> = migrations
                .iter()
                .filter(|m| m.version > current)
                .map(|m| format!("{} ({})", m.version, m.name))
                .collect();
            Err(Error::invalid(
                "schema",
                shown,
                format!(
                    "is not migrated (at schema version {current}): missing migration{} {}; \
                     this version of count needs {latest}: open it with migrations on to \
                     migrate it",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.join(", ")
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// The refusal of a database written by a newer count.
fn newer(shown: &str, current: i64, latest: i64) -> Error {
    Error::invalid(
        "schema",
        shown,
        format!(
            "was written by a newer version of count (schema version {current}; this \
             version knows versions up to {latest}): upgrade count to open it"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATER: Migration = Migration {
        version: SCHEMA_VERSION + 1,
        name: "a label per key",
        sql: "ALTER TABLE keys ADD COLUMN label TEXT NOT NULL DEFAULT 'none'",
    };

    fn versions(conn: &Connection) -> Vec<i64> {
        conn.prepare("SELECT version FROM count_migrations ORDER BY version")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn the_latest_version_is_the_last_migration() {
        assert_eq!(MIGRATIONS.last().unwrap().version, SCHEMA_VERSION);
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
    }

    #[test]
    fn a_new_database_gets_every_migration_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn, MIGRATIONS, "test.db").unwrap(), 3);
        assert_eq!(migrate(&mut conn, MIGRATIONS, "test.db").unwrap(), 0);
        assert_eq!(versions(&conn), [1, 2, 3]);
        let from: i64 = conn
            .query_row("SELECT from_day FROM quarters_kept", [], |r| r.get(0))
            .unwrap();
        assert_eq!(from, count_core::Day::MIN.unix_day());
        assert_eq!(2932895, count_core::Day::MAX.unix_day());
    }

    /// A database of version 1, opened by this version: migrated in place, its rows
    /// kept, its quarters kept from the day after its last rolled-up day (the days
    /// before were rolled up by the UTC day only).
    #[test]
    fn an_older_schema_is_migrated_keeping_its_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, &MIGRATIONS[..1], "test.db").unwrap();
        conn.execute_batch(
            "INSERT INTO keys (method, path, subject, status) VALUES (3, '/old', '', -1);
             INSERT INTO daily_totals (day, key_id, total) VALUES (20000, 1, 5), (20400, 1, 7);",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn, MIGRATIONS, "test.db").unwrap(), 2);
        assert_eq!(versions(&conn), [1, 2, 3]);
        let row: (String, i64, i64) = conn
            .query_row(
                "SELECT path, (SELECT sum(total) FROM daily_totals), \
                 (SELECT from_day FROM quarters_kept) FROM keys",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(row, ("/old".into(), 12, 20401));
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_alone() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(
            &mut conn,
            &[MIGRATIONS[0], MIGRATIONS[1], MIGRATIONS[2], LATER],
            "test.db",
        )
        .unwrap();
        let err = migrate(&mut conn, MIGRATIONS, "test.db")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"test.db\"")
                && err.contains("newer version of count")
                && err.contains("schema version 4")
                && err.contains("up to 3"),
            "{err}"
        );
        assert_eq!(versions(&conn), [1, 2, 3, 4]);
    }

    #[test]
    fn the_check_refuses_no_schema_an_older_one_and_a_newer_one() {
        let mut conn = Connection::open_in_memory().unwrap();
        let err = check(&conn, MIGRATIONS, "t.db").unwrap_err().to_string();
        assert!(
            err.contains("\"t.db\"") && err.contains("has no count schema"),
            "{err}"
        );
        migrate(&mut conn, MIGRATIONS, "t.db").unwrap();
        check(&conn, MIGRATIONS, "t.db").unwrap();
        let later = [MIGRATIONS[0], MIGRATIONS[1], MIGRATIONS[2], LATER];
        let err = check(&conn, &later, "t.db").unwrap_err().to_string();
        assert!(
            err.contains("at schema version 3")
                && err.contains("missing migration 4 (a label per key);")
                && err.contains("needs 4"),
            "{err}"
        );
        migrate(&mut conn, &later, "t.db").unwrap();
        let err = check(&conn, MIGRATIONS, "t.db").unwrap_err().to_string();
        assert!(err.contains("newer version of count"), "{err}");
    }
}
