//! Hours and time zones: what a rollup keeps beside the UTC days (the quarter hours,
//! and the days of each zone kept), what is kept, and the reports read from them.
//!
//! A rollup step folds its raw buckets into all three in its one write transaction,
//! and a report reads what is kept and the counts in one read transaction, so a
//! rollup or a pruning of quarters never changes a report's answer.

use std::collections::{BTreeMap, HashMap};

use count_core::backend::{Source, Sums};
use count_core::{Day, Error, GroupedTotal, Kept, QUARTER_SECONDS, Result, TotalsQuery, Zone};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use crate::error::{classify, commit_failed};
use crate::names::KeyNames;
use crate::packed;
use crate::sum::saturating_add;

const ADD_ZONE_DAY: &str = concat!(
    "INSERT INTO zone_day_totals (zone_id, day, key_id, total) VALUES (?1, ?2, ?3, ?4) ",
    "ON CONFLICT (zone_id, day, key_id) DO UPDATE SET total = ",
    saturating_add!("total")
);

/// What the database keeps besides its UTC days.
pub(crate) fn kept(conn: &Connection) -> Result<Kept> {
    let doing = || "reading which hours and zones are kept".to_owned();
    let from: i64 = conn
        .query_row("SELECT from_day FROM quarters_kept", [], |r| r.get(0))
        .map_err(|e| classify(&doing(), e))?;
    let mut kept = Kept::default();
    kept.quarters_from = Some(Day::from_unix_day(from)?);
    kept.zone_days = zones(conn)?
        .into_iter()
        .filter_map(|(_, zone, from)| Some((zone.ok()?, from)))
        .collect();
    Ok(kept)
}

/// The zones whose days are kept: id, zone (an error for a name this build's tzdb
/// lacks: a newer count's), complete from.
fn zones(conn: &Connection) -> Result<Vec<(i64, Result<Zone>, Day)>> {
    let doing = || "reading the zones whose days are kept".to_owned();
    let mut select = conn
        .prepare_cached("SELECT id, name, kept_from FROM zones ORDER BY id")
        .map_err(|e| classify(&doing(), e))?;
    let rows = select
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, String>(1)?, r.get(2)?)))
        .map_err(|e| classify(&doing(), e))?;
    let mut zones = Vec::new();
    for row in rows {
        let (id, name, from): (i64, String, i64) = row.map_err(|e| classify(&doing(), e))?;
        zones.push((id, Zone::new(&name), Day::from_unix_day(from)?));
    }
    Ok(zones)
}

/// Drops the quarters before `day` and keeps them from it on (or from later).
pub(crate) fn forget_quarters_before(conn: &mut Connection, day: Day) -> Result<()> {
    let doing = |what: &str| format!("forgetting the quarter hours before {day}: {what}");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| classify(&doing("starting"), e))?;
    tx.execute(
        "UPDATE quarters_kept SET from_day = max(from_day, ?1)",
        [day.unix_day()],
    )
    .map_err(|e| classify(&doing("moving the start"), e))?;
    tx.execute(
        "DELETE FROM quarter_totals WHERE quarter < (SELECT from_day FROM quarters_kept) * 86400",
        [],
    )
    .map_err(|e| classify(&doing("deleting"), e))?;
    tx.commit()
        .map_err(|e| commit_failed(&doing("committing"), e))
}

/// Keeps `zone`'s days: filled from the quarters kept, complete from their first day.
pub(crate) fn keep_zone(conn: &mut Connection, zone: &Zone) -> Result<Day> {
    if zone.is_utc() {
        return Ok(Day::MIN);
    }
    let doing = |what: &str| format!("keeping the days of {zone}: {what}");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| classify(&doing("starting"), e))?;
    if let Some((_, _, from)) = zones(&tx)?
        .into_iter()
        .find(|(_, z, _)| z.as_ref().is_ok_and(|z| z == zone))
    {
        return Ok(from);
    }
    let from = kept(&tx)?.quarters_from.unwrap_or(Day::MIN);
    tx.execute(
        "INSERT INTO zones (name, kept_from) VALUES (?1, ?2)",
        (zone.name(), from.unix_day()),
    )
    .map_err(|e| classify(&doing("adding it"), e))?;
    let id = tx.last_insert_rowid();
    let mut days = HashMap::<(i64, i64), i64>::new();
    {
        let mut select = tx
            .prepare("SELECT quarter, counts FROM quarter_totals")
            .map_err(|e| classify(&doing("reading the quarters"), e))?;
        let mut rows = select
            .query([])
            .map_err(|e| classify(&doing("reading the quarters"), e))?;
        while let Some(row) = rows
            .next()
            .map_err(|e| classify(&doing("reading the quarters"), e))?
        {
            let quarter: i64 = row.get(0).map_err(|e| classify(&doing("reading"), e))?;
            let value = row
                .get_ref(1)
                .and_then(|v| v.as_blob().map_err(Into::into))
                .map_err(|e| classify(&doing("reading"), e))?;
            let local = zone.day_of(quarter).unix_day();
            for (key_id, n) in packed::pairs(value)? {
                let sum = days.entry((local, key_id)).or_default();
                *sum = sum.saturating_add(n);
            }
        }
    }
    {
        let mut add = tx
            .prepare_cached(ADD_ZONE_DAY)
            .map_err(|e| classify(&doing("preparing"), e))?;
        for ((day, key_id), n) in days {
            add.execute((id, day, key_id, n))
                .map_err(|e| classify(&doing("filling its days"), e))?;
        }
    }
    tx.commit()
        .map_err(|e| commit_failed(&doing("committing"), e))?;
    Ok(from)
}

