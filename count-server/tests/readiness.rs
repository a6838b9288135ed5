//! Readiness follows the writes: a backend that answers its health check while every
//! write fails (a full disk, a corrupted file) makes the server unready (`/readyz`
//! 503 with the reason, gRPC health NOT_SERVING) once writes have failed for
//! `--unready-after-failing-writes`, and ready again at the next write that succeeds
//! or once none has failed for as long.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use common::{Running, eventually};
use count::memory::MemoryCounter;
use count_core::{Batch, Counter, DailyTotal, DateRange, Day, Error, GroupedTotal, TotalsQuery};
use count_grpc::proto::count::v1 as pb;
use count_server::ServerConfig;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A counter whose health is always fine and whose writes fail while `full` is set,
/// as SQLite's on a full disk.
#[derive(Debug, Default)]
struct DiskFull {
    inner: MemoryCounter,
    full: AtomicBool,
}

#[async_trait]
impl Counter for DiskFull {
    async fn write(&self, batch: &Batch) -> count_core::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            return Err(Error::Backend {
                message: "database or disk is full".into(),
                source: Arc::new(Error::unavailable("disk full")),
            });
        }
        self.inner.write(batch).await
    }

    async fn rollup(&self, day: Day) -> count_core::Result<Vec<DailyTotal>> {
        self.inner.rollup(day).await
    }

    async fn daily_totals(&self, range: DateRange) -> count_core::Result<Vec<DailyTotal>> {
        self.inner.daily_totals(range).await
    }

    async fn totals(&self, query: &TotalsQuery) -> count_core::Result<Vec<GroupedTotal>> {
        self.inner.totals(query).await
    }

    async fn unrolled_days(&self, before: Day) -> count_core::Result<Vec<Day>> {
        self.inner.unrolled_days(before).await
    }
}

fn batch(seq: u64) -> pb::AddCountsRequest {
    common::add_counts(7, seq, "/written", 1)
}

async fn grpc_health(server: &Running) -> ServingStatus {
    HealthClient::new(server.channel().await)
        .check(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_writes_make_the_server_unready_until_one_succeeds() {
    let disk = Arc::new(DiskFull::default());
    let config = ServerConfig::new()
        .with_unready_after_failing_writes(Duration::from_millis(500))
        .with_health_check_every(Duration::from_millis(100));
    let server = Running::start(config, disk.clone()).await;
    let mut client = server.client().await;
    client.add_counts(batch(1)).await.unwrap();
    assert_eq!(server.get("/readyz", &[]).await.status, 200);

    disk.full.store(true, Ordering::SeqCst);
    client.add_counts(batch(2)).await.unwrap_err();
    // One failure is not yet a failing server.
    assert_eq!(server.get("/readyz", &[]).await.status, 200);
    // Failing on for longer than the setting.
    for seq in [3, 4, 5] {
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.add_counts(batch(seq)).await.unwrap_err();
    }
    let readyz = server.get("/readyz", &[]).await;
    assert_eq!(readyz.status, 503, "{}", readyz.body);
    let body = readyz.json();
    assert_eq!(body["kind"], "writes_failing", "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("backend_error"),
        "{body}"
    );
    eventually("gRPC health NOT_SERVING", || async {
        grpc_health(&server).await == ServingStatus::NotServing
    })
    .await;
    let metrics = server.get("/metrics", &[]).await.body;
    assert_eq!(
        metrics.matches("# TYPE count_write_failures_total").count(),
        1,
        "one family of each name:\n{metrics}"
    );
    assert!(
        !metrics.contains("count_writes_failing_seconds 0\n"),
        "{metrics}"
    );

    // With no write coming (a load balancer sends none to an unready server), it is
    // ready again once none has failed for as long, and unready again if writes
    // still fail.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(server.get("/readyz", &[]).await.status, 200);
    for seq in 6..10 {
        client.add_counts(batch(seq)).await.unwrap_err();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(server.get("/readyz", &[]).await.status, 503);

    disk.full.store(false, Ordering::SeqCst);
    client.add_counts(batch(10)).await.unwrap();
    assert_eq!(server.get("/readyz", &[]).await.status, 200);
    eventually("gRPC health SERVING", || async {
        grpc_health(&server).await == ServingStatus::Serving
    })
    .await;
    server.stop().await.unwrap();
}
