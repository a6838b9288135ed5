//! [`ServerConfig`]: everything the server can be told, each setting with its default.

use std::path::PathBuf;
use std::time::Duration;

use count_core::Error;

use crate::backend::{self, Backend};
use crate::tls::TlsFiles;

/// Everything [`serve`](crate::serve) can be told. Start from [`ServerConfig::new`]
/// (every default) and change what differs with the `with_` setters; each says its
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
    pub(crate) max_streams_per_connection: u32,
    pub(crate) max_concurrent_calls: usize,
    pub(crate) tls: Option<TlsFiles>,
    pub(crate) shutdown_grace: Duration,
    pub(crate) add_timeout: Duration,
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
            max_message_bytes: 4 << 20,
            max_streams_per_connection: 128,
            max_concurrent_calls: 1024,
            tls: None,
            shutdown_grace: Duration::from_secs(20),
            add_timeout: Duration::from_secs(30),
            health_check_every: Duration::from_secs(5),
            backend_timeout: Duration::from_secs(30),
        }
    }

    /// The database URL (`sqlite:path`, `postgresql://...`, `memory:`; see
    /// [`backend::open`]). Default none: a SQLite file at
    /// [`with_db_path`](Self::with_db_path). An empty URL counts as none.
    pub fn with_db_url(mut self, url: impl Into<String>) -> Self {
        self.db_url = Some(url.into()).filter(|url| !url.is_empty());
        self
    }

    /// The SQLite file counted into when no database URL is given. Default
    /// [`backend::default_db_path`].
    pub fn with_db_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.db_path = Some(path.into());
        self
    }

    /// Which backend the URL is taken for. Default [`Backend::Auto`].
    pub fn with_backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// Require `authorization: Bearer <token>` on every gRPC call and on `/api/*`,
    /// `/metrics` and `/readyz`. Default none (no auth). An empty token counts as none.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into()).filter(|token| !token.is_empty());
        self
    }

    /// Whether finished days are rolled up in the background. Default true.
    pub fn with_rollup(mut self, rollup: bool) -> Self {
        self.rollup = rollup;
        self
    }

    /// The largest gRPC message accepted or sent, in bytes. Default 4 MiB.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Concurrent HTTP/2 streams (calls) per connection. Default 128.
    pub fn with_max_streams_per_connection(mut self, streams: u32) -> Self {
        self.max_streams_per_connection = streams;
        self
    }

    /// Calls and HTTP requests in progress over all connections; more wait for a
    /// free slot. Default 1024.
    pub fn with_max_concurrent_calls(mut self, calls: usize) -> Self {
        self.max_concurrent_calls = calls;
        self
    }

    /// Serve TLS (HTTP/2 and HTTP/1.1) with these files. Default none: plaintext.
    pub fn with_tls(mut self, files: TlsFiles) -> Self {
        self.tls = Some(files);
        self
    }

    /// After the stop signal, how long calls in progress may still take before the
    /// server stops anyway. Default 20 s.
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The deadline of an `Add` call whose client sets none. Default 30 s.
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

    /// The database URL the server opens: the one given, else the SQLite file.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the SQLite file's path is not UTF-8, or when a
    /// backend other than SQLite or memory is named without a URL.
    pub fn database_url(&self) -> count_core::Result<String> {
        if let Some(url) = &self.db_url {
            return Ok(url.clone());
        }
        match self.backend {
            Backend::Memory => Ok("memory:".to_owned()),
            Backend::Auto | Backend::Sqlite => {
                let path = self
                    .db_path
                    .clone()
                    .unwrap_or_else(backend::default_db_path);
                backend::sqlite_url(&path)
            }
            other => Err(Error::invalid(
                "backend",
                other.as_str(),
                "needs a database URL (DB_URL, --db-url)",
            )),
        }
    }

    /// How long a health check of the backend may take.
    pub(crate) fn health_timeout(&self) -> Duration {
        self.backend_timeout.min(Duration::from_secs(5))
    }

    /// Checks the limits make sense.
    pub(crate) fn check(&self) -> count_core::Result<()> {
        if self.max_message_bytes < 1024 {
            return Err(Error::invalid(
                "max message bytes",
                self.max_message_bytes,
                "must be at least 1024",
            ));
        }
        if self.max_streams_per_connection == 0 {
            return Err(Error::invalid(
                "max streams per connection",
                0,
                "must be at least 1",
            ));
        }
        if self.max_concurrent_calls == 0 {
            return Err(Error::invalid(
                "max concurrent calls",
                0,
                "must be at least 1",
            ));
        }
        for (field, value) in [
            ("add timeout", self.add_timeout),
            ("health check interval", self.health_check_every),
            ("backend timeout", self.backend_timeout),
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
        let url = ServerConfig::new()
            .with_db_url("postgres://h/d")
            .with_db_path("/x");
        assert_eq!(url.database_url().unwrap(), "postgres://h/d");
        let err = ServerConfig::new()
            .with_backend(Backend::Postgres)
            .database_url()
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs a database URL"), "{err}");
        assert!(ServerConfig::new().with_db_url("").db_url.is_none());
        assert!(ServerConfig::new().with_token("").token.is_none());
    }

    #[test]
    fn limits_that_would_stop_every_call_are_refused() {
        assert!(ServerConfig::new().check().is_ok());
        for bad in [
            ServerConfig::new().with_max_concurrent_calls(0),
            ServerConfig::new().with_max_streams_per_connection(0),
            ServerConfig::new().with_max_message_bytes(10),
            ServerConfig::new().with_add_timeout(Duration::ZERO),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
