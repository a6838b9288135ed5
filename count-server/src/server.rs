//! The whole `count-server`, as a library: choose the backend, start the queue, the
//! rollup scheduler, health and reflection, serve until told to stop, flush. The
//! binary only reads its configuration and calls [`serve`]; tests call it in-process.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use count_cockroach::CockroachCounter;
use count_core::{CountQueue, Counter, Error, RollupScheduler};
use count_memory::MemoryCounter;
use count_pg::PgCounter;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::auth::BearerAuth;
use crate::service::CountServer;

/// Which database a `DB_URL` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Backend {
    /// CockroachDB if the server's `version()` says so, else PostgreSQL.
    #[default]
    Auto,
    /// PostgreSQL (count-pg).
    Postgres,
    /// CockroachDB (count-cockroach).
    Cockroach,
}

/// Everything the server can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The database; `None` runs on the in-memory backend (counts lost on exit).
    pub db_url: Option<String>,
    /// Which database `db_url` is.
    pub backend: Backend,
    /// When set, every call must carry `authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Whether to roll up finished days in the background.
    pub rollup: bool,
    /// The largest message accepted or sent.
    pub max_message_bytes: usize,
    /// Concurrent streams per connection.
    pub max_streams_per_connection: u32,
    /// Calls in progress over all connections; more wait.
    pub max_concurrent_calls: usize,
    /// Serve TLS with this certificate chain and key (PEM); `None`: plaintext.
    pub tls: Option<TlsFiles>,
}

/// A certificate chain and its private key, PEM.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// The private key.
    pub key: std::path::PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            db_url: None,
            backend: Backend::Auto,
            token: None,
            rollup: true,
            max_message_bytes: 4 << 20,
            max_streams_per_connection: 128,
            max_concurrent_calls: 1024,
            tls: None,
        }
    }
}

/// The fully qualified name of the service, as health and reflection know it.
pub const SERVICE_NAME: &str = "count.v1.CountService";

/// Connects the counter `config` names.
pub async fn connect_backend(config: &ServerConfig) -> count_core::Result<Arc<dyn Counter>> {
    let Some(url) = config.db_url.as_deref() else {
        tracing::warn!(
            "count-server: no DB_URL: counting in memory; every count is lost when the server stops"
        );
        return Ok(Arc::new(MemoryCounter::new()));
    };
    let counter: Arc<dyn Counter> = match config.backend {
        Backend::Postgres => Arc::new(PgCounter::connect(url).await?),
        Backend::Cockroach => Arc::new(CockroachCounter::connect(url).await?),
        Backend::Auto => match CockroachCounter::connect(url).await {
            Ok(counter) => Arc::new(counter),
            // Not CockroachDB: the flavour refused the server by its version.
            Err(Error::InvalidInput {
                field: "server", ..
            }) => Arc::new(PgCounter::connect(url).await?),
            Err(e) => return Err(e),
        },
    };
    Ok(counter)
}

/// Serves `config` on `listener` until `shutdown` completes; then stops accepting,
/// lets calls in progress finish, flushes the queue and returns.
pub async fn serve(
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> count_core::Result<()> {
    let counter = connect_backend(&config).await?;
    serve_counter(config, counter, listener, shutdown).await
}

/// [`serve`] over a counter already made.
pub async fn serve_counter(
    config: ServerConfig,
    counter: Arc<dyn Counter>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> count_core::Result<()> {
    let address: Option<SocketAddr> = listener.local_addr().ok();
    // TLS first: a bad certificate stops the server before anything is started.
    let mut server = Server::builder();
    if let Some(files) = &config.tls {
        server = server.tls_config(tls_config(files)?).map_err(|e| {
            Error::invalid(
                "TLS certificate",
                files.cert.display().to_string(),
                e.to_string(),
            )
        })?;
    }
    let queue = CountQueue::builder(counter.clone()).build()?;
    let rollups = config
        .rollup
        .then(|| RollupScheduler::new(counter.clone()).spawn());

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status(SERVICE_NAME, ServingStatus::Serving)
        .await;
    health_reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::invalid("descriptors", "count.v1", e.to_string()))?;
    let service = CountServer::new(counter, queue.clone())
        .into_service()
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);

    tracing::info!(address = ?address, tls = config.tls.is_some(), auth = config.token.is_some(), rollup = config.rollup, "count-server: serving");
    let served = server
        .max_concurrent_streams(Some(config.max_streams_per_connection))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            config.max_concurrent_calls,
        ))
        .layer(BearerAuth::layer(config.token.as_deref()))
        .add_service(service)
        .add_service(health)
        .add_service(reflection)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            shutdown.await;
            tracing::info!("count-server: stopping: no new calls; finishing those in progress");
            health_reporter
                .set_service_status(SERVICE_NAME, ServingStatus::NotServing)
                .await;
        })
        .await;

    if let Some(rollups) = rollups {
        rollups.stop().await;
    }
    // Counts of streams that ended in error are still queued: write them.
    let flushed = queue.shutdown().await;
    let stats = queue.stats();
    tracing::info!(?stats, "count-server: stopped");
    served.map_err(|e| Error::Unavailable {
        message: format!("serving gRPC: {e}"),
        source: Some(Arc::new(e)),
    })?;
    flushed
}

fn tls_config(files: &TlsFiles) -> count_core::Result<ServerTlsConfig> {
    let read = |field: &'static str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| Error::invalid(field, path.display().to_string(), e.to_string()))
    };
    let cert = read("TLS certificate", &files.cert)?;
    let key = read("TLS key", &files.key)?;
    Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
