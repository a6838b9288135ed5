//! `CountLayer` on axum (with and without `MatchedPath`, nested routers), on tonic
//! (a unary and a streaming RPC over loopback), and on a plain tower service.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use count_core::layer::{CountLayer, Route, UNMATCHED_PATH};
use count_core::{
    CountQueue, Counter, CounterExt, DateRange, Day, Dimension, Method, Path, Subject, TotalsQuery,
};
use count_memory::MemoryCounter;
use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceBuilder, ServiceExt};

fn setup() -> (Arc<MemoryCounter>, CountQueue) {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone()).build().unwrap();
    (counter, queue)
}

/// Today's counts as `(method, path, n)`, after a flush.
async fn counted(counter: &MemoryCounter, queue: &CountQueue) -> Vec<(Method, String, u64)> {
    queue.flush().await.unwrap();
    counter
        .day_totals(Day::today())
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.endpoint.method, t.endpoint.path.to_string(), t.total))
        .collect()
}

/// Today's counts as `(method, path, status, n)`, after a flush.
async fn by_status(
    counter: &MemoryCounter,
    queue: &CountQueue,
) -> Vec<(Method, String, Option<u16>, u64)> {
    queue.flush().await.unwrap();
    let query = TotalsQuery::new(
        DateRange::day(Day::today()),
        &[Dimension::Endpoint, Dimension::Status],
    )
    .unwrap();
    counter
        .totals(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|t| {
            let e = t.endpoint.unwrap();
            (
                e.method,
                e.path.to_string(),
                t.status.map(|s| s.code()),
                t.total,
            )
        })
        .collect()
}

