//! The API's error answers: always JSON `{"error": "..."}`, with `"parameter"` when
//! one parameter is to blame and `"kind"` when the backend failed.

use std::time::Duration;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use count_core::Error;
use serde_json::json;

use super::params::ParamError;

/// An error answer of the HTTP API.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// 400 (or 503 when the server cannot look the value up now).
    Parameter(ParamError),
    /// 401: no token, or not the right one.
    Unauthorized(&'static str),
    /// 405: the route takes GET (and HEAD) only.
    MethodNotAllowed,
    /// 503: the backend failed or did not answer in time. What failed is logged, not
    /// sent: a backend's error may name the database's user, host and port.
    Unavailable {
        /// `unavailable`, `timeout`, `outcome_unknown`, `limit_reached`, ...
        kind: &'static str,
    },
    /// 500: the server failed to write the answer.
    Internal(&'static str),
    /// 503: every write has failed for a while; the reason says how long and why.
    WritesFailing(String),
    /// 400: the request could not be read.
    BadRequest(String),
    /// 408: the request did not come in time.
    Timeout(String),
    /// 413: the request is larger than the server takes.
    TooLarge(String),
    /// 400: a field of a JSON body (or a parameter) breaks its rule.
    Invalid {
        /// The field.
        field: String,
        /// What is wrong, naming the value and the rule.
        message: String,
    },
    /// 404: nothing of that name.
    NotFound(String),
    /// 409: changed by someone else first.
    Conflict(String),
}

impl ApiError {
    /// The answer to a request the backend failed with `error`; logs `error`.
    pub(crate) fn backend(error: &Error) -> ApiError {
        tracing::warn!(%error, "count-server: the backend failed an HTTP API request");
        ApiError::Unavailable {
            kind: kind_of(error),
        }
    }

    /// The answer to a request the backend did not answer within `after`; logs it.
    pub(crate) fn backend_timeout(after: Duration) -> ApiError {
        tracing::warn!(
            "count-server: the backend did not answer an HTTP API request within {} s",
            after.as_secs_f64()
        );
        ApiError::Unavailable { kind: "timeout" }
    }
}

/// A short name for the kind of a backend's `error`, safe to show anyone.
pub(crate) fn kind_of(error: &Error) -> &'static str {
    match error {
        Error::Unavailable { .. } => "unavailable",
        Error::Ambiguous { .. } => "outcome_unknown",
        Error::NotFound(_) => "not_found",
        Error::LimitReached(_) => "limit_reached",
        Error::InvalidInput { .. } => "invalid_input",
        Error::Backend { .. } => "backend_error",
        _ => "failed",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Parameter(error) => {
                let status = if error.unavailable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::BAD_REQUEST
                };
                let body = json!({ "error": error.message, "parameter": error.parameter });
                (status, Json(body)).into_response()
            }
            ApiError::Unauthorized(message) => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({ "error": message })),
            )
                .into_response(),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, "GET,HEAD")],
                Json(json!({ "error": "this route answers GET (and HEAD) only" })),
            )
                .into_response(),
            ApiError::Unavailable { kind } => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "the backend is unavailable", "kind": kind })),
            )
                .into_response(),
            ApiError::Internal(message) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": message })),
            )
                .into_response(),
            ApiError::WritesFailing(reason) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "error": "writes are failing",
                    "kind": "writes_failing",
                    "reason": reason,
                })),
            )
                .into_response(),
            ApiError::TooLarge(message) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Json(json!({ "error": message })),
            )
                .into_response(),
            ApiError::Invalid { field, message } => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": message, "field": field })),
            )
                .into_response(),
            ApiError::NotFound(message) => {
                (StatusCode::NOT_FOUND, Json(json!({ "error": message }))).into_response()
            }
            ApiError::Conflict(message) => {
                (StatusCode::CONFLICT, Json(json!({ "error": message }))).into_response()
            }
            ApiError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
            }
            ApiError::Timeout(message) => (
                StatusCode::REQUEST_TIMEOUT,
                [(header::CONNECTION, "close")],
                Json(json!({ "error": message })),
            )
                .into_response(),
        }
    }
}
