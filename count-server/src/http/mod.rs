//! The HTTP side of the port: the dashboard page, the totals API, `/metrics`,
//! `/healthz` and `/readyz`. Routes only; the server puts them beside gRPC. A method
//! other than GET (or HEAD) is answered 405 with a JSON error.
//!
//! | route | token | answers |
//! |---|---|---|
//! | `GET /` | no | the dashboard page (it asks for the token and sends it itself) |
//! | `GET /healthz` | no | 200 `ok` while the process serves (no backend call) |
//! | `GET /readyz` | yes | 200 when the backend answers its health check in time and writes are not failing (see `health.rs`), else 503 with the kind of failure (and, for failing writes, the reason) |
//! | `GET /metrics` | yes | the server's figures, Prometheus text format 0.0.4 |
//! | `GET /api/v1/totals` | yes | totals as JSON or CSV (the parameters in the crate docs) |
//! | `/api/v1/policy`, `/limits`, `/plans`, `/subjects/{s}/plan`, `/usage` | yes | limits: see `policy.rs` |

pub(crate) mod error;
mod format;
pub(crate) mod headers;
mod params;
mod policy;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use count_core::Counter;

pub(crate) use format::Format;
pub use format::{totals_csv, totals_json};
use params::{ParamError, TotalsParams};

use crate::metrics::Metrics;
use error::ApiError;

/// The dashboard, served from the binary.
pub(crate) const DASHBOARD: &str = include_str!("../../assets/dashboard.html");

/// What the HTTP handlers share.
#[derive(Debug)]
pub(crate) struct Api {
    pub(crate) counter: Arc<dyn Counter>,
    pub(crate) metrics: Metrics,
    /// How long a backend call may take before the answer is 503.
    pub(crate) backend_timeout: Duration,
    /// How long `/readyz` waits for the backend's health check.
    pub(crate) health_timeout: Duration,
    /// Whether writes fail.
    pub(crate) writes: Arc<crate::health::WriteHealth>,
}

/// The routes that need the token when one is set.
pub(crate) fn guarded(api: Arc<Api>) -> Router {
    Router::new()
        .route("/api/v1/totals", get(totals))
        .route("/api/v1/kept", get(kept))
        .route(
            "/api/v1/policy",
            get(policy::get_policy).put(policy::put_policy),
        )
        .route("/api/v1/limits", get(policy::list_limits))
        .route(
            "/api/v1/limits/{name}",
            get(policy::get_limit)
                .put(policy::put_limit)
                .delete(policy::delete_limit),
        )
        .route("/api/v1/plans", get(policy::list_plans))
        .route(
            "/api/v1/plans/{name}",
            get(policy::get_plan)
                .put(policy::put_plan)
                .delete(policy::delete_plan),
        )
        .route(
            "/api/v1/subjects/{subject}/plan",
            get(policy::get_subject_plan)
                .put(policy::put_subject_plan)
                .delete(policy::delete_subject_plan),
        )
        .route("/api/v1/usage", get(policy::get_usage))
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(api)
}

/// The routes anyone may call: the page (which then asks for the token) and liveness.
pub(crate) fn open() -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(healthz))
        .method_not_allowed_fallback(method_not_allowed)
}

async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        DASHBOARD,
    )
        .into_response()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(api): State<Arc<Api>>) -> Response {
    if let Some(reason) = api.writes.unready_reason() {
        return ApiError::WritesFailing(reason).into_response();
    }
    match crate::health::check(&*api.counter, api.health_timeout).await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(error) => {
            // The health watch logs the backend going down (once, not at every probe).
            tracing::debug!(%error, "count-server: /readyz: the backend is not ready");
            ApiError::Unavailable {
                kind: error::kind_of(&error),
            }
            .into_response()
        }
    }
}

/// What the backend keeps besides its UTC days, and the time-zone database:
/// `{"tzdb": "2026f", "quarters_from": "2026-09-08", "zone_days": [{"zone":
/// "Europe/Zurich", "from": "0001-01-01"}]}` (`quarters_from` null when no hours
/// are kept). The dashboard asks for hours only where they are kept.
async fn kept(State(api): State<Arc<Api>>) -> Response {
    let kept = match tokio::time::timeout(api.backend_timeout, api.counter.kept()).await {
        Ok(Ok(kept)) => kept,
        Ok(Err(error)) => return ApiError::backend(&error).into_response(),
        Err(_) => return ApiError::backend_timeout(api.backend_timeout).into_response(),
    };
    let zone_days: Vec<serde_json::Value> = kept
        .zone_days
        .iter()
        .map(|(zone, from)| serde_json::json!({"zone": zone.name(), "from": from.to_string()}))
        .collect();
    let body = serde_json::json!({
        "tzdb": count_core::tzdb_version(),
        "quarters_from": kept.quarters_from.map(|d| d.to_string()),
        "zone_days": zone_days,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn metrics(State(api): State<Arc<Api>>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        api.metrics.render(),
    )
        .into_response()
}

async fn totals(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = match TotalsParams::parse(raw.as_deref().unwrap_or_default()) {
        Ok(params) => params,
        Err(error) => return ApiError::Parameter(error).into_response(),
    };
    let format = params.format.unwrap_or_else(|| {
        Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))
    });
    let (query, range_parameter) = (params.query, params.range_parameter);
    let report = api.counter.totals(&query);
    let rows = match tokio::time::timeout(api.backend_timeout, report).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(error)) => {
            return match ParamError::of_report(error, range_parameter) {
                Ok(refused) => ApiError::Parameter(refused),
                Err(error) => ApiError::backend(&error),
            }
            .into_response();
        }
        Err(_) => return ApiError::backend_timeout(api.backend_timeout).into_response(),
    };
    // A year of a thousand endpoints by day is hundreds of thousands of rows: write
    // big answers off the async workers.
    let body = if rows.len() > LARGE_ANSWER_ROWS {
        match tokio::task::spawn_blocking(move || format.render(&query, &rows)).await {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(%error, "count-server: writing a totals answer failed");
                return ApiError::Internal("writing the answer failed").into_response();
            }
        }
    } else {
        format.render(&query, &rows)
    };
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// Rows past which an answer is written on a blocking thread.
const LARGE_ANSWER_ROWS: usize = 10_000;
