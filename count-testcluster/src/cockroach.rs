//! CockroachDB's behaviours that matter to a client, emulated on a database of a
//! [`TestCluster`] (no CockroachDB binary can run here):
//!
//! - every transaction at `SERIALIZABLE` (`default_transaction_isolation`);
//! - transaction restarts: a deferred constraint trigger fails chosen transactions
//!   at COMMIT, after all their work (CockroachDB's costliest case), with SQLSTATE
//!   40001 and its `restart transaction: ...` text, decided by a sequence (which a
//!   rollback does not undo) so "the first N" and "30%" are exact;
//! - `unique_rowid()`: unique, not ordered by commit, and above 2^53;
//! - no session advisory locks: `pg_advisory_lock` fails with 42883 "unknown
//!   function" and `pg_try_advisory_lock` always returns true;
//! - `version()` names CockroachDB, so clients detect it as they would;
//! - through [`WireProxy`]: connections dropped around COMMIT, 40003 "result is
//!   ambiguous" replies, and `options=--cluster=<name>` taken out of the startup.
//!
//! The shadows live in schema `crdb_emulation`, first on the database's
//! `search_path` (before `pg_catalog`, so they hide its functions of the same name).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::TestCluster;
use crate::wire_proxy::WireProxy;

/// The schema of the shadow functions and the fault switches.
pub const SHADOW_SCHEMA: &str = "crdb_emulation";

const SETUP: &str = r#"
CREATE SCHEMA crdb_emulation;
-- Fault switches and counters: sequences, so rolled-back transactions keep them.
CREATE SEQUENCE crdb_emulation.attempts;
CREATE SEQUENCE crdb_emulation.injected;
CREATE SEQUENCE crdb_emulation.restart_percent MINVALUE 0 START 0;
CREATE SEQUENCE crdb_emulation.fail_until MINVALUE 0 START 0;
-- 2^40 << 15 = 2^55: every id is above 2^53, as CockroachDB's are.
CREATE SEQUENCE crdb_emulation.rowids START 1099511627776;

CREATE FUNCTION crdb_emulation.unique_rowid() RETURNS bigint LANGUAGE sql VOLATILE AS
  $$ SELECT nextval('crdb_emulation.rowids') * 32768 + floor(random() * 4)::bigint $$;

CREATE FUNCTION crdb_emulation.pg_advisory_lock(bigint) RETURNS void LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'unknown function: pg_advisory_lock()' USING ERRCODE = '42883'; END $$;
CREATE FUNCTION crdb_emulation.pg_try_advisory_lock(bigint) RETURNS boolean LANGUAGE sql AS
  $$ SELECT true $$;

CREATE FUNCTION crdb_emulation.version() RETURNS text LANGUAGE sql STABLE AS
  $$ SELECT 'CockroachDB CCL v23.2.0 (emulated on ' || pg_catalog.version() || ')' $$;

-- At COMMIT (a deferred constraint trigger), once per transaction that changed a
-- row of an armed table (remembered in a transaction-local setting), draw the next
-- attempt number; fail the transaction if it is among the first `fail_until`, or
-- for `restart_percent` of attempts (61 is coprime with 100, so any 100 consecutive
-- attempts hit each residue once: the rate is exact, the failures spread out).
CREATE FUNCTION crdb_emulation.maybe_restart() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  attempt bigint;
BEGIN
  IF current_setting('crdb_emulation.decided', true) = 'yes' THEN
    RETURN NULL;
  END IF;
  PERFORM set_config('crdb_emulation.decided', 'yes', true);
  attempt := nextval('crdb_emulation.attempts');
  IF attempt <= (SELECT last_value FROM crdb_emulation.fail_until)
     OR (attempt * 61) % 100 < (SELECT last_value FROM crdb_emulation.restart_percent) THEN
    PERFORM nextval('crdb_emulation.injected');
    RAISE EXCEPTION 'restart transaction: TransactionRetryWithProtoRefreshError: WriteTooOldError: write for key /Table/%/1 at timestamp % too old (emulated)',
      TG_TABLE_NAME, clock_timestamp()
      USING ERRCODE = '40001';
  END IF;
  RETURN NULL;
END $$;
"#;

