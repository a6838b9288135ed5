//! The limits API: limits, plans and subjects' plans changed one by one and read
//! back; every bad field a 400 naming it; a stale whole-policy replace a 409; usage
//! against the limits from the counts; the token guards it all.

mod common;

use common::{GET, Running, add_all, add_with, memory};
use count_core::jiff::Timestamp;
use count_server::ServerConfig;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_plans_and_subjects_are_managed_over_http() {
    let (_, counter) = memory();
    let server = Running::start(ServerConfig::new(), counter).await;
    let empty = server.get("/api/v1/policy", &[]).await;
    assert_eq!(empty.status, 200);
    assert_eq!(empty.json()["version"], 0);

    let put = server
        .send(
            "PUT",
            "/api/v1/limits/daily",
            r#"{"period":"day","amount":3,"zone":"Europe/Zurich"}"#,
            &[],
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(put.json()["version"], 1);
    let plan = server
        .send("PUT", "/api/v1/plans/free", r#"["daily"]"#, &[])
        .await;
    assert_eq!(plan.status, 200, "{}", plan.body);
    let acme = server
        .send(
            "PUT",
            "/api/v1/subjects/acme/plan",
            r#"{"plan":"free"}"#,
            &[],
        )
        .await;
    assert_eq!(acme.status, 200, "{}", acme.body);
    let read = server.get("/api/v1/limits/daily", &[]).await.json();
    assert_eq!(read["limit"]["amount"], 3);
    assert_eq!(read["limit"]["zone"], "Europe/Zurich");
    assert_eq!(read["limit"]["thresholds"], json!(["80%", "100%"]));
    assert_eq!(
        server.get("/api/v1/plans/free", &[]).await.json()["limits"],
        json!(["daily"])
    );
    assert_eq!(
        server.get("/api/v1/subjects/acme/plan", &[]).await.json()["plan"]["plan"],
        "free"
    );

    // Every bad field: a 400 naming it.
    for (method, path, body, field, says) in [
        (
            "PUT",
            "/api/v1/limits/daily",
            r#"{"period":"fortnight","amount":3}"#,
            "period",
            "invalid period \"fortnight\"",
        ),
        (
            "PUT",
            "/api/v1/limits/daily",
            r#"{"period":"day","amount":-3}"#,
            "amount",
            "expected u64",
        ),
        (
            "PUT",
            "/api/v1/limits/daily",
            r#"{"period":"day","amount":3,"zone":"Mars/Olympus"}"#,
            "zone",
            "Mars/Olympus",
        ),
        (
            "PUT",
            "/api/v1/limits/daily",
            r#"{"period":"day","amount":3,"thresholds":["150"]}"#,
            "thresholds[0]",
            "a share such as",
        ),
        (
            "PUT",
            "/api/v1/limits/a%20b",
            r#"{"period":"day","amount":3}"#,
            "limit",
            "invalid limit \"a b\"",
        ),
        (
            "PUT",
            "/api/v1/plans/pro",
            r#"["nope"]"#,
            "limits",
            "does not exist",
        ),
        (
            "PUT",
            "/api/v1/plans/pro",
            r#"{"limits":1}"#,
            "limits",
            "invalid limits",
        ),
        (
            "PUT",
            "/api/v1/subjects/globex/plan",
            r#"{"plan":"gold"}"#,
            "plan",
            "invalid plan \"gold\"",
        ),
        (
            "PUT",
            "/api/v1/subjects/globex/plan",
            r#"{"plan":"free","overrides":{"monthly":5}}"#,
            "overrides",
            "not a limit of its plan",
        ),
        (
            "DELETE",
            "/api/v1/limits/daily",
            "",
            "limits",
            "names a limit that does not exist",
        ),
        (
            "PUT",
            "/api/v1/policy",
            r#"{"policy":{}}"#,
            "policy",
            "version",
        ),
    ] {
        let reply = server.send(method, path, body, &[]).await;
        assert_eq!(reply.status, 400, "{method} {path} {body}: {}", reply.body);
        let answer = reply.json();
        assert_eq!(answer["field"], field, "{method} {path} {body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{method} {path} {body}: {answer}"
        );
    }
    let missing = server.send("DELETE", "/api/v1/plans/gold", "", &[]).await;
    assert_eq!(missing.status, 404);
    let stale = server
        .send("PUT", "/api/v1/policy", r#"{"version":1,"policy":{}}"#, &[])
        .await;
    assert_eq!(stale.status, 409, "{}", stale.body);

    // Usage from the counts: 2 of acme's 3 today (a 429 never counts).
    let now = Timestamp::now().as_second();
    let mut client = server.client().await;
    add_all(
        &mut client,
        vec![
            add_with(GET, "/search", now, Some("acme"), Some(200)),
            add_with(GET, "/search", now, Some("acme"), Some(200)),
            add_with(GET, "/search", now, Some("acme"), Some(429)),
            add_with(GET, "/search", now, Some("globex"), Some(200)),
        ],
    )
    .await;
    let usage = server.get("/api/v1/usage", &[]).await.json();
    assert_eq!(usage["rows"], 1);
    let row = &usage["usage"][0];
    assert_eq!(
        (row["subject"].as_str(), row["limit"].as_str()),
        (Some("acme"), Some("daily"))
    );
    assert_eq!(
        (row["used"].as_u64(), row["amount"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(row["over"], false);
    let bad = server.get("/api/v1/usage?top=0", &[]).await;
    assert_eq!(
        (bad.status, bad.json()["field"].as_str()),
        (400, Some("top"))
    );

    let gone = server
        .send("DELETE", "/api/v1/subjects/acme/plan", "", &[])
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_eq!(server.get("/api/v1/usage", &[]).await.json()["rows"], 0);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_the_limits_api() {
    let (_, counter) = memory();
    let config = ServerConfig::new().with_token("s3cret-token-for-tests");
    let server = Running::start(config, counter).await;
    let put = server
        .send(
            "PUT",
            "/api/v1/limits/daily",
            r#"{"period":"day","amount":3}"#,
            &[],
        )
        .await;
    assert_eq!(put.status, 401);
    let with = server
        .send(
            "PUT",
            "/api/v1/limits/daily",
            r#"{"period":"day","amount":3}"#,
            &[("authorization", "Bearer s3cret-token-for-tests")],
        )
        .await;
    assert_eq!(with.status, 200, "{}", with.body);
    server.stop().await.unwrap();
}
