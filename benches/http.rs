//! `/api/v1/totals` and the dashboard over a year of 1,000 endpoints.
//!
//! 2025's daily counts of 1,000 endpoints (365,000 counts, rolled up as a running
//! server leaves finished days) in a SQLite file (the server's default backend) and,
//! beside it, in memory; `count-server` serves each in this process, sharing the 2
//! cores with the clients.
//!
//! - `totals/<request>/<backend>`: the requests the dashboard sends for a year, one at a time
//!   over a keep-alive HTTP/1.1 connection, timed until the whole body is read:
//!   `group=endpoint` (1,000 rows), `group=day` (365 rows), `group=subject`,
//!   `group=status`, and `group=day&endpoint=...` (what the page asks for each of its
//!   six busiest endpoints).
//! - `page/load/<backend>`: the dashboard opened in headless Chromium on the year, timed by the
//!   page itself (`document.documentElement.dataset.loadMs`: from navigation start
//!   until the chart and table of every request above are drawn). Skipped without
//!   Debian's `chromium` and `chromium-driver`.
//!
//! After criterion's samples, each is run again on its own to print its p50 and p99
//! (`totals`: 100 requests each; `page`: 30 loads).
//!
//! `cargo bench -p count-benches --bench http`

#[path = "../count-server/tests/browser/webdriver.rs"]
mod webdriver;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use count::{Migrations, Opened};
use count_benches::runtime;
use count_core::uuid::Uuid;
use count_core::{
    Batch, BatchId, BucketCount, CountKey, DateRange, Day, Endpoint, Method, Path, Status,
};
use count_server::ServerConfig;
use count_server::backend::{self, Backend};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::runtime::Runtime;

const ENDPOINTS: usize = 1000;
const YEAR: i32 = 2025;

fn year() -> DateRange {
    DateRange::new(
        Day::new(YEAR, 1, 1).unwrap(),
        Day::new(YEAR, 12, 31).unwrap(),
    )
    .unwrap()
}

fn endpoint(i: usize) -> Endpoint {
    Endpoint::new(
        Method::Get,
        Path::new(&format!("/api/things-{i:04}/{{id}}")).unwrap(),
    )
}

/// The backends compared: a new SQLite file, and memory.
fn backends() -> [(&'static str, String); 2] {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("http-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    [
        (
            "sqlite",
            backend::sqlite_url(&dir.join("count.db")).unwrap(),
        ),
        ("memory", "memory:".to_owned()),
    ]
}

/// The backend at `url` with a year of daily counts for every endpoint, rolled up.
fn fill(runtime: &Runtime, url: &str) -> Opened {
    let started = Instant::now();
    let opened = runtime
        .block_on(backend::open(url, Backend::Auto, Migrations::Apply))
        .unwrap();
    let ok = Status::from_code(200).unwrap();
    let writer = Uuid::new_v4();
    runtime.block_on(async {
        for (d, day) in year().days().enumerate() {
            // Busier endpoints first, each day a little different.
            let counts = (0..ENDPOINTS)
                .map(|i| {
                    let n = 1 + (ENDPOINTS - i) as u64 * 10 + ((d * 7 + i) % 13) as u64;
                    BucketCount::new(CountKey::new(endpoint(i)).with_status(ok), day.start(), n)
                })
                .collect();
            let id = BatchId {
                writer,
                seq: d as u64 + 1,
            };
            opened
                .counter()
                .write(&Batch::new(id, counts).unwrap())
                .await
                .unwrap();
            opened.counter().rollup(day).await.unwrap();
        }
    });
    eprintln!(
        "http bench: {}: {} counts written and rolled up in {:.1?}",
        opened.description(),
        ENDPOINTS * 365,
        started.elapsed()
    );
    opened
}

/// Serves `opened` in this process; its base URL.
fn serve(runtime: &Runtime, opened: Opened) -> String {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = ServerConfig::new().with_rollup(false);
    runtime.spawn(count_server::serve(
        config,
        opened,
        listener,
        std::future::pending(),
    ));
    url
}

