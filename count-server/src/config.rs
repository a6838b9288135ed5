//! [`ServerConfig`]: everything the server can be told, each setting with its default.

use std::path::PathBuf;
use std::time::Duration;

use count_core::Error;

use count::{Migrations, Opened};

use crate::backend::{self, Backend, Location};
use crate::tls::TlsFiles;

/// Every setting's default, written once: [`ServerConfig::new`] and the flags of the
/// `count-server` binary take them from here.
pub mod defaults {
    use std::time::Duration;

    /// `--listen`.
    pub const LISTEN: &str = "0.0.0.0:7777";
    /// `--max-message-bytes`.
    pub const MAX_MESSAGE_BYTES: usize = 4 << 20;
    /// `--max-response-bytes`.
    pub const MAX_RESPONSE_BYTES: usize = 64 << 20;
    /// `--max-streams-per-connection`.
    pub const MAX_STREAMS_PER_CONNECTION: u32 = 128;
    /// `--max-concurrent-calls`.
    pub const MAX_CONCURRENT_CALLS: usize = 1024;
    /// `--max-add-streams`.
    pub const MAX_ADD_STREAMS: usize = 1024;
    /// `--max-connections`.
    pub const MAX_CONNECTIONS: usize = 4096;
    /// `--header-read-timeout`.
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// `--request-read-timeout`.
    pub const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// `--unready-after-failing-writes`.
    pub const UNREADY_AFTER_FAILING_WRITES: Duration = Duration::from_secs(10);
    /// `--shutdown-grace`.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
    /// `--add-timeout`.
    pub const ADD_TIMEOUT: Duration = Duration::from_secs(30);
    /// `--hour-retention-days`.
    pub const HOUR_RETENTION_DAYS: u64 = 90;
    /// How often the backend's health is checked.
    pub const HEALTH_CHECK_EVERY: Duration = Duration::from_secs(5);
    /// How long a backend call of the HTTP API may take.
    pub const BACKEND_TIMEOUT: Duration = Duration::from_secs(30);
}

/// Everything [`serve`](crate::serve) can be told. Start from [`ServerConfig::new`]
/// (every default) and change what differs with the `with_` setters; each names its
/// flag, and the settings table in the [crate docs](crate) says what it does and its
/// default.
///
/// ```
/// use std::time::Duration;
/// use count_server::ServerConfig;
///
/// let config = ServerConfig::new()
///     .with_db_url("postgresql://count@db/count")
///     .with_token("s3cret")
///     .with_shutdown_grace(Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    pub(crate) db_url: Option<String>,
    pub(crate) db_path: Option<PathBuf>,
    pub(crate) backend: Backend,
    pub(crate) token: Option<String>,
    pub(crate) rollup: bool,
    pub(crate) max_message_bytes: usize,
    pub(crate) max_response_bytes: usize,
    pub(crate) max_streams_per_connection: u32,
    pub(crate) max_concurrent_calls: usize,
    pub(crate) max_add_streams: usize,
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) request_read_timeout: Duration,
    pub(crate) unready_after_failing_writes: Duration,
    pub(crate) tls: Option<TlsFiles>,
    pub(crate) shutdown_grace: Duration,
    pub(crate) add_timeout: Duration,
    pub(crate) hour_retention: Duration,
    pub(crate) zone_days: Vec<count_core::Zone>,
    pub(crate) health_check_every: Duration,
    pub(crate) backend_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig::new()
    }
}

impl ServerConfig {
    /// Every setting at its default.
    pub fn new() -> ServerConfig {
        ServerConfig {
            db_url: None,
            db_path: None,
            backend: Backend::Auto,
            token: None,
            rollup: true,
            max_message_bytes: defaults::MAX_MESSAGE_BYTES,
            max_response_bytes: defaults::MAX_RESPONSE_BYTES,
            max_streams_per_connection: defaults::MAX_STREAMS_PER_CONNECTION,
            max_concurrent_calls: defaults::MAX_CONCURRENT_CALLS,
            max_add_streams: defaults::MAX_ADD_STREAMS,
            max_connections: defaults::MAX_CONNECTIONS,
            header_read_timeout: defaults::HEADER_READ_TIMEOUT,
            request_read_timeout: defaults::REQUEST_READ_TIMEOUT,
            unready_after_failing_writes: defaults::UNREADY_AFTER_FAILING_WRITES,
            tls: None,
            shutdown_grace: defaults::SHUTDOWN_GRACE,
            add_timeout: defaults::ADD_TIMEOUT,
            hour_retention: Duration::from_secs(defaults::HOUR_RETENTION_DAYS * 86_400),
            zone_days: Vec::new(),
            health_check_every: defaults::HEALTH_CHECK_EVERY,
            backend_timeout: defaults::BACKEND_TIMEOUT,
        }
    }

