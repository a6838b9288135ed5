//! [`CountLayer`]: its settings, and what it knows of a request before the inner
//! service runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use http::Request;
use http::header::CONTENT_TYPE;

use super::future::Recording;
use super::limits::{NoLimits, WithLimits};
use super::service::Count;
use super::subject::NoSubject;
use crate::limits::Limiter;
use crate::{CountQueue, Method, Path, Subject};

/// The route template of a request, for routers other than axum's: insert it into the
/// request's extensions before [`CountLayer`] sees the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route(pub Path);

/// The default path for requests that matched no route.
pub const UNMATCHED_PATH: &str = "(unmatched)";

/// Counts each request into a [`CountQueue`]; see the [module docs](super).
///
/// `X` extracts the subject: [`NoSubject`] until [`CountLayer::subject`] sets one.
/// `L` says whether limits are enforced: [`NoLimits`] until [`CountLayer::limits`].
/// Cloning is one reference count (and a clone of `X`): axum clones a route's service
/// for every request.
#[derive(Debug, Clone)]
pub struct CountLayer<X = NoSubject, L = NoLimits> {
    config: Arc<Config>,
    subject: X,
    limits: L,
}

#[derive(Debug, Clone)]
pub(super) struct Config {
    pub(super) queue: CountQueue,
    unmatched: Path,
    raw_paths: bool,
    fallback_method: Method,
    counters: Arc<Counters>,
    pub(super) limiter: Option<Limiter>,
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
                limiter: None,
            }),
            subject: NoSubject,
            limits: NoLimits,
        }
    }
}

impl<X, L> CountLayer<X, L> {
    /// Counts each request for the subject `extract` gives (`None`: no subject), such
    /// as a tenant an auth middleware put in the request's extensions. Keep it cheap:
    /// it runs on every request.
    pub fn subject<Y>(self, extract: Y) -> CountLayer<Y, L> {
        CountLayer {
            config: self.config,
            subject: extract,
            limits: self.limits,
        }
    }

    /// Enforces `limiter`'s limits before the inner service runs: a subject over a
    /// hard limit gets `429 Too Many Requests` (gRPC: `RESOURCE_EXHAUSTED`) with
    /// `Retry-After` and the `RateLimit-Policy` and `RateLimit` headers, without
    /// reaching the service; it is counted with that status and uses no quota.
    /// Admitted responses carry the headers too. Requests without a subject, and
    /// subjects without a plan, pass untouched. See [`crate::limits`].
    ///
    /// The inner service must be `Clone` (axum's and tonic's are): a subject's first
    /// request in a window waits for its lease, and the service is called after.
    pub fn limits(mut self, limiter: Limiter) -> CountLayer<X, WithLimits> {
        Arc::make_mut(&mut self.config).limiter = Some(limiter);
        CountLayer {
            config: self.config,
            subject: self.subject,
            limits: WithLimits,
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
    pub(super) fn start<B>(
        self: &Arc<Self>,
        request: &Request<B>,
        subject: Option<Subject>,
    ) -> Recording {
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
    pub(super) fn interned(&self, text: &str) -> Path {
        Path::new(text).unwrap_or_else(|_| {
            self.counters.refused_paths.fetch_add(1, Relaxed);
            self.unmatched
        })
    }

    pub(super) fn unmatched(&self) -> Path {
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

impl<S, X: Clone, L> tower_layer::Layer<S> for CountLayer<X, L> {
    type Service = Count<S, X, L>;

    fn layer(&self, inner: S) -> Count<S, X, L> {
        Count {
            inner,
            config: Arc::clone(&self.config),
            subject: self.subject.clone(),
            limits: std::marker::PhantomData,
        }
    }
}
