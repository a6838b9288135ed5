//! Optional bearer-token auth, one check for both protocols: a gRPC call without the
//! right `authorization: Bearer <token>` gets UNAUTHENTICATED, an HTTP request a 401
//! with a JSON error. The scheme's name is case-insensitive (`bearer` is fine); the
//! token is compared in constant time.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::http::error::ApiError;

/// The token the `authorization` header must carry (`Bearer <token>`); `None`: no
/// auth.
#[derive(Debug, Clone)]
pub(crate) struct Expected(Option<Arc<[u8]>>);

impl Expected {
    pub(crate) fn new(token: Option<&str>) -> Expected {
        Expected(token.map(|t| t.as_bytes().into()))
    }
}

/// The credentials of an `authorization` header in the bearer scheme: the scheme's
/// name in any case (RFC 7235 2.1), then one or more spaces (RFC 6750 2.1).
fn bearer_credentials(header: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer";
    let (scheme, rest) = header.split_at_checked(SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) || rest.first() != Some(&b' ') {
        return None;
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    Some(&rest[start..])
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
    mut request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &expected.0 else {
        return next.run(request).await;
    };
    let given = request.headers().get(header::AUTHORIZATION);
    // Constant time in the token's bytes: a wrong guess tells nothing of how much of
    // it was right. (Its length may show; tokens should be long and random anyway.)
    let accepted = given
        .and_then(|given| bearer_credentials(given.as_bytes()))
        .is_some_and(|token| bool::from(token.ct_eq(expected)));
    if accepted {
        // Each token's AddCounts batch ids are a namespace of their own.
        request
            .extensions_mut()
            .insert(count_grpc::ClientScope::of_token(expected));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_exact() {
        for header in ["Bearer t0k", "bearer t0k", "BEARER t0k", "Bearer   t0k"] {
            assert_eq!(
                bearer_credentials(header.as_bytes()),
                Some(&b"t0k"[..]),
                "{header}"
            );
        }
        for header in [
            "Bearer",
            "Bearer ",
            "Bearert0k",
            "Basic t0k",
            "Bear t0k",
            "",
        ] {
            assert_eq!(bearer_credentials(header.as_bytes()), None, "{header}");
        }
    }
}
