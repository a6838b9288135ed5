//! The bearer token over gRPC: every call needs it when one is set (health and
//! reflection included), compared exactly; none is needed when none is set.

mod common;

use common::{Running, memory};
use count_core::testkit::Scope;
use count_core::{Counter, Method};
use count_grpc::GrpcCounter;
use count_grpc::proto::count::v1 as pb;
use count_server::ServerConfig;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_every_call_health_and_reflection_included() {
    let (_, counter) = memory();
    let server = Running::start(ServerConfig::new().with_token("s3cret-token"), counter).await;
    let report = pb::GetPeriodTotalsRequest {
        period: Some(common::date(2024, 0, 0)),
    };
    let mut client = server.client().await;
    let status = client.get_period_totals(report).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("Bearer"), "{status:?}");
    let status = HealthClient::new(server.channel().await)
        .check(HealthCheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    for token in ["wrong", "s3cret-toke", "s3cret-token2"] {
        let counter = GrpcCounter::builder(&server.url())
            .token(token)
            .connect()
            .await
            .unwrap();
        let error = counter.health().await.unwrap_err();
        assert!(error.to_string().contains("Bearer"), "{error}");
    }
    let anonymous = GrpcCounter::connect(&server.url()).await.unwrap();
    assert!(anonymous.health().await.is_err());
    let counter = GrpcCounter::builder(&server.url())
        .token("s3cret-token")
        .connect()
        .await
        .unwrap();
    counter.health().await.unwrap();
    let s = Scope::new();
    counter
        .write(&s.batch(&[(Method::Get, "/t", "2024-03-10T00:00:00Z", 2)]))
        .await
        .unwrap();
    server.stop().await.unwrap();

    // No token set: no header needed.
    let (_, counter) = memory();
    let open = Running::start(ServerConfig::new(), counter).await;
    GrpcCounter::connect(&open.url())
        .await
        .unwrap()
        .health()
        .await
        .unwrap();
    open.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_method_is_unimplemented_for_grpc_clients() {
    let (_, counter) = memory();
    let server = Running::start(ServerConfig::new(), counter).await;
    let mut grpc = tonic::client::Grpc::new(server.channel().await);
    grpc.ready().await.unwrap();
    let status = grpc
        .unary::<HealthCheckRequest, HealthCheckRequest, _>(
            tonic::Request::new(HealthCheckRequest::default()),
            "/no.such.Service/Method".parse().unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    server.stop().await.unwrap();
}