    /// `--db-url`: see the settings table in the [crate docs](crate).
    pub fn with_db_url(mut self, url: impl Into<String>) -> Self {
        self.db_url = Some(url.into()).filter(|url| !url.is_empty());
        self
    }

    /// `--db-path`: see the settings table in the [crate docs](crate).
    pub fn with_db_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.db_path = Some(path.into());
        self
    }

    /// `--backend`: see the settings table in the [crate docs](crate).
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// `--token`: see the settings table in the [crate docs](crate).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// `--no-rollup (inverted)`: see the settings table in the [crate docs](crate).
    pub fn with_rollup(mut self, rollup: bool) -> Self {
        self.rollup = rollup;
        self
    }

    /// `--max-message-bytes`: see the settings table in the [crate docs](crate).
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// `--max-response-bytes`: see the settings table in the [crate docs](crate).
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// `--max-streams-per-connection`: see the settings table in the [crate docs](crate).
    pub fn with_max_streams_per_connection(mut self, streams: u32) -> Self {
        self.max_streams_per_connection = streams;
        self
    }

    /// `--max-concurrent-calls`: see the settings table in the [crate docs](crate).
    pub fn with_max_concurrent_calls(mut self, calls: usize) -> Self {
        self.max_concurrent_calls = calls;
        self
    }

    /// `--max-add-streams`: see the settings table in the [crate docs](crate).
    pub fn with_max_add_streams(mut self, streams: usize) -> Self {
        self.max_add_streams = streams;
        self
    }

    /// `--max-connections`: see the settings table in the [crate docs](crate).
    pub fn with_max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// `--header-read-timeout`: see the settings table in the [crate docs](crate).
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// `--request-read-timeout`: see the settings table in the [crate docs](crate).
    pub fn with_request_read_timeout(mut self, timeout: Duration) -> Self {
        self.request_read_timeout = timeout;
        self
    }

    /// `--unready-after-failing-writes`: see the settings table in the [crate docs](crate).
    pub fn with_unready_after_failing_writes(mut self, after: Duration) -> Self {
        self.unready_after_failing_writes = after;
        self
    }

    /// `--tls-cert and --tls-key`: see the settings table in the [crate docs](crate).
    pub fn with_tls(mut self, files: TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// `--hour-retention-days`: see the settings table in the [crate docs](crate).
    pub fn with_hour_retention(mut self, retention: Duration) -> Self {
        self.hour_retention = retention;
        self
    }

    /// `--keep-zone-days`: see the settings table in the [crate docs](crate).
    pub fn with_zone_days(mut self, zones: Vec<count_core::Zone>) -> Self {
        self.zone_days = zones;
        self
    }

    /// `--shutdown-grace`: see the settings table in the [crate docs](crate).
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// `--add-timeout`: see the settings table in the [crate docs](crate).
    pub fn with_add_timeout(mut self, timeout: Duration) -> Self {
        self.add_timeout = timeout;
        self
    }

    /// How often the backend's health is checked for the gRPC health service and
    /// `count_backend_up`. Default 5 s.
    pub fn with_health_check_every(mut self, every: Duration) -> Self {
        self.health_check_every = every;
        self
    }

    /// How long a backend call made for the HTTP API (`/api/v1/totals`) may take
    /// before it is answered 503. Health checks (`/readyz`, the gRPC health service)
    /// wait at most 5 s, or this if it is shorter: a probe must answer before its
    /// caller gives up. Default 30 s.
    pub fn with_backend_timeout(mut self, timeout: Duration) -> Self {
        self.backend_timeout = timeout;
        self
    }

    /// The database URL the server opens: the one given, else the SQLite file (the
    /// rule of [`Location::choose`], which the operator commands follow too).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when both a URL and a file are given, when the SQLite
    /// file's path is not UTF-8, or when a backend other than SQLite or memory is
    /// named without a URL.
    pub fn database_url(&self) -> count_core::Result<String> {
        let location = Location::choose(self.db_url.as_deref(), self.db_path.as_deref())?;
        match (location, self.backend) {
            (Location::Url(url), _) => Ok(url),
            (Location::DefaultFile(_), Backend::Memory) => Ok("memory:".to_owned()),
            (
                Location::File(path) | Location::DefaultFile(path),
                Backend::Auto | Backend::Sqlite,
            ) => backend::sqlite_url(&path),
            (_, other) => Err(Error::invalid(
                "backend",
                other.as_str(),
                "needs a database URL (DB_URL, --db-url)",
            )),
        }
    }

    /// Checks the settings and the TLS files, then opens the backend they name and
    /// migrates its schema: what [`serve`](crate::serve) needs, in the order that
    /// stops a bad setting before the database is touched.
    ///
    /// # Errors
    ///
    /// A setting that cannot work (as [`serve`](crate::serve) says), as
    /// [`database_url`](Self::database_url), a TLS file that cannot be read; the
    /// backend's error when it cannot be opened.
    pub async fn open(&self) -> count_core::Result<Opened> {
        self.check()?;
        if let Some(files) = &self.tls {
            files.acceptor()?;
        }
        backend::open(&self.database_url()?, self.backend, Migrations::Apply).await
    }

    /// How long a health check of the backend may take.
    pub(crate) fn health_timeout(&self) -> Duration {
        self.backend_timeout.min(Duration::from_secs(5))
    }

    /// Checks the settings make sense.
    pub(crate) fn check(&self) -> count_core::Result<()> {
        if self.token.as_deref() == Some("") {
            return Err(Error::invalid(
                "token",
                "",
                "is empty: an empty token (COUNT_TOKEN=, --token '') would serve without \
                 auth; give a token, or none at all to serve without one",
            ));
        }
        for (field, value) in [
            ("max message bytes", self.max_message_bytes),
            ("max response bytes", self.max_response_bytes),
        ] {
            if value < 1024 {
                return Err(Error::invalid(field, value, "must be at least 1024"));
            }
        }
        if !(1..=crate::connection::MAX_STREAMS_PER_CONNECTION)
            .contains(&self.max_streams_per_connection)
        {
            return Err(Error::invalid(
                "max streams per connection",
                self.max_streams_per_connection,
                format!(
                    "must be from 1 to {}: every stream's receive window, filled with the \
                     smallest gRPC messages, must fit HTTP/2's small-frame allowance of a \
                     connection",
                    crate::connection::MAX_STREAMS_PER_CONNECTION
                ),
            ));
        }
        for (field, value) in [
            ("max concurrent calls", self.max_concurrent_calls),
            ("max add streams", self.max_add_streams),
            ("max connections", self.max_connections),
        ] {
            if value == 0 {
                return Err(Error::invalid(field, 0, "must be at least 1"));
            }
        }
        for (field, value) in [
            ("add timeout", self.add_timeout),
            ("health check interval", self.health_check_every),
            ("backend timeout", self.backend_timeout),
            ("header read timeout", self.header_read_timeout),
            ("request read timeout", self.request_read_timeout),
        ] {
            if value.is_zero() {
                return Err(Error::invalid(field, value, "must be more than zero"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_url_the_server_counts_into_a_sqlite_file() {
        let config = ServerConfig::new().with_db_path("/data/c.db");
        assert_eq!(config.database_url().unwrap(), "sqlite:///data/c.db");
        let memory = ServerConfig::new().with_backend(Backend::Memory);
        assert_eq!(memory.database_url().unwrap(), "memory:");
        let url = ServerConfig::new().with_db_url("postgres://h/d");
        assert_eq!(url.database_url().unwrap(), "postgres://h/d");
        // A URL and a file: which one was meant cannot be told, so neither is used.
        let both = ServerConfig::new()
            .with_db_url("postgres://h/d")
            .with_db_path("/x")
            .database_url()
            .unwrap_err()
            .to_string();
        assert!(both.contains("not both"), "{both}");
        let err = ServerConfig::new()
            .with_backend(Backend::Postgres)
            .database_url()
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a database URL"), "{err}");
        assert!(ServerConfig::new().with_db_url("").db_url.is_none());
    }

    #[test]
    fn an_empty_token_is_refused_not_taken_for_no_auth() {
        let error = ServerConfig::new()
            .with_token("")
            .check()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("token") && error.contains("is empty"),
            "{error}"
        );
        assert!(ServerConfig::new().with_token("t").check().is_ok());
    }

    #[test]
    fn limits_that_would_stop_every_call_are_refused() {
        assert!(ServerConfig::new().check().is_ok());
        for bad in [
            ServerConfig::new().with_max_concurrent_calls(0),
            ServerConfig::new().with_max_streams_per_connection(0),
            ServerConfig::new().with_max_message_bytes(10),
            ServerConfig::new().with_max_response_bytes(10),
            ServerConfig::new().with_max_add_streams(0),
            ServerConfig::new().with_max_connections(0),
            ServerConfig::new()
                .with_max_streams_per_connection(crate::connection::MAX_STREAMS_PER_CONNECTION + 1),
            ServerConfig::new().with_add_timeout(Duration::ZERO),
            ServerConfig::new().with_header_read_timeout(Duration::ZERO),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
