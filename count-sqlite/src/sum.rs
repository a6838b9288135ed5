//! `count_sum(n)`: SQLite's `sum` that stops at `i64::MAX` instead of failing with
//! "integer overflow", so no report fails however large its totals (the contract:
//! totals saturate). Registered on every connection.

use rusqlite::Connection;
use rusqlite::functions::{Aggregate, Context, FunctionFlags};

/// The SQL expression that adds `excluded.<column>` to `<column>` in an upsert,
/// stopping at `i64::MAX` (SQLite's `+` turns an overflowing integer sum into a
/// float). A literal, for `concat!`.
macro_rules! saturating_add {
    ($column:literal) => {
        concat!(
            "CASE WHEN ",
            $column,
            " > 9223372036854775807 - excluded.",
            $column,
            " THEN 9223372036854775807 ELSE ",
            $column,
            " + excluded.",
            $column,
            " END"
        )
    };
}
pub(crate) use saturating_add;

/// Adds two counts (never negative), stopping at `i64::MAX`.
pub(crate) fn add(a: i64, b: i64) -> i64 {
    a.saturating_add(b)
}

struct SaturatingSum;

impl Aggregate<i64, i64> for SaturatingSum {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<i64> {
        Ok(0)
    }

    fn step(&self, ctx: &mut Context<'_>, sum: &mut i64) -> rusqlite::Result<()> {
        *sum = add(*sum, ctx.get::<i64>(0)?);
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, sum: Option<i64>) -> rusqlite::Result<i64> {
        Ok(sum.unwrap_or(0))
    }
}

/// Makes `count_sum` available on `conn`.
pub(crate) fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_aggregate_function(
        "count_sum",
        1,
        FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS,
        SaturatingSum,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_saturate_where_sqlite_would_fail() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (g INTEGER, n INTEGER, total INTEGER PRIMARY KEY);
             INSERT INTO t (g, n, total) VALUES (1, 9223372036854775000, 1), (1, 5000, 2), (2, 3, 3), (2, 4, 4);",
        )
        .unwrap();
        let overflow = conn.query_row("SELECT sum(n) FROM t WHERE g = 1", [], |r| {
            r.get::<_, i64>(0)
        });
        assert!(overflow.is_err(), "SQLite's own sum fails: {overflow:?}");
        let sums: Vec<(i64, i64)> = conn
            .prepare("SELECT g, count_sum(n) FROM t GROUP BY g ORDER BY g")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(sums, [(1, i64::MAX), (2, 7)]);
        let empty: i64 = conn
            .query_row("SELECT count_sum(n) FROM t WHERE g = 9", [], |r| r.get(0))
            .unwrap();
        assert_eq!(empty, 0);
    }

    #[test]
    fn the_upsert_expression_saturates() {
        let conn = Connection::open_in_memory().unwrap();
        let upsert = concat!(
            "INSERT INTO t (k, n) VALUES (1, ?1) ON CONFLICT (k) DO UPDATE SET n = ",
            saturating_add!("n")
        );
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
            .unwrap();
        for n in [i64::MAX - 10, 5, 6, 7] {
            conn.execute(upsert, [n]).unwrap();
        }
        let n: i64 = conn.query_row("SELECT n FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(n, i64::MAX);
        let kind: String = conn
            .query_row("SELECT typeof(n) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kind, "integer");
    }
}
