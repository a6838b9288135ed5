//! `CountLayer::limits`: a subject over its quota gets 429 (gRPC: RESOURCE_EXHAUSTED)
//! with the quota headers, never reaching the service, counted with that status and
//! using no quota; admitted responses carry the headers; requests without a subject
//! or a plan pass untouched.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use count_core::layer::CountLayer;
use count_core::limits::{
    Assignment, Class, Endpoints, Limit, LimitPeriod, Limiter, LimiterSettings, Policy, Window,
    used_in,
};
use count_core::{CountQueue, Counter, DateRange, Day, Dimension, Subject, TotalsQuery, Zone};
use count_memory::MemoryCounter;
use http::{Request, Response, StatusCode};
use tower::{Layer, ServiceExt};

async fn limiter_for(counter: &Arc<MemoryCounter>, limit: Limit) -> Limiter {
    let mut policy = Policy::default();
    policy.limits.insert("daily".into(), limit);
    policy.plans.insert("free".into(), vec!["daily".into()]);
    policy
        .subjects
        .insert("acme".into(), Assignment::plan("free"));
    counter.replace_policy(0, &policy).await.unwrap();
    let counter: Arc<dyn Counter> = counter.clone();
    Limiter::start(counter, LimiterSettings::default())
        .await
        .unwrap()
}

fn tenant(req: &Request<Body>) -> Option<Subject> {
    let header = req.headers().get("x-tenant")?.to_str().ok()?;
    Subject::new(header).ok()
}

fn get_as(path: &str, tenant: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(tenant) = tenant {
        request = request.header("x-tenant", tenant);
    }
    request.body(Body::empty()).unwrap()
}

fn header<'a>(response: &'a Response<impl Sized>, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

/// `(status, subject, n)` counted today on `path`.
async fn counted(counter: &MemoryCounter, queue: &CountQueue) -> Vec<(Option<u16>, String, u64)> {
    queue.flush().await.unwrap();
    let query = TotalsQuery::new(
        DateRange::day(Day::today()),
        &[Dimension::Status, Dimension::Subject],
    )
    .unwrap();
    counter
        .totals(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|t| {
            (
                t.status.map(|s| s.code()),
                t.subject.map_or("-".into(), |s| s.as_str().to_owned()),
                t.total,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_past_its_quota_gets_429_with_the_headers() {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone()).build().unwrap();
    let mut limit = Limit::new(LimitPeriod::Day, 3);
    limit.endpoints = Endpoints::Prefix("/search".into());
    let limiter = limiter_for(&counter, limit.clone()).await;
    let app: Router = Router::new()
        .route("/search/{q}", get(|| async { "found" }))
        .route("/other", get(|| async { "other" }))
        .layer(
            CountLayer::new(queue.clone())
                .subject(tenant)
                .limits(limiter.clone()),
        );
    for remaining in [2, 1, 0] {
        let response = app
            .clone()
            .oneshot(get_as("/search/x", Some("acme")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-policy"), None, "on refusals");
        let state = header(&response, "ratelimit").unwrap();
        assert!(
            state.starts_with(&format!("\"daily\";r={remaining};t=")),
            "{state}"
        );
    }
    let refused = app
        .clone()
        .oneshot(get_as("/search/y", Some("acme")))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&refused, "ratelimit-policy"),
        Some("\"daily\";q=3;w=86400")
    );
    let retry: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry));
    assert!(
        header(&refused, "ratelimit")
            .unwrap()
            .starts_with("\"daily\";r=0;t=")
    );
    // Untouched: another endpoint, a subject without a plan, no subject.
    for request in [
        get_as("/other", Some("acme")),
        get_as("/search/x", Some("nobody")),
        get_as("/search/x", None),
    ] {
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit"), None);
    }
    let mut rows = counted(&counter, &queue).await;
    rows.sort();
    assert_eq!(
        rows,
        vec![
            (Some(200), "-".into(), 1),
            (Some(200), "acme".into(), 4),
            (Some(200), "nobody".into(), 1),
            (Some(429), "acme".into(), 1),
        ]
    );
    let window = Window::of(
        LimitPeriod::Day,
        &Zone::UTC,
        jiff::Timestamp::now().as_second(),
    );
    assert_eq!(used_in(&*counter, "acme", &limit, window).await.unwrap(), 3);
    assert_eq!(limiter.stats().refused, 1);
    limiter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_the_limit_does_not_count_gives_its_quota_back() {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone()).build().unwrap();
    let mut limit = Limit::new(LimitPeriod::Day, 2);
    limit.statuses = vec![Class(count_core::StatusClass::Success)];
    let limiter = limiter_for(&counter, limit).await;
    let app: Router = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/fail", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .layer(
            CountLayer::new(queue.clone())
                .subject(tenant)
                .limits(limiter.clone()),
        );
    for _ in 0..5 {
        let failed = app
            .clone()
            .oneshot(get_as("/fail", Some("acme")))
            .await
            .unwrap();
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    for _ in 0..2 {
        let ok = app
            .clone()
            .oneshot(get_as("/ok", Some("acme")))
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
    }
    let refused = app
        .clone()
        .oneshot(get_as("/ok", Some("acme")))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    limiter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_past_its_quota_gets_resource_exhausted_with_retry_info() {
    let counter = Arc::new(MemoryCounter::new());
    let queue = CountQueue::builder(counter.clone()).build().unwrap();
    let limiter = limiter_for(&counter, Limit::new(LimitPeriod::Day, 1)).await;
    let grpc = tower::service_fn(|_: Request<Body>| async {
        let response = Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "0")
            .body(Body::empty())
            .unwrap();
        Ok::<_, Infallible>(response)
    });
    let service = CountLayer::new(queue.clone())
        .subject(tenant)
        .limits(limiter.clone())
        .layer(grpc);
    let call = || {
        Request::post("/pkg.Search/Find")
            .header("content-type", "application/grpc")
            .header("x-tenant", "acme")
            .body(Body::empty())
            .unwrap()
    };
    let first = service.clone().oneshot(call()).await.unwrap();
    assert_eq!(header(&first, "grpc-status"), Some("0"));
    assert!(header(&first, "ratelimit").is_some());
    let refused = service.clone().oneshot(call()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::OK);
    assert_eq!(header(&refused, "grpc-status"), Some("8"));
    assert!(header(&refused, "grpc-message").unwrap().contains("daily"));
    let details = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(header(&refused, "grpc-status-details-bin").unwrap())
        .unwrap();
    let retry: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    // google.rpc.Status { code: 8, .., details: [Any { RetryInfo { retry_delay } }] }
    assert_eq!(&details[..2], &[0x08, 8]);
    let type_url = b"type.googleapis.com/google.rpc.RetryInfo";
    assert!(details.windows(type_url.len()).any(|w| w == type_url));
    let mut delay = vec![0x08];
    let mut n = retry;
    while n >= 0x80 {
        delay.push((n as u8) | 0x80);
        n >>= 7;
    }
    delay.push(n as u8);
    assert!(
        details.ends_with(&delay),
        "RetryInfo's seconds are Retry-After's"
    );
    let mut rows = counted(&counter, &queue).await;
    rows.sort();
    assert_eq!(
        rows,
        vec![(Some(0), "acme".into(), 1), (Some(8), "acme".into(), 1)]
    );
    limiter.stop().await;
}
