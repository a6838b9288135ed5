//! Per-request overhead of the layer over the same trivial axum router, in one run:
//! no layer, a layer that does nothing (what axum's `Router::layer` costs by itself),
//! `CountLayer`, and `axum-prometheus`'s `PrometheusMetricLayer`; then `CountLayer`'s
//! own work, over a bare tower service.
//!
//! Each request is built, routed (`/users/{id}`), answered and dropped in-process
//! (no socket), on a current-thread runtime; the flusher runs on another runtime's
//! thread, as in a service. The overhead of a layer is its time minus the bare
//! router's.
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
use count_core::{CountQueue, Path};
use count_memory::MemoryCounter;

fn router() -> Router {
    Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .route("/health", get(|| async { "ok" }))
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

    let apps = [
        ("no_layer", router()),
        // What axum's `Router::layer` itself costs (boxing each route's service and
        // response body), whatever the layer does.
        (
            "identity_layer",
            router().layer(tower::layer::util::Identity::new()),
        ),
        (
            "count_layer",
            router().layer(CountLayer::new(queue.clone())),
        ),
        ("axum_prometheus", router().layer(prometheus_layer)),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("layer");
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(60);
    for (name, app) in apps {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let request = Request::get("/users/42").body(Body::empty()).unwrap();
                        let response = app.clone().oneshot(request).await.unwrap();
                        std::hint::black_box(response);
                    }
                    start.elapsed()
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
    let bare = tower::service_fn(|_: Request<()>| async { Ok::<_, Infallible>(()) });
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

criterion_group!(benches, bench);
criterion_main!(benches);
