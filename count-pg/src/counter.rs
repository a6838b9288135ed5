//! [`PgCounter`]: the [`Counter`] contract over the statements of [`sql`](crate::sql).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use count_core::{
    Batch, CountKey, Counter, DailyTotal, DateRange, Day, Dimension, Error, GroupedTotal, Kept,
    Period, PeriodTotal, Result, StoredPolicy, TotalsQuery, Zone,
    limits::{LeaseAsk, LeaseGrant, Policy},
};
use deadpool_postgres::Pool;
use tokio_postgres::types::ToSql;

use crate::builder::PgCounterBuilder;
use crate::error::{self, ambiguous, classify};
use crate::flavor::Flavor;
use crate::keys::{KeyIds, endpoint_of};
use crate::limits;
use crate::sql::Sql;
use crate::zones::{self, Fold};

/// A [`Counter`] on PostgreSQL; see the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct PgCounter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    sql: Sql,
    schema: String,
    /// `user@host:port/db`, for messages.
    target: String,
    rollup_chunk: i64,
    batch_retention: Duration,
    flavor: Flavor,
    keys: KeyIds,
}

impl PgCounter {
    /// A counter over `pool`, whose schema the builder has migrated or checked.
    pub(crate) fn new(
        pool: Pool,
        schema: String,
        target: String,
        rollup_chunk: i64,
        batch_retention: Duration,
        flavor: Flavor,
    ) -> PgCounter {
        let inner = Inner {
            pool,
            sql: Sql::new(&schema),
            schema,
            target,
            rollup_chunk,
            batch_retention,
            flavor,
            keys: KeyIds::default(),
        };
        PgCounter {
            inner: Arc::new(inner),
        }
    }

    /// Raw counts moved per rollup transaction (the flavour's default, or the
    /// builder's).
    #[doc(hidden)]
    pub fn rollup_chunk(&self) -> i64 {
        self.inner.rollup_chunk
    }

    /// The flavour the server turned out to be (`PostgreSQL`, `CockroachDB`).
    #[doc(hidden)]
    pub fn flavor(&self) -> &'static str {
        self.inner.flavor.name
    }

    /// Connects to `url` with the default settings, and migrates the schema.
    ///
    /// # Errors
    ///
    /// As [`PgCounterBuilder::connect`].
    pub async fn connect(url: &str) -> Result<PgCounter> {
        PgCounter::builder(url).connect().await
    }

    /// A builder for `url`; see [`PgCounterBuilder::new`].
    pub fn builder(url: &str) -> PgCounterBuilder {
        PgCounterBuilder::new(url)
    }

    /// `user@host:port/database`: the server, for messages (never the password).
    pub fn server(&self) -> &str {
        &self.inner.target
    }

    /// The schema holding the tables (unquoted), for SQL of one's own.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// A connection from the pool, for SQL of one's own.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when no connection can be had.
    pub async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.inner.client().await
    }
}

/// One day's raw counts of a batch: the arrays of its `raw_batches` row.
#[derive(Default)]
struct DayRow {
    key_ids: Vec<i64>,
    buckets: Vec<i64>,
    counts: Vec<i64>,
}