/// What one rollup step adds beside the UTC day: per quarter, and per local day of
/// each zone kept.
pub(crate) struct Fold {
    keep_quarters: bool,
    zones: Vec<(i64, Zone)>,
    quarters: BTreeMap<i64, HashMap<i64, i64>>,
    zone_days: HashMap<(i64, i64, i64), i64>,
}

impl Fold {
    /// The fold of a step rolling up `day`, inside its transaction.
    pub(crate) fn new(tx: &Transaction<'_>, day: Day) -> Result<Fold> {
        let kept = kept(tx)?;
        Ok(Fold {
            keep_quarters: kept.quarters_from.is_none_or(|from| day >= from),
            // A zone this build cannot read stops the rollup: its days would miss
            // these counts.
            zones: zones(tx)?
                .into_iter()
                .map(|(id, z, _)| Ok((id, z?)))
                .collect::<Result<_>>()?,
            quarters: BTreeMap::new(),
            zone_days: HashMap::new(),
        })
    }

    /// Adds a raw bucket's counts.
    pub(crate) fn add(&mut self, bucket: i64, pairs: &[(i64, i64)]) {
        let add = |sum: &mut i64, n: i64| *sum = sum.saturating_add(n);
        if self.keep_quarters {
            let quarter = bucket - bucket.rem_euclid(QUARTER_SECONDS);
            let sums = self.quarters.entry(quarter).or_default();
            for &(key_id, n) in pairs {
                add(sums.entry(key_id).or_default(), n);
            }
        }
        for (id, zone) in &self.zones {
            let local = zone.day_of(bucket).unix_day();
            for &(key_id, n) in pairs {
                add(self.zone_days.entry((*id, local, key_id)).or_default(), n);
            }
        }
    }

    /// Writes what was added, in the step's transaction.
    pub(crate) fn write(self, tx: &Transaction<'_>, doing: &dyn Fn(&str) -> String) -> Result<()> {
        let mut read = tx
            .prepare_cached("SELECT counts FROM quarter_totals WHERE quarter = ?1")
            .map_err(|e| classify(&doing("preparing"), e))?;
        let mut put = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO quarter_totals (quarter, counts) VALUES (?1, ?2)",
            )
            .map_err(|e| classify(&doing("preparing"), e))?;
        for (quarter, sums) in self.quarters {
            let mut adds: Vec<(i64, i64)> = sums.into_iter().collect();
            adds.sort_unstable();
            let stored: Option<Vec<u8>> = read
                .query_row([quarter], |r| r.get(0))
                .optional()
                .map_err(|e| classify(&doing("reading a quarter"), e))?;
            let merged = packed::merge(stored.as_deref().unwrap_or_default(), &adds)?;
            put.execute((quarter, merged))
                .map_err(|e| classify(&doing("adding to a quarter"), e))?;
        }
        let mut add = tx
            .prepare_cached(ADD_ZONE_DAY)
            .map_err(|e| classify(&doing("preparing"), e))?;
        for ((zone_id, day, key_id), n) in self.zone_days {
            add.execute((zone_id, day, key_id, n))
                .map_err(|e| classify(&doing("adding to a zone's days"), e))?;
        }
        Ok(())
    }
}

