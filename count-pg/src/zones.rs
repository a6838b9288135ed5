//! Hours and time zones on PostgreSQL (and CockroachDB): the quarter hours and the
//! days of each zone kept that a rollup chunk writes beside the UTC days, what is kept,
//! and the reports read from them.
//!
//! The database never reads a zone: local days and hours come from the zone's
//! stretches of constant offset ([`Zone::stretches`]), computed here from the tzdb
//! built into count and passed as arrays, so every process and the database agree.
//!
//! Ordering: a rollup chunk reads what is kept under `FOR SHARE` on `quarters_kept`;
//! keeping a zone and forgetting quarters take it `FOR UPDATE`. So a zone's days are
//! filled from the quarters once every chunk before has committed, and every chunk
//! after adds to them. A report reads what is kept and the counts in one snapshot.

use std::collections::{BTreeMap, HashMap};

use count_core::backend::Source;
use count_core::{
    Day, Dimension, GroupedTotal, Hour, Kept, QUARTER_SECONDS, Result, TotalsQuery, Zone,
};
use deadpool_postgres::GenericClient;
use tokio_postgres::IsolationLevel;
use tokio_postgres::types::ToSql;

use crate::error::{ambiguous, classify};

/// What a rollup chunk adds, summed here from the raw counts it deleted: per key to
/// the UTC day, per quarter hour and key to the quarters (when kept for the day), and
/// per local day and key to the days of each zone kept.
#[derive(Debug, Default)]
pub(crate) struct Fold {
    keep_quarters: bool,
    /// Each kept zone's local days over the UTC day: (zone, local day, from, to).
    zones: Vec<(String, i64, i64, i64)>,
    days: HashMap<i64, i64>,
    quarters: BTreeMap<i64, HashMap<i64, i64>>,
}

impl Fold {
    /// For a chunk of `day`, in the chunk's transaction: what is kept, read under
    /// `FOR SHARE`, and each kept zone's local days over the UTC day.
    pub(crate) async fn new(client: &impl GenericClient, schema: &str, day: Day) -> Result<Fold> {
        let doing = || format!("rolling up {day}: reading the zones kept");
        let from_day: i64 = client
            .query_one(
                &format!("SELECT from_day FROM {schema}.quarters_kept FOR SHARE"),
                &[],
            )
            .await
            .map_err(|e| classify(&doing(), e))?
            .get(0);
        let mut fold = Fold {
            keep_quarters: day.unix_day() >= from_day,
            ..Fold::default()
        };
        let (start, end) = (day.start_second(), day.start_second() + 86_400);
        for row in client
            .query(&format!("SELECT name FROM {schema}.zones"), &[])
            .await
            .map_err(|e| classify(&doing(), e))?
        {
            let name: String = row.get(0);
            // A zone this build cannot read stops the rollup: its days would miss
            // these counts.
            let zone = Zone::new(&name)?;
            let mut at = start;
            while at < end {
                let local = zone.day_of(at);
                let until = zone.end(local).min(end);
                fold.zones.push((name.clone(), local.unix_day(), at, until));
                at = until;
            }
        }
        Ok(fold)
    }

    /// Adds one deleted row of raw counts.
    pub(crate) fn add(&mut self, key_ids: &[i64], buckets: &[i64], counts: &[i64]) {
        let by_quarter = self.keep_quarters || !self.zones.is_empty();
        for ((&key_id, &bucket), &n) in key_ids.iter().zip(buckets).zip(counts) {
            let day = self.days.entry(key_id).or_default();
            *day = day.saturating_add(n);
            if by_quarter {
                let quarter = bucket - bucket.rem_euclid(QUARTER_SECONDS);
                let sum = self
                    .quarters
                    .entry(quarter)
                    .or_default()
                    .entry(key_id)
                    .or_default();
                *sum = sum.saturating_add(n);
            }
        }
    }

