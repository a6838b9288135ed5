//! `PgCounter`: count-core's [`Counter`] contract on PostgreSQL.
//!
//! ```no_run
//! # async fn run() -> count_core::Result<()> {
//! use std::sync::Arc;
//! use count_core::CountQueue;
//! use count_pg::PgCounter;
//!
//! let counter = PgCounter::connect("postgresql://app:secret@db:5432/app?sslmode=verify-full").await?;
//! let queue = CountQueue::builder(Arc::new(counter)).build()?;
//! # Ok(()) }
//! ```
//!
//! Storage (in schema `count` by default; see [`schema::POSTGRES`]):
//! `endpoints` (ids resolved once per endpoint and cached), `raw_counts` (append-only
//! rows, one per endpoint and bucket of a batch: never updated, so writers do not
//! contend), `daily_totals`, and `batches` (the exactly-once record, written in the
//! batch's own transaction, pruned after [`PgCounterBuilder::batch_retention`]).
//! A batch is one transaction of two statements: claim the batch id, insert every
//! count with one `INSERT ... SELECT FROM unnest(...)`. A rollup moves bounded chunks
//! of a day's raw rows into daily totals, one transaction each.
#![warn(missing_docs)]

mod config;
mod error;
pub mod schema;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use count_core::{
    Batch, Counter, DailyTotal, DateRange, Day, Endpoint, Error, Method, Path, Period, PeriodTotal,
    Result,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

pub use config::SslMode;
pub use schema::Migration;
/// The pool and driver, for callers that need their types.
pub use {deadpool_postgres, tokio_postgres};

use config::Target;
use error::{ambiguous, classify};

/// Placeholders of a flavour's migrations and their text: `("{hash_sharded}", " USING HASH")`.
pub type Fills = &'static [(&'static str, &'static str)];

/// What differs between PostgreSQL and a database that speaks its protocol
/// (CockroachDB): the schema, and how reports read. The SQL of writes, rollups and
/// reports is shared.
#[derive(Debug, Clone, Copy)]
pub struct Flavor {
    /// For messages: `PostgreSQL`, `CockroachDB`.
    pub name: &'static str,
    /// The migrations, in order.
    pub migrations: &'static [Migration],
    /// Given the server's `SELECT version()`, the placeholders to fill in the
    /// migrations beyond `{schema}` (`("{hash_sharded}", " USING HASH")`), or an
    /// error if this flavour cannot run on that server.
    pub fills: fn(server_version: &str) -> Result<Fills>,
    /// A statement run first in each report's read-only transaction (CockroachDB's
    /// `SET TRANSACTION AS OF SYSTEM TIME ...`); `None` reads without a transaction.
    pub report_prelude: Option<&'static str>,
}

impl Flavor {
    /// PostgreSQL.
    pub const POSTGRES: Flavor = Flavor {
        name: "PostgreSQL",
        migrations: schema::POSTGRES,
        fills: |_| Ok(&[]),
        report_prelude: None,
    };
}

/// A [`Counter`] on PostgreSQL; see the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct PgCounter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    sql: Sql,
    target: String,
    rollup_chunk: i64,
    batch_retention: Duration,
    report_prelude: Option<&'static str>,
    /// Endpoint ids already resolved: the database is asked once per endpoint.
    endpoint_ids: Mutex<HashMap<Endpoint, i64>>,
}

/// Builds a [`PgCounter`]; every setter says its default.
#[derive(Debug, Clone)]
pub struct PgCounterBuilder {
    url: String,
    pool_size: usize,
    schema: String,
    migrate: bool,
    connect_timeout: Duration,
    rollup_chunk: i64,
    batch_retention: Duration,
    flavor: Flavor,
}

impl PgCounter {
    /// Connects to `url` with the default settings, and migrates the schema.
    pub async fn connect(url: &str) -> Result<PgCounter> {
        PgCounter::builder(url).connect().await
    }

