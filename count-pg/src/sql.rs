//! Every statement count-pg runs after migrating (the tables are in
//! [`schema`](crate::schema)), with the schema filled in once, and the report query
//! built for a [`TotalsQuery`].
//!
//! Conventions: days travel as days since 1970-01-01 in a `bigint`, narrowed in SQL
//! (`DATE '1970-01-01' + $1::bigint::int`: `date + int` is what PostgreSQL and
//! CockroachDB both define, and CockroachDB's `INT` is 8 bytes on the wire). Sums are
//! `numeric` (PostgreSQL's `sum(bigint)`) and stop at `i64::MAX` ([`MAX_TOTAL`]), so no
//! report or rollup fails with `bigint out of range`.

use count_core::{Dimension, GroupedTotal, Result, Status, TotalsQuery};
use tokio_postgres::types::ToSql;

use crate::config::quote_ident;

/// `i64::MAX`, where totals stop.
const MAX_TOTAL: &str = "9223372036854775807";

/// The subject stored for a count without one: never a valid subject.
pub(crate) const NO_SUBJECT: &str = "";
/// The status stored for a count without one: never a valid code.
pub(crate) const NO_STATUS: i64 = -1;

/// The statements, with the schema filled in.
#[derive(Debug)]
pub(crate) struct Sql {
    /// `"schema"`, quoted.
    pub(crate) schema: String,
    pub(crate) claim_batch: String,
    pub(crate) batch_digest: String,
    pub(crate) insert_raw: String,
    pub(crate) insert_keys: String,
    pub(crate) select_keys: String,
    pub(crate) rollup_chunk: String,
    pub(crate) add_days: String,
    pub(crate) add_quarter: String,
    pub(crate) add_zone_days: String,
    pub(crate) prune_batches: String,
    pub(crate) daily: String,
    pub(crate) period: String,
    pub(crate) unrolled_days: String,
}

/// Every count of the days `$1` to `$2`: rolled-up totals and raw counts, as
/// `(day, key_id, n)`.
const COUNTS: &str = "
    SELECT day, key_id, total AS n FROM {s}.daily_key_totals
     WHERE day BETWEEN DATE '1970-01-01' + $1::bigint::int AND DATE '1970-01-01' + $2::bigint::int
    UNION ALL
    SELECT r.day, u.key_id, u.n FROM {s}.raw_batches r, unnest(r.key_ids, r.counts) AS u(key_id, n)
     WHERE r.day BETWEEN DATE '1970-01-01' + $1::bigint::int AND DATE '1970-01-01' + $2::bigint::int";

