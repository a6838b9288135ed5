//! The reads. Every report reads the rolled-up totals and the raw buckets of its days
//! in one read transaction (one snapshot), so a rollup, which moves counts between
//! the two in one transaction, never changes a report. The rolled-up totals are summed
//! in SQL to the grain the report needs; the raw buckets (packed) and the last
//! groupings are summed here; every sum stops at `i64::MAX`.

use std::collections::{BTreeMap, HashMap, HashSet};

use count_core::{
    DailyTotal, DateRange, Day, Dimension, Error, GroupedTotal, PeriodTotal, Result, Status,
    TotalsQuery,
    backend::{Source, add_saturating},
};
use rusqlite::{Connection, OptionalExtension};

use crate::error::classify;
use crate::names::KeyNames;
use crate::packed;

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
    let snapshot = snapshot(conn, range)?;
    for (day, key, n) in keyed(&snapshot, names, range, Grouping::DAY_AND_KEY, None)? {
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
    let snapshot = snapshot(conn, range)?;
    for (_, key, n) in keyed(&snapshot, names, range, Grouping::KEY, None)? {
        let sum = sums.entry(key.endpoint).or_default();
        *sum = add_saturating(*sum, n);
    }
    Ok(sums
        .into_iter()
        .map(|(endpoint, total)| PeriodTotal::new(endpoint, total))
        .collect())
}

/// One read transaction: the rolled-up and raw counts (and what is kept) are read in
/// one snapshot. Nothing is written, so ending it is a rollback.
fn snapshot(conn: &Connection, range: DateRange) -> Result<rusqlite::Transaction<'_>> {
    conn.unchecked_transaction()
        .map_err(|e| classify(&format!("reading the counts of {range}"), e))
}

/// `query`'s totals, filtered, grouped and ordered as [`TotalsQuery::group`] would.
///
/// In UTC by the day, the rolled-up totals of the range are summed in SQL down to the
/// grain the query needs (per day only if it groups by day, per key only if it groups
/// by a part of the key), over the keys its filters keep: a year of a thousand
/// endpoints grouped by endpoint reads a thousand rows, not a row per day and key.
/// In another zone or by the hour, they are read from what `zones.rs` keeps.
pub(crate) fn totals(
    conn: &Connection,
    names: &KeyNames,
    query: &TotalsQuery,
) -> Result<Vec<GroupedTotal>> {
    let snapshot = snapshot(conn, query.range)?;
    let conn = &*snapshot;
    let source = if query.zone.is_utc() && !query.groups(Dimension::Hour) {
        Source::UtcDays
    } else {
        query.source(&crate::zones::kept(conn)?)?
    };
    let grouping = Grouping {
        by_day: query.groups(Dimension::Day),
        by_key: [Dimension::Endpoint, Dimension::Subject, Dimension::Status]
            .into_iter()
            .any(|d| query.groups(d)),
    };
    let filtered = query.endpoint.is_some() || query.subject.is_some() || query.status.is_some();
    let keys = if filtered {
        let keys = matching_keys(conn, query)?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Some(keys)
    } else {
        None
    };
    if source != Source::UtcDays {
        return crate::zones::totals(conn, names, query, source, keys.as_deref(), grouping.by_key);
    }
    let mut rows = BTreeMap::<GroupedTotal, u64>::new();
    let mut add = |row: GroupedTotal, n: u64| {
        let sum = rows.entry(row).or_default();
        *sum = add_saturating(*sum, n);
    };
    if grouping.by_key {
        for (day, key, n) in keyed(conn, names, query.range, grouping, keys.as_deref())? {
            add(query.row_of_day(Day::from_unix_day(day)?, &key, 0), n);
        }
    } else {
        for ((day, _), n) in summed(conn, query.range, grouping, keys.as_deref())? {
            let row = GroupedTotal::new(0);
            let row = if grouping.by_day {
                row.with_day(Day::from_unix_day(day)?)
            } else {
                row
            };
            add(row, total_of(n)?);
        }
    }
    Ok(rows
        .into_iter()
        .filter(|(_, total)| *total > 0)
        .map(|(mut row, total)| {
            row.total = total;
            row
        })
        .collect())
}

/// The grain the counts are summed to before they reach Rust.
#[derive(Debug, Clone, Copy)]
struct Grouping {
    by_day: bool,
    by_key: bool,
}

impl Grouping {
    const KEY: Grouping = Grouping {
        by_day: false,
        by_key: true,
    };
    const DAY_AND_KEY: Grouping = Grouping {
        by_day: true,
        by_key: true,
    };
}

/// The ids of the keys `query`'s filters keep (its endpoint, subject and status),
/// found in SQL.
fn matching_keys(conn: &Connection, query: &TotalsQuery) -> Result<Vec<i64>> {
    let mut conditions = Vec::new();
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    if let Some((method, path)) = &query.endpoint {
        conditions.push("method = ? AND path = ?".to_owned());
        values.push(i64::from(method.number()).into());
        values.push(path.to_string().into());
    }
    if let Some(subject) = &query.subject {
        conditions.push("subject = ?".to_owned());
        values.push(subject.to_string().into());
    }
    if let Some(filter) = query.status {
        // Every code the filter keeps: a class is several HTTP and gRPC codes.
        let codes: Vec<String> = (0..=16)
            .chain(100..=599)
            .filter_map(|code| Status::from_code(code).ok())
            .filter(|&status| filter.matches(Some(status)))
            .map(|status| status.code().to_string())
            .collect();
        conditions.push(format!("status IN ({})", codes.join(",")));
    }
    let sql = format!("SELECT id FROM keys WHERE {}", conditions.join(" AND "));
    let doing = || "finding the keys a report's filters keep".to_owned();
    let mut statement = conn.prepare(&sql).map_err(|e| classify(&doing(), e))?;
    let ids = statement
        .query_map(rusqlite::params_from_iter(values), |row| {
            row.get::<_, i64>(0)
        })
        .map_err(|e| classify(&doing(), e))?;
    ids.collect::<rusqlite::Result<Vec<i64>>>()
        .map_err(|e| classify(&doing(), e))
}