    /// A builder for `url`: `postgresql://user:password@host:port/database?sslmode=...`
    /// (`sslmode`: disable, allow, prefer (default), require, verify-ca, verify-full;
    /// `sslrootcert` names a PEM file of trusted roots).
    pub fn builder(url: &str) -> PgCounterBuilder {
        PgCounterBuilder {
            url: url.to_owned(),
            pool_size: 16,
            schema: "count".into(),
            migrate: true,
            connect_timeout: Duration::from_secs(10),
            rollup_chunk: 50_000,
            batch_retention: Duration::from_secs(7 * 86_400),
            flavor: Flavor::POSTGRES,
        }
    }

    /// The schema's tables, for SQL of one's own.
    pub fn schema(&self) -> &str {
        &self.inner.sql.schema
    }

    /// A connection from the pool, for SQL of one's own.
    pub async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.inner.client().await
    }
}

impl PgCounterBuilder {
    /// Connections in the pool. Default 16.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// The schema holding the tables (an identifier: a-z, 0-9, _). Default `count`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Whether `connect` applies migrations. Default true; when false, `connect`
    /// checks that the schema is there.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// How long opening a connection may take, unless the URL sets
    /// `connect_timeout`. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Raw rows moved per rollup transaction. Default 50,000.
    pub fn rollup_chunk(mut self, rows: i64) -> Self {
        self.rollup_chunk = rows.max(1);
        self
    }

    /// How long applied batch ids are kept: a batch retried after longer would be
    /// applied again. Pruned during rollups. Default 7 days.
    pub fn batch_retention(mut self, retention: Duration) -> Self {
        self.batch_retention = retention;
        self
    }

    /// The database flavour (for count-cockroach). Default [`Flavor::POSTGRES`].
    pub fn flavor(mut self, flavor: Flavor) -> Self {
        self.flavor = flavor;
        self
    }

    /// Opens the pool, checks the server answers, and migrates (or checks) the schema.
    pub async fn connect(self) -> Result<PgCounter> {
        config::check_schema(&self.schema)?;
        if self.pool_size == 0 {
            return Err(Error::invalid("pool_size", 0, "must be at least 1"));
        }
        let target = Target::parse(&self.url, self.connect_timeout)?;
        let tls = target.tls()?;
        let manager = Manager::from_config(
            target.config.clone(),
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(self.connect_timeout))
            .create_timeout(Some(self.connect_timeout))
            .build()
            .map_err(|e| Error::invalid("pool", self.pool_size, e.to_string()))?;
        let display = target.display.clone();
        let mut client = pool.get().await.map_err(|e| error::pool(&display, e))?;
        let sql = Sql::new(&self.schema);
        let version: String = client
            .query_one("SELECT version()", &[])
            .await
            .map_err(|e| classify("asking the server's version", e))?
            .get(0);
        tracing::debug!(server = %version, flavor = self.flavor.name, "count: connected");
        let fills = (self.flavor.fills)(&version)?;
        if self.migrate {
            schema::migrate(&mut client, &self.schema, self.flavor.migrations, fills).await?;
        } else {
            client
                .query_one(&sql.latest_migration, &[])
                .await
                .map_err(|e| {
                    classify(
                        &format!(
                            "schema {} is not migrated (connect with migrate(true))",
                            self.schema
                        ),
                        e,
                    )
                })?;
        }
        drop(client);
        Ok(PgCounter {
            inner: Arc::new(Inner {
                pool,
                sql,
                target: display,
                rollup_chunk: self.rollup_chunk,
                batch_retention: self.batch_retention,
                report_prelude: self.flavor.report_prelude,
                endpoint_ids: Mutex::new(HashMap::new()),
            }),
        })
    }
}

/// The statements, with the schema filled in once.
#[derive(Debug)]
struct Sql {
    schema: String,
    latest_migration: String,
    claim_batch: String,
    insert_counts: String,
    insert_endpoints: String,
    select_endpoints: String,
    rollup_chunk: String,
    prune_batches: String,
    daily: String,
    period: String,
    unrolled_days: String,
}

