//! Sums of counts that stop at `i64::MAX` instead of overflowing (the contract:
//! totals saturate; no report or rollup fails) in SQL upserts; in Rust, counts are
//! `i64` and `saturating_add` does it.

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

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

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