    /// Adds the sums to the day `day` (days since 1970), its quarters and its zones'
    /// days, with the statements of `sql`, in the chunk's transaction.
    pub(crate) async fn write(
        self,
        tx: &impl GenericClient,
        sql: &crate::sql::Sql,
        day: i64,
    ) -> Result<()> {
        let doing = |what: &str| format!("rolling up a chunk: adding to {what}");
        // In key order, as the zones' days below: concurrent rollups upsert rows in
        // one order, so they wait on each other but never deadlock.
        let mut days: Vec<(i64, i64)> = self.days.into_iter().collect();
        days.sort_unstable();
        let (keys, totals): (Vec<i64>, Vec<i64>) = days.into_iter().unzip();
        tx.execute(&sql.add_days, &[&day, &keys, &totals])
            .await
            .map_err(|e| classify(&doing("the daily totals"), e))?;
        if self.keep_quarters {
            for (quarter, sums) in &self.quarters {
                let (keys, totals): (Vec<i64>, Vec<i64>) =
                    sums.iter().map(|(k, n)| (*k, *n)).unzip();
                tx.execute(&sql.add_quarter, &[quarter, &keys, &totals])
                    .await
                    .map_err(|e| classify(&doing("the quarter hours"), e))?;
            }
        }
        if self.zones.is_empty() {
            return Ok(());
        }
        let mut zone_days = BTreeMap::<(&str, i64, i64), i64>::new();
        for (zone, local, from, to) in &self.zones {
            for sums in self.quarters.range(*from..*to).map(|(_, sums)| sums) {
                for (&key_id, &n) in sums {
                    let sum = zone_days.entry((zone, *local, key_id)).or_default();
                    *sum = sum.saturating_add(n);
                }
            }
        }
        let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((zone, local, key_id), n) in zone_days {
            columns.0.push(zone);
            columns.1.push(local);
            columns.2.push(key_id);
            columns.3.push(n);
        }
        tx.execute(
            &sql.add_zone_days,
            &[&columns.0, &columns.1, &columns.2, &columns.3],
        )
        .await
        .map_err(|e| classify(&doing("the zones' days"), e))?;
        Ok(())
    }
}

/// What the database keeps besides its UTC days.
pub(crate) async fn kept(client: &impl GenericClient, schema: &str) -> Result<Kept> {
    let doing = || "reading which hours and zones are kept".to_owned();
    let from: i64 = client
        .query_one(&format!("SELECT from_day FROM {schema}.quarters_kept"), &[])
        .await
        .map_err(|e| classify(&doing(), e))?
        .get(0);
    let mut kept = Kept::default();
    kept.quarters_from = Some(Day::from_unix_day(from)?);
    for row in client
        .query(
            &format!("SELECT name, kept_from FROM {schema}.zones ORDER BY name"),
            &[],
        )
        .await
        .map_err(|e| classify(&doing(), e))?
    {
        // A zone this build's tzdb lacks (a newer count's) cannot be asked for here.
        if let Ok(zone) = Zone::new(row.get(0)) {
            kept.zone_days.push((zone, Day::from_unix_day(row.get(1))?));
        }
    }
    Ok(kept)
}

/// Drops the quarters before `day` and keeps them from it on (or from later).
pub(crate) async fn forget_quarters_before(
    client: &mut deadpool_postgres::Object,
    schema: &str,
    day: Day,
) -> Result<()> {
    let doing = || format!("forgetting the quarter hours before {day}");
    let tx = client
        .transaction()
        .await
        .map_err(|e| classify(&doing(), e))?;
    // Only when it moves: a scheduler's pass that forgets nothing new writes nothing.
    let Some(row) = tx
        .query_opt(
            &format!(
                "UPDATE {schema}.quarters_kept SET from_day = $1::bigint \
                 WHERE from_day < $1::bigint RETURNING from_day"
            ),
            &[&day.unix_day()],
        )
        .await
        .map_err(|e| classify(&doing(), e))?
    else {
        return Ok(());
    };
    let from: i64 = row.get(0);
    tx.execute(
        &format!("DELETE FROM {schema}.quarter_batches WHERE quarter < $1::bigint"),
        &[&(from * 86_400)],
    )
    .await
    .map_err(|e| classify(&doing(), e))?;
    // Lost on the way, the commit may have applied: forgetting again is the same.
    tx.commit().await.map_err(|e| ambiguous(&doing(), e))
}