impl Sql {
    fn new(schema: &str) -> Sql {
        let s = |sql: &str| sql.replace("{s}", schema);
        Sql {
            schema: schema.to_owned(),
            latest_migration: s("SELECT max(version) FROM {s}.count_migrations"),
            claim_batch: s("INSERT INTO {s}.batches (writer, seq) VALUES ($1, $2) ON CONFLICT DO NOTHING"),
            insert_counts: s(
                "INSERT INTO {s}.raw_counts (endpoint_id, day, bucket, n)
                 SELECT e, DATE '1970-01-01' + d::int, to_timestamp(b), n
                 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[]) AS t(e, d, b, n)",
            ),
            insert_endpoints: s(
                "INSERT INTO {s}.endpoints (method, path)
                 SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (method, path) DO NOTHING",
            ),
            select_endpoints: s(
                "SELECT e.id, e.method, e.path FROM {s}.endpoints e
                 JOIN unnest($1::text[], $2::text[]) AS t(m, p) ON e.method = t.m AND e.path = t.p",
            ),
            // One chunk: delete the day's next $2 raw rows after id $3, add their sums
            // to the daily totals. Returns the last id moved and how many rows moved
            // (0: the day is done). No row locks first: a concurrent rollup's DELETE
            // waits on ours and then skips the rows we deleted (RETURNING gives only
            // what a statement deleted itself), so each row is summed exactly once,
            // without writing every row twice (lock, then delete).
            rollup_chunk: s(
                "WITH chunk AS (
                    SELECT max(id) AS last FROM (
                        SELECT id FROM {s}.raw_counts
                        WHERE day = DATE '1970-01-01' + $1::bigint::int AND id > $3
                        ORDER BY id LIMIT $2) c),
                 moved AS (
                    -- A range of the (day, id) index, read in order: no probe per row.
                    DELETE FROM {s}.raw_counts
                    WHERE day = DATE '1970-01-01' + $1::bigint::int AND id > $3
                      AND id <= (SELECT last FROM chunk)
                    RETURNING id, endpoint_id, n),
                 sums AS (SELECT endpoint_id, sum(n)::bigint AS total FROM moved GROUP BY endpoint_id),
                 added AS (
                    INSERT INTO {s}.daily_totals (day, endpoint_id, total)
                    SELECT DATE '1970-01-01' + $1::bigint::int, endpoint_id, total FROM sums
                    ON CONFLICT (day, endpoint_id) DO UPDATE SET total = {s}.daily_totals.total + excluded.total)
                 SELECT coalesce(max(id), $3)::bigint, count(*)::bigint FROM moved",
            ),
            prune_batches: s("DELETE FROM {s}.batches WHERE applied_at < now() - $1::float8 * INTERVAL '1 second'"),
            daily: s(
                "SELECT (t.day - DATE '1970-01-01')::bigint, e.method, e.path, sum(t.total)::bigint
                 FROM (SELECT day, endpoint_id, total FROM {s}.daily_totals
                         WHERE day BETWEEN DATE '1970-01-01' + $1::bigint::int AND DATE '1970-01-01' + $2::bigint::int
                       UNION ALL
                       SELECT day, endpoint_id, n FROM {s}.raw_counts
                         WHERE day BETWEEN DATE '1970-01-01' + $1::bigint::int AND DATE '1970-01-01' + $2::bigint::int) t
                 JOIN {s}.endpoints e ON e.id = t.endpoint_id
                 GROUP BY t.day, e.method, e.path",
            ),
            period: s(
                "SELECT e.method, e.path, sum(t.total)::bigint
                 FROM (SELECT endpoint_id, total FROM {s}.daily_totals
                         WHERE day BETWEEN DATE '1970-01-01' + $1::bigint::int AND DATE '1970-01-01' + $2::bigint::int
                       UNION ALL
                       SELECT endpoint_id, n FROM {s}.raw_counts
                         WHERE day BETWEEN DATE '1970-01-01' + $1::bigint::int AND DATE '1970-01-01' + $2::bigint::int) t
                 JOIN {s}.endpoints e ON e.id = t.endpoint_id
                 GROUP BY e.method, e.path",
            ),
            unrolled_days: s(
                "SELECT DISTINCT (day - DATE '1970-01-01')::bigint AS d FROM {s}.raw_counts
                 WHERE day < DATE '1970-01-01' + $1::bigint::int ORDER BY d",
            ),
        }
    }
}

