//! How much work runs at once, by kind of request, so that no kind can starve
//! another (the crate docs' "Limits" has the table): count.v1 calls other than `Add`
//! and `/api/*` requests share `--max-concurrent-calls` slots and wait for one;
//! `Add` streams have `--max-add-streams` slots and are refused RESOURCE_EXHAUSTED
//! past them; the probes, `/metrics`, the page, gRPC health and reflection have no
//! limit (they are cheap, and bounded anyway by the streams per connection and the
//! connection cap).
//!
//! An `Add` stream holds its slot until it is answered, which for a client that keeps
//! one stream open for its whole life (the Go project's client does) is that life: a
//! stream past the cap is refused rather than left waiting, maybe for ever. The
//! limits apply after the token check: a caller without the token holds nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::Semaphore;

/// The slots, shared by every connection.
#[derive(Debug)]
pub(crate) struct Limits {
    calls: Semaphore,
    add_streams: Semaphore,
    max_add_streams: usize,
    refused_add_streams: AtomicU64,
}

/// Which limit a request comes under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Call,
    AddStream,
    Unlimited,
}

impl Kind {
    fn of(path: &str) -> Kind {
        let method = path
            .strip_prefix('/')
            .and_then(|path| path.strip_prefix(count_grpc::SERVICE_NAME))
            .and_then(|path| path.strip_prefix('/'));
        match method {
            Some("Add") => Kind::AddStream,
            Some(_) => Kind::Call,
            None if path.starts_with("/api/") => Kind::Call,
            None => Kind::Unlimited,
        }
    }
}

impl Limits {
    pub(crate) fn new(max_calls: usize, max_add_streams: usize) -> Limits {
        Limits {
            calls: Semaphore::new(max_calls),
            add_streams: Semaphore::new(max_add_streams),
            max_add_streams,
            refused_add_streams: AtomicU64::new(0),
        }
    }

    /// `Add` streams refused because `--max-add-streams` were open.
    pub(crate) fn refused_add_streams(&self) -> u64 {
        self.refused_add_streams.load(Relaxed)
    }
}

/// The middleware: runs `request` once its kind has a slot. A slot is held until the
/// answer's head is ready (for an `Add` stream, its end).
pub(crate) async fn limit(
    State(limits): State<Arc<Limits>>,
    request: Request,
    next: Next,
) -> Response {
    match Kind::of(request.uri().path()) {
        Kind::Unlimited => next.run(request).await,
        Kind::Call => {
            // The semaphore is never closed.
            let _slot = limits.calls.acquire().await;
            next.run(request).await
        }
        Kind::AddStream => {
            let Ok(_slot) = limits.add_streams.try_acquire() else {
                limits.refused_add_streams.fetch_add(1, Relaxed);
                return tonic::Status::resource_exhausted(format!(
                    "too many Add streams open: this server takes {} at once \
                     (--max-add-streams); nothing of this stream was read; send it again later",
                    limits.max_add_streams
                ))
                .into_http::<Body>();
            };
            next.run(request).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_sorted_by_path() {
        for (path, kind) in [
            ("/count.v1.CountService/Add", Kind::AddStream),
            ("/count.v1.CountService/AddCounts", Kind::Call),
            ("/count.v1.CountService/GetTotals", Kind::Call),
            ("/count.v1.CountService/Addx", Kind::Call),
            ("/api/v1/totals", Kind::Call),
            ("/grpc.health.v1.Health/Check", Kind::Unlimited),
            ("/grpc.health.v1.Health/Watch", Kind::Unlimited),
            (
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                Kind::Unlimited,
            ),
            ("/count.v1.CountServiceX/Add", Kind::Unlimited),
            ("/healthz", Kind::Unlimited),
            ("/readyz", Kind::Unlimited),
            ("/metrics", Kind::Unlimited),
            ("/", Kind::Unlimited),
        ] {
            assert_eq!(Kind::of(path), kind, "{path}");
        }
    }
}
