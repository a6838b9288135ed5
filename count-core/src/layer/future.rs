//! The layer's response side: [`CountFuture`] records a request when its response is
//! ready, and [`CountBody`] when a gRPC response's trailers arrive. A [`Recording`]
//! dropped before either (a panic, a cancelled request, a body dropped early) records
//! the request without a status.
//!
//! A gRPC call's method becomes an endpoint only when a service's handler answered
//! it: with a response body (a handler's stream), or trailers-only with `OK`. An
//! interceptor refusing a token, a rate limiter, or a router finding no service answer
//! a made-up method trailers-only with an error, and must not make an endpoint of it.
//! A call that ends otherwise is counted under its method if that method is known
//! already, else under the unmatched path.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Response, Uri};
use http_body::{Body, Frame, SizeHint};

use super::layer::Config;
use crate::limits::Ticket;
use crate::{CountKey, Method, Path, Status, Subject};

/// What a request will be counted as, once it is known how it ended.
#[derive(Debug)]
pub(crate) struct Recording {
    config: Arc<Config>,
    target: Target,
    subject: Option<Subject>,
    /// For gRPC: what the response's head said.
    answer: Answer,
    done: bool,
    /// The request's hold on its limits' quota, settled with its status.
    pub(super) ticket: Option<Ticket>,
}

/// What a gRPC call's response head said, as far as it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// No response (yet): the service failed, or the call was cut short.
    Pending,
    /// A response that is not gRPC (a router's HTTP 404): nothing serves the method.
    NotGrpc,
    /// A trailers-only gRPC response: its status is in the headers. Errors from
    /// interceptors and routers come this way.
    TrailersOnly,
    /// A gRPC response with a body: a service's handler answered; its status will be
    /// in the trailers.
    Stream,
}

/// gRPC's `OK`.
const GRPC_OK: u16 = 0;

#[derive(Debug)]
enum Target {
    /// An HTTP request: its method and route are known from the request.
    Http(Method, Path),
    /// A gRPC call: counted under its method path only if a service serves it.
    Grpc(Uri),
}

impl Recording {
    pub(super) fn http(
        config: Arc<Config>,
        method: Method,
        path: Path,
        subject: Option<Subject>,
    ) -> Recording {
        Recording {
            config,
            target: Target::Http(method, path),
            subject,
            answer: Answer::Pending,
            done: false,
            ticket: None,
        }
    }

    pub(super) fn grpc(config: Arc<Config>, uri: Uri, subject: Option<Subject>) -> Recording {
        Recording {
            config,
            target: Target::Grpc(uri),
            subject,
            answer: Answer::Pending,
            done: false,
            ticket: None,
        }
    }

    /// The method and route text a limit sees: the route template, or the gRPC
    /// method path.
    pub(super) fn limit_target(&self) -> (Method, &str) {
        match &self.target {
            Target::Http(method, path) => (*method, path.as_str()),
            Target::Grpc(uri) => (Method::Grpc, uri.path()),
        }
    }

    /// A gRPC answer with its status in the headers.
    pub(super) fn answer_trailers_only(&mut self) {
        self.answer = Answer::TrailersOnly;
    }

    /// Records the request with `status`.
    pub(super) fn finish(mut self, status: Option<Status>) {
        self.done = true;
        self.record(status);
    }

    fn record(&mut self, status: Option<Status>) {
        if let (Some(ticket), Some(limiter)) = (self.ticket.take(), &self.config.limiter) {
            limiter.settle(ticket, status);
        }
        let config = &*self.config;
        let (method, path) = match &self.target {
            // 405: the route does not serve this method, so it names no endpoint.
            Target::Http(method, _) if status.is_some_and(|s| s.code() == 405) => {
                (*method, config.unmatched())
            }
            Target::Http(method, path) => (*method, *path),
            Target::Grpc(uri) => {
                let path = match self.answer {
                    Answer::NotGrpc => None,
                    Answer::Stream => Some(config.interned(uri.path())),
                    Answer::TrailersOnly if status.is_some_and(|s| s.code() == GRPC_OK) => {
                        Some(config.interned(uri.path()))
                    }
                    // An error, or no answer: the method if it is known already.
                    Answer::TrailersOnly | Answer::Pending => Path::lookup(uri.path()),
                };
                (Method::Grpc, path.unwrap_or_else(|| config.unmatched()))
            }
        };
        config
            .queue
            .record_key(CountKey::of(method, path, self.subject, status));
    }

