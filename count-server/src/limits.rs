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
//!
//! A call takes a slot only once its whole request body has come (a GET's empty body
//! at once), read into memory before: a peer that sends headers, or part of a body,
//! and then nothing holds no slot. Each part of the body must come within
//! `--request-read-timeout` of the one before (of the call's start for the first),
//! else the call is ended; a body is at most `--max-message-bytes` (plus gRPC's 5-byte
//! prefix), and the bodies being read share a budget of memory
//! ([`body_budget`]). A gRPC call's `grpc-timeout` is its deadline, as gRPC servers keep
//! it: reading, waiting for a slot and running all end there, with
//! `DEADLINE_EXCEEDED`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::http::error::ApiError;

/// The slots, shared by every connection.
#[derive(Debug)]
pub(crate) struct Limits {
    calls: Semaphore,
    add_streams: Semaphore,
    max_add_streams: usize,
    refused_add_streams: AtomicU64,
    request_read_timeout: Duration,
    /// The largest request body of a call.
    max_body: usize,
    /// Bytes of the bodies being read, before their calls take a slot.
    body_budget: Semaphore,
    /// Calls ended because their request did not come in time, or their deadline
    /// passed.
    timed_out_calls: AtomicU64,
}

/// The memory the request bodies being read may take together: four of the largest,
/// and 64 MiB at least.
pub(crate) fn body_budget(max_body: usize) -> usize {
    max_body
        .saturating_mul(4)
        .clamp(64 << 20, Semaphore::MAX_PERMITS)
}

/// Why a call's body was not read.
enum Unread {
    /// A part did not come within the read timeout.
    Idle,
    /// The bodies being read took all their memory for a read timeout.
    NoRoom,
    /// Over the largest body.
    TooLarge,
    /// The client broke it off.
    Broken(axum::Error),
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
    pub(crate) fn new(
        max_calls: usize,
        max_add_streams: usize,
        request_read_timeout: Duration,
        max_message_bytes: usize,
    ) -> Limits {
        // A gRPC message is a 5-byte prefix and the message.
        let max_body = max_message_bytes.saturating_add(5);
        Limits {
            calls: Semaphore::new(max_calls),
            add_streams: Semaphore::new(max_add_streams),
            max_add_streams,
            refused_add_streams: AtomicU64::new(0),
            request_read_timeout,
            max_body,
            body_budget: Semaphore::new(body_budget(max_body)),
            timed_out_calls: AtomicU64::new(0),
        }
    }

    /// `Add` streams refused because `--max-add-streams` were open.
    pub(crate) fn refused_add_streams(&self) -> u64 {
        self.refused_add_streams.load(Relaxed)
    }

    /// Calls ended because their request body stopped coming
    /// (`--request-read-timeout`) or their `grpc-timeout` passed.
    pub(crate) fn timed_out_calls(&self) -> u64 {
        self.timed_out_calls.load(Relaxed)
    }

    /// Runs a call (not an `Add` stream) once its whole body has come, in a slot,
    /// within its deadline: a gRPC call's `grpc-timeout` bounds reading, waiting and
    /// running together.
    async fn call(&self, request: Request, next: Next) -> Response {
        let grpc = crate::auth::is_grpc(&request);
        let deadline = grpc
            .then(|| grpc_deadline(request.headers(), Instant::now()))
            .flatten();
        let call = self.read_then_run(grpc, request, next);
        match deadline {
            None => call.await,
            Some(deadline) => tokio::time::timeout_at(deadline, call)
                .await
                .unwrap_or_else(|_| self.timed_out(grpc, "its deadline (grpc-timeout) passed")),
        }
    }