impl Sql {
    pub(crate) fn new(schema: &str) -> Sql {
        let quoted = quote_ident(schema);
        let s = |sql: &str| {
            sql.replace("{counts}", COUNTS)
                .replace("{max}", MAX_TOTAL)
                .replace("{s}", &quoted)
        };
        Sql {
            claim_batch: s(
                "INSERT INTO {s}.batches (writer, seq, digest) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            ),
            batch_digest: s("SELECT digest FROM {s}.batches WHERE writer = $1 AND seq = $2"),
            insert_raw: s(
                "INSERT INTO {s}.raw_batches (day, key_ids, buckets, counts, n_counts)
                 VALUES (DATE '1970-01-01' + $1::bigint::int, $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint)",
            ),
            insert_keys: s(
                "INSERT INTO {s}.count_keys (method, path, subject, status)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
                 ON CONFLICT (method, path, subject, status) DO NOTHING",
            ),
            select_keys: s(
                "SELECT k.id, k.method, k.path, k.subject, k.status FROM {s}.count_keys k
                 JOIN unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS t(m, p, sub, st)
                   ON k.method = t.m AND k.path = t.p AND k.subject = t.sub AND k.status = t.st",
            ),
            // One chunk: the day's next rows after id $3 holding up to $2 counts (at
            // least one row), deleted and returned (with the chunk's last id: NULL
            // when the day is done) to be summed in Rust and added by the statements
            // below, in the same transaction. No row locks first: a concurrent
            // rollup's DELETE waits on ours and then skips the rows we deleted
            // (RETURNING gives only what a statement deleted itself), so each row is
            // summed exactly once.
            rollup_chunk: s(
                "WITH chunk AS (
                    SELECT max(id) AS last FROM (
                        SELECT id, sum(n_counts) OVER (ORDER BY id) - n_counts AS before
                        FROM (SELECT id, n_counts FROM {s}.raw_batches
                              WHERE day = DATE '1970-01-01' + $1::bigint::int AND id > $3
                              ORDER BY id LIMIT $2) first_rows) c
                    WHERE before < $2),
                 moved AS (
                    DELETE FROM {s}.raw_batches
                    WHERE day = DATE '1970-01-01' + $1::bigint::int AND id > $3
                      AND id <= (SELECT last FROM chunk)
                    RETURNING key_ids, buckets, counts)
                 SELECT (SELECT last FROM chunk)::bigint, m.key_ids, m.buckets, m.counts
                 FROM (SELECT 1) one LEFT JOIN moved m ON true",
            ),
            add_days: s(
                "INSERT INTO {s}.daily_key_totals (day, key_id, total)
                 SELECT DATE '1970-01-01' + $1::bigint::int, key_id, total
                 FROM unnest($2::bigint[], $3::bigint[]) AS t(key_id, total)
                 ON CONFLICT (day, key_id) DO UPDATE
                 SET total = LEAST({s}.daily_key_totals.total::numeric + excluded.total, {max})::bigint",
            ),
            add_quarter: s(
                "INSERT INTO {s}.quarter_batches (quarter, key_ids, totals)
                 VALUES ($1::bigint, $2::bigint[], $3::bigint[])",
            ),
            add_zone_days: s(
                "INSERT INTO {s}.zone_day_totals (zone, day, key_id, total)
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
                 ON CONFLICT (zone, day, key_id) DO UPDATE
                 SET total = LEAST({s}.zone_day_totals.total::numeric + excluded.total, {max})::bigint",
            ),
            prune_batches: s(
                "DELETE FROM {s}.batches WHERE applied_at < now() - $1::float8 * INTERVAL '1 second'",
            ),
            daily: s(
                "SELECT (c.day - DATE '1970-01-01')::bigint, k.method, k.path, LEAST(sum(c.n), {max})::bigint
                 FROM ({counts}) c JOIN {s}.count_keys k ON k.id = c.key_id
                 GROUP BY c.day, k.method, k.path",
            ),
            period: s(
                "SELECT k.method, k.path, LEAST(sum(c.n), {max})::bigint
                 FROM ({counts}) c JOIN {s}.count_keys k ON k.id = c.key_id
                 GROUP BY k.method, k.path",
            ),
            unrolled_days: s(
                "SELECT DISTINCT (day - DATE '1970-01-01')::bigint AS d FROM {s}.raw_batches
                 WHERE day < DATE '1970-01-01' + $1::bigint::int ORDER BY d",
            ),
            schema: quoted,
        }
    }

    /// The statement and its parameters after the two day bounds (`$1`, `$2`) for
    /// `query` in UTC by the day: grouped and filtered in SQL. Every row has the
    /// same six columns: day (days since 1970-01-01), method, path, subject, status,
    /// total; a dimension not grouped by is NULL.
    pub(crate) fn totals(
        &self,
        query: &TotalsQuery,
    ) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
        let counts = COUNTS.replace("{s}", &self.schema);
        // The day bounds ($1, $2) come first: the filters' parameters follow them.
        grouped(
            query,
            &counts,
            "(c.day - DATE '1970-01-01')::bigint",
            &self.schema,
            (2, vec![]),
        )
    }
}