/// Keeps `zone`'s days: filled from the quarters kept, complete from their first day.
pub(crate) async fn keep_zone(
    client: &mut deadpool_postgres::Object,
    schema: &str,
    zone: &Zone,
) -> Result<Day> {
    if zone.is_utc() {
        return Ok(Day::MIN);
    }
    let doing = |what: &str| format!("keeping the days of {zone}: {what}");
    let tx = client
        .transaction()
        .await
        .map_err(|e| classify(&doing("starting"), e))?;
    let from: i64 = tx
        .query_one(
            &format!("SELECT from_day FROM {schema}.quarters_kept FOR UPDATE"),
            &[],
        )
        .await
        .map_err(|e| classify(&doing("locking"), e))?
        .get(0);
    if let Some(row) = tx
        .query_opt(
            &format!("SELECT kept_from FROM {schema}.zones WHERE name = $1"),
            &[&zone.name()],
        )
        .await
        .map_err(|e| classify(&doing("reading"), e))?
    {
        return Day::from_unix_day(row.get(0));
    }
    tx.execute(
        &format!("INSERT INTO {schema}.zones (name, kept_from) VALUES ($1, $2)"),
        &[&zone.name(), &from],
    )
    .await
    .map_err(|e| classify(&doing("adding it"), e))?;
    let span: Option<(i64, i64)> = tx
        .query_one(
            &format!("SELECT min(quarter), max(quarter) FROM {schema}.quarter_batches"),
            &[],
        )
        .await
        .map_err(|e| classify(&doing("reading the quarters"), e))
        .map(|row| row.get::<_, Option<i64>>(0).zip(row.get(1)))?;
    if let Some((first, last)) = span {
        let (from_s, to_s, offsets, _) = columns(&zone.stretches(first, last + QUARTER_SECONDS));
        tx.execute(
            &format!(
                "INSERT INTO {schema}.zone_day_totals (zone, day, key_id, total)
                 SELECT $1::text, {day}, u.key_id, LEAST(sum(u.n), {MAX})::bigint
                 FROM {schema}.quarter_batches q, unnest(q.key_ids, q.totals) AS u(key_id, n),
                      unnest($2::bigint[], $3::bigint[], $4::bigint[]) AS z(from_s, to_s, off)
                 WHERE q.quarter >= z.from_s AND q.quarter < z.to_s
                 GROUP BY 2, u.key_id",
                day = local_day("q.quarter"),
            ),
            &[&zone.name(), &from_s, &to_s, &offsets],
        )
        .await
        .map_err(|e| classify(&doing("filling its days"), e))?;
    }
    // Lost on the way, the commit may have applied: keeping it again finds it kept.
    tx.commit()
        .await
        .map_err(|e| ambiguous(&doing("committing"), e))?;
    Day::from_unix_day(from)
}

const MAX: &str = "9223372036854775807";

/// The local day number of the Unix second `t` in the stretch `z`.
fn local_day(t: &str) -> String {
    // Cast: CockroachDB's `int / int` is a decimal.
    format!("((({t} + z.off) - ((({t} + z.off) % 86400) + 86400) % 86400) / 86400)::bigint")
}

/// The first second of the local hour of `t` in the stretch `z`.
fn local_hour(t: &str) -> String {
    format!(
        "GREATEST(({t} + z.off) - ((({t} + z.off) % 3600) + 3600) % 3600 - z.off, z.since)::bigint"
    )
}

type Columns = (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>);

fn columns(stretches: &[(i64, i64, i64, i64)]) -> Columns {
    let mut columns = Columns::default();
    for &(from, to, offset, since) in stretches {
        columns.0.push(from);
        columns.1.push(to);
        columns.2.push(offset);
        columns.3.push(since);
    }
    columns
}

