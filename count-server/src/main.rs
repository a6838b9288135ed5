//! `count-server`: reads its flags (or their environment variables), installs the
//! logger and serves. The server itself is the `count_server` library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser};
use count_server::backend::Backend;
use count_server::logging::{self, LogFormat};
use count_server::{ServerConfig, TlsFiles, defaults};

/// Counts API requests per endpoint, subject and status, durably: count.v1 over gRPC,
/// with a dashboard, a JSON/CSV API and metrics over HTTP on the same port.
#[derive(Debug, Parser)]
#[command(version, after_help = count_server::cli::HELP)]
struct Args {
    /// An operator command; without one the server serves.
    #[command(subcommand)]
    command: Option<count_server::cli::Command>,

    /// Address of the one port serving gRPC and HTTP.
    #[arg(long, env = "COUNT_LISTEN", default_value = defaults::LISTEN)]
    listen: SocketAddr,

    /// Database URL: sqlite:path/to/count.db, postgresql://user:password@host:port/db?sslmode=...,
    /// or memory: (counts lost when the server stops). Without one the server counts
    /// into the SQLite file at --db-path. Not with --db-path: naming both is refused.
    #[arg(long, env = "DB_URL", hide_env_values = true)]
    db_url: Option<String>,

    /// The SQLite file counted into when no DB_URL is given (not with one) [default:
    /// $XDG_DATA_HOME/count/count.db, else ~/.local/share/count/count.db, else
    /// ./count.db].
    #[arg(long, env = "COUNT_DB_PATH")]
    db_path: Option<PathBuf>,

    /// Which database DB_URL is: auto goes by the URL, and tells CockroachDB from
    /// PostgreSQL by its version(); memory counts in memory without a URL.
    #[arg(long, env = "COUNT_BACKEND", value_enum, default_value_t = Backend::Auto)]
    backend: Backend,

    /// Require `authorization: Bearer <token>` on gRPC calls, /api/*, /metrics and
    /// /readyz (the dashboard page asks for it). An empty token is refused.
    #[arg(long, env = "COUNT_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Do not roll up finished days in the background (COUNT_NO_ROLLUP: true/false,
    /// 1/0, yes/no, on/off).
    #[arg(
        long,
        env = "COUNT_NO_ROLLUP",
        action = ArgAction::SetTrue,
        value_parser = BoolishValueParser::new()
    )]
    no_rollup: bool,

    /// Largest gRPC request message accepted, in bytes.
    #[arg(long, env = "COUNT_MAX_MESSAGE_BYTES", default_value_t = defaults::MAX_MESSAGE_BYTES)]
    max_message_bytes: usize,

    /// Largest count.v1 answer sent, in bytes (a report of a day of 50,000 endpoints
    /// is over 4 MiB).
    #[arg(long, env = "COUNT_MAX_RESPONSE_BYTES", default_value_t = defaults::MAX_RESPONSE_BYTES)]
    max_response_bytes: usize,

    /// Concurrent HTTP/2 streams per connection (at most 326: every stream's window
    /// must fit HTTP/2's small-frame allowance).
    #[arg(long, env = "COUNT_MAX_STREAMS", default_value_t = defaults::MAX_STREAMS_PER_CONNECTION)]
    max_streams_per_connection: u32,

    /// count.v1 calls other than Add, and /api/* requests, in progress over all
    /// connections; more wait for a free slot. Probes, /metrics, the page and
    /// reflection are outside this limit.
    #[arg(long, env = "COUNT_MAX_CALLS", default_value_t = defaults::MAX_CONCURRENT_CALLS)]
    max_concurrent_calls: usize,

    /// Add streams open at once over all connections; one more is refused
    /// RESOURCE_EXHAUSTED.
    #[arg(long, env = "COUNT_MAX_ADD_STREAMS", default_value_t = defaults::MAX_ADD_STREAMS)]
    max_add_streams: usize,

    /// Connections open at once; more wait in the listen backlog.
    #[arg(long, env = "COUNT_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS)]
    max_connections: usize,

    /// Seconds a new connection may take to send its first request (TLS handshake
    /// included), and an HTTP/1.1 connection each request head; it is closed after.
    #[arg(long, env = "COUNT_HEADER_READ_TIMEOUT", default_value_t = defaults::HEADER_READ_TIMEOUT.as_secs())]
    header_read_timeout: u64,

    /// Seconds a call other than Add may go without sending any of its request body
    /// (before the first part, between parts); its body is read whole before it
    /// takes a --max-concurrent-calls slot, and it is ended (DEADLINE_EXCEEDED, HTTP
    /// 408) when the body stops coming.
    #[arg(long, env = "COUNT_REQUEST_READ_TIMEOUT", default_value_t = defaults::REQUEST_READ_TIMEOUT.as_secs())]
    request_read_timeout: u64,

    /// Seconds every write may fail, none succeeding, before /readyz answers 503 and
    /// gRPC health NOT_SERVING (ready again at the next write that succeeds, or once
    /// none has failed for as long).
    #[arg(long, env = "COUNT_UNREADY_AFTER_FAILING_WRITES", default_value_t = defaults::UNREADY_AFTER_FAILING_WRITES.as_secs())]
    unready_after_failing_writes: u64,

    /// Serve TLS (HTTP/2 and HTTP/1.1) with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "COUNT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "COUNT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Seconds calls in progress may take after SIGTERM or SIGINT before they are cut.
    #[arg(long, env = "COUNT_SHUTDOWN_GRACE", default_value_t = defaults::SHUTDOWN_GRACE.as_secs())]
    shutdown_grace: u64,

    /// Seconds an Add call may take when its client sets no deadline.
    #[arg(long, env = "COUNT_ADD_TIMEOUT", default_value_t = defaults::ADD_TIMEOUT.as_secs())]
    add_timeout: u64,

    /// Days counts are kept by the quarter hour (for reports by the hour, and by the
    /// day in zones whose days are not kept); days are kept forever.
    #[arg(long, env = "COUNT_HOUR_RETENTION_DAYS", default_value_t = defaults::HOUR_RETENTION_DAYS)]
    hour_retention_days: u64,

    /// IANA time zones whose days are kept forever beside UTC's (comma separated, as
    /// Europe/Zurich,Asia/Kolkata), so reports by the day in them reach past the hour
    /// retention.
    #[arg(
        long,
        env = "COUNT_KEEP_ZONE_DAYS",
        value_delimiter = ',',
        value_name = "ZONE,..."
    )]
    keep_zone_days: Vec<count_core::Zone>,

    /// Log lines as text (coloured only on a terminal; NO_COLOR turns colours off) or
    /// JSON, one object a line.
    #[arg(long, env = "COUNT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

