//! Real HTTP requests over loopback to the example app; its own report checks them.

use std::sync::Arc;

use count_core::{CountQueue, Counter};
use count_memory::MemoryCounter;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one HTTP/1.1 request; returns the status code and the body.
async fn http(address: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
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
async fn the_app_counts_into_postgresql() {
    let Some(cluster) = count_testcluster::TestCluster::shared() else {
        return;
    };
    let url = cluster.fresh_database("axum_app");
    the_app_counts_into(Arc::new(count_pg::PgCounter::connect(&url).await.unwrap())).await;
}

async fn the_app_counts_into(counter: Arc<dyn Counter>) {
    let queue = CountQueue::builder(counter.clone()).build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, axum_app::app(queue, counter))
            .await
            .unwrap();
    });

    assert_eq!(http(address, "GET", "/users/1").await.0, 200);
    assert_eq!(http(address, "GET", "/users/2").await.0, 200);
    let (status, body) = http(address, "PATCH", "/users/3").await;
    assert_eq!((status, body.as_str()), (200, r#"{"id":3,"updated":true}"#));
    assert_eq!(http(address, "POST", "/users").await.0, 201);
    assert_eq!(http(address, "GET", "/no/such/page").await.0, 404);

    let (status, body) = http(address, "GET", "/stats/today").await;
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    let counts: Vec<(String, String, u64)> = report["counts"]
        .as_array()
        .unwrap()
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
    assert_eq!(
        counts,
        [
            expect("GET", "(unmatched)", 1),
            expect("GET", "/stats/today", 1),
            expect("POST", "/users", 1),
            expect("GET", "/users/{id}", 2),
            expect("PATCH", "/users/{id}", 1),
        ]
    );
}