/// `query`'s totals from `source` (a zone's days or the quarters) and the raw buckets,
/// over `keys` (every key when `None`), inside the caller's snapshot.
pub(crate) fn totals(
    conn: &Connection,
    names: &KeyNames,
    query: &TotalsQuery,
    source: Source,
    keys: Option<&[i64]>,
    by_key: bool,
) -> Result<Vec<GroupedTotal>> {
    let doing = || format!("reading the counts of {} in {}", query.range, query.zone);
    let (start, end) = query.seconds();
    let wanted: Option<std::collections::HashSet<i64>> = keys.map(|k| k.iter().copied().collect());
    // Counts are summed per (slot, key id): a slot is a day or an hour of the report
    // (or nothing, when it groups by neither), found once per day, quarter or bucket.
    let mut slots: Vec<GroupedTotal> = Vec::new();
    let mut index: HashMap<GroupedTotal, i64> = HashMap::new();
    let mut slot_of: HashMap<(bool, i64), i64> = HashMap::new();
    let mut sums: HashMap<(i64, i64), i64> = HashMap::new();
    let mut add = |slot: GroupedTotal, at: (bool, i64), key_id: i64, n: i64| {
        if wanted.as_ref().is_some_and(|w| !w.contains(&key_id)) {
            return;
        }
        // Seconds with the same day and hour (every second, when the report groups
        // by neither) share one slot.
        let slot = *slot_of.entry(at).or_insert_with(|| {
            *index.entry(slot).or_insert_with(|| {
                slots.push(slot);
                slots.len() as i64 - 1
            })
        });
        let sum = sums
            .entry((slot, if by_key { key_id } else { 0 }))
            .or_default();
        *sum = sum.saturating_add(n);
    };
    match source {
        Source::ZoneDays => {
            let zone_id: i64 = conn
                .query_row(
                    "SELECT id FROM zones WHERE name = ?1",
                    [query.zone.name()],
                    |r| r.get(0),
                )
                .map_err(|e| classify(&doing(), e))?;
            let mut select = conn
                .prepare_cached(
                    "SELECT day, key_id, total FROM zone_day_totals \
                     WHERE zone_id = ?1 AND day BETWEEN ?2 AND ?3",
                )
                .map_err(|e| classify(&doing(), e))?;
            let bounds = (
                zone_id,
                query.range.start().unix_day(),
                query.range.end().unix_day(),
            );
            let rows = select
                .query_map(bounds, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(|e| classify(&doing(), e))?;
            for row in rows {
                let (day, key_id, n): (i64, i64, i64) = row.map_err(|e| classify(&doing(), e))?;
                let slot = query.slot_of_day(Day::from_unix_day(day)?);
                add(slot, (true, day), key_id, n);
            }
        }
        Source::Quarters => {
            let mut select = conn
                .prepare_cached(
                    "SELECT quarter, counts FROM quarter_totals WHERE quarter >= ?1 AND quarter < ?2",
                )
                .map_err(|e| classify(&doing(), e))?;
            let mut rows = select
                .query((start, end))
                .map_err(|e| classify(&doing(), e))?;
            while let Some(row) = rows.next().map_err(|e| classify(&doing(), e))? {
                let quarter: i64 = row.get(0).map_err(|e| classify(&doing(), e))?;
                let value = row
                    .get_ref(1)
                    .and_then(|v| v.as_blob().map_err(Into::into))
                    .map_err(|e| classify(&doing(), e))?;
                let slot = query.slot_of(quarter);
                for (key_id, n) in packed::pairs(value)? {
                    add(slot, (false, quarter), key_id, n);
                }
            }
        }
        Source::UtcDays => unreachable!("UTC days are read by reports.rs"),
    }
    let mut select = conn
        .prepare_cached("SELECT bucket, counts FROM raw_buckets WHERE day BETWEEN ?1 AND ?2")
        .map_err(|e| classify(&doing(), e))?;
    let utc_days = (
        Zone::UTC.day_of(start).unix_day(),
        Zone::UTC.day_of(end - 1).unix_day(),
    );
    let mut rows = select.query(utc_days).map_err(|e| classify(&doing(), e))?;
    while let Some(row) = rows.next().map_err(|e| classify(&doing(), e))? {
        let bucket: i64 = row.get(0).map_err(|e| classify(&doing(), e))?;
        if !(start..end).contains(&bucket) {
            continue;
        }
        let value = row
            .get_ref(1)
            .and_then(|v| v.as_blob().map_err(Into::into))
            .map_err(|e| classify(&doing(), e))?;
        let slot = query.slot_of(bucket);
        for (key_id, n) in packed::pairs(value)? {
            add(slot, (false, bucket), key_id, n);
        }
    }
    let mut rows = Sums::default();
    let total = |n: i64| u64::try_from(n).map_err(|_| negative(n));
    if by_key {
        for (slot, key, n) in names.name(conn, sums)? {
            rows.add(query.in_slot(slots[slot as usize], &key, 0), total(n)?);
        }
    } else {
        for ((slot, _), n) in sums {
            rows.add(slots[slot as usize], total(n)?);
        }
    }
    Ok(rows.rows())
}

fn negative(n: i64) -> Error {
    Error::invalid(
        "total",
        n,
        "a stored count is negative: the database was changed outside count",
    )
}