impl Inner {
    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| error::pool(&self.target, e))
    }

    /// The rows of a report over `range` (`$1`, `$2`), then `extra` parameters:
    /// through the flavour's report prelude (stale reads) when `stale_ok`, else
    /// current.
    async fn report(
        &self,
        sql: &str,
        range: DateRange,
        extra: &[&(dyn ToSql + Sync)],
        stale_ok: bool,
    ) -> Result<Vec<tokio_postgres::Row>> {
        let bounds = [range.start().unix_day(), range.end().unix_day()];
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&bounds[0], &bounds[1]];
        params.extend_from_slice(extra);
        let doing = || format!("reading totals of {range}");
        let mut client = self.client().await?;
        match self.flavor.report_prelude.filter(|_| stale_ok) {
            None => client
                .query(sql, &params)
                .await
                .map_err(|e| classify(&doing(), e)),
            Some(prelude) => {
                let tx = client
                    .build_transaction()
                    .read_only(true)
                    .start()
                    .await
                    .map_err(|e| classify(&doing(), e))?;
                tx.batch_execute(prelude)
                    .await
                    .map_err(|e| classify(&doing(), e))?;
                let rows = tx
                    .query(sql, &params)
                    .await
                    .map_err(|e| classify(&doing(), e))?;
                tx.commit().await.map_err(|e| classify(&doing(), e))?;
                Ok(rows)
            }
        }
    }

    async fn daily(&self, range: DateRange, stale_ok: bool) -> Result<Vec<DailyTotal>> {
        let rows = self.report(&self.sql.daily, range, &[], stale_ok).await?;
        let mut totals = rows
            .iter()
            .map(|row| {
                Ok(DailyTotal::new(
                    Day::from_unix_day(row.get(0))?,
                    endpoint_of(row.get(1), row.get(2))?,
                    total_of(row.get(3))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        totals.sort_unstable();
        Ok(totals)
    }

    /// The batch's counts as one `raw_batches` row per day (nearly always one).
    async fn day_rows(
        &self,
        client: &tokio_postgres::Client,
        batch: &Batch,
    ) -> Result<BTreeMap<i64, DayRow>> {
        let keys: Vec<CountKey> = batch.counts().iter().map(|c| c.key).collect();
        let ids = self.keys.ids(client, &self.sql, &keys).await?;
        let mut days = BTreeMap::<i64, DayRow>::new();
        for (count, id) in batch.counts().iter().zip(ids) {
            let row = days.entry(count.day().unix_day()).or_default();
            row.key_ids.push(id);
            row.buckets.push(count.bucket.as_second());
            // Batch::new bounds n by Batch::MAX_COUNT (2^40).
            row.counts.push(count.n as i64);
        }
        Ok(days)
    }
}

#[async_trait]
impl Counter for PgCounter {
    async fn write(&self, batch: &Batch) -> Result<()> {
        let inner = &*self.inner;
        let mut client = inner.client().await?;
        let days = inner.day_rows(&client, batch).await?;
        let id = batch.id();
        let seq = id.seq as i64; // Batch::new bounds seq by i64::MAX
        let digest = batch.digest().0.to_vec();
        let tx = client
            .transaction()
            .await
            .map_err(|e| classify("starting a batch", e))?;
        let claimed = tx
            .execute(&inner.sql.claim_batch, &[&id.writer, &seq, &digest])
            .await
            .map_err(|e| classify("claiming the batch id", e))?;
        if claimed == 0 {
            // Applied before: a retry after an unknown outcome, or a reused id.
            let stored: Option<Vec<u8>> = tx
                .query_one(&inner.sql.batch_digest, &[&id.writer, &seq])
                .await
                .map_err(|e| classify("reading the batch's digest", e))?
                .get(0);
            // No digest: applied before digests were kept; taken as the same batch.
            return match stored {
                Some(stored) if stored != digest => Err(Error::BatchConflict { id }),
                _ => Ok(()),
            };
        }
        for (day, row) in &days {
            let n_counts = row.counts.len() as i64;
            tx.execute(
                &inner.sql.insert_raw,
                &[day, &row.key_ids, &row.buckets, &row.counts, &n_counts],
            )
            .await
            .map_err(|e| classify("inserting counts", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| ambiguous(&format!("committing batch {id}"), e))
    }

    async fn rollup(&self, day: Day) -> Result<Vec<DailyTotal>> {
        let inner = &*self.inner;
        let d = day.unix_day();
        let mut after: i64 = i64::MIN;
        let mut client = inner.client().await?;
        loop {
            let tx = client
                .transaction()
                .await
                .map_err(|e| classify("starting a rollup chunk", e))?;
            let mut fold = Fold::new(&tx, &inner.sql.schema, day).await?;
            let chunk = tx
                .prepare_cached(&inner.sql.rollup_chunk)
                .await
                .map_err(|e| classify("preparing the rollup", e))?;
            let rows = tx
                .query(&chunk, &[&d, &inner.rollup_chunk, &after])
                .await
                .map_err(|e| classify(&format!("rolling up {day}"), e))?;
            let mut last = None;
            for row in &rows {
                last = row.get::<_, Option<i64>>(0);
                let arrays = (
                    row.get::<_, Option<Vec<i64>>>(1),
                    row.get::<_, Option<Vec<i64>>>(2),
                    row.get::<_, Option<Vec<i64>>>(3),
                );
                if let (Some(keys), Some(buckets), Some(counts)) = arrays {
                    fold.add(&keys, &buckets, &counts);
                }
            }
            if last.is_some() {
                fold.write(&tx, &inner.sql, d).await?;
            }
            tx.commit()
                .await
                .map_err(|e| ambiguous(&format!("committing a rollup chunk of {day}"), e))?;
            match last {
                Some(last) => after = last,
                None => break,
            }
        }
        client
            .execute(
                &inner.sql.prune_batches,
                &[&inner.batch_retention.as_secs_f64()],
            )
            .await
            .map_err(|e| classify("pruning old batch ids", e))?;
        // Live totals: exact even while another rollup of the day is mid-chunk.
        inner.daily(DateRange::day(day), false).await
    }

    async fn daily_totals(&self, range: DateRange) -> Result<Vec<DailyTotal>> {
        self.inner.daily(range, true).await
    }

    async fn period_totals(&self, period: Period) -> Result<Vec<PeriodTotal>> {
        let inner = &*self.inner;
        let rows = inner
            .report(&inner.sql.period, period.range(), &[], true)
            .await?;
        let mut totals = rows
            .iter()
            .map(|row| {
                Ok(PeriodTotal::new(
                    endpoint_of(row.get(0), row.get(1))?,
                    total_of(row.get(2))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        totals.sort_unstable();
        Ok(totals)
    }

    async fn totals(&self, query: &TotalsQuery) -> Result<Vec<GroupedTotal>> {
        let inner = &*self.inner;
        if !query.zone.is_utc() || query.groups(Dimension::Hour) {
            let mut client = inner.client().await?;
            return zones::totals(
                &mut client,
                &inner.sql.schema,
                inner.flavor.report_prelude,
                query,
            )
            .await;
        }
        let (sql, params) = inner.sql.totals(query);
        let params: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        let rows = inner.report(&sql, query.range, &params, true).await?;
        crate::sql::totals_of(&rows, |day, total| {
            Ok(total.with_day(Day::from_unix_day(day)?))
        })
    }

    async fn kept(&self) -> Result<Kept> {
        let client = self.inner.client().await?;
        zones::kept(&client, &self.inner.sql.schema).await
    }

    async fn forget_quarters_before(&self, day: Day) -> Result<()> {
        let mut client = self.inner.client().await?;
        zones::forget_quarters_before(&mut client, &self.inner.sql.schema, day).await
    }

    async fn keep_zone_days(&self, zone: &Zone) -> Result<Day> {
        let mut client = self.inner.client().await?;
        zones::keep_zone(&mut client, &self.inner.sql.schema, zone).await
    }

    async fn policy_since(&self, version: u64) -> Result<Option<StoredPolicy>> {
        let client = self.inner.client().await?;
        limits::policy_since(&client, &self.inner.sql.schema, version).await
    }

    async fn replace_policy(&self, expected: u64, policy: &Policy) -> Result<u64> {
        let client = self.inner.client().await?;
        limits::replace_policy(&client, &self.inner.sql.schema, expected, policy).await
    }

    async fn lease(&self, ask: &LeaseAsk<'_>) -> Result<LeaseGrant> {
        let mut client = self.inner.client().await?;
        limits::lease(&mut client, &self.inner.sql.schema, ask).await
    }

    async fn unrolled_days(&self, before: Day) -> Result<Vec<Day>> {
        let client = self.inner.client().await?;
        let rows = client
            .query(&self.inner.sql.unrolled_days, &[&before.unix_day()])
            .await
            .map_err(|e| classify("listing unrolled days", e))?;
        rows.iter()
            .map(|row| Day::from_unix_day(row.get(0)))
            .collect()
    }

    async fn health(&self) -> Result<()> {
        let client = self.inner.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| classify("checking health", e))
            .map(drop)
    }
}

pub(crate) fn total_of(total: i64) -> Result<u64> {
    u64::try_from(total).map_err(|_| {
        Error::invalid(
            "stored total",
            total,
            "totals are never negative: the row was not written by count",
        )
    })
}
