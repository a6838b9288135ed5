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
//! A call takes a slot only once its request body has begun to come (a GET's empty
//! body counts as come), and the whole body must come within
//! `--request-read-timeout` of the call's start: a peer that sends headers and then
//! nothing holds no slot, and one that stalls mid-body holds one for that long at
//! most. A gRPC call's `grpc-timeout` is its deadline, as gRPC servers keep it:
//! waiting for a slot and running both end there, with `DEADLINE_EXCEEDED`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

use crate::http::error::ApiError;

/// The slots, shared by every connection.
#[derive(Debug)]
pub(crate) struct Limits {
    calls: Semaphore,
    add_streams: Semaphore,
    max_add_streams: usize,
    refused_add_streams: AtomicU64,
    request_read_timeout: Duration,
    /// Calls ended because their request did not come in time, or their deadline
    /// passed.
    timed_out_calls: AtomicU64,
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
    ) -> Limits {
        Limits {
            calls: Semaphore::new(max_calls),
            add_streams: Semaphore::new(max_add_streams),
            max_add_streams,
            refused_add_streams: AtomicU64::new(0),
            request_read_timeout,
            timed_out_calls: AtomicU64::new(0),
        }
    }

    /// `Add` streams refused because `--max-add-streams` were open.
    pub(crate) fn refused_add_streams(&self) -> u64 {
        self.refused_add_streams.load(Relaxed)
    }

    /// Calls ended because their request body did not come within
    /// `--request-read-timeout` or their `grpc-timeout` passed.
    pub(crate) fn timed_out_calls(&self) -> u64 {
        self.timed_out_calls.load(Relaxed)
    }

    /// Runs a call (not an `Add` stream) once its body has begun to come, in a slot,
    /// within its deadline.
    async fn call(&self, request: Request, next: Next) -> Response {
        let started = Instant::now();
        let grpc = crate::auth::is_grpc(&request);
        let deadline = grpc
            .then(|| grpc_deadline(request.headers(), started))
            .flatten();
        let read_by = started + self.request_read_timeout;
        let (parts, body) = request.into_parts();
        let body = match tokio::time::timeout_at(read_by, TimedBody::begun(body, read_by)).await {
            Ok(Ok(body)) => body,
            Ok(Err(error)) => return body_failed(grpc, &error),
            Err(_) => {
                return self.timed_out(
                    grpc,
                    "its request body did not come within --request-read-timeout",
                );
            }
        };
        let request = Request::from_parts(parts, Body::new(body));
        let run = async {
            // The semaphore is never closed.
            let _slot = self.calls.acquire().await;
            next.run(request).await
        };
        match deadline {
            None => run.await,
            Some(deadline) => match tokio::time::timeout_at(deadline, run).await {
                Ok(response) => response,
                Err(_) => self.timed_out(grpc, "its deadline (grpc-timeout) passed"),
            },
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

/// The answer to a call whose body broke before it began (the client reset it).
fn body_failed(grpc: bool, error: &axum::Error) -> Response {
    let message = format!("the request body could not be read: {error}");
    if grpc {
        tonic::Status::cancelled(message).into_http::<Body>()
    } else {
        ApiError::BadRequest(message).into_response()
    }
}

/// A request body that must end by a deadline (else it ends in an error), its first
/// frame already read.
struct TimedBody {
    first: Option<Frame<Bytes>>,
    rest: Body,
    deadline: Pin<Box<Sleep>>,
}

impl TimedBody {
    /// Waits until `body` has begun to come (its first frame, or its end).
    async fn begun(mut body: Body, deadline: Instant) -> Result<TimedBody, axum::Error> {
        let first = if body.is_end_stream() {
            None
        } else {
            body.frame().await.transpose()?
        };
        Ok(TimedBody {
            first,
            rest: body,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        })
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.rest).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(Some(Err(axum::Error::new(io::Error::new(
            io::ErrorKind::TimedOut,
            "the request body did not come within --request-read-timeout",
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.rest.size_hint();
        if let Some(data) = self.first.as_ref().and_then(Frame::data_ref) {
            let extra = data.len() as u64;
            hint.set_lower(hint.lower() + extra);
            if let Some(upper) = hint.upper() {
                hint.set_upper(upper + extra);
            }
        }
        hint
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
