//! The whole server on one port: open the backend, start the rollups and the health
//! watch, put the count.v1 service, health, reflection and the HTTP routes into one
//! router behind one bearer check, serve plaintext or TLS until told to stop, then
//! let calls in progress finish within a grace period.
//!
//! One port for both protocols: tonic's server with `accept_http1(true)` takes
//! HTTP/1.1 and HTTP/2 (prior knowledge, or ALPN over TLS) on one listener, and its
//! routes are an axum router, so the gRPC services and the HTTP routes are merged into
//! one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use count_core::{Counter, Error, RollupScheduler};
use count_grpc::CountV1Handler;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::server::HealthReporter;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::auth::{self, Expected};
use crate::backend::{self, Migrations, Opened};
use crate::config::ServerConfig;
use crate::health::{BackendHealth, HealthWatch};
use crate::http::{self, Api};
use crate::incoming;
use crate::metrics::{Figures, Metrics};

/// After cutting the connections, how long to wait for the server to notice.
const CUT_WAIT: Duration = Duration::from_secs(2);

/// Opens the backend `config` names, serves on `listener` until `shutdown`
/// completes, then stops accepting, lets calls in progress finish (at most the
/// grace period), stops the rollups and returns.
///
/// # Errors
///
/// [`Error::InvalidInput`] for a setting that cannot work (a limit of zero, a TLS
/// file that cannot be read, naming it; a database URL of no known kind); the
/// backend's error when it cannot be opened; [`Error::Unavailable`] when serving
/// fails.
pub async fn serve(
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> count_core::Result<()> {
    config.check()?;
    // TLS first: a bad certificate stops the server before the database is touched.
    if let Some(files) = &config.tls {
        files.acceptor()?;
    }
    let opened = backend::open(&config.database_url()?, config.backend, Migrations::Apply).await?;
    serve_backend(config, opened, listener, shutdown).await
}

/// [`serve`] over a counter made by the caller (a test's, a wrapper's).
///
/// # Errors
///
/// As [`serve`], less the backend's.
pub async fn serve_counter(
    config: ServerConfig,
    counter: Arc<dyn Counter>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> count_core::Result<()> {
    let opened = Opened::custom(counter, "a counter given by the caller");
    serve_backend(config, opened, listener, shutdown).await
}

/// [`serve`] over a backend already opened (see [`backend::open`]).
///
/// # Errors
///
/// As [`serve`], less the backend's.
pub async fn serve_backend(
    config: ServerConfig,
    opened: Opened,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> count_core::Result<()> {
    config.check()?;
    let tls = config
        .tls
        .as_ref()
        .map(|files| files.acceptor())
        .transpose()?;
    match opened.warning() {
        Some(warning) => tracing::warn!("count-server: {warning}"),
        None => tracing::info!("count-server: counting into {}", opened.description),
    }
    let counter = opened.counter.clone();
    let handler = CountV1Handler::builder(counter.clone())
        .add_timeout(config.add_timeout)
        .build();
    let rollups = config.rollup.then(|| RollupScheduler::new(counter.clone()));
    let rollup_task = rollups.clone().map(RollupScheduler::spawn);

    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Arc::new(BackendHealth::default());
    let watch = HealthWatch::start(
        counter.clone(),
        reporter.clone(),
        health.clone(),
        config.health_check_every,
        config.health_timeout(),
    )
    .await;

    let api = Arc::new(Api {
        counter: counter.clone(),
        metrics: Metrics::new(Figures {
            handler: handler.clone(),
            rollups,
            backend: opened,
            health,
        }),
        backend_timeout: config.backend_timeout,
        health_timeout: config.health_timeout(),
    });
    let app = router(&config, handler.clone(), health_service, api)?;

    let address = listener
        .local_addr()
        .map_or_else(|e| e.to_string(), |a| a.to_string());
    tracing::info!(
        %address,
        tls = tls.is_some(),
        auth = config.token.is_some(),
        rollup = config.rollup,
        "count-server: serving gRPC and HTTP"
    );
    let server = Server::builder()
        // HTTP/1.1 beside HTTP/2 on the one port (hyper-util's auto builder sniffs
        // the HTTP/2 preface).
        .accept_http1(true)
        // Per HTTP/2 connection; `None` would mean unlimited.
        .max_concurrent_streams(Some(config.max_streams_per_connection))
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        // Over all connections and both protocols. A permit is held until the
        // response's head is ready: for the whole of an Add stream (answered at its
        // end), not for the body of a streamed answer.
        .layer(GlobalConcurrencyLimitLayer::new(
            config.max_concurrent_calls,
        ))
        .add_routes(Routes::from(app));

    let stop_accepting = CancellationToken::new();
    let cut = CancellationToken::new();
    let connections = incoming::incoming(listener, tls, stop_accepting.clone(), cut.clone());
    let grace = config.shutdown_grace;
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = stop_signal(shutdown, watch, reporter, grace, stop_accepting, stopping);
    let serving = server.serve_with_incoming_shutdown(connections, signal);
    tokio::pin!(serving);
    // After the stop signal, calls in progress have `grace` to finish: one held
    // stream (a health Watch, a client that never closes its Add) must not keep the
    // server up for ever.
    let deadline = async move {
        if stopped.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let served = tokio::select! {
        served = &mut serving => served,
        () = deadline => {
            tracing::warn!(
                "count-server: the {} s grace period is over: cutting the connections still open",
                grace.as_secs_f64()
            );
            cut.cancel();
            // A cut connection ends at its next read or write; one that does neither
            // is given up on after a moment.
            tokio::time::timeout(CUT_WAIT, &mut serving).await.unwrap_or(Ok(()))
        }
    };

    if let Some(task) = rollup_task {
        task.stop().await;
    }
    tracing::info!(stats = ?handler.stats(), "count-server: stopped");
    served.map_err(|e| Error::Unavailable {
        message: format!("serving: {e}"),
        source: Some(Arc::new(e)),
    })
}

/// The gRPC services and the HTTP routes as one router, the bearer check in front of
/// everything but the page, `/healthz` and unknown paths.
fn router(
    config: &ServerConfig,
    handler: CountV1Handler,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    api: Arc<Api>,
) -> count_core::Result<axum::Router> {
    let max = config.max_message_bytes;
    let count = handler
        .into_service()
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let health = health
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(count_grpc::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::invalid("descriptors", "count.v1", e.to_string()))?
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let mut grpc = Routes::builder();
    grpc.add_service(count)
        .add_service(health)
        .add_service(reflection);
    Ok(grpc
        .routes()
        .into_axum_router()
        .merge(http::guarded(api))
        .layer(middleware::from_fn_with_state(
            Expected::new(config.token.as_deref()),
            auth::require_token,
        ))
        // Merged after the layer: no token needed. Neither router has a fallback of
        // its own (merging two would panic); the one below replaces tonic's.
        .merge(http::open())
        .fallback(not_found))
}

/// An unknown path: UNIMPLEMENTED for a gRPC call (as tonic answers), 404 otherwise.
async fn not_found(request: Request) -> Response {
    if auth::is_grpc(&request) {
        tonic::Status::unimplemented(format!("no such method: {}", request.uri().path()))
            .into_http::<Body>()
    } else {
        (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": "no such page" })),
        )
            .into_response()
    }
}

/// Waits for `shutdown`, then marks the services NOT_SERVING and starts the grace
/// period.
async fn stop_signal(
    shutdown: impl Future<Output = ()>,
    watch: HealthWatch,
    reporter: HealthReporter,
    grace: Duration,
    stop_accepting: CancellationToken,
    stopping: tokio::sync::oneshot::Sender<()>,
) {
    shutdown.await;
    tracing::info!(
        "count-server: stopping: no new connections; calls in progress have {} s to finish",
        grace.as_secs_f64()
    );
    stop_accepting.cancel();
    watch.stop(&reporter).await;
    let _ = stopping.send(());
}

/// A future that resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed
/// when this is called, not when the future is first polled, so a signal that comes
/// while the backend is still being opened is not lost (nor kills the process).
///
/// # Panics
///
/// Outside a tokio runtime, or when the process cannot install the handlers.
pub fn termination() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).expect("a SIGTERM handler");
        let mut interrupt = signal(SignalKind::interrupt()).expect("a SIGINT handler");
        async move {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
