//! The RPCs of limits on the wire: a policy replaced from a stale version is
//! FAILED_PRECONDITION; bad JSON and bad lease fields are INVALID_ARGUMENT naming
//! them; a lease follows the server's policy (its amount, whatever the client
//! thinks), and a limit the server's policy does not give the subject is
//! FAILED_PRECONDITION.

mod common;

use common::*;
use count_grpc::proto::count::v1 as pb;
use tonic::Code;

const POLICY: &str = r#"{"limits":{"daily":{"period":"day","amount":5}},"plans":{"free":["daily"]},"subjects":{"acme":{"plan":"free"}}}"#;

fn lease(subject: &str, limit: &str, want: u64) -> pb::LeaseRequest {
    let today = count_core::limits::Window::of(
        count_core::limits::LimitPeriod::Day,
        &count_core::Zone::UTC,
        count_core::jiff::Timestamp::now().as_second(),
    );
    pb::LeaseRequest {
        subject: subject.into(),
        limit: limit.into(),
        window_start: today.start,
        window_end: today.end,
        want,
        give_back: 0,
        seed: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_leases_on_the_wire() {
    let (_, served) = Served::memory().await;
    let mut client = served.client().await;
    let empty = client
        .get_policy(pb::GetPolicyRequest { known_version: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((empty.version, empty.policy_json), (0, None));
    let replace = |expected_version: u64, json: &str| pb::ReplacePolicyRequest {
        expected_version,
        policy_json: json.into(),
    };
    let version = client
        .replace_policy(replace(0, POLICY))
        .await
        .unwrap()
        .into_inner()
        .version;
    assert_eq!(version, 1);
    let stale = client.replace_policy(replace(0, POLICY)).await.unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition, "{stale:?}");
    let bad = client
        .replace_policy(replace(
            1,
            r#"{"limits":{"x":{"period":"fortnight","amount":1}}}"#,
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().contains("period \"fortnight\""),
        "{}",
        bad.message()
    );
    let read = client
        .get_policy(pb::GetPolicyRequest { known_version: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.version, 1);
    assert!(read.policy_json.unwrap().contains("\"daily\""));

    // The server's amount: 5, however much is asked.
    let grant = client
        .lease(lease("acme", "daily", 100))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((grant.granted, grant.taken, grant.amount), (3, 3, 5));
    let grant = client
        .lease(lease("acme", "daily", 100))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((grant.granted, grant.taken), (1, 4));
    let unknown = client.lease(lease("acme", "monthly", 1)).await.unwrap_err();
    assert_eq!(unknown.code(), Code::FailedPrecondition);
    let nobody = client.lease(lease("nobody", "daily", 1)).await.unwrap_err();
    assert_eq!(nobody.code(), Code::FailedPrecondition);
    let mut backwards = lease("acme", "daily", 1);
    backwards.window_end = backwards.window_start;
    let backwards = client.lease(backwards).await.unwrap_err();
    assert_eq!(backwards.code(), Code::InvalidArgument);
    assert!(backwards.message().contains("window_end"));
    // A window far from now (which could make the ledger forget others): refused.
    let mut far = lease("acme", "daily", 0);
    far.window_start += 400 * 86_400;
    far.window_end += 400 * 86_400;
    let far = client.lease(far).await.unwrap_err();
    assert_eq!(far.code(), Code::InvalidArgument);
    assert!(far.message().contains("window_start"), "{}", far.message());
    let unknown_give_back = client.lease(lease("acme", "weekly", 0)).await.unwrap_err();
    assert_eq!(unknown_give_back.code(), Code::FailedPrecondition);
    let bad_subject = client.lease(lease("", "daily", 1)).await.unwrap_err();
    assert_eq!(bad_subject.code(), Code::InvalidArgument);
    assert!(bad_subject.message().contains("subject"));
    served.stop().await;
}
