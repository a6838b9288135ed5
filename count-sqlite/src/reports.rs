//! The reads: every report sums the rolled-up totals and the raw counts of its days
//! in one statement (one snapshot), so a rollup, which moves rows between the two
//! in one transaction, never changes a report.

use count_core::{
    CountKey, DailyTotal, DateRange, Day, Endpoint, GroupedTotal, Method, Path, PeriodTotal,
    Result, Status, Subject, TotalsQuery,
};
use rusqlite::{Connection, OptionalExtension, Row};

use crate::error::classify;

/// The counts of days `?1` to `?2`, rolled up and raw, as `(day, key_id, n)`. Raw
/// counts are summed per day and key first, so the rest of a report handles a row
/// per key and day, not one per bucket.
macro_rules! counts_of_range {
    () => {
        "WITH counts (day, key_id, n) AS (
            SELECT day, key_id, total FROM daily_totals WHERE day BETWEEN ?1 AND ?2
            UNION ALL
            SELECT day, key_id, count_sum(n) FROM raw_counts WHERE day BETWEEN ?1 AND ?2
            GROUP BY day, key_id) "
    };
}

const DAILY: &str = concat!(
    counts_of_range!(),
    "SELECT c.day, k.method, k.path, count_sum(c.n) FROM counts c JOIN keys k ON k.id = c.key_id
     GROUP BY c.day, k.method, k.path"
);
const PERIOD: &str = concat!(
    counts_of_range!(),
    "SELECT k.method, k.path, count_sum(c.n) FROM counts c JOIN keys k ON k.id = c.key_id
     GROUP BY k.method, k.path"
);
/// Per day and key, the endpoint, subject and exact-status filters applied here (a
/// status class is applied by [`TotalsQuery::group`]).
const PER_KEY: &str = concat!(
    counts_of_range!(),
    "SELECT c.day, k.method, k.path, k.subject, k.status, count_sum(c.n)
     FROM counts c JOIN keys k ON k.id = c.key_id
     WHERE (?3 IS NULL OR (k.method = ?3 AND k.path = ?4))
       AND (?5 IS NULL OR k.subject = ?5)
       AND (?6 IS NULL OR k.status = ?6)
     GROUP BY c.day, c.key_id"
);
/// The first day after `?1` and before `?2` with raw counts: a seek in the primary
/// key, however many rows the day holds.
const NEXT_UNROLLED_DAY: &str =
    "SELECT day FROM raw_counts WHERE day > ?1 AND day < ?2 ORDER BY day LIMIT 1";

/// Per day and endpoint, ordered by day, path, method.
pub(crate) fn daily(conn: &Connection, range: DateRange) -> Result<Vec<DailyTotal>> {
    let mut totals = query(conn, DAILY, range_params(range), "daily totals", |row| {
        Ok(DailyTotal::new(
            Day::from_unix_day(row.get(0)?)?,
            endpoint(row, 1)?,
            total(row, 3)?,
        ))
    })?;
    totals.sort_unstable();
    Ok(totals)
}

/// Per endpoint, ordered by path, method.
pub(crate) fn period(conn: &Connection, range: DateRange) -> Result<Vec<PeriodTotal>> {
    let mut totals = query(conn, PERIOD, range_params(range), "period totals", |row| {
        Ok(PeriodTotal::new(endpoint(row, 0)?, total(row, 2)?))
    })?;
    totals.sort_unstable();
    Ok(totals)
}

/// `query`'s totals: summed per day and key here, filtered, grouped and ordered as
/// the contract says by [`TotalsQuery::group`].
pub(crate) fn totals(conn: &Connection, query: &TotalsQuery) -> Result<Vec<GroupedTotal>> {
    let (start, end) = range_params(query.range);
    let endpoint_filter = query.endpoint.map(|e| (e.method.number(), e.path.as_str()));
    let exact_status = query.status.and_then(|f| match f {
        count_core::StatusFilter::Code(status) => Some(i32::from(status.code())),
        _ => None,
    });
    let params = (
        start,
        end,
        endpoint_filter.map(|(m, _)| m),
        endpoint_filter.map(|(_, p)| p),
        query.subject.map(|s| s.as_str()),
        exact_status,
    );
    let per_key = self::query(conn, PER_KEY, params, "totals", |row| {
        let key = CountKey::of(
            method(row, 1)?,
            Path::from_storage(&row.get::<_, String>(2)?)?,
            subject(&row.get::<_, String>(3)?)?,
            status(row.get(4)?)?,
        );
        Ok((Day::from_unix_day(row.get(0)?)?, key, total(row, 5)?))
    })?;
    Ok(query.group(per_key))
}

