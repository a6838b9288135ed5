//! The whole server on one port, over an opened backend: start the rollups and the health
//! watch, put the count.v1 service, health, reflection and the HTTP routes into one
//! router behind one bearer check and the limits, serve plaintext or TLS until told
//! to stop, then let calls in progress finish within a grace period.
//!
//! One port for both protocols: hyper's automatic connection builder takes HTTP/1.1
//! and HTTP/2 (prior knowledge, or ALPN over TLS) on one listener (see
//! [`connection`](crate::connection)), and tonic's gRPC services are axum routes, so
//! the gRPC services and the HTTP routes are merged into one router.
//!
//! Stopping, in this order, all in the server's own task: the grace period's
//! deadline is set; the listener is closed; gRPC health turns NOT_SERVING; every
//! connection is told to finish (HTTP/2 GOAWAY); at the deadline those still open are
//! cut.

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use count_core::{Counter, Error, RollupScheduler};
use count_grpc::CountV1Handler;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tonic::service::Routes;

use crate::auth::{self, Expected};
use crate::config::ServerConfig;
use crate::connection::{ConnectionFigures, Connections};
use crate::health::{BackendHealth, HealthWatch, WriteHealth, WriteWatched};
use crate::http::{self, Api};
use crate::incoming::Acceptor;
use crate::limits::{self, Limits};
use crate::metrics::{Figures, Metrics};
use count::Opened;

/// Serves `opened` (see [`ServerConfig::open`]) on `listener` until `shutdown`
/// completes, then stops accepting, lets calls in progress finish (at most the grace
/// period), stops the rollups, empties a SQLite log and returns.
///
/// # Errors
///
/// [`Error::InvalidInput`] for a setting that cannot work (a limit of zero, an
/// empty token, a TLS file that cannot be read, naming it).
pub async fn serve(
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
    if opened.is_durable() {
        tracing::info!("count-server: counting into {}", opened.description());
    } else {
        tracing::warn!(
            "count-server: counting in memory ({}); every count is lost when the process stops",
            opened.description()
        );
    }
    // Counts are written through the watch, so that health follows the writes.
    let writes = Arc::new(WriteHealth::new(config.unready_after_failing_writes));
    let counter: Arc<dyn Counter> = Arc::new(WriteWatched::new(opened.counter(), writes.clone()));
    let handler = CountV1Handler::builder(counter.clone())
        .add_timeout(config.add_timeout)
        .build();
    for zone in &config.zone_days {
        let from = counter.keep_zone_days(zone).await?;
        tracing::info!(%zone, %from, "count-server: keeping this zone's days");
    }
    tracing::info!(
        tzdb = count_core::tzdb_version(),
        "count-server: time zones from the IANA database built in"
    );
    let rollups = config
        .rollup
        .then(|| RollupScheduler::new(counter.clone()).hour_retention(config.hour_retention));
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

    let limits = Arc::new(Limits::new(
        config.max_concurrent_calls,
        config.max_add_streams,
        config.request_read_timeout,
        config.max_message_bytes,
    ));
    let connection_figures = Arc::new(ConnectionFigures::default());
    let (usage, usage_task) = crate::usage::UsageWatch::spawn(counter.clone());
    let api = Arc::new(Api {
        counter: counter.clone(),
        metrics: Metrics::new(Figures {
            handler: handler.clone(),
            rollups,
            backend: opened.clone(),
            health,
            writes: writes.clone(),
            limits: limits.clone(),
            connections: connection_figures.clone(),
            usage,
        }),
        backend_timeout: config.backend_timeout,
        health_timeout: config.health_timeout(),
        writes,
    });
    let app = router(&config, handler.clone(), health_service, api, limits)?;
    let connections = Arc::new(Connections::new(&config, app, tls, connection_figures));

    let address = listener.local_addr().ok();
    let shown = address.map_or_else(|| "?".to_owned(), |a| a.to_string());
    tracing::info!(
        address = %shown,
        tls = config.tls.is_some(),
        auth = config.token.is_some(),
        rollup = config.rollup,
        "count-server: serving gRPC and HTTP"
    );
    if config.token.is_none() && address.is_some_and(|a| !a.ip().is_loopback()) {
        tracing::warn!(
            address = %shown,
            "count-server: serving without a token on an address other machines may \
             reach: anyone who can connect can write counts and read every report; set \
             --token (COUNT_TOKEN), or listen on 127.0.0.1"
        );
    }

    let mut acceptor = Acceptor::new(listener, config.max_connections);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = acceptor.accept() => connections.serve(accepted),
        }
    }

    // Whatever the steps below take, calls in progress have `grace` from the signal:
    // one held stream (a health Watch, a client that never closes its Add) must not
    // keep the server up for ever.
    let grace = config.shutdown_grace;
    let deadline = Instant::now() + grace;
    let open = acceptor.open();
    // Closing the listener: new connections are refused from now on.
    drop(acceptor);
    tracing::info!(
        connections = open,
        "count-server: stopping: no new connections; calls in progress have {} s to finish",
        grace.as_secs_f64()
    );
    watch.stop(&reporter).await;
    connections.stop(deadline).await;
    // A feed (an Add stream without a deadline) whose connection was closed still
    // writes what it had received, within the add timeout.
    if tokio::time::timeout(config.add_timeout, handler.wait_for_feeds())
        .await
        .is_err()
    {
        tracing::warn!(
            "count-server: Add feeds still writing after the {} s add timeout: stopping anyway",
            config.add_timeout.as_secs_f64()
        );
    }

    usage_task.abort();
    if let Some(task) = rollup_task {
        task.stop().await;
    }
    if let Err(e) = opened.stop().await {
        tracing::warn!(error = %e, "count-server: stopping: the SQLite log was not emptied");
    }
    tracing::info!(stats = ?handler.stats(), "count-server: stopped");
    Ok(())
}

/// The gRPC services and the HTTP routes as one router: the bearer check in front of
/// everything but the page, `/healthz` and unknown paths, the limits behind it, the
/// security headers on every HTTP answer.
fn router(
    config: &ServerConfig,
    handler: CountV1Handler,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    api: Arc<Api>,
    limits: Arc<Limits>,
) -> count_core::Result<axum::Router> {
    let max = config.max_message_bytes;
    // Reports can be large (a day of 50,000 endpoints is over 4 MiB): their own
    // limit, requests keep theirs.
    let count = handler
        .into_service()
        .max_decoding_message_size(max)
        .max_encoding_message_size(config.max_response_bytes);
    let health = health
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(count_grpc::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let descriptors = |e: tonic_reflection::server::Error| {
        Error::invalid("descriptors", "count.v1", e.to_string())
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(descriptors)?
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    // The older name, which many tools still ask for (grpcio-reflection, older
    // grpcurl).
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(descriptors)?
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let mut grpc = Routes::builder();
    grpc.add_service(count)
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    Ok(grpc
        .routes()
        .into_axum_router()
        .merge(http::guarded(api))
        .layer(middleware::from_fn_with_state(limits, limits::limit))
        .layer(middleware::from_fn_with_state(
            Expected::new(config.token.as_deref()),
            auth::require_token,
        ))
        // Merged after the layers: no token needed, no limit. Neither router has a
        // fallback of its own (merging two would panic); the one below replaces
        // tonic's.
        .merge(http::open())
        .fallback(not_found)
        .layer(middleware::map_response(http::headers::add)))
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
