//! Hostile input never panics the server: every request below gets a proper HTTP
//! answer (400, 401, 404, 414, 431, never a dropped connection), junk on the port is
//! shrugged off, and the server serves normally afterwards.

mod common;

use common::{GET, NOON, Running, add, add_all, memory, raw};
use count_server::ServerConfig;

/// The status code of the answer to `target` sent as a raw HTTP/1.1 GET, with
/// `extra` header lines; panics when no status line comes back (a dropped connection
/// is what a panicking handler looks like).
async fn status_of(server: &Running, target: &[u8], extra: &[u8]) -> u16 {
    let mut request = b"GET ".to_vec();
    request.extend_from_slice(target);
    request.extend_from_slice(b" HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
    request.extend_from_slice(extra);
    request.extend_from_slice(b"\r\n");
    let answer = raw(server.address, &request).await;
    let shown: String = String::from_utf8_lossy(&target[..target.len().min(80)]).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 "),
        "{shown}: no answer: {answer:?}"
    );
    answer[9..12]
        .parse()
        .unwrap_or_else(|_| panic!("{shown}: {answer:?}"))
}

async fn still_serving(server: &Running) {
    assert!(!server.has_ended(), "the server task ended");
    assert_eq!(server.get("/healthz", &[]).await.status, 200);
    let mut client = server.client().await;
    add_all(&mut client, vec![add(GET, "/after", NOON)]).await;
    let reply = server.get("/api/v1/totals?period=2024-03-10", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_parameters_get_400_never_a_panic() {
    let (_, counter) = memory();
    let server = Running::start(ServerConfig::new(), counter).await;
    let api = |query: &str| format!("/api/v1/totals?{query}").into_bytes();
    let long_group = format!("period=2026&group={}", "day,".repeat(2_000));
    let long_subject = format!("period=2026&subject={}", "s".repeat(20_000));
    let long_path = format!("period=2026&endpoint=GET+/{}", "p".repeat(5_000));
    let long_name = format!("period=2026&{}=1", "n".repeat(20_000));
    let many_pairs = format!("period=2026{}", "&".repeat(20_000));
    let many_unknown = format!("period=2026{}", "&x=1".repeat(5_000));
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (api(&long_group), 400),
        (api(&long_subject), 400),
        (api(&long_path), 400),
        (api(&long_name), 400),
        (api(&many_pairs), 200),
        (api(&many_unknown), 400),
        (api("period=2026&subject=%"), 400),
        (api("period=2026&subject=%%"), 400),
        (api("period=2026&subject=%0"), 400),
        (api("period=2026&subject=%ZZ"), 400),
        (api("period=2026&subject=%C0%80"), 400),
        (api("period=2026&subject=%ED%A0%80"), 400),
        (api("period=2026&subject=%00"), 400),
        (api("period=2026&subject=%2525"), 200),
        (api("%=1"), 400),
        (api("=&=&="), 400),
        (api("period=%FF%FE"), 400),
        (api("period=2026&status=99999999999999999999999"), 400),
        (api("period=2026&status=-0"), 400),
        (api("period=0000"), 400),
        (api("period=9999-12-31"), 400),
        (api("from=9999-12-30&to=9999-12-30"), 200),
        (
            api("from=0001-01-01&to=0001-01-01&group=day,endpoint,subject,status"),
            200,
        ),
        (api("period=2026&endpoint=GET+%00"), 400),
        (api("period=2026&endpoint=+/x"), 400),
        (api("period=2026&endpoint=GET%20%20/x"), 200),
        (api("period=2026&group=%2C"), 400),
        (api("period=2026&format=%00"), 400),
        (
            b"/api/v1/totals?period=2026&subject=caf\xc3\xa9".to_vec(),
            200,
        ),
        (b"/api/v1/totals?period=2026#fragment".to_vec(), 200),
        (b"/api/v1/totals/../../etc/passwd".to_vec(), 404),
        (b"/api/v1/totals%3Fperiod=2026".to_vec(), 404),
        (b"//api/v1/totals?period=2026".to_vec(), 404),
    ];
    for (target, expected) in cases {
        let got = status_of(&server, &target, b"").await;
        let shown = String::from_utf8_lossy(&target[..target.len().min(60)]).into_owned();
        assert_eq!(got, expected, "{shown}");
    }
    // Past what a request line may hold: refused by the HTTP layer, not a handler.
    let huge = api(&format!("period=2026&group={}", "day,".repeat(200_000)));
    let got = status_of(&server, &huge, b"").await;
    assert!(matches!(got, 400 | 414 | 431), "{got}");
    still_serving(&server).await;
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_headers_and_junk_on_the_port_are_shrugged_off() {
    let (_, counter) = memory();
    let server = Running::start(ServerConfig::new().with_token("t0ken"), counter).await;
    let totals = b"/api/v1/totals?period=2026";
    for (headers, expected) in [
        (&b"authorization: Bearer t0ken\r\n"[..], 200),
        (
            b"authorization: Bearer t0ken\r\naccept: text/csv;q=0.1, */*\r\n",
            200,
        ),
        (b"authorization: \xff\xfe\r\n", 401),
        (b"authorization: Bearer t0ken\x01\r\n", 400),
        (b"authorization: \r\n", 401),
        (
            b"authorization: Bearer t0ken\r\nauthorization: Bearer t0ken\r\n",
            200,
        ),
        (b"content-type: application/grpc\r\n", 200),
    ] {
        let got = status_of(&server, totals, headers).await;
        assert_eq!(got, expected, "{}", String::from_utf8_lossy(headers));
    }
    // gRPC's content type without the token: answered in gRPC's way (HTTP 200 with
    // grpc-status 16), not a 401 page.
    let answer = raw(
        server.address,
        b"POST /count.v1.CountService/Add HTTP/1.1\r\nhost: x\r\ncontent-type: application/grpc\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.contains("grpc-status: 16"), "{answer}");

    let mut big_header = b"x-junk: ".to_vec();
    big_header.extend(std::iter::repeat_n(b'a', 1 << 20));
    big_header.extend_from_slice(b"\r\n");
    let got = status_of(&server, totals, &big_header).await;
    assert!(matches!(got, 400 | 431), "{got}");

    for junk in [
        &b"\x00\x01\x02\x03garbage\r\n\r\n"[..],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET\r\n\r\n",
        b"\x16\x03\x01\x00\x05hello",
        &[0xff; 4096],
    ] {
        // Whatever comes back (an error page, or the connection closed), the server
        // must not stop.
        let _ = raw(server.address, junk).await;
    }
    let mut client = server.client().await;
    let unauthenticated = client
        .add(tokio_stream::iter(vec![add(GET, "/x", NOON)]))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);
    assert!(!server.has_ended());
    assert_eq!(server.get("/healthz", &[]).await.status, 200);
    let ok = server
        .get(
            "/api/v1/totals?period=2026",
            &[("authorization", "Bearer t0ken")],
        )
        .await;
    assert_eq!(ok.status, 200);
    server.stop().await.unwrap();
}