/// The days before `before` holding raw counts, in order.
pub(crate) fn unrolled_days(conn: &Connection, before: Day) -> Result<Vec<Day>> {
    let mut statement = conn
        .prepare_cached(NEXT_UNROLLED_DAY)
        .map_err(|e| classify("listing unrolled days", e))?;
    let mut days = Vec::new();
    let mut after = i64::MIN;
    while let Some(day) = statement
        .query_row((after, before.unix_day()), |row| row.get::<_, i64>(0))
        .optional()
        .map_err(|e| classify("listing unrolled days", e))?
    {
        days.push(Day::from_unix_day(day)?);
        after = day;
    }
    Ok(days)
}

/// Reads the schema version: the database answers and is count's.
pub(crate) fn check(conn: &Connection) -> Result<()> {
    conn.query_row("SELECT max(version) FROM count_migrations", [], |row| {
        row.get::<_, i64>(0)
    })
    .map(drop)
    .map_err(|e| classify("checking health", e))
}

fn range_params(range: DateRange) -> (i64, i64) {
    (range.start().unix_day(), range.end().unix_day())
}

/// Runs `sql` and converts each row with `convert`, which may refuse a stored value.
fn query<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    what: &str,
    convert: impl Fn(&Row<'_>) -> Result<T, RowError>,
) -> Result<Vec<T>> {
    let doing = || format!("reading {what}");
    let mut statement = conn
        .prepare_cached(sql)
        .map_err(|e| classify(&doing(), e))?;
    let mut rows = statement.query(params).map_err(|e| classify(&doing(), e))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| classify(&doing(), e))? {
        out.push(convert(row).map_err(|e| match e {
            RowError::Sqlite(e) => classify(&doing(), e),
            RowError::Stored(e) => e,
        })?);
    }
    Ok(out)
}

/// A row that could not be read: SQLite's error, or a stored value count refuses.
enum RowError {
    Sqlite(rusqlite::Error),
    Stored(count_core::Error),
}

impl From<rusqlite::Error> for RowError {
    fn from(e: rusqlite::Error) -> Self {
        RowError::Sqlite(e)
    }
}

impl From<count_core::Error> for RowError {
    fn from(e: count_core::Error) -> Self {
        RowError::Stored(e)
    }
}

fn method(row: &Row<'_>, column: usize) -> Result<Method, RowError> {
    Ok(Method::from_number(row.get(column)?)?)
}

fn endpoint(row: &Row<'_>, column: usize) -> Result<Endpoint, RowError> {
    let path = Path::from_storage(&row.get::<_, String>(column + 1)?)?;
    Ok(Endpoint::new(method(row, column)?, path))
}

/// `''` is no subject (a subject is never empty).
fn subject(text: &str) -> Result<Option<Subject>, RowError> {
    Ok(match text {
        "" => None,
        text => Some(Subject::from_storage(text)?),
    })
}

/// `-1` is no status.
fn status(code: i64) -> Result<Option<Status>, RowError> {
    Ok(match code {
        -1 => None,
        code => Some(Status::from_code(code)?),
    })
}

/// Sums are never negative (counts are positive and saturate at `i64::MAX`).
fn total(row: &Row<'_>, column: usize) -> Result<u64, RowError> {
    let total: i64 = row.get(column)?;
    u64::try_from(total).map_err(|_| {
        RowError::Stored(count_core::Error::invalid(
            "total",
            total,
            "a stored count is negative: the database was changed outside count",
        ))
    })
}
