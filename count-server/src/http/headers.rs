//! The security headers every HTTP answer carries (gRPC answers are left alone):
//!
//! - `Content-Security-Policy`: nothing may load but the page's own inline script
//!   (allowed by its SHA-256 hash, so an injected script would not run), inline styles
//!   (the page sets `style` attributes), `data:` images (its icon) and requests to
//!   this origin; no framing, no `<base>`, no form posts;
//! - `X-Content-Type-Options: nosniff`, so a CSV or JSON answer is never taken for
//!   a page;
//! - `X-Frame-Options: DENY` (older browsers' `frame-ancestors 'none'`);
//! - `Referrer-Policy: no-referrer`.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::DASHBOARD;

/// The policy, with the hash of the dashboard's script.
static POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    let policy = format!(
        "default-src 'none'; script-src 'sha256-{}'; style-src 'unsafe-inline'; \
         img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        script_hash(DASHBOARD)
    );
    // Base64 and ASCII words only: always a valid header value.
    HeaderValue::from_str(&policy).unwrap_or(HeaderValue::from_static("default-src 'none'"))
});

/// The base64 SHA-256 of the text of `page`'s one `<script>` element, as CSP
/// compares it.
fn script_hash(page: &str) -> String {
    let script = page
        .split_once("<script>")
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map_or("", |(script, _)| script);
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(script.as_bytes()))
}

/// Adds the headers to `response` unless it is a gRPC answer.
pub(crate) async fn add(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        return response;
    }
    headers.insert(header::CONTENT_SECURITY_POLICY, POLICY.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_exactly_the_script_text() {
        // printf 'alert(1)' | openssl dgst -sha256 -binary | base64
        assert_eq!(
            script_hash("<p><script>alert(1)</script></p>"),
            "bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI="
        );
        assert!(POLICY.to_str().unwrap().contains("script-src 'sha256-"));
    }
}