/// A database set up as CockroachDB's stand-in, with a [`WireProxy`] before it.
#[derive(Debug)]
pub struct CockroachEmulation {
    cluster: Arc<TestCluster>,
    database: String,
    proxy: WireProxy,
}

impl CockroachEmulation {
    /// A fresh database of `cluster`, set up as the module docs say, and a proxy to
    /// it. Needs a tokio runtime (for the proxy); panics on setup failure (test code).
    pub async fn start(cluster: Arc<TestCluster>, prefix: &str) -> CockroachEmulation {
        let url = cluster.fresh_database(prefix);
        let database = url
            .rsplit('/')
            .next()
            .and_then(|tail| tail.split('?').next())
            .expect("a database in the URL")
            .to_owned();
        cluster
            .psql(&database, SETUP)
            .unwrap_or_else(|e| panic!("setting up the emulation: {e}"));
        cluster
            .psql(
                &database,
                &format!(
                    "ALTER DATABASE {database} SET search_path = crdb_emulation, pg_catalog, \"$user\", public;
                     ALTER DATABASE {database} SET default_transaction_isolation = 'serializable';"
                ),
            )
            .unwrap_or_else(|e| panic!("configuring the emulation: {e}"));
        let port = cluster
            .port()
            .expect("the emulation needs a cluster started here (not COUNT_TEST_DATABASE_URL)");
        let proxy = WireProxy::start(SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .expect("starting the wire proxy");
        CockroachEmulation {
            cluster,
            database,
            proxy,
        }
    }

    /// The URL through the proxy, in the form CockroachDB users write, with
    /// `options=--cluster%3D<name>` (the proxy takes it out, as CockroachDB's does).
    pub fn url(&self) -> String {
        format!(
            "postgresql://postgres:{}@127.0.0.1:{}/{}?sslmode=disable&options=--cluster%3Demulated-cluster",
            crate::PASSWORD,
            self.proxy.port(),
            self.database
        )
    }

    /// The proxy, to break COMMITs.
    pub fn proxy(&self) -> &WireProxy {
        &self.proxy
    }

    /// Runs SQL on the database (through `psql`, outside the proxy).
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        self.cluster.psql(&self.database, sql)
    }

    /// Arms the restart trigger on every table of `schema` (call after the schema
    /// is migrated; again after new tables). Transactions that change their rows
    /// then go, at COMMIT, through [`restart_percent`](Self::restart_percent) and
    /// [`fail_next`](Self::fail_next).
    pub fn inject_restarts(&self, schema: &str) {
        self.psql(&format!(
            "DO $$ DECLARE t record; BEGIN
               FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = '{schema}' LOOP
                 EXECUTE format('DROP TRIGGER IF EXISTS crdb_restart ON {schema}.%I', t.tablename);
                 EXECUTE format('CREATE CONSTRAINT TRIGGER crdb_restart AFTER INSERT OR UPDATE OR DELETE ON {schema}.%I
                                 DEFERRABLE INITIALLY DEFERRED
                                 FOR EACH ROW EXECUTE FUNCTION crdb_emulation.maybe_restart()', t.tablename);
               END LOOP; END $$"
        ))
        .unwrap_or_else(|e| panic!("arming restarts on {schema}: {e}"));
    }

    /// Fails `percent` of writing transactions (on armed tables) with 40001.
    pub fn restart_percent(&self, percent: u32) {
        self.psql(&format!(
            "SELECT setval('crdb_emulation.restart_percent', {})",
            percent.min(100)
        ))
        .expect("setting the restart rate");
    }

    /// Fails the next `n` writing transactions (on armed tables) with 40001.
    pub fn fail_next(&self, n: u64) {
        self.psql(&format!(
            "SELECT setval('crdb_emulation.fail_until',
               (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM crdb_emulation.attempts) + {n})"
        ))
        .expect("arming restarts");
    }

    /// 40001s injected so far.
    pub fn restarts_injected(&self) -> u64 {
        self.sequence_used("injected")
    }

    /// Writing transactions that reached the restart trigger so far.
    pub fn attempts(&self) -> u64 {
        self.sequence_used("attempts")
    }

    fn sequence_used(&self, name: &str) -> u64 {
        self.psql(&format!(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM crdb_emulation.{name}"
        ))
        .expect("reading a counter")
        .parse()
        .expect("a number")
    }
}
