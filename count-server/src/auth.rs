//! Optional bearer-token auth, one check for both protocols: a gRPC call without the
//! right `authorization: Bearer <token>` gets UNAUTHENTICATED, an HTTP request a 401
//! with a JSON error. Compared in constant time.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::http::error::ApiError;

/// What the `authorization` header must read (`Bearer <token>`); `None`: no auth.
#[derive(Debug, Clone)]
pub(crate) struct Expected(Option<Arc<[u8]>>);

impl Expected {
    pub(crate) fn new(token: Option<&str>) -> Expected {
        Expected(token.map(|t| format!("Bearer {t}").into_bytes().into()))
    }
}

/// Whether `request` is a gRPC call (answered in gRPC's way), by its content type.
pub(crate) fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The middleware: passes a request with the right token (or any, with no token set).
pub(crate) async fn require_token(
    State(expected): State<Expected>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &expected.0 else {
        return next.run(request).await;
    };
    let given = request.headers().get(header::AUTHORIZATION);
    // Constant time in the token's bytes: a wrong guess tells nothing of how much of
    // it was right. (Its length may show; tokens should be long and random anyway.)
    let accepted = given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected)));
    if accepted {
        return next.run(request).await;
    }
    let message = if given.is_none() {
        "this server needs a token: send `authorization: Bearer <token>`"
    } else {
        "the token was refused: send `authorization: Bearer <token>` with the server's token"
    };
    if is_grpc(&request) {
        // HTTP 200 with grpc-status 16, as gRPC clients expect.
        tonic::Status::unauthenticated(message).into_http::<Body>()
    } else {
        ApiError::Unauthorized(message).into_response()
    }
}
