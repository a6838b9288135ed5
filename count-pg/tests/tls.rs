//! `sslmode` against a server with TLS on (a self-signed certificate for `localhost`).

use count_pg::PgCounter;
use count_testcluster::{PASSWORD, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_is_honoured() {
    let Some(cluster) = TestCluster::own() else {
        return;
    };
    let root = cluster.enable_tls().expect("TLS on");
    let root = root.to_str().unwrap();
    let port = cluster.port().unwrap();
    let url = |host: &str, query: &str| {
        format!("postgresql://postgres:{PASSWORD}@{host}:{port}/postgres?{query}")
    };
    let connections_with_tls = |tls: bool| {
        cluster
            .psql(
                "postgres",
                &format!(
                    "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
                     WHERE application_name = 'count' AND ssl = {tls}"
                ),
            )
            .unwrap()
    };

    // require: encrypted, the certificate not checked.
    let counter = PgCounter::connect(&url("127.0.0.1", "sslmode=require"))
        .await
        .unwrap();
    assert_ne!(connections_with_tls(true), "0");
    drop(counter);

    // verify-full: the chain against sslrootcert, and the host name.
    PgCounter::connect(&url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ))
    .await
    .expect("a trusted certificate for this host name");
    let err = PgCounter::connect(&url("localhost", "sslmode=verify-full"))
        .await
        .expect_err("a self-signed certificate is not trusted without sslrootcert")
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let err = PgCounter::connect(&url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ))
    .await
    .expect_err("the certificate names localhost, not 127.0.0.1")
    .to_string();
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("hostname"),
        "{err}"
    );

    // verify-ca: the chain, not the host name.
    PgCounter::connect(&url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={root}"),
    ))
    .await
    .expect("verify-ca does not check the host name");

    // disable: in the clear.
    let before = connections_with_tls(false);
    let _plain = PgCounter::connect(&url("127.0.0.1", "sslmode=disable"))
        .await
        .unwrap();
    assert_ne!(connections_with_tls(false), before);
}
