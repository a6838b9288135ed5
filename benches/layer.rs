//! Per-request overhead of the layer over the same trivial axum router, in one run:
//! no layer, a layer that does nothing (what axum's `Router::layer` costs by itself),
//! `CountLayer` (route and status), `CountLayer` with a subject taken from a header,
//! and `axum-prometheus`'s `PrometheusMetricLayer`; then `CountLayer`'s own work,
//! over a bare tower service.
//!
//! Each request is built, routed (`/users/{id}`), answered and dropped in-process
//! (no socket), on a current-thread runtime; the flusher runs on another runtime's
//! thread, as in a service. Routers are prepared as `axum::serve` prepares them
//! (`with_state(())`: handlers made into routes once). The overhead of a layer is
//! its time minus the bare router's.
//!
//! The `layer_adds` group measures what each layer adds in pairs (bare and layered
//! requests alternating in blocks), which is what the target is about.
//!
//! `cargo bench -p count-benches --bench layer`, then `python3 benches/report.py`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use tower::{Layer, ServiceExt};

use count_core::layer::{CountLayer, Route};
use count_core::{CountQueue, Path, Subject};
use count_memory::MemoryCounter;

fn router() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/health", get(|| async { "ok" }))
}

/// Requests per block of a pair in `layer_adds`.
const PAIR_BLOCK: u64 = 1024;

/// One request through `app`: built, routed, answered, dropped.
async fn request_through(app: &Router) {
    let request = Request::get("/users/42")
        .header("x-api-key", "acme")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    std::hint::black_box(response);
}

fn bench(c: &mut Criterion) {
    let flusher = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let queue = CountQueue::builder(Arc::new(MemoryCounter::new()))
        .runtime(flusher.handle().clone())
        .lane_capacity(1 << 16)
        .build()
        .unwrap();
    // Its handle spawns an upkeep task: on the background runtime, like the flusher.
    let (prometheus_layer, _handle) = {
        let _runtime = flusher.enter();
        axum_prometheus::PrometheusMetricLayer::pair()
    };

    // `with_state(())` turns every handler into its route (layers applied) once, as
    // `axum::serve` does through `into_make_service`. Without it, a `Router` called
    // as a service converts the handler and applies its layers on every request,
    // which costs more than any layer does.
    let apps = [
        ("no_layer", router().with_state(())),
        // What axum's `Router::layer` itself costs (a boxed route around each route,
        // cloned per request), whatever the layer does.
        (
            "identity_layer",
            router()
                .layer(tower::layer::util::Identity::new())
                .with_state(()),
        ),
        (
            "count_layer",
            router()
                .layer(CountLayer::new(queue.clone()))
                .with_state(()),
        ),
        (
            "count_layer_subject",
            router()
                .layer(CountLayer::new(queue.clone()).subject(api_key))
                .with_state(()),
        ),
        (
            "axum_prometheus",
            router().layer(prometheus_layer).with_state(()),
        ),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("layer");
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(60);
    for (name, app) in &apps {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        request_through(app).await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();

    // What each layer adds, measured in pairs: blocks of requests through the bare
    // router and through the layered one alternate, and only the difference is
    // kept. The timings above are taken one after another, seconds apart, and drift
    // on this machine by more than a layer costs; a pair shares its moment.
    let mut group = c.benchmark_group("layer_adds");
    group.measurement_time(Duration::from_secs(6));
    group.sample_size(60);
    let bare = &apps[0].1;
    for (name, app) in &apps[1..] {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut added = Duration::ZERO;
                    let mut saved = Duration::ZERO;
                    for _ in 0..iters.div_ceil(PAIR_BLOCK) {
                        let start = Instant::now();
                        for _ in 0..PAIR_BLOCK {
                            request_through(bare).await;
                        }
                        let middle = Instant::now();
                        for _ in 0..PAIR_BLOCK {
                            request_through(app).await;
                        }
                        let end = Instant::now();
                        let (without, with) = (middle - start, end - middle);
                        added += with.saturating_sub(without);
                        saved += without.saturating_sub(with);
                    }
                    // Per `PAIR_BLOCK` requests; never zero, which criterion refuses.
                    added
                        .saturating_sub(saved)
                        .max(Duration::from_nanos(1))
                        .mul_f64(iters as f64 / (iters.div_ceil(PAIR_BLOCK) * PAIR_BLOCK) as f64)
                })
            })
        });
    }
    group.finish();

    // The layer's own work, without axum around it: a request with a route (the
    // `Route` extension, as axum's `MatchedPath` would be) through a bare tower
    // service, with and without `CountLayer`.
    let mut group = c.benchmark_group("layer_alone");
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(60);
    let route = Route(Path::new("/users/{id}").unwrap());
    let bare =
        tower::service_fn(|_: Request<()>| async { Ok::<_, Infallible>(http::Response::new(())) });
    let counted = CountLayer::new(queue.clone()).layer(bare);
    let request = || {
        let mut request = Request::get("/users/42").body(()).unwrap();
        request.extensions_mut().insert(route);
        request
    };
    group.bench_function("service_fn", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    bare.oneshot(request()).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("count_layer_over_service_fn", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    counted.clone().oneshot(request()).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();

    let stats = queue.stats();
    assert_eq!(stats.dropped(), 0, "{stats:?}");
}

/// The header the subject is read from, parsed once (a `&str` name is parsed on
/// every lookup).
static API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");

/// The subject of a request: its API key, when it is one the app knows (here, every
/// key is; an app would look it up in its own table of keys).
fn api_key(request: &Request<Body>) -> Option<Subject> {
    let key = request.headers().get(&API_KEY)?.to_str().ok()?;
    Subject::new(key).ok()
}

criterion_group!(benches, bench);
criterion_main!(benches);
