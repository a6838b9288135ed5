//! The API's error answers: always JSON `{"error": "..."}`, with `"parameter"` when
//! one parameter is to blame.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::params::ParamError;

/// An error answer of the HTTP API.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// 400 (or 503 when the server cannot look the value up now).
    Parameter(ParamError),
    /// 401: no token, or not the right one.
    Unauthorized(&'static str),
    /// 503: the backend failed or did not answer in time.
    Unavailable(String),
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
            ApiError::Unavailable(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": message })),
            )
                .into_response(),
        }
    }
}
