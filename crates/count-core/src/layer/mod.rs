//! [`CountLayer`]: a `tower` layer that counts every request of an axum, tonic or hyper
//! service through a [`CountQueue`], before the inner service runs.
//!
//! What is counted per request:
//!
//! - **gRPC** (`content-type: application/grpc…`): [`Method::Grpc`] and the gRPC
//!   method path (`/pkg.Service/Method`), for unary and streaming calls alike.
//! - **HTTP with a route**: the route *template*: a [`Route`] extension if the app set
//!   one, else axum's `MatchedPath` (feature `axum`) — `/users/{id}`, never
//!   `/users/42`.
//! - **HTTP without a route** (404s, scanners): one endpoint, `(unmatched)` by
//!   default, so bots cannot explode the number of endpoints. Raw URI paths are an
//!   opt-in ([`CountLayer::raw_paths`]); the queue's `max_endpoints` still applies.
//! - An extension HTTP method (`PROPFIND`, ...) is counted as
//!   [`CountLayer::fallback_method`] ([`Method::Other`] by default) and in
//!   [`LayerStats::unknown_methods`], never dropped.
//!
//! The layer never fails, blocks, or touches the request or the response: it records
//! and calls the inner service, whose future it returns unchanged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use http::Request;
use http::header::CONTENT_TYPE;

use crate::{CountQueue, Method, Path};

/// The route template of a request, for routers other than axum's: insert it into the
/// request's extensions before [`CountLayer`] sees the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route(pub Path);

/// The default path for requests that matched no route.
pub const UNMATCHED_PATH: &str = "(unmatched)";

/// Counts each request into a [`CountQueue`]; see the [module docs](self).
///
/// Cloning is one reference count: axum clones a route's service for every request.
#[derive(Debug, Clone)]
pub struct CountLayer {
    config: Arc<Config>,
}

#[derive(Debug)]
struct Config {
    queue: CountQueue,
    unmatched: Path,
    raw_paths: bool,
    fallback_method: Method,
    unmatched_requests: AtomicU64,
    unknown_methods: AtomicU64,
    refused_paths: AtomicU64,
}

/// What the layer did besides counting plain routed requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerStats {
    /// Requests with no route, counted under the unmatched path.
    pub unmatched: u64,
    /// Requests with an extension HTTP method, counted under the fallback method.
    pub unknown_methods: u64,
    /// Requests whose raw or gRPC path was refused (invalid, or the interner full),
    /// counted under the unmatched path.
    pub refused_paths: u64,
}

impl CountLayer {
    /// A layer that records into `queue`.
    pub fn new(queue: CountQueue) -> CountLayer {
        CountLayer {
            config: Arc::new(Config {
                queue,
                unmatched: Path::new(UNMATCHED_PATH).expect("a valid path"),
                raw_paths: false,
                fallback_method: Method::Other,
                unmatched_requests: AtomicU64::new(0),
                unknown_methods: AtomicU64::new(0),
                refused_paths: AtomicU64::new(0),
            }),
        }
    }

    /// The path that requests without a route are counted under.
    /// Default [`UNMATCHED_PATH`], `(unmatched)`.
    pub fn unmatched_path(mut self, path: Path) -> Self {
        self.config_mut().unmatched = path;
        self
    }

    /// Count requests without a route under their raw URI path instead of the
    /// unmatched path. Default off: every distinct URL a scanner tries would become
    /// an endpoint (the queue's `max_endpoints` still caps them).
    pub fn raw_paths(mut self, raw: bool) -> Self {
        self.config_mut().raw_paths = raw;
        self
    }

    /// The method extension HTTP methods are counted under. Default [`Method::Other`].
    pub fn fallback_method(mut self, method: Method) -> Self {
        self.config_mut().fallback_method = method;
        self
    }

    /// What the layer counted specially, over every service it wraps.
    pub fn stats(&self) -> LayerStats {
        LayerStats {
            unmatched: self.config.unmatched_requests.load(Relaxed),
            unknown_methods: self.config.unknown_methods.load(Relaxed),
            refused_paths: self.config.refused_paths.load(Relaxed),
        }
    }

    /// The queue the layer records into.
    pub fn queue(&self) -> &CountQueue {
        &self.config.queue
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::get_mut(&mut self.config).expect("configure a CountLayer before cloning it")
    }

    /// Records one request.
    fn count<B>(&self, request: &Request<B>) {
        let config = &*self.config;
        if is_grpc(request) {
            let path = self.interned(request.uri().path());
            config.queue.record(Method::Grpc, path);
            return;
        }
        let method = Method::from_http(request.method()).unwrap_or_else(|| {
            config.unknown_methods.fetch_add(1, Relaxed);
            config.fallback_method
        });
        let path = match self.route_of(request) {
            Some(path) => path,
            None if config.raw_paths => self.interned(request.uri().path()),
            None => {
                config.unmatched_requests.fetch_add(1, Relaxed);
                config.unmatched
            }
        };
        config.queue.record(method, path);
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
            self.config.refused_paths.fetch_add(1, Relaxed);
            self.config.unmatched
        })
    }
}

fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

impl<S> tower_layer::Layer<S> for CountLayer {
    type Service = CountService<S>;

    fn layer(&self, inner: S) -> CountService<S> {
        CountService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`CountLayer`] wraps around an inner service.
#[derive(Debug, Clone)]
pub struct CountService<S> {
    inner: S,
    layer: CountLayer,
}

impl<S, B> tower_service::Service<Request<B>> for CountService<S>
where
    S: tower_service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> S::Future {
        self.layer.count(&request);
        self.inner.call(request)
    }
}
