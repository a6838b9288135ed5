//! `count-server`'s choice of backend from `DB_URL`: PostgreSQL, or CockroachDB
//! detected from the server's `version()` (here, count-testcluster's emulation).

use count_grpc::ServerConfig;
use count_grpc::server::{Backend, connect_backend};
use count_testcluster::TestCluster;
use count_testcluster::cockroach::CockroachEmulation;

fn config(url: &str, backend: Backend) -> ServerConfig {
    ServerConfig {
        db_url: Some(url.to_owned()),
        backend,
        ..ServerConfig::default()
    }
}

/// The type a backend was made as, from its `Debug` form.
fn kind(counter: &dyn count_core::Counter) -> String {
    format!("{counter:?}")
        .split([' ', '{'])
        .next()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_is_chosen_from_the_url_and_the_server() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let postgres = cluster.fresh_database("grpc_backend_pg");
    let cockroach = CockroachEmulation::start(cluster.clone(), "grpc_backend_crdb").await;

    let auto_pg = connect_backend(&config(&postgres, Backend::Auto))
        .await
        .unwrap();
    assert_eq!(kind(&*auto_pg), "PgCounter");
    let auto_crdb = connect_backend(&config(&cockroach.url(), Backend::Auto))
        .await
        .unwrap();
    assert_eq!(kind(&*auto_crdb), "CockroachCounter");
    auto_crdb.health().await.unwrap();

    // Forced: CockroachDB on PostgreSQL is refused by name.
    let refused = connect_backend(&config(&postgres, Backend::Cockroach))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("PgCounter"), "{refused}");
    let forced_pg = connect_backend(&config(&postgres, Backend::Postgres))
        .await
        .unwrap();
    assert_eq!(kind(&*forced_pg), "PgCounter");

    // A URL that cannot work is an error, not a fallback to memory.
    let bad = connect_backend(&config(
        "postgresql://nobody@127.0.0.1:1/x?sslmode=disable",
        Backend::Auto,
    ))
    .await
    .unwrap_err();
    assert!(bad.to_string().contains("127.0.0.1"), "{bad}");

    let memory = connect_backend(&ServerConfig::default()).await.unwrap();
    assert_eq!(kind(&*memory), "MemoryCounter");
}
