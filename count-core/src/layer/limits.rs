//! The layer's side of limits: whether a [`Count`](super::Count) enforces them
//! ([`NoLimits`], [`WithLimits`]), the quota headers, and the answer to a refused
//! request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use base64::Engine as _;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Request, Response, StatusCode};

use super::future::{CountBody, CountFuture, Recording};
use crate::limits::{Admission, Quota, Refusal};

/// A [`CountLayer`](super::CountLayer) that counts only.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLimits;

/// A [`CountLayer`](super::CountLayer) that enforces limits
/// ([`CountLayer::limits`](super::CountLayer::limits)).
#[derive(Debug, Clone, Copy, Default)]
pub struct WithLimits;

/// `RateLimit-Policy`, of draft-ietf-httpapi-ratelimit-headers.
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit`, of draft-ietf-httpapi-ratelimit-headers.
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Writes `RateLimit: "daily";r=120;t=3600` (what is left, seconds to the window's
/// end) on an admitted response: the one field each admitted response needs, kept
/// cheap (refusals carry `RateLimit-Policy` too, see [`policy_headers`]).
pub(super) fn remaining_header(
    headers: &mut HeaderMap,
    (limit, remaining, reset): (&str, u64, u64),
) {
    // Written into a buffer on the stack, not with `format!`: this runs on every
    // admitted response. Limit names are at most 64 letters, digits, '-', '_', '.'.
    let mut state = Field::default();
    state.text(limit).number(";r=", remaining);
    if let Some(state) = state.number(";t=", reset).value() {
        headers.insert(RATELIMIT.clone(), state);
    }
}

/// Writes `RateLimit-Policy: "daily";q=1000;w=86400` (the amount, the window's
/// length) and `RateLimit`.
pub(super) fn policy_headers(headers: &mut HeaderMap, quota: &Quota) {
    let mut policy = Field::default();
    policy.text(&quota.limit).number(";q=", quota.amount);
    if let Some(policy) = policy.number(";w=", quota.window).value() {
        headers.insert(RATELIMIT_POLICY.clone(), policy);
    }
    remaining_header(headers, (&quota.limit, quota.remaining, quota.reset));
}

/// A structured header field written on the stack: a quoted name, then
/// `;key=number` parameters.
struct Field {
    bytes: [u8; 128],
    len: usize,
}

impl Default for Field {
    fn default() -> Field {
        Field {
            bytes: [0; 128],
            len: 0,
        }
    }
}

impl Field {
    fn push(&mut self, bytes: &[u8]) -> &mut Field {
        let end = (self.len + bytes.len()).min(self.bytes.len());
        self.bytes[self.len..end].copy_from_slice(&bytes[..end - self.len]);
        self.len = end;
        self
    }

    fn text(&mut self, name: &str) -> &mut Field {
        self.push(b"\"").push(name.as_bytes()).push(b"\"")
    }

    fn number(&mut self, key: &str, mut n: u64) -> &mut Field {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(key.as_bytes()).push(&digits[at..])
    }

    fn value(&self) -> Option<HeaderValue> {
        HeaderValue::from_bytes(&self.bytes[..self.len]).ok()
    }
}

/// The answer to a refused request, recorded with its status: HTTP 429, or a
/// trailers-only gRPC `RESOURCE_EXHAUSTED` with a `google.rpc.RetryInfo`.
pub(super) fn refused<R: Default>(
    mut recording: Recording,
    refusal: &Refusal,
) -> Response<CountBody<R>> {
    let mut response = Response::new(R::default());
    let headers = response.headers_mut();
    if let Some(quota) = refusal.quota() {
        policy_headers(headers, &quota);
    }
    headers.insert(RETRY_AFTER, HeaderValue::from(refusal.retry_after));
    let what = refusal.quota().map_or_else(
        || "no quota could be leased in time".to_owned(),
        |q| {
            format!(
                "quota of limit {} ({} a {}) used up",
                q.limit, q.amount, q.period
            )
        },
    );
    let status = if recording.is_grpc() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from_static("8"));
        if let Ok(message) = HeaderValue::try_from(what.as_str()) {
            headers.insert("grpc-message", message);
        }
        let details = base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(retry_info_status(&what, refusal.retry_after));
        if let Ok(details) = HeaderValue::try_from(details) {
            headers.insert("grpc-status-details-bin", details);
        }
        recording.answer_trailers_only();
        crate::Status::grpc(8)
    } else {
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        crate::Status::http(429)
    };
    recording.finish(status.ok());
    response.map(|body| CountBody::new(body, None))
}

/// `google.rpc.Status { code: 8, message, details: [Any(RetryInfo { retry_delay })] }`,
/// encoded as protobuf.
fn retry_info_status(message: &str, retry_after: u64) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut n: u64) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }
    fn bytes(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
        out.push(tag);
        varint(out, value.len() as u64);
        out.extend_from_slice(value);
    }
    let mut duration = vec![0x08];
    varint(&mut duration, retry_after);
    let mut retry_info = Vec::new();
    bytes(&mut retry_info, 0x0a, &duration);
    let mut any = Vec::new();
    bytes(&mut any, 0x0a, b"type.googleapis.com/google.rpc.RetryInfo");
    bytes(&mut any, 0x12, &retry_info);
    let mut status = vec![0x08, 8];
    bytes(&mut status, 0x12, message.as_bytes());
    bytes(&mut status, 0x1a, &any);
    status
}

type Admitting = Pin<Box<dyn Future<Output = Admission> + Send>>;

/// A request waiting for its subject's lease.
struct Waiting<S, B> {
    admit: Admitting,
    service: S,
    request: Request<B>,
    recording: Recording,
}

pin_project_lite::pin_project! {
    /// The future of a request through a [`Count`](super::Count) that enforces
    /// limits: the inner service's response, once the request is admitted.
    pub struct LimitedFuture<F, S, B, R> {
        #[pin]
        state: State<F, S, B, R>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, S, B, R> {
        // Admitted (or untouched): the inner service's response.
        Running {
            #[pin]
            inner: CountFuture<F>,
        },
        // Waiting for the subject's lease; the ready service is called after.
        // Boxed, as the refusal: both are rare, and a smaller future is cheaper to
        // move on every request.
        Admitting {
            waiting: Option<Box<Waiting<S, B>>>,
        },
        // Refused: the answer is ready.
        Refused {
            response: Option<Box<Response<CountBody<R>>>>,
        },
    }
}

impl<F, S, B, R> std::fmt::Debug for LimitedFuture<F, S, B, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.state {
            State::Running { .. } => "LimitedFuture::Running",
            State::Admitting { .. } => "LimitedFuture::Admitting",
            State::Refused { .. } => "LimitedFuture::Refused",
        })
    }
}

impl<F, S, B, R> LimitedFuture<F, S, B, R> {
    pub(super) fn running(inner: F, recording: Recording) -> Self {
        LimitedFuture {
            state: State::Running {
                inner: CountFuture::new(inner, recording),
            },
        }
    }

    pub(super) fn refused(response: Response<CountBody<R>>) -> Self {
        LimitedFuture {
            state: State::Refused {
                response: Some(Box::new(response)),
            },
        }
    }

    pub(super) fn admitting(
        admit: Admitting,
        service: S,
        request: Request<B>,
        recording: Recording,
    ) -> Self {
        LimitedFuture {
            state: State::Admitting {
                waiting: Some(Box::new(Waiting {
                    admit,
                    service,
                    request,
                    recording,
                })),
            },
        }
    }
}

impl<F, S, B, R, E> Future for LimitedFuture<F, S, B, R>
where
    F: Future<Output = Result<Response<R>, E>>,
    S: tower_service::Service<Request<B>, Future = F>,
    R: Default,
{
    type Output = Result<Response<CountBody<R>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Running { inner } => return inner.poll(cx),
                StateProj::Refused { response } => {
                    return Poll::Ready(Ok(*response.take().expect("polled after completion")));
                }
                StateProj::Admitting { waiting } => {
                    let admission = {
                        let waiting = waiting.as_mut().expect("polled after completion");
                        ready!(waiting.admit.as_mut().poll(cx))
                    };
                    let Waiting {
                        mut recording,
                        request,
                        mut service,
                        ..
                    } = *waiting.take().expect("polled after completion");
                    match admission {
                        Admission::Refused(refusal) => {
                            LimitedFuture::refused(refused(recording, &refusal))
                        }
                        Admission::Admitted(ticket) => {
                            recording.ticket = Some(ticket);
                            LimitedFuture::running(service.call(request), recording)
                        }
                        Admission::Untouched | Admission::Wait => {
                            LimitedFuture::running(service.call(request), recording)
                        }
                    }
                }
            };
            state.set(next.state);
        }
    }
}
