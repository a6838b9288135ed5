//! `count-server`: the count.v1 gRPC server. Configuration and wiring only; the
//! server itself is `count_grpc::server`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use count_grpc::server::{self, Backend, ServerConfig};
use tracing_subscriber::EnvFilter;

/// Counts API requests per endpoint, durably, over gRPC (count.v1).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "COUNT_LISTEN", default_value = "0.0.0.0:7777")]
    listen: SocketAddr,

    /// Database URL (postgresql://user:password@host:port/db?sslmode=...). Without
    /// one the server counts in memory, and every count is lost when it stops.
    #[arg(long, env = "DB_URL", hide_env_values = true)]
    db_url: Option<String>,

    /// Which database DB_URL is: auto detects CockroachDB from its version().
    #[arg(long, env = "COUNT_BACKEND", value_enum, default_value_t = Backend::Auto)]
    backend: Backend,

    /// Require `authorization: Bearer <token>` on every call.
    #[arg(long, env = "COUNT_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Do not roll up finished days in the background.
    #[arg(long, env = "COUNT_NO_ROLLUP")]
    no_rollup: bool,

    /// Largest message accepted or sent, in bytes.
    #[arg(long, env = "COUNT_MAX_MESSAGE_BYTES", default_value_t = 4 << 20)]
    max_message_bytes: usize,

    /// Concurrent streams per connection.
    #[arg(long, env = "COUNT_MAX_STREAMS", default_value_t = 128)]
    max_streams_per_connection: u32,

    /// Calls in progress over all connections; more wait for a free slot.
    #[arg(long, env = "COUNT_MAX_CALLS", default_value_t = 1024)]
    max_concurrent_calls: usize,

    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "COUNT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "COUNT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = ServerConfig {
        db_url: args.db_url.filter(|url| !url.is_empty()),
        backend: args.backend,
        token: args.token.filter(|token| !token.is_empty()),
        rollup: !args.no_rollup,
        max_message_bytes: args.max_message_bytes,
        max_streams_per_connection: args.max_streams_per_connection,
        max_concurrent_calls: args.max_concurrent_calls,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| server::TlsFiles { cert, key }),
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("count-server: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    match server::serve(config, listener, server::termination()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("count-server: {e}");
            ExitCode::FAILURE
        }
    }
}
