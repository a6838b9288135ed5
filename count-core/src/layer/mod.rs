//! [`CountLayer`]: a `tower` layer that counts every request of an axum, tonic or hyper
//! service through a [`CountQueue`]: by route, by how it ended, and (optionally) by
//! who it was for.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> count_core::Result<()> {
//! use std::sync::Arc;
//!
//! use axum::{Router, body::Body, routing::get};
//! use count_core::layer::CountLayer;
//! use count_core::{CountQueue, Subject};
//! use http::Request;
//!
//! let counter = Arc::new(count_memory::MemoryCounter::new());
//! let queue = CountQueue::builder(counter).build()?;
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "a user" }))
//!     .layer(
//!         CountLayer::new(queue)
//!             // Who the request was for: here a tenant an auth middleware checked.
//!             .subject(|req: &Request<Body>| req.extensions().get::<Subject>().copied()),
//!     );
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! What is counted per request:
//!
//! - **HTTP with a route**: the route *template*: a [`Route`] extension if the app set
//!   one, else axum's `MatchedPath` (feature `axum`) — `/users/{id}`, never
//!   `/users/42` — with the response's HTTP status. A `405 Method Not Allowed` is
//!   `(unmatched)`: the route does not serve that method, so it names no endpoint.
//! - **gRPC** (`content-type: application/grpc…`): [`Method::Grpc`] and the gRPC
//!   method path (`/pkg.Service/Method`), with the call's `grpc-status`: from the
//!   response headers (a trailers-only answer, as errors usually are) or from the
//!   trailers at the end of the response body (unary and streaming calls alike). A
//!   method becomes an endpoint once a service's handler answers it (a response body,
//!   or `OK`); until then, and for any method nothing serves, its calls count under
//!   `(unmatched)`: an interceptor refusing a token, a rate limiter or a router answer
//!   a made-up method with an error, and must not make an endpoint of it. (So a new
//!   method whose first calls all fail is `(unmatched)` until one succeeds.)
//! - **Without a route** (404s, scanners): one endpoint, `(unmatched)` by default, so
//!   made-up URLs cannot become endpoints. Raw URI paths for HTTP are an opt-in
//!   ([`CountLayer::raw_paths`]); the queue's `max_endpoints` still applies.
//! - An extension HTTP method (`PROPFIND`, ...) is counted as
//!   [`CountLayer::fallback_method`] ([`Method::Other`] by default) and in
//!   [`LayerStats::unknown_methods`], never dropped.
//! - The **subject**, when [`CountLayer::subject`] gives an extractor; see
//!   [`Subject`] for how to keep their number bounded.
//!
//! A request is recorded when its response is ready (for gRPC, when its body ends).
//! A request whose handler panics, whose future is dropped (the client went away) or
//! whose service fails is still counted, with no status ("not recorded"); a gRPC
//! response body dropped before its trailers likewise.
//!
//! The layer never fails, blocks, or changes the request or the response: it reads
//! them, records, and passes everything through.

mod future;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use http::header::CONTENT_TYPE;
use http::{Request, Response};

pub use future::{CountBody, CountFuture};

use crate::{CountQueue, Method, Path, Subject};
use future::Recording;

/// The route template of a request, for routers other than axum's: insert it into the
/// request's extensions before [`CountLayer`] sees the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route(pub Path);

/// The default path for requests that matched no route.
pub const UNMATCHED_PATH: &str = "(unmatched)";

/// Counts each request into a [`CountQueue`]; see the [module docs](self).
///
/// `X` extracts the subject: [`NoSubject`] until [`CountLayer::subject`] sets one.
/// Cloning is one reference count (and a clone of `X`): axum clones a route's service
/// for every request.
#[derive(Debug, Clone)]
pub struct CountLayer<X = NoSubject> {
    config: Arc<Config>,
    subject: X,
}

#[derive(Debug, Clone)]
struct Config {
    queue: CountQueue,
    unmatched: Path,
    raw_paths: bool,
    fallback_method: Method,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    unmatched: AtomicU64,
    unknown_methods: AtomicU64,
    refused_paths: AtomicU64,
}

/// What the layer did besides counting plain routed requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerStats {
    /// Requests with no route (gRPC calls nothing served included), counted under
    /// the unmatched path.
    pub unmatched: u64,
    /// Requests with an extension HTTP method, counted under the fallback method.
    pub unknown_methods: u64,
    /// Requests whose route template, raw path or gRPC method was refused (invalid,
    /// or the interner full), counted under the unmatched path.
    pub refused_paths: u64,
}

/// Gives the [`Subject`] of a request: implemented by closures
/// `Fn(&Request<B>) -> Option<Subject>`, and by [`NoSubject`].
pub trait SubjectOf<B>: Clone + Send + Sync + 'static {
    /// The subject to count `request` for, if any.
    fn subject_of(&self, request: &Request<B>) -> Option<Subject>;
}

/// No subject: every request is counted without one.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSubject;

impl<B> SubjectOf<B> for NoSubject {
    #[inline]
    fn subject_of(&self, _: &Request<B>) -> Option<Subject> {
        None
    }
}