/// The counts of `range` over `keys` (every key when `None`), summed per day and key
/// id as `grouping` asks, with their keys.
fn keyed(
    conn: &Connection,
    names: &KeyNames,
    range: DateRange,
    grouping: Grouping,
    keys: Option<&[i64]>,
) -> Result<Vec<(i64, count_core::CountKey, u64)>> {
    let sums = summed(conn, range, grouping, keys)?;
    names
        .name(conn, sums)?
        .into_iter()
        .map(|(day, key, n)| Ok((day, key, total_of(n)?)))
        .collect()
}

/// The counts of `range` over `keys`, rolled up or raw, summed per (day, key id);
/// where `grouping` leaves out the day or the key, it is 0 in every row. `conn` is in
/// a snapshot, so both tables are read as of one moment.
fn summed(
    conn: &Connection,
    range: DateRange,
    grouping: Grouping,
    keys: Option<&[i64]>,
) -> Result<HashMap<(i64, i64), i64>> {
    let doing = || format!("reading the counts of {range}");
    let bounds = (range.start().unix_day(), range.end().unix_day());
    let wanted: Option<HashSet<i64>> = keys.map(|keys| keys.iter().copied().collect());
    let grain = |day: i64, key_id: i64| {
        (
            if grouping.by_day { day } else { 0 },
            if grouping.by_key { key_id } else { 0 },
        )
    };
    let mut sums: HashMap<(i64, i64), i64> = HashMap::new();
    let mut add = |at: (i64, i64), n: i64| {
        let sum = sums.entry(at).or_default();
        *sum = sum.saturating_add(n);
    };
    // Grouped by key alone, the rows are summed here: SQLite would sort them by key
    // first (the table is in day order), which costs several times the reading. SQL's
    // `sum` refuses to overflow: then too, row by row, stopping at `i64::MAX`.
    let in_sql = if grouping.by_key && !grouping.by_day {
        None
    } else {
        match rolled_in_sql(conn, bounds, grouping, keys) {
            Ok(rows) => Some(rows),
            Err(e) if is_overflow(&e) => None,
            Err(e) => return Err(classify(&doing(), e)),
        }
    };
    if let Some(rows) = in_sql {
        for (day, key_id, n) in rows {
            add((day, key_id), n);
        }
    } else {
        let mut rolled = conn
            .prepare(&rolled_rows(keys))
            .map_err(|e| classify(&doing(), e))?;
        let rows = rolled
            .query_map(bounds, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| classify(&doing(), e))?;
        for row in rows {
            let (day, key_id, total): (i64, i64, i64) = row.map_err(|e| classify(&doing(), e))?;
            add(grain(day, key_id), total);
        }
    }
    let mut raw = conn
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
            if wanted.as_ref().is_none_or(|w| w.contains(&key_id)) {
                add(grain(day, key_id), n);
            }
        }
    }
    Ok(sums)
}

/// The rolled-up totals of the days `bounds`, summed in SQL to `grouping`'s grain:
/// grouped by day, or by day and key, in the table's own order (no sort), or summed
/// whole.
fn rolled_in_sql(
    conn: &Connection,
    bounds: (i64, i64),
    grouping: Grouping,
    keys: Option<&[i64]>,
) -> rusqlite::Result<Vec<(i64, i64, i64)>> {
    let (columns, group_by) = match (grouping.by_day, grouping.by_key) {
        (true, true) => ("day, key_id", " GROUP BY day, key_id"),
        (true, false) => ("day, 0", " GROUP BY day"),
        (false, true) => ("0, key_id", " GROUP BY key_id"),
        (false, false) => ("0, 0", ""),
    };
    let sql = format!(
        "SELECT {columns}, sum(total) FROM daily_totals
         WHERE day BETWEEN ?1 AND ?2{}{group_by}",
        key_filter(keys)
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(bounds, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect::<rusqlite::Result<Vec<(i64, i64, Option<i64>)>>>()
        .map(|rows| {
            // A sum over no rows is NULL.
            rows.into_iter()
                .filter_map(|(day, key, n)| Some((day, key, n?)))
                .collect()
        })
}

/// The rolled-up rows of the days `?1` to `?2`, over `keys` (every key when `None`).
fn rolled_rows(keys: Option<&[i64]>) -> String {
    format!("{ROLLED}{}", key_filter(keys))
}

/// ` AND key_id IN (...)` for `keys`; nothing for every key.
fn key_filter(keys: Option<&[i64]>) -> String {
    match keys {
        Some(keys) => {
            let ids: Vec<String> = keys.iter().map(i64::to_string).collect();
            format!(" AND key_id IN ({})", ids.join(","))
        }
        None => String::new(),
    }
}

/// SQLite's `sum` of integers failing rather than overflowing.
fn is_overflow(e: &rusqlite::Error) -> bool {
    e.to_string().contains("integer overflow")
}

/// A stored sum as a total: never negative.
fn total_of(n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| {
        Error::invalid(
            "total",
            n,
            "a stored count is negative: the database was changed outside count",
        )
    })
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