impl Args {
    fn config(self) -> ServerConfig {
        let mut config = ServerConfig::new()
            .with_backend(self.backend)
            .with_rollup(!self.no_rollup)
            .with_max_message_bytes(self.max_message_bytes)
            .with_max_response_bytes(self.max_response_bytes)
            .with_max_streams_per_connection(self.max_streams_per_connection)
            .with_max_concurrent_calls(self.max_concurrent_calls)
            .with_max_add_streams(self.max_add_streams)
            .with_max_connections(self.max_connections)
            .with_header_read_timeout(Duration::from_secs(self.header_read_timeout))
            .with_request_read_timeout(Duration::from_secs(self.request_read_timeout))
            .with_unready_after_failing_writes(Duration::from_secs(
                self.unready_after_failing_writes,
            ))
            .with_shutdown_grace(Duration::from_secs(self.shutdown_grace))
            .with_add_timeout(Duration::from_secs(self.add_timeout))
            .with_hour_retention(Duration::from_secs(
                self.hour_retention_days.saturating_mul(86_400),
            ))
            .with_zone_days(self.keep_zone_days);
        if let Some(url) = self.db_url {
            config = config.with_db_url(url);
        }
        if let Some(path) = self.db_path {
            config = config.with_db_path(path);
        }
        if let Some(token) = self.token {
            config = config.with_token(token);
        }
        if let Some((cert, key)) = self.tls_cert.zip(self.tls_key) {
            config = config.with_tls(TlsFiles::new(cert, key));
        }
        config
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = Args::parse();
    if let Some(command) = args.command.take() {
        // Commands print their results on stdout: only warnings are logged (stderr).
        logging::init(args.log_format, "warn");
        return count_server::cli::run(command).await;
    }
    logging::init(args.log_format, "info");
    // Before anything else: a SIGTERM from now on stops the server cleanly.
    let stop = count_server::termination();
    let listen = args.listen;
    let config = args.config();
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!("count-server: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = async {
        let opened = config.open().await?;
        count_server::serve(config, opened, listener, stop).await
    };
    match served.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("count-server: {e}");
            ExitCode::FAILURE
        }
    }
}
