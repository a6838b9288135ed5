//! Real HTTP requests over loopback to the example app; its own reports check them.

use std::sync::Arc;

use axum_app::ApiKeys;
use count::limits::{Limiter, LimiterSettings};
use count::memory::MemoryCounter;
use count::{CountQueue, Counter, CounterExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one HTTP/1.1 request (with `x-api-key: key` when given); returns the status
/// code and the body.
async fn http(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let key = key
        .map(|k| format!("x-api-key: {k}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{key}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_counts_its_requests_and_reports_them_live() {
    the_app_counts_into(Arc::new(MemoryCounter::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_counts_into_sqlite() {
    let dir = std::env::temp_dir().join(format!("axum-app-{}", std::process::id()));
    let url = format!("sqlite:{}", dir.join("count.db").display());
    let counter = count::sqlite::SqliteCounter::connect(&url).await.unwrap();
    the_app_counts_into(Arc::new(counter)).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_counts_into_postgresql() {
    let Some(cluster) = count_testcluster::TestCluster::shared() else {
        return;
    };
    let url = cluster.fresh_database("axum_app");
    the_app_counts_into(Arc::new(count::pg::PgCounter::connect(&url).await.unwrap())).await;
}

async fn get_json(address: std::net::SocketAddr, path: &str, field: &str) -> Vec<Value> {
    let (status, body) = http(address, "GET", path, None).await;
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    report[field].as_array().unwrap().clone()
}

/// The app on a free port, counting into `counter`, with the demo's plans.
async fn serve(counter: Arc<dyn Counter>) -> std::net::SocketAddr {
    let queue = CountQueue::builder(counter.clone()).build().unwrap();
    let keys = ApiKeys::new([("key-a", "acme"), ("key-g", "globex")]).unwrap();
    let version = counter.policy().await.unwrap().version;
    counter
        .replace_policy(version, &axum_app::demo_policy())
        .await
        .unwrap();
    let limiter = Limiter::start(counter.clone(), LimiterSettings::default())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, axum_app::app(queue, counter, keys, limiter))
            .await
            .unwrap();
    });
    address
}

/// globex is on the free plan, 5 requests a day to `/users`: the sixth gets 429 with
/// `Retry-After` and the quota headers, never reaching the route; acme (pro) goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_past_its_daily_limit_gets_429_with_the_headers() {
    let address = serve(Arc::new(MemoryCounter::new())).await;
    for left in (0..5).rev() {
        let (status, head) = http_head(address, "/users/1", "key-g").await;
        assert_eq!(status, 200);
        assert!(
            head.contains(&format!("ratelimit: \"free-daily\";r={left};t=")),
            "{head}"
        );
    }
    let (status, head) = http_head(address, "/users/1", "key-g").await;
    assert_eq!(status, 429, "{head}");
    assert!(head.contains("retry-after: "), "{head}");
    assert!(head.contains("ratelimit: \"free-daily\";r=0;t="), "{head}");
    assert!(
        head.contains("ratelimit-policy: \"free-daily\";q=5;w=86400"),
        "{head}"
    );
    assert_eq!(http(address, "GET", "/users/1", Some("key-a")).await.0, 200);
    let calls = get_json(address, "/stats/callers", "calls").await;
    let refused = calls
        .iter()
        .find(|c| c["caller"] == "globex" && c["status"] == 429)
        .expect("the refusal is counted");
    assert_eq!(refused["count"], 1);
}

/// The status and the head (lower-cased) of `GET path` with `key`.
async fn http_head(address: std::net::SocketAddr, path: &str, key: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nx-api-key: {key}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let head = response
        .split_once("\r\n\r\n")
        .unwrap()
        .0
        .to_ascii_lowercase();
    (response[9..12].parse().unwrap(), head)
}

async fn the_app_counts_into(counter: Arc<dyn Counter>) {
    let address = serve(counter).await;

    assert_eq!(http(address, "GET", "/users/1", Some("key-a")).await.0, 200);
    assert_eq!(http(address, "GET", "/users/2", Some("key-a")).await.0, 200);
    assert_eq!(http(address, "GET", "/users/0", Some("key-g")).await.0, 404);
    let (status, body) = http(address, "PATCH", "/users/3", Some("key-g")).await;
    assert_eq!((status, body.as_str()), (200, r#"{"id":3,"updated":true}"#));
    assert_eq!(http(address, "POST", "/users", Some("key-g")).await.0, 201);
    assert_eq!(http(address, "GET", "/users/1", None).await.0, 401);
    assert_eq!(
        http(address, "GET", "/users/1", Some("made-up")).await.0,
        401
    );
    assert_eq!(http(address, "GET", "/no/such/page", None).await.0, 404);

    let counts: Vec<(String, String, u64)> = get_json(address, "/stats/today", "counts")
        .await
        .iter()
        .map(|c| {
            (
                c["method"].as_str().unwrap().to_owned(),
                c["path"].as_str().unwrap().to_owned(),
                c["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let expect = |m: &str, p: &str, n: u64| (m.to_owned(), p.to_owned(), n);
    // A request is counted when it is answered: the report does not count itself.
    assert_eq!(
        counts,
        [
            expect("GET", "(unmatched)", 1),
            expect("POST", "/users", 1),
            expect("GET", "/users/{id}", 5),
            expect("PATCH", "/users/{id}", 1),
        ]
    );

    let calls: Vec<(Option<String>, String, Option<u64>, u64)> =
        get_json(address, "/stats/callers", "calls")
            .await
            .iter()
            .map(|c| {
                (
                    c["caller"].as_str().map(str::to_owned),
                    format!(
                        "{} {}",
                        c["method"].as_str().unwrap(),
                        c["path"].as_str().unwrap()
                    ),
                    c["status"].as_u64(),
                    c["count"].as_u64().unwrap(),
                )
            })
            .collect();
    let call = |caller: Option<&str>, endpoint: &str, status: u64, n: u64| {
        (
            caller.map(str::to_owned),
            endpoint.to_owned(),
            Some(status),
            n,
        )
    };
    assert_eq!(
        calls,
        [
            // Ordered by endpoint (path, then method), then caller, then status.
            call(None, "GET (unmatched)", 404, 1),
            call(None, "GET /stats/today", 200, 1),
            call(Some("globex"), "POST /users", 201, 1),
            call(None, "GET /users/{id}", 401, 2),
            call(Some("acme"), "GET /users/{id}", 200, 2),
            call(Some("globex"), "GET /users/{id}", 404, 1),
            call(Some("globex"), "PATCH /users/{id}", 200, 1),
        ]
    );
}