    async fn read_then_run(&self, grpc: bool, request: Request, next: Next) -> Response {
        let (parts, body) = request.into_parts();
        // The body's share of the budget is held until the call ends.
        let (body, _room) = match self.read(body).await {
            Ok(read) => read,
            Err(Unread::Idle) => {
                return self.timed_out(
                    grpc,
                    "its request body stopped coming (nothing within --request-read-timeout)",
                );
            }
            Err(Unread::NoRoom) => return no_room(grpc),
            Err(Unread::TooLarge) => return self.too_large(grpc),
            Err(Unread::Broken(error)) => return body_failed(grpc, &error),
        };
        let request = Request::from_parts(parts, Body::from(body));
        // The semaphore is never closed.
        let _slot = self.calls.acquire().await;
        next.run(request).await
    }

    /// Reads `body` whole, each part within the read timeout, taking its bytes from
    /// the budget.
    async fn read(&self, mut body: Body) -> Result<(Bytes, Option<SemaphorePermit<'_>>), Unread> {
        let timeout = self.request_read_timeout;
        let mut read = Vec::new();
        let mut room: Option<SemaphorePermit<'_>> = None;
        if let Some(length) = body.size_hint().exact()
            && length > self.max_body as u64
        {
            return Err(Unread::TooLarge);
        }
        loop {
            let frame = match tokio::time::timeout(timeout, body.frame()).await {
                Err(_) => return Err(Unread::Idle),
                Ok(None) => break,
                Ok(Some(Err(error))) => return Err(Unread::Broken(error)),
                Ok(Some(Ok(frame))) => frame,
            };
            // Trailers of a request mean nothing here.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if read.len() + data.len() > self.max_body {
                return Err(Unread::TooLarge);
            }
            if data.is_empty() {
                continue;
            }
            // A part is at most max_body, within the semaphore's count.
            let part = u32::try_from(data.len()).unwrap_or(u32::MAX);
            let taken = tokio::time::timeout(timeout, self.body_budget.acquire_many(part))
                .await
                .map_err(|_| Unread::NoRoom)?
                .expect("the budget is never closed");
            match &mut room {
                Some(room) => room.merge(taken),
                None => room = Some(taken),
            }
            read.extend_from_slice(&data);
        }
        Ok((Bytes::from(read), room))
    }

    fn too_large(&self, grpc: bool) -> Response {
        let message = format!(
            "the request is larger than the largest this server takes ({} bytes, \
             --max-message-bytes)",
            self.max_body - 5
        );
        if grpc {
            tonic::Status::resource_exhausted(message).into_http::<Body>()
        } else {
            ApiError::TooLarge(message).into_response()
        }
    }

    fn timed_out(&self, grpc: bool, why: &str) -> Response {
        self.timed_out_calls.fetch_add(1, Relaxed);
        let message = format!("the call was ended: {why}");
        if grpc {
            tonic::Status::deadline_exceeded(message).into_http::<Body>()
        } else {
            ApiError::Timeout(message).into_response()
        }
    }
}

/// A gRPC call's deadline, from its `grpc-timeout`; `None` without one or when it
/// cannot be read.
fn grpc_deadline(headers: &HeaderMap, started: Instant) -> Option<Instant> {
    let text = headers.get("grpc-timeout")?.to_str().ok()?;
    started.checked_add(count_grpc::parse_grpc_timeout(text)?)
}

/// The answer to a call whose body could not be read because the bodies being read
/// held all their memory for a whole read timeout: a passing state, retried.
fn no_room(grpc: bool) -> Response {
    let message = "the server is reading too many request bodies at once; try again";
    if grpc {
        tonic::Status::unavailable(message).into_http::<Body>()
    } else {
        ApiError::Unavailable { kind: "busy" }.into_response()
    }
}

/// The answer to a call whose body broke before it began (the client reset it).
fn body_failed(grpc: bool, error: &axum::Error) -> Response {
    let message = format!("the request body could not be read: {error}");
    if grpc {
        tonic::Status::cancelled(message).into_http::<Body>()
    } else {
        ApiError::BadRequest(message).into_response()
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
        Kind::Call => limits.call(request, next).await,
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