impl Inner {
    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| error::pool(&self.target, e))
    }

    /// The ids of `endpoints`, from the cache or the database (inserting new ones).
    async fn endpoint_ids(&self, endpoints: &[Endpoint]) -> Result<HashMap<Endpoint, i64>> {
        let mut ids = HashMap::with_capacity(endpoints.len());
        let mut missing = Vec::new();
        {
            let cache = self.endpoint_ids.lock().unwrap_or_else(|e| e.into_inner());
            for &endpoint in endpoints {
                match cache.get(&endpoint) {
                    Some(&id) => {
                        ids.insert(endpoint, id);
                    }
                    None if !ids.contains_key(&endpoint) => missing.push(endpoint),
                    None => {}
                }
            }
        }
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(ids);
        }
        let methods: Vec<&str> = missing.iter().map(|e| e.method.as_str()).collect();
        let paths: Vec<&str> = missing.iter().map(|e| e.path.as_str()).collect();
        let client = self.client().await?;
        client
            .execute(&self.sql.insert_endpoints, &[&methods, &paths])
            .await
            .map_err(|e| classify("adding endpoints", e))?;
        let rows = client
            .query(&self.sql.select_endpoints, &[&methods, &paths])
            .await
            .map_err(|e| classify("reading endpoint ids", e))?;
        let mut cache = self.endpoint_ids.lock().unwrap_or_else(|e| e.into_inner());
        for row in rows {
            let endpoint = endpoint_of(row.get(1), row.get(2))?;
            let id: i64 = row.get(0);
            cache.insert(endpoint, id);
            ids.insert(endpoint, id);
        }
        if let Some(lost) = missing.iter().find(|e| !ids.contains_key(e)) {
            return Err(Error::unavailable(format!(
                "endpoint {lost} has no id after insert"
            )));
        }
        Ok(ids)
    }

    /// The rows of a report over `range`: through the flavour's report prelude
    /// (stale reads) when `stale_ok`, else current.
    async fn report(
        &self,
        sql: &str,
        range: DateRange,
        stale_ok: bool,
    ) -> Result<Vec<tokio_postgres::Row>> {
        let bounds = [unix_day(range.start()), unix_day(range.end())];
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&bounds[0], &bounds[1]];
        let doing = || format!("reading totals of {range}");
        let mut client = self.client().await?;
        match self.report_prelude.filter(|_| stale_ok) {
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

    async fn totals(&self, range: DateRange, stale_ok: bool) -> Result<Vec<DailyTotal>> {
        let rows = self.report(&self.sql.daily, range, stale_ok).await?;
        let mut totals = rows
            .iter()
            .map(|row| {
                Ok(DailyTotal {
                    day: Day::from_unix_day(row.get(0))?,
                    endpoint: endpoint_of(row.get(1), row.get(2))?,
                    total: total_of(row.get(3))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        totals.sort_unstable();
        Ok(totals)
    }
}

#[async_trait]
impl Counter for PgCounter {
    async fn write(&self, batch: &Batch) -> Result<()> {
        let inner = &*self.inner;
        let endpoints: Vec<Endpoint> = batch.counts().iter().map(|c| c.endpoint).collect();
        let ids = inner.endpoint_ids(&endpoints).await?;
        let mut endpoint_ids = Vec::with_capacity(endpoints.len());
        let mut days = Vec::with_capacity(endpoints.len());
        let mut buckets = Vec::with_capacity(endpoints.len());
        let mut counts = Vec::with_capacity(endpoints.len());
        for count in batch.counts() {
            endpoint_ids.push(ids[&count.endpoint]);
            days.push(unix_day(count.day()));
            buckets.push(count.bucket.as_second());
            counts.push(count.n as i64); // Batch::new checked n <= i64::MAX
        }
        let id = batch.id();
        let seq = i64::try_from(id.seq)
            .map_err(|_| Error::invalid("batch seq", id.seq, "must fit a BIGINT"))?;

        let mut client = inner.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| classify("starting a batch", e))?;
        let claimed = tx
            .execute(&inner.sql.claim_batch, &[&id.writer, &seq])
            .await
            .map_err(|e| classify("claiming the batch id", e))?;
        if claimed == 0 {
            // Applied before: a retry after an unknown outcome.
            return Ok(());
        }
        tx.execute(
            &inner.sql.insert_counts,
            &[&endpoint_ids, &days, &buckets, &counts],
        )
        .await
        .map_err(|e| classify("inserting counts", e))?;
        tx.commit()
            .await
            .map_err(|e| ambiguous(&format!("committing batch {id}"), e))
    }

    async fn rollup(&self, day: Day) -> Result<Vec<DailyTotal>> {
        let inner = &*self.inner;
        let d = unix_day(day);
        let mut after: i64 = 0;
        let mut client = inner.client().await?;
        loop {
            let tx = client
                .transaction()
                .await
                .map_err(|e| classify("starting a rollup chunk", e))?;
            let chunk = tx
                .prepare_cached(&inner.sql.rollup_chunk)
                .await
                .map_err(|e| classify("preparing the rollup", e))?;
            let row = tx
                .query_one(&chunk, &[&d, &inner.rollup_chunk, &after])
                .await
                .map_err(|e| classify(&format!("rolling up {day}"), e))?;
            tx.commit()
                .await
                .map_err(|e| ambiguous(&format!("committing a rollup chunk of {day}"), e))?;
            let moved: i64 = row.get(1);
            if moved == 0 {
                break;
            }
            after = row.get(0);
        }
        client
            .execute(
                &inner.sql.prune_batches,
                &[&inner.batch_retention.as_secs_f64()],
            )
            .await
            .map_err(|e| classify("pruning old batch ids", e))?;
        // Live totals: exact even while another rollup of the day is mid-chunk.
        inner.totals(DateRange::day(day), false).await
    }

    async fn daily_totals(&self, range: DateRange) -> Result<Vec<DailyTotal>> {
        self.inner.totals(range, true).await
    }

    async fn period_totals(&self, period: Period) -> Result<Vec<PeriodTotal>> {
        let rows = self
            .inner
            .report(&self.inner.sql.period, period.range(), true)
            .await?;
        let mut totals = rows
            .iter()
            .map(|row| {
                Ok(PeriodTotal {
                    endpoint: endpoint_of(row.get(0), row.get(1))?,
                    total: total_of(row.get(2))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        totals.sort_unstable();
        Ok(totals)
    }

    async fn unrolled_days(&self, before: Day) -> Result<Vec<Day>> {
        let client = self.inner.client().await?;
        let rows = client
            .query(&self.inner.sql.unrolled_days, &[&unix_day(before)])
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

/// Days since 1970-01-01. Sent as `bigint` and narrowed in SQL (`$1::bigint::int`):
/// `date + int` is what both PostgreSQL and CockroachDB define, and CockroachDB's
/// `INT` is 8 bytes on the wire.
fn unix_day(day: Day) -> i64 {
    day.unix_day()
}

fn endpoint_of(method: &str, path: &str) -> Result<Endpoint> {
    Ok(Endpoint::new(method.parse::<Method>()?, Path::new(path)?))
}

fn total_of(total: i64) -> Result<u64> {
    u64::try_from(total)
        .map_err(|_| Error::unavailable(format!("negative total {total} in the database")))
}
