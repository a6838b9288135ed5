//! [`PgCounterBuilder`]: the settings, and `connect` (pool, TLS, server check,
//! migrations).

use std::time::Duration;

use count_core::{Error, Result};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use crate::config::{self, Target};
use crate::counter::PgCounter;
use crate::error::{self, classify};
use crate::flavor::Flavor;
use crate::schema;

/// Builds a [`PgCounter`]; every setter says its default.
#[derive(Debug, Clone)]
pub struct PgCounterBuilder {
    url: String,
    pool_size: usize,
    schema: String,
    migrate: bool,
    connect_timeout: Duration,
    rollup_chunk: Option<i64>,
    batch_retention: Duration,
    /// The flavours the server may be, in order: the first whose `fills` accepts its
    /// `version()` is taken.
    flavors: Vec<Flavor>,
}

impl PgCounterBuilder {
    /// A builder for `url`: `postgresql://user:password@host:port/database?sslmode=...`
    /// (`sslmode`: disable, allow, prefer (default), require, verify-ca, verify-full;
    /// `sslrootcert` names a PEM file of trusted roots, else the system's roots are
    /// trusted).
    pub fn new(url: &str) -> PgCounterBuilder {
        PgCounterBuilder {
            url: url.to_owned(),
            pool_size: 16,
            schema: "count".into(),
            migrate: true,
            connect_timeout: Duration::from_secs(10),
            rollup_chunk: None,
            batch_retention: Duration::from_secs(7 * 86_400),
            flavors: vec![Flavor::POSTGRES],
        }
    }

    /// Connections in the pool. Default 16.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// The schema holding the tables: 1 to 63 of a-z, 0-9 and _, not starting with a
    /// digit (reserved words such as `user` work: every identifier is quoted).
    /// Default `count`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Whether `connect` applies migrations. Default true; when false, `connect`
    /// checks that the schema is at exactly this version's migrations and says what
    /// is missing.
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

    /// Raw counts moved per rollup transaction (at least one written batch's worth).
    /// Default 1,000,000 (the flavour's: CockroachDB's is 10,000).
    pub fn rollup_chunk(mut self, counts: i64) -> Self {
        self.rollup_chunk = Some(counts.max(1));
        self
    }

    /// How long applied batch ids are kept: a batch retried after longer would be
    /// applied again. Pruned during rollups. Default 7 days.
    pub fn batch_retention(mut self, retention: Duration) -> Self {
        self.batch_retention = retention;
        self
    }

    /// The database flavour: count-cockroach's hook. Default [`Flavor::POSTGRES`].
    #[doc(hidden)]
    pub fn flavor(mut self, flavor: Flavor) -> Self {
        self.flavors = vec![flavor];
        self
    }

    /// A flavour taken when the ones before it refuse the server's `version()`:
    /// how one connection tells CockroachDB from PostgreSQL.
    #[doc(hidden)]
    pub fn or_flavor(mut self, flavor: Flavor) -> Self {
        self.flavors.push(flavor);
        self
    }

    /// Opens the pool, checks the server answers, and migrates (or checks) the schema.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad URL, schema name, pool size, `sslrootcert`,
    /// a server of another flavour, or a schema not at this version (with
    /// `migrate(false)`: what is missing; either way: a schema written by a newer
    /// version of count); [`Error::Unavailable`] when the server cannot be reached;
    /// [`Error::Backend`] when it refuses (a wrong password, no such database).
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
        let version: String = client
            .query_one("SELECT version()", &[])
            .await
            .map_err(|e| classify("asking the server's version", e))?
            .get(0);
        let (flavor, fills) = choose(&self.flavors, &version)?;
        tracing::debug!(server = %version, flavor = flavor.name, "count: connected");
        if self.migrate {
            schema::migrate(&mut client, &self.schema, flavor.migrations, fills).await?;
        } else {
            schema::check_version(&client, &self.schema, flavor.migrations).await?;
        }
        drop(client);
        Ok(PgCounter::new(
            pool,
            self.schema,
            display,
            self.rollup_chunk.unwrap_or(flavor.rollup_chunk),
            self.batch_retention,
            flavor,
        ))
    }
}

/// The first of `flavors` that accepts the server's `version()`, and its fills; when
/// none does, the first one's refusal.
fn choose(flavors: &[Flavor], version: &str) -> Result<(Flavor, crate::flavor::Fills)> {
    let mut refusal = None;
    for flavor in flavors {
        match (flavor.fills)(version) {
            Ok(fills) => return Ok((*flavor, fills)),
            Err(e) => refusal = refusal.or(Some(e)),
        }
    }
    Err(refusal.unwrap_or_else(|| Error::invalid("flavor", version, "no flavour was given")))
}
