//! The reads. Every report reads the rolled-up totals and the raw buckets of its days
//! in one read transaction (one snapshot), so a rollup, which moves counts between
//! the two in one transaction, never changes a report. The sums, groupings and order
//! are done here, saturating at `i64::MAX`.

use std::collections::{BTreeMap, HashMap};

use count_core::{
    DailyTotal, DateRange, Day, Error, GroupedTotal, PeriodTotal, Result, TotalsQuery,
    add_saturating,
};
use rusqlite::{Connection, OptionalExtension};

use crate::error::classify;
use crate::names::KeyNames;
use crate::{packed, sum};

const ROLLED: &str = "SELECT day, key_id, total FROM daily_totals WHERE day BETWEEN ?1 AND ?2";
const RAW: &str = "SELECT day, counts FROM raw_buckets WHERE day BETWEEN ?1 AND ?2";
/// The first day after `?1` and before `?2` with raw counts: a seek in the primary
/// key, however many buckets the day holds.
const NEXT_UNROLLED_DAY: &str =
    "SELECT day FROM raw_buckets WHERE day > ?1 AND day < ?2 ORDER BY day LIMIT 1";

/// Per day and endpoint, ordered by day, path, method.
pub(crate) fn daily(
    conn: &Connection,
    names: &KeyNames,
    range: DateRange,
) -> Result<Vec<DailyTotal>> {
    let mut sums = BTreeMap::new();
    for (day, key, n) in counts(conn, names, range)? {
        let sum = sums.entry((day, key.endpoint)).or_default();
        *sum = add_saturating(*sum, n);
    }
    sums.into_iter()
        .map(|((day, endpoint), total)| {
            Ok(DailyTotal::new(Day::from_unix_day(day)?, endpoint, total))
        })
        .collect()
}

/// Per endpoint, ordered by path, method.
pub(crate) fn period(
    conn: &Connection,
    names: &KeyNames,
    range: DateRange,
) -> Result<Vec<PeriodTotal>> {
    let mut sums = BTreeMap::new();
    for (_, key, n) in counts(conn, names, range)? {
        let sum = sums.entry(key.endpoint).or_default();
        *sum = add_saturating(*sum, n);
    }
    Ok(sums
        .into_iter()
        .map(|(endpoint, total)| PeriodTotal::new(endpoint, total))
        .collect())
}

/// `query`'s totals, filtered, grouped and ordered by [`TotalsQuery::group`].
pub(crate) fn totals(
    conn: &Connection,
    names: &KeyNames,
    query: &TotalsQuery,
) -> Result<Vec<GroupedTotal>> {
    let counts = counts(conn, names, query.range)?
        .into_iter()
        .map(|(day, key, n)| Ok((Day::from_unix_day(day)?, key, n)))
        .collect::<Result<Vec<_>>>()?;
    Ok(query.group(counts))
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

/// Every count of `range`, rolled up or raw, summed per day (days since 1970-01-01)
/// and key.
fn counts(
    conn: &Connection,
    names: &KeyNames,
    range: DateRange,
) -> Result<Vec<(i64, count_core::CountKey, u64)>> {
    let doing = || format!("reading the counts of {range}");
    let bounds = (range.start().unix_day(), range.end().unix_day());
    let mut sums: HashMap<(i64, i64), i64> = HashMap::new();
    let mut add = |day: i64, key_id: i64, n: i64| {
        let sum = sums.entry((day, key_id)).or_default();
        *sum = sum::add(*sum, n);
    };
    // One snapshot for both tables; nothing is written, so ending it is a rollback.
    let snapshot = conn
        .unchecked_transaction()
        .map_err(|e| classify(&doing(), e))?;
    {
        let mut rolled = snapshot
            .prepare_cached(ROLLED)
            .map_err(|e| classify(&doing(), e))?;
        let rows = rolled
            .query_map(bounds, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| classify(&doing(), e))?;
        for row in rows {
            let (day, key_id, total) = row.map_err(|e| classify(&doing(), e))?;
            add(day, key_id, total);
        }
        let mut raw = snapshot
            .prepare_cached(RAW)
            .map_err(|e| classify(&doing(), e))?;
        let mut rows = raw.query(bounds).map_err(|e| classify(&doing(), e))?;
        while let Some(row) = rows.next().map_err(|e| classify(&doing(), e))? {
            let day: i64 = row.get(0).map_err(|e| classify(&doing(), e))?;
            let value = row
                .get_ref(1)
                .and_then(|v| v.as_blob().map_err(Into::into))
                .map_err(|e| classify(&doing(), e))?;
            for (key_id, n) in packed::pairs(value)? {
                add(day, key_id, n);
            }
        }
    }
    drop(snapshot);
    let named = names.name(conn, sums)?;
    named
        .into_iter()
        .map(|(day, key, n)| {
            let n = u64::try_from(n).map_err(|_| {
                Error::invalid(
                    "total",
                    n,
                    "a stored count is negative: the database was changed outside count",
                )
            })?;
            Ok((day, key, n))
        })
        .collect()
}