fn request(method: &str, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap()
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn users_app(layer: CountLayer) -> Router {
    Router::new()
        .route(
            "/users/{id}",
            get(|| async { "user" }).patch(|| async { "patched" }),
        )
        .route("/health", get(|| async { "ok" }))
        .layer(layer)
}

#[tokio::test]
async fn axum_routes_are_counted_by_template_not_by_uri() {
    let (counter, queue) = setup();
    let app = users_app(CountLayer::new(queue.clone()));
    assert_eq!(
        send(&app, request("GET", "/users/1")).await,
        (StatusCode::OK, "user".into())
    );
    send(&app, request("GET", "/users/2")).await;
    assert_eq!(
        send(&app, request("PATCH", "/users/3")).await,
        (StatusCode::OK, "patched".into())
    );
    send(&app, request("GET", "/health")).await;
    assert_eq!(
        counted(&counter, &queue).await,
        [
            (Method::Get, "/health".into(), 1),
            (Method::Get, "/users/{id}".into(), 2),
            (Method::Patch, "/users/{id}".into(), 1),
        ]
    );
}

#[tokio::test]
async fn requests_matching_no_route_share_one_endpoint() {
    let (counter, queue) = setup();
    let layer = CountLayer::new(queue.clone());
    let app = users_app(layer.clone());
    for uri in ["/nope", "/wp-admin.php", "/.env", "/users"] {
        let (status, _) = send(&app, request("GET", uri)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        counted(&counter, &queue).await,
        [(Method::Get, UNMATCHED_PATH.into(), 4)]
    );
    assert_eq!(layer.stats().unmatched, 4);
}

/// A method the route does not serve (axum answers 405) names no endpoint either:
/// `DELETE /users/1` on a route of GET and PATCH is `(unmatched)`, with its 405.
#[tokio::test]
async fn a_method_the_route_does_not_serve_is_unmatched() {
    let (counter, queue) = setup();
    let layer = CountLayer::new(queue.clone());
    let app = users_app(layer.clone());
    for method in ["DELETE", "POST", "PUT"] {
        let (status, _) = send(&app, request(method, "/users/1")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }
    send(&app, request("GET", "/users/1")).await;
    assert_eq!(
        by_status(&counter, &queue).await,
        [
            (Method::Delete, UNMATCHED_PATH.into(), Some(405), 1),
            (Method::Post, UNMATCHED_PATH.into(), Some(405), 1),
            (Method::Put, UNMATCHED_PATH.into(), Some(405), 1),
            (Method::Get, "/users/{id}".into(), Some(200), 1),
        ]
    );
    assert_eq!(layer.stats().unmatched, 3);
}

#[tokio::test]
async fn the_unmatched_path_is_configurable_and_raw_paths_are_opt_in() {
    let (counter, queue) = setup();
    let layer = CountLayer::new(queue.clone()).unmatched_path(Path::new("(404)").unwrap());
    send(&users_app(layer), request("GET", "/nope")).await;
    let raw = CountLayer::new(queue.clone()).raw_paths(true);
    send(&users_app(raw), request("GET", "/scanned/1")).await;
    assert_eq!(
        counted(&counter, &queue).await,
        [
            (Method::Get, "(404)".into(), 1),
            (Method::Get, "/scanned/1".into(), 1)
        ]
    );
}

#[tokio::test]
async fn without_matched_path_requests_count_as_unmatched_or_raw() {
    // Wrapped around the router from outside, the layer runs before routing: there is
    // no `MatchedPath` yet.
    let (counter, queue) = setup();
    let router = Router::new().route("/users/{id}", get(|| async { "user" }));
    let outside = ServiceBuilder::new()
        .layer(CountLayer::new(queue.clone()))
        .service(router.clone());
    let response = outside.oneshot(request("GET", "/users/1")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let raw = CountLayer::new(queue.clone()).raw_paths(true).layer(router);
    raw.oneshot(request("GET", "/users/2")).await.unwrap();
    assert_eq!(
        counted(&counter, &queue).await,
        [
            (Method::Get, UNMATCHED_PATH.into(), 1),
            (Method::Get, "/users/2".into(), 1)
        ]
    );
}

#[tokio::test]
async fn nested_routers_count_the_full_template() {
    let (counter, queue) = setup();
    let api = Router::new()
        .route("/items/{id}", get(|| async { "item" }))
        .nest(
            "/v2",
            Router::new().route("/items/{id}/reviews", get(|| async { "r" })),
        );
    let app = Router::new()
        .nest("/api", api)
        .layer(CountLayer::new(queue.clone()));
    send(&app, request("GET", "/api/items/7")).await;
    send(&app, request("GET", "/api/v2/items/7/reviews")).await;
    send(&app, request("GET", "/api/v2/items/8/reviews")).await;
    assert_eq!(
        counted(&counter, &queue).await,
        [
            (Method::Get, "/api/items/{id}".into(), 1),
            (Method::Get, "/api/v2/items/{id}/reviews".into(), 2),
        ]
    );
}

#[tokio::test]
async fn extension_methods_are_counted_under_the_fallback_and_shown() {
    let (counter, queue) = setup();
    let layer = CountLayer::new(queue.clone());
    let app = Router::new()
        .route("/dav", axum::routing::any(|| async { "dav" }))
        .layer(layer.clone());
    let (status, body) = send(&app, request("PROPFIND", "/dav")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "dav"));
    let app = Router::new()
        .route("/dav", axum::routing::any(|| async { "dav" }))
        .layer(CountLayer::new(queue.clone()).fallback_method(Method::Post));
    send(&app, request("MKCOL", "/dav")).await;
    assert_eq!(
        counted(&counter, &queue).await,
        [
            (Method::Other, "/dav".into(), 1),
            (Method::Post, "/dav".into(), 1)
        ]
    );
    assert_eq!(layer.stats().unknown_methods, 1);
}

fn grpc_request(uri: &str) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/grpc+proto")
        .body(Body::empty())
        .unwrap()
}

/// A trailers-only gRPC answer with `code`.
async fn grpc_answer(code: &'static str) -> Response<Body> {
    Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", code)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn grpc_calls_a_route_serves_count_under_the_method_with_their_status() {
    let (counter, queue) = setup();
    let flaky_calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let app = Router::new()
        .route(
            "/pkg.Service/Method",
            axum::routing::post(|| grpc_answer("0")),
        )
        .route(
            "/pkg.Service/Fails",
            axum::routing::post(|| grpc_answer("14")),
        )
        .route(
            "/pkg.Service/Flaky",
            axum::routing::post(move || {
                let first = flaky_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0;
                grpc_answer(if first { "0" } else { "14" })
            }),
        )
        .layer(CountLayer::new(queue.clone()));
    send(&app, grpc_request("/pkg.Service/Method")).await;
    // A method that has only ever failed could be anyone's made-up name...
    send(&app, grpc_request("/pkg.Service/Fails")).await;
    // ...until it answers OK once; then its failures are its own.
    send(&app, grpc_request("/pkg.Service/Flaky")).await;
    send(&app, grpc_request("/pkg.Service/Flaky")).await;
    send(&app, grpc_request("/pkg.Service/Method")).await;
    assert_eq!(
        by_status(&counter, &queue).await,
        [
            (Method::Grpc, UNMATCHED_PATH.into(), Some(14), 1),
            (Method::Grpc, "/pkg.Service/Flaky".into(), Some(0), 1),
            (Method::Grpc, "/pkg.Service/Flaky".into(), Some(14), 1),
            (Method::Grpc, "/pkg.Service/Method".into(), Some(0), 2),
        ]
    );
}

/// A gRPC content type sent to URLs no route serves is one
/// `(unmatched)` endpoint, never an endpoint per URL.
#[tokio::test]
async fn grpc_calls_no_route_serves_are_unmatched_whatever_the_content_type() {
    let (counter, queue) = setup();
    let layer = CountLayer::new(queue.clone());
    let app = users_app(layer.clone());
    for n in 0..3 {
        let (status, _) = send(&app, grpc_request(&format!("/scanner/{n}/wp-login.php"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        counted(&counter, &queue).await,
        [(Method::Grpc, UNMATCHED_PATH.into(), 3)]
    );
    assert_eq!(layer.stats().unmatched, 3);
    assert!(Path::interned().entries > 0);
    assert!(
        count_core::Path::new("/scanner/0/wp-login.php").is_ok(),
        "(the path itself is valid: it was left out because nothing served it)"
    );
}

#[tokio::test]
async fn a_plain_tower_service_is_counted_by_its_route_extension() {
    let (counter, queue) = setup();
    let service = tower::service_fn(|req: Request<String>| async move {
        Ok::<_, Infallible>(Response::new(format!("echo {}", req.into_body())))
    });
    let counted_service = CountLayer::new(queue.clone()).layer(service);
    let mut req = Request::builder()
        .method("DELETE")
        .uri("/orders/9")
        .body("body".to_string())
        .unwrap();
    req.extensions_mut()
        .insert(Route(Path::new("/orders/{id}").unwrap()));
    let response = counted_service.clone().oneshot(req).await.unwrap();
    assert_eq!(
        response.into_body().into_inner(),
        "echo body",
        "the request reaches the service unchanged"
    );
    let bare = Request::builder().uri("/x").body(String::new()).unwrap();
    counted_service.oneshot(bare).await.unwrap();
    assert_eq!(
        counted(&counter, &queue).await,
        [
            (Method::Get, UNMATCHED_PATH.into(), 1),
            (Method::Delete, "/orders/{id}".into(), 1),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_unary_and_streaming_calls_are_counted_as_grpc() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let (counter, queue) = setup();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(CountLayer::new(queue.clone()))
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel.clone());
    for _ in 0..3 {
        let reply = client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap();
        assert_eq!(reply.into_inner().status, 1, "SERVING");
    }
    let mut watch = client
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().status, 1);
    drop(watch);
    let unknown = client
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    // A method of no service: tonic answers UNIMPLEMENTED, and it is not an endpoint.
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let missing = grpc
        .unary::<_, HealthCheckRequest, _>(
            tonic::Request::new(HealthCheckRequest::default()),
            http::uri::PathAndQuery::from_static("/made.Up/Method"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::Unimplemented);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        by_status(&counter, &queue).await,
        [
            (Method::Grpc, UNMATCHED_PATH.into(), Some(12), 1),
            (
                Method::Grpc,
                "/grpc.health.v1.Health/Check".into(),
                Some(0),
                3
            ),
            (
                Method::Grpc,
                "/grpc.health.v1.Health/Check".into(),
                Some(5),
                1
            ),
            // The stream was dropped before its trailers: no status.
            (Method::Grpc, "/grpc.health.v1.Health/Watch".into(), None, 1),
        ]
    );
    server.abort();
}

#[tokio::test]
async fn a_route_template_over_the_limit_is_shown_as_refused_not_unmatched() {
    let (counter, queue) = setup();
    let layer = CountLayer::new(queue.clone());
    let template = format!("/{}", "x".repeat(Path::MAX_LEN));
    let app = Router::new()
        .route(&template, get(|| async { "long" }))
        .layer(layer.clone());
    let (status, _) = send(&app, request("GET", &template)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        counted(&counter, &queue).await,
        [(Method::Get, UNMATCHED_PATH.into(), 1)]
    );
    let stats = layer.stats();
    assert_eq!((stats.refused_paths, stats.unmatched), (1, 0));
}

#[tokio::test]
async fn http_statuses_and_subjects_are_counted() {
    let (counter, queue) = setup();
    let layer = CountLayer::new(queue.clone()).subject(|req: &Request<Body>| {
        let key = req.headers().get("x-api-key")?.to_str().ok()?;
        // Only keys the app knows become subjects.
        ["key-a", "key-b"]
            .contains(&key)
            .then(|| Subject::new(key).unwrap())
    });
    let app = Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "no") }))
        .route(
            "/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .layer(layer);
    let with_key = |uri: &str, key: &str| {
        Request::builder()
            .uri(uri)
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap()
    };
    send(&app, with_key("/ok", "key-a")).await;
    send(&app, with_key("/ok", "key-a")).await;
    send(&app, with_key("/ok", "made-up")).await;
    send(&app, with_key("/missing", "key-b")).await;
    send(&app, request("GET", "/broken")).await;
    queue.flush().await.unwrap();
    let query = TotalsQuery::new(
        DateRange::day(Day::today()),
        &[Dimension::Endpoint, Dimension::Subject, Dimension::Status],
    )
    .unwrap();
    let got: Vec<(String, Option<String>, Option<u16>, u64)> = counter
        .totals(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|t| {
            (
                t.endpoint.unwrap().path.to_string(),
                t.subject.map(|s| s.to_string()),
                t.status.map(|s| s.code()),
                t.total,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("/broken".into(), None, Some(500), 1),
            ("/missing".into(), Some("key-b".into()), Some(404), 1),
            ("/ok".into(), None, Some(200), 1),
            ("/ok".into(), Some("key-a".into()), Some(200), 2),
        ]
    );
}

#[tokio::test]
async fn a_panicking_handler_and_a_dropped_request_are_counted_without_a_status() {
    let (counter, queue) = setup();
    let app = Router::new()
        .route(
            "/panics",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("handler bug");
                }
                "unreachable"
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                "late"
            }),
        )
        .layer(CountLayer::new(queue.clone()));
    let panicked = tokio::spawn({
        let app = app.clone();
        async move { app.oneshot(request("GET", "/panics")).await }
    })
    .await
    .unwrap_err();
    assert!(panicked.is_panic());
    let slow = app.clone().oneshot(request("GET", "/slow"));
    // The client gives up: the request's future is dropped unfinished.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(20), slow)
            .await
            .is_err()
    );
    assert_eq!(
        by_status(&counter, &queue).await,
        [
            (Method::Get, "/panics".into(), None, 1),
            (Method::Get, "/slow".into(), None, 1),
        ]
    );
}

