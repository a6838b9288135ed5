//! Stopping: streams in progress finish and nothing is lost; a stream held open
//! longer than the grace period is cut so the server still stops; gRPC health turns
//! NOT_SERVING at the signal; the rollup scheduler runs unless turned off.

mod common;

use std::time::{Duration, Instant};

use common::{GET, Held, NOON, Running, add, hold_a_stream, memory, sum};
use count_core::testkit::Scope;
use count_core::{Counter, DateRange, Day, Method};
use count_server::ServerConfig;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_finishes_streams_in_progress_and_loses_nothing() {
    let (memory, counter) = memory();
    let server = Running::start(ServerConfig::new(), counter).await;
    let mut client = server.client().await;
    let (send, receive) = tokio::sync::mpsc::channel(16);
    let call = tokio::spawn(async move {
        client
            .add(tokio_stream::wrappers::ReceiverStream::new(receive))
            .await
    });
    for i in 0..5_000 {
        send.send(add(GET, "/inflight", NOON + i % 100))
            .await
            .unwrap();
    }
    // Stop while the stream is open; it still may finish.
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..5_000 {
        send.send(add(GET, "/inflight", NOON + i % 100))
            .await
            .unwrap();
    }
    drop(send);
    call.await.unwrap().expect("the stream finishes");
    stopping.await.unwrap().expect("a clean stop");
    let d = Day::new(2024, 3, 10).unwrap();
    assert_eq!(sum(&*memory, DateRange::day(d)).await, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_stream_is_cut_after_the_grace_period_and_health_says_not_serving() {
    let (memory, counter) = memory();
    let grace = Duration::from_millis(800);
    let server = Running::start(ServerConfig::new().with_shutdown_grace(grace), counter).await;
    // A health Watch never ends by itself; an Add whose client never closes neither.
    let mut watch = HealthClient::new(server.channel().await)
        .watch(HealthCheckRequest {
            service: count_server::SERVICE_NAME.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    let Held { send, call: held } = hold_a_stream(server.client().await).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let stopping = tokio::spawn(server.stop());
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("a health update at the signal");
    assert_eq!(next.unwrap().unwrap().status(), ServingStatus::NotServing);
    stopping
        .await
        .unwrap()
        .expect("stops cleanly after the grace period");
    let took = started.elapsed();
    assert!(took >= grace, "stopped before the grace period: {took:?}");
    assert!(took < grace + Duration::from_secs(10), "{took:?}");
    // The cut stream was not answered OK. It had no deadline: a feed, whose
    // messages received are written (once) even when its connection is cut, before
    // the server stops.
    drop(send);
    let cut = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("the held call ends")
        .unwrap();
    assert!(cut.is_err(), "{cut:?}");
    let d = Day::new(2024, 3, 10).unwrap();
    assert_eq!(sum(&*memory, DateRange::day(d)).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollup_scheduler_runs_unless_turned_off() {
    let s = Scope::new();
    let d = Day::new(2024, 1, 2).unwrap();
    let later = Day::new(2025, 1, 1).unwrap();
    for rollup in [false, true] {
        let (memory, counter) = memory();
        memory
            .write(&s.batch(&[(Method::Get, "/r", "2024-01-02T03:00:00Z", 5)]))
            .await
            .unwrap();
        let server = Running::start(ServerConfig::new().with_rollup(rollup), counter).await;
        let mut unrolled = memory.unrolled_days(later).await.unwrap();
        for _ in 0..100 {
            if unrolled.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            unrolled = memory.unrolled_days(later).await.unwrap();
        }
        if rollup {
            assert!(unrolled.is_empty(), "{unrolled:?}");
        } else {
            assert_eq!(unrolled, vec![d]);
        }
        server.stop().await.unwrap();
    }
}

/// The grace period is enforced every time: a stream held open past it never keeps the
/// server up, whichever of the server's tasks finishes first (repeated, to meet both
/// orders).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_stream_never_keeps_the_server_past_the_grace_period() {
    let grace = Duration::from_millis(300);
    for round in 0..20 {
        let (_, counter) = memory();
        let server = Running::start(ServerConfig::new().with_shutdown_grace(grace), counter).await;
        let Held { send, call: held } = hold_a_stream(server.client().await).await;
        // The stream has reached the server: its first message is in.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let stopped = tokio::time::timeout(grace + Duration::from_secs(3), server.stop()).await;
        let took = started.elapsed();
        assert!(
            stopped.is_ok(),
            "round {round}: still serving {took:?} after the stop, grace {grace:?}"
        );
        stopped.unwrap().expect("a clean stop");
        assert!(
            took >= grace,
            "round {round}: stopped before the grace: {took:?}"
        );
        drop(send);
        let _ = tokio::time::timeout(Duration::from_secs(5), held).await;
    }
}