impl<B, F> SubjectOf<B> for F
where
    F: Fn(&Request<B>) -> Option<Subject> + Clone + Send + Sync + 'static,
{
    #[inline]
    fn subject_of(&self, request: &Request<B>) -> Option<Subject> {
        self(request)
    }
}

impl CountLayer {
    /// A layer that records into `queue`, without subjects.
    pub fn new(queue: CountQueue) -> CountLayer {
        CountLayer {
            config: Arc::new(Config {
                queue,
                // Interned past the cap: the layer must be able to say "unmatched"
                // when the path interner is full.
                unmatched: Path::from_storage(UNMATCHED_PATH).expect("a valid path"),
                raw_paths: false,
                fallback_method: Method::Other,
                counters: Arc::default(),
            }),
            subject: NoSubject,
        }
    }
}

impl<X> CountLayer<X> {
    /// Counts each request for the subject `extract` gives (`None`: no subject), such
    /// as a tenant an auth middleware put in the request's extensions. Keep it cheap:
    /// it runs on every request.
    pub fn subject<Y>(self, extract: Y) -> CountLayer<Y> {
        CountLayer {
            config: self.config,
            subject: extract,
        }
    }

    /// The path that requests without a route are counted under.
    /// Default [`UNMATCHED_PATH`], `(unmatched)`.
    pub fn unmatched_path(mut self, path: Path) -> Self {
        Arc::make_mut(&mut self.config).unmatched = path;
        self
    }

    /// Count HTTP requests without a route under their raw URI path instead of the
    /// unmatched path. Default off: every distinct URL a scanner tries would become
    /// an endpoint (the queue's `max_endpoints` still caps them).
    pub fn raw_paths(mut self, raw: bool) -> Self {
        Arc::make_mut(&mut self.config).raw_paths = raw;
        self
    }

    /// The method extension HTTP methods are counted under. Default [`Method::Other`].
    pub fn fallback_method(mut self, method: Method) -> Self {
        Arc::make_mut(&mut self.config).fallback_method = method;
        self
    }

    /// What the layer counted specially, over every service it wraps (and its clones).
    pub fn stats(&self) -> LayerStats {
        let counters = &self.config.counters;
        LayerStats {
            unmatched: counters.unmatched.load(Relaxed),
            unknown_methods: counters.unknown_methods.load(Relaxed),
            refused_paths: counters.refused_paths.load(Relaxed),
        }
    }

    /// The queue the layer records into.
    pub fn queue(&self) -> &CountQueue {
        &self.config.queue
    }
}

impl Config {
    /// What is known of `request` before the inner service runs.
    fn start<B>(self: &Arc<Self>, request: &Request<B>, subject: Option<Subject>) -> Recording {
        if is_grpc(request) {
            // Whether a service serves this method shows in the response: keep the
            // path (a reference count, no copy) until then.
            return Recording::grpc(Arc::clone(self), request.uri().clone(), subject);
        }
        let method = Method::from_http(request.method()).unwrap_or_else(|| {
            self.counters.unknown_methods.fetch_add(1, Relaxed);
            self.fallback_method
        });
        let path = match self.route_of(request) {
            Some(path) => path,
            None if self.raw_paths => self.interned(request.uri().path()),
            None => self.unmatched(),
        };
        Recording::http(Arc::clone(self), method, path, subject)
    }

    /// The request's route template, if routing found one.
    fn route_of<B>(&self, request: &Request<B>) -> Option<Path> {
        let extensions = request.extensions();
        if let Some(Route(path)) = extensions.get::<Route>() {
            return Some(*path);
        }
        #[cfg(feature = "axum")]
        if let Some(matched) = extensions.get::<axum::extract::MatchedPath>() {
            // A route did match: a template too long to be a `Path` is counted (and
            // shown) as refused, never as unmatched or under its raw URI.
            return Some(self.interned(matched.as_str()));
        }
        None
    }

    /// `text` interned, or the unmatched path when it is refused.
    fn interned(&self, text: &str) -> Path {
        Path::new(text).unwrap_or_else(|_| {
            self.counters.refused_paths.fetch_add(1, Relaxed);
            self.unmatched
        })
    }

    fn unmatched(&self) -> Path {
        self.counters.unmatched.fetch_add(1, Relaxed);
        self.unmatched
    }
}

fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

impl<S, X: Clone> tower_layer::Layer<S> for CountLayer<X> {
    type Service = Count<S, X>;

    fn layer(&self, inner: S) -> Count<S, X> {
        Count {
            inner,
            config: Arc::clone(&self.config),
            subject: self.subject.clone(),
        }
    }
}

/// The service [`CountLayer`] wraps around an inner service.
#[derive(Debug, Clone)]
pub struct Count<S, X = NoSubject> {
    inner: S,
    config: Arc<Config>,
    subject: X,
}

impl<S, X, B, ResBody> tower_service::Service<Request<B>> for Count<S, X>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>>,
    X: SubjectOf<B>,
{
    type Response = Response<CountBody<ResBody>>;
    type Error = S::Error;
    type Future = CountFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let subject = self.subject.subject_of(&request);
        let recording = self.config.start(&request, subject);
        CountFuture::new(self.inner.call(request), recording)
    }
}