/// An interceptor that refuses calls answers every made-up method with an
/// error, trailers-only; none of them becomes an endpoint. A real method becomes one
/// once it answers, and its refusals are its own afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_an_interceptor_refuses_do_not_make_endpoints() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let (counter, queue) = setup();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let token = |request: tonic::Request<()>| match request.metadata().get("authorization") {
        Some(value) if value == "Bearer s3cret" => Ok(request),
        _ => Err(tonic::Status::unauthenticated("no token")),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(CountLayer::new(queue.clone()))
            .layer(tonic::service::interceptor::InterceptorLayer::new(token))
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    for n in 0..3 {
        grpc.ready().await.unwrap();
        let refused = grpc
            .unary::<_, HealthCheckRequest, _>(
                tonic::Request::new(HealthCheckRequest::default()),
                format!("/scanner{n}.Probe/Method").parse().unwrap(),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    }
    let mut client = HealthClient::new(channel);
    let check = || HealthCheckRequest {
        service: String::new(),
    };
    assert!(client.check(check()).await.is_err(), "no token");
    let mut with_token = tonic::Request::new(check());
    with_token
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    client.check(with_token).await.unwrap();
    assert!(client.check(check()).await.is_err(), "no token again");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        by_status(&counter, &queue).await,
        [
            (Method::Grpc, UNMATCHED_PATH.into(), Some(16), 4),
            (
                Method::Grpc,
                "/grpc.health.v1.Health/Check".into(),
                Some(0),
                1
            ),
            (
                Method::Grpc,
                "/grpc.health.v1.Health/Check".into(),
                Some(16),
                1
            ),
        ]
    );
    server.abort();
}
