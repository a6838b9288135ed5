//! TLS on the one port: gRPC over h2, and HTTP/1.1 for browsers and tools (ALPN
//! offers both); an untrusted or plaintext client gets nowhere; a missing or
//! mismatched file stops the server naming it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Running, certificates, memory, sum, temp_dir};
use count_core::testkit::Scope;
use count_core::{Counter, DateRange, Day, Method};
use count_grpc::GrpcCounter;
use count_server::{ServerConfig, TlsFiles};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tonic::transport::{Certificate, ClientTlsConfig};

/// A TLS connection to `port` trusting `ca`, offering `alpn`.
async fn connect(
    port: u16,
    ca: &std::path::Path,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_1_1_share_the_tls_port() {
    let dir = temp_dir("tls");
    let (ca, cert, key) = certificates(&dir);
    let (memory, counter) = memory();
    let config = ServerConfig::new().with_tls(TlsFiles::new(cert, key));
    let server = Running::start(config, counter).await;
    let port = server.address.port();
    let url = format!("https://localhost:{port}");
    let trusted = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&ca).unwrap()))
        .domain_name("localhost");
    let counter = GrpcCounter::builder(&url)
        .tls(trusted)
        .connect()
        .await
        .unwrap();
    let s = Scope::new();
    counter
        .write(&s.batch(&[(Method::Get, "/tls", "2024-03-10T00:00:00Z", 3)]))
        .await
        .unwrap();
    let d = Day::new(2024, 3, 10).unwrap();
    assert_eq!(sum(&*memory, DateRange::day(d)).await, 3);

    // A client that speaks only HTTP/1.1 (ALPN http/1.1, or none at all).
    for alpn in [&[b"http/1.1".as_slice()][..], &[]] {
        let tls = connect(port, &ca, alpn).await;
        if !alpn.is_empty() {
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        }
        let reply = common::http1_get(
            tls,
            "localhost",
            "/api/v1/totals?period=2024-03&group=day",
            &[],
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body, r#"[{"day":"2024-03-10","total":3}]"#);
    }
    // A browser offering both gets h2.
    let tls = connect(port, &ca, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    // Without the CA the server is not trusted; in plaintext it is not understood.
    let untrusted = async {
        GrpcCounter::builder(&url)
            .tls(ClientTlsConfig::new().domain_name("localhost"))
            .connect()
            .await?
            .health()
            .await
    };
    assert!(untrusted.await.is_err());
    let plaintext = async {
        GrpcCounter::builder(&format!("http://localhost:{port}"))
            .timeout(Duration::from_secs(2))
            .connect()
            .await?
            .health()
            .await
    };
    assert!(plaintext.await.is_err());
    // A client that connects and never says anything does not stop the others.
    let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = connect(port, &ca, &[b"http/1.1"]).await;
    assert_eq!(
        common::http1_get(tls, "localhost", "/healthz", &[])
            .await
            .status,
        200
    );
    server.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_mismatched_file_stops_the_server_naming_it() {
    let start = |files: TlsFiles| Running::refused(ServerConfig::new().with_tls(files));
    let error = start(TlsFiles::new(
        "/nonexistent/count.pem",
        "/nonexistent/count.key",
    ))
    .await;
    assert!(
        matches!(error, count_core::Error::InvalidInput { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("/nonexistent/count.pem"),
        "{error}"
    );

    let dir = temp_dir("tls-mismatch");
    let (ca, cert, _key) = certificates(&dir);
    let error = start(TlsFiles::new(&cert, dir.join("ca.key")))
        .await
        .to_string();
    assert!(
        error.contains("ca.key") && error.contains("does not go with"),
        "{error}"
    );
    let error = start(TlsFiles::new(&cert, &ca)).await.to_string();
    assert!(
        error.contains("TLS key") && error.contains("ca.pem"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