    pub(super) fn is_grpc(&self) -> bool {
        matches!(self.target, Target::Grpc(_))
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        if !self.done {
            self.record(None);
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a request through [`Count`](super::Count): the inner service's
    /// response, recorded as it completes.
    #[derive(Debug)]
    pub struct CountFuture<F> {
        #[pin]
        inner: F,
        recording: Option<Recording>,
    }
}

impl<F> CountFuture<F> {
    pub(crate) fn new(inner: F, recording: Recording) -> CountFuture<F> {
        CountFuture {
            inner,
            recording: Some(recording),
        }
    }
}

impl<F, B, E> Future for CountFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<CountBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let recording = this.recording.take().expect("polled after completion");
        Poll::Ready(match result {
            Ok(response) => Ok(count_response(response, recording)),
            Err(error) => {
                recording.finish(None);
                Err(error)
            }
        })
    }
}

/// Records an HTTP response at once; a gRPC one at once if its status is in the
/// headers (trailers-only), else when its body's trailers arrive.
fn count_response<B>(
    mut response: Response<B>,
    mut recording: Recording,
) -> Response<CountBody<B>> {
    if let (Some(ticket), Some(limiter)) = (&recording.ticket, &recording.config.limiter) {
        let headers = response.headers_mut();
        limiter.with_remaining(ticket, |limit, remaining, reset| {
            super::limits::remaining_header(headers, (limit, remaining, reset));
        });
    }
    if !recording.is_grpc() {
        let status = Status::http(response.status().as_u16()).ok();
        recording.finish(status);
        return response.map(|body| CountBody::new(body, None));
    }
    let headers = response.headers();
    let is_grpc = headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !is_grpc || !response.status().is_success() {
        recording.answer = Answer::NotGrpc;
        recording.finish(None);
        return response.map(|body| CountBody::new(body, None));
    }
    match grpc_status(headers) {
        Some(status) => {
            recording.answer = Answer::TrailersOnly;
            recording.finish(Some(status));
            response.map(|body| CountBody::new(body, None))
        }
        None => {
            recording.answer = Answer::Stream;
            response.map(|body| CountBody::new(body, Some(recording)))
        }
    }
}

/// The `grpc-status` of `headers` (or trailers), if it is a valid code.
fn grpc_status(headers: &HeaderMap) -> Option<Status> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Status::grpc(value.trim().parse().ok()?).ok()
}

pin_project_lite::pin_project! {
    /// A response body through [`Count`](super::Count): the inner body unchanged; for a
    /// gRPC response, the call is recorded when the trailers (with `grpc-status`)
    /// arrive, or when the body ends or is dropped without them.
    #[derive(Debug)]
    pub struct CountBody<B> {
        #[pin]
        inner: B,
        recording: Option<Recording>,
    }
}

impl<B> CountBody<B> {
    pub(super) fn new(inner: B, recording: Option<Recording>) -> CountBody<B> {
        CountBody { inner, recording }
    }

    /// The inner body. A gRPC call not yet recorded is recorded now, without a status.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: Body> Body for CountBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if this.recording.is_some() {
            let status = match &frame {
                Some(Ok(frame)) => frame.trailers_ref().map(grpc_status),
                // The end without trailers, or an error: no status.
                Some(Err(_)) | None => Some(None),
            };
            if let Some(status) = status {
                let recording = this.recording.take().expect("checked");
                recording.finish(status);
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
