//! [`CountLayer`]: a `tower` layer that counts every request of an axum, tonic or hyper
//! service through a [`CountQueue`](crate::CountQueue): by route, by how it ended, and (optionally) by
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
//! - **gRPC** (`content-type: application/grpc…`): [`Method::Grpc`](crate::Method::Grpc) and the gRPC
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
//!   [`CountLayer::fallback_method`] ([`Method::Other`](crate::Method::Other) by default) and in
//!   [`LayerStats::unknown_methods`], never dropped.
//! - The **subject**, when [`CountLayer::subject`] gives an extractor; see
//!   [`Subject`](crate::Subject) for how to keep their number bounded.
//!
//! A request is recorded when its response is ready (for gRPC, when its body ends).
//! A request whose handler panics, whose future is dropped (the client went away) or
//! whose service fails is still counted, with no status ("not recorded"); a gRPC
//! response body dropped before its trailers likewise.
//!
//! The layer never fails, blocks, or changes the request or the response: it reads
//! them, records, and passes everything through.

mod future;
// Laid out as tower-http lays out a middleware: layer.rs holds the layer.
#[allow(clippy::module_inception)]
mod layer;
mod limits;
mod service;
mod subject;

pub use future::{CountBody, CountFuture};
pub use layer::{CountLayer, LayerStats, Route, UNMATCHED_PATH};
pub use limits::{LimitedFuture, NoLimits, RATELIMIT, RATELIMIT_POLICY, WithLimits};
pub use service::Count;
pub use subject::{NoSubject, SubjectOf};
