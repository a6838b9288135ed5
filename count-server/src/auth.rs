//! Optional bearer-token auth for every call, compared in constant time.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::service::interceptor::InterceptorLayer;
use tonic::{Request, Status};

/// Checks `authorization: Bearer <token>` on every call when a token is set.
#[derive(Debug, Clone)]
pub(crate) struct BearerAuth {
    /// `Bearer <token>`, as the header must read; `None`: no auth.
    expected: Option<Arc<[u8]>>,
}

impl BearerAuth {
    /// The layer for a server with `token` (or none).
    pub(crate) fn layer(token: Option<&str>) -> InterceptorLayer<BearerAuth> {
        InterceptorLayer::new(BearerAuth {
            expected: token.map(|t| format!("Bearer {t}").into_bytes().into()),
        })
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        // Constant time in the token's bytes: a wrong guess tells nothing of how
        // much of it was right.
        if bool::from(given.ct_eq(expected)) {
            Ok(request)
        } else {
            Err(Status::unauthenticated(
                "a valid `authorization: Bearer <token>` header is required",
            ))
        }
    }
}