/// The report over `counts` (a subquery of `(time column, key_id, n)` rows, whose
/// parameters are `taken` given elsewhere, then `params`): grouped by `time` (when the query groups by day or hour)
/// and by the key's grouped parts, filtered by the query's filters (their parameters
/// appended). Every row has six columns: time, method, path, subject, status, total;
/// a dimension not grouped by is NULL. `schema` is quoted.
pub(crate) fn grouped(
    query: &TotalsQuery,
    counts: &str,
    time: &str,
    schema: &str,
    (taken, mut params): (usize, Vec<Box<dyn ToSql + Sync + Send>>),
) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let by_time = query.groups(Dimension::Day) || query.groups(Dimension::Hour);
    // (grouped, its columns as selected, as grouped by, when not grouped by)
    let dimensions = [
        (by_time, time, time, "NULL::bigint"),
        (
            query.groups(Dimension::Endpoint),
            "k.method, k.path",
            "k.method, k.path",
            "NULL::text, NULL::text",
        ),
        (
            query.groups(Dimension::Subject),
            "k.subject",
            "k.subject",
            "NULL::text",
        ),
        (
            query.groups(Dimension::Status),
            "k.status",
            "k.status",
            "NULL::bigint",
        ),
    ];
    let mut columns = Vec::new();
    let mut group_by = Vec::new();
    for (grouped, selected, grouped_as, null) in dimensions {
        if grouped {
            columns.push(selected);
            group_by.push(grouped_as);
        } else {
            columns.push(null);
        }
    }
    let mut filters = Vec::new();
    let mut param = |value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        format!("${}", taken + params.len())
    };
    if let Some((method, path)) = &query.endpoint {
        let method = param(Box::new(method.as_str()));
        let path = param(Box::new(path.to_string()));
        filters.push(format!("k.method = {method} AND k.path = {path}"));
    }
    if let Some(subject) = &query.subject {
        let subject = param(Box::new(subject.to_string()));
        filters.push(format!("k.subject = {subject}"));
    }
    if let Some(filter) = query.status {
        // The codes that pass, listed by the model itself: its classes (gRPC's
        // included) are not repeated in SQL.
        let codes: Vec<i64> = (0..=16)
            .chain(100..=599)
            .filter(|&code| filter.matches(Status::from_code(code).ok()))
            .collect();
        let codes = param(Box::new(codes));
        filters.push(format!("k.status = ANY({codes}::bigint[])"));
    }
    let filter = if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    };
    let group_by = if group_by.is_empty() {
        String::new()
    } else {
        format!("GROUP BY {}", group_by.join(", "))
    };
    let sql = format!(
        "SELECT {}, LEAST(sum(c.n), {MAX_TOTAL})::bigint
         FROM ({counts}) c JOIN {schema}.count_keys k ON k.id = c.key_id
         {filter}
         {group_by}",
        columns.join(", "),
    );
    (sql, params)
}

/// The rows of a [`grouped`] report as totals, ordered: `time` sets a row's day or
/// hour from its time column (when not NULL).
pub(crate) fn totals_of(
    rows: &[tokio_postgres::Row],
    time: impl Fn(i64, GroupedTotal) -> Result<GroupedTotal>,
) -> Result<Vec<GroupedTotal>> {
    use crate::keys::{endpoint_of, status_of, subject_of};
    let mut totals = rows
        .iter()
        .map(|row| {
            let mut total = GroupedTotal::new(crate::counter::total_of(row.get(5))?);
            if let Some(at) = row.get::<_, Option<i64>>(0) {
                total = time(at, total)?;
            }
            if let (Some(method), Some(path)) = (row.get(1), row.get(2)) {
                total = total.with_endpoint(endpoint_of(method, path)?);
            }
            if let Some(subject) = row.get::<_, Option<&str>>(3) {
                total = total.with_subject(subject_of(subject)?);
            }
            if let Some(status) = row.get::<_, Option<i64>>(4) {
                total = total.with_status(status_of(status)?);
            }
            Ok(total)
        })
        .collect::<Result<Vec<_>>>()?;
    totals.sort_unstable();
    Ok(totals)
}