/// `query`'s totals from `source` (a zone's days or the quarters) and the raw
/// counts, read in one snapshot with what is kept (`prelude` first, if any).
pub(crate) async fn totals(
    client: &mut deadpool_postgres::Object,
    schema: &str,
    prelude: Option<&str>,
    query: &TotalsQuery,
) -> Result<Vec<GroupedTotal>> {
    let doing = || format!("reading the totals of {} in {}", query.range, query.zone);
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| classify(&doing(), e))?;
    if let Some(prelude) = prelude {
        tx.batch_execute(prelude)
            .await
            .map_err(|e| classify(&doing(), e))?;
    }
    let source = query.source(&kept(&tx, schema).await?)?;
    let (start, end) = query.seconds();
    let (from_s, to_s, offsets, since) = columns(&query.zone.stretches(start, end));
    let utc_days = (
        Zone::UTC.day_of(start).unix_day(),
        Zone::UTC.day_of(end - 1).unix_day(),
    );
    let (by_day, by_hour) = (query.groups(Dimension::Day), query.groups(Dimension::Hour));
    let slot = |t: &str| match (by_day, by_hour) {
        (_, true) => local_hour(t),
        (true, false) => local_day(t),
        (false, false) => "0::bigint".to_owned(),
    };
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![
        Box::new(from_s),
        Box::new(to_s),
        Box::new(offsets),
        Box::new(since),
        Box::new(utc_days.0),
        Box::new(utc_days.1),
    ];
    let stretches = "unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) AS z(from_s, to_s, off, since)";
    let rolled = match source {
        Source::Quarters => format!(
            "SELECT {} AS slot, u.key_id, u.n
             FROM {schema}.quarter_batches q, unnest(q.key_ids, q.totals) AS u(key_id, n), {stretches}
             WHERE q.quarter >= {start} AND q.quarter < {end}
               AND q.quarter >= z.from_s AND q.quarter < z.to_s",
            slot("q.quarter")
        ),
        Source::ZoneDays => {
            params.push(Box::new(query.zone.name().to_owned()));
            params.push(Box::new(query.range.start().unix_day()));
            params.push(Box::new(query.range.end().unix_day()));
            format!(
                "SELECT {} AS slot, key_id, total AS n FROM {schema}.zone_day_totals
                 WHERE zone = $7 AND day BETWEEN $8::bigint AND $9::bigint",
                if by_day { "day" } else { "0::bigint" }
            )
        }
        Source::UtcDays => unreachable!("UTC days are read by sql.rs"),
    };
    let counts = format!(
        "{rolled}
         UNION ALL
         SELECT {} AS slot, u.key_id, u.n
         FROM {schema}.raw_batches r, unnest(r.key_ids, r.buckets, r.counts) AS u(key_id, t, n),
              {stretches}
         WHERE r.day BETWEEN DATE '1970-01-01' + $5::bigint::int AND DATE '1970-01-01' + $6::bigint::int
           AND u.t >= z.from_s AND u.t < z.to_s",
        slot("u.t")
    );
    let (sql, params) = crate::sql::grouped(query, &counts, "c.slot", schema, (0, params));
    let params: Vec<&(dyn ToSql + Sync)> =
        params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
    let rows = tx
        .query(&sql, &params)
        .await
        .map_err(|e| classify(&doing(), e))?;
    // Read only: the rows are the snapshot's whatever becomes of the transaction,
    // which ends (rolled back) when dropped; a commit lost on the way would fail a
    // good report.
    drop(tx);
    // The time column: an hour's first second, or a local day (days since 1970).
    crate::sql::totals_of(&rows, |slot, total| {
        if !by_hour {
            return Ok(total.with_day(Day::from_unix_day(slot)?));
        }
        let start = count_core::jiff::Timestamp::from_second(slot)
            .map_err(|e| count_core::Error::invalid("hour", slot, e.to_string()))?;
        let total = total.with_hour(Hour::starting_at(start)?);
        Ok(if by_day {
            total.with_day(query.zone.day_of(slot))
        } else {
            total
        })
    })
}