/// The dashboard's requests for the year: (name, path and query).
fn requests() -> Vec<(&'static str, String)> {
    let range = format!("from={YEAR}-01-01&to={YEAR}-12-31");
    let busiest = endpoint(0);
    let filter: String = format!("{} {}", busiest.method, busiest.path)
        .replace(' ', "%20")
        .replace('{', "%7B")
        .replace('}', "%7D");
    vec![
        (
            "group=endpoint",
            format!("/api/v1/totals?{range}&group=endpoint"),
        ),
        ("group=day", format!("/api/v1/totals?{range}&group=day")),
        (
            "group=subject",
            format!("/api/v1/totals?{range}&group=subject"),
        ),
        (
            "group=status",
            format!("/api/v1/totals?{range}&group=status"),
        ),
        (
            "group=day&endpoint",
            format!("/api/v1/totals?{range}&group=day&endpoint={filter}"),
        ),
    ]
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// One GET, body read whole; its length.
async fn get(client: &HttpClient, url: &str) -> usize {
    let response = client.get(url.parse().unwrap()).await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .len()
}

/// The p50 and p99 of `times`.
fn percentiles(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}

fn bench(c: &mut Criterion) {
    let runtime = runtime();
    let servers: Vec<(&str, String)> = backends()
        .into_iter()
        .map(|(name, url)| (name, serve(&runtime, fill(&runtime, &url))))
        .collect();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    let mut group = c.benchmark_group("totals");
    group.sample_size(20);
    for (request, path) in requests() {
        for (backend, base) in &servers {
            let url = format!("{base}{path}");
            let bytes = runtime.block_on(get(&client, &url));
            eprintln!("http bench: {request} on {backend}: {bytes} bytes");
            group.bench_function(format!("{request}/{backend}"), |b| {
                b.iter(|| runtime.block_on(get(&client, &url)))
            });
        }
    }
    group.finish();
    for (request, path) in requests() {
        for (backend, base) in &servers {
            let url = format!("{base}{path}");
            let times = (0..100)
                .map(|_| {
                    let started = Instant::now();
                    runtime.block_on(get(&client, &url));
                    started.elapsed()
                })
                .collect();
            let (p50, p99) = percentiles(times);
            println!("totals/{request}/{backend}: p50 {p50:.2?}, p99 {p99:.2?} (100 requests)");
        }
    }

    let Some(browser) = runtime.block_on(webdriver::Browser::start()) else {
        return;
    };
    let mut next = 0;
    let mut load = |base: &str| -> Duration {
        next += 1;
        runtime.block_on(async {
            // A new document each time: a query the page ignores.
            let page = format!("{base}/?load={next}#from={YEAR}-01-01&to={YEAR}-12-31");
            browser.goto(&page).await;
            browser
                .wait_for(
                    "document.documentElement.dataset.loadMs",
                    "the page's first load",
                    Duration::from_secs(60),
                )
                .await;
            let ms = browser
                .js(
                    "return Number(document.documentElement.dataset.loadMs)",
                    vec![],
                )
                .await;
            Duration::from_millis(ms.as_u64().expect("loadMs in whole milliseconds"))
        })
    };
    let mut group = c.benchmark_group("page");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    for (backend, base) in &servers {
        load(base);
        let shown = runtime.block_on(browser.js(
            "return [document.getElementById('endpoint-count').textContent, \
             document.querySelectorAll('#chart rect[data-day]').length]",
            vec![],
        ));
        assert_eq!(shown, json!(["1,000", 365 * 7]), "the page shows the year");
        group.bench_function(format!("load/{backend}"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| load(base)).sum())
        });
    }
    group.finish();
    for (backend, base) in &servers {
        let times = (0..30).map(|_| load(base)).collect();
        let (p50, p99) = percentiles(times);
        println!(
            "page/load/{backend}: p50 {} ms, p99 {} ms (30 loads, measured by the page)",
            p50.as_millis(),
            p99.as_millis()
        );
    }
    runtime.block_on(browser.screenshot("http-bench-year"));
}

criterion_group!(benches, bench);
criterion_main!(benches);
