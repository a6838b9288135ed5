//! `Add` as one unit: a stream's counts are written together, once, or not at all,
//! and the answer says which (on a backend that fails on purpose).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use count_core::Counter;
use count_core::testkit::{Fault, FlakyCounter};
use count_grpc::CountV1Handler;
use count_grpc::proto::count::v1 as pb;
use count_memory::MemoryCounter;
use tonic::Code;

/// A handler over `flaky` retrying every few milliseconds.
fn quick_retries(flaky: Arc<dyn Counter>) -> CountV1Handler {
    CountV1Handler::builder(flaky)
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(20))
        .build()
}

/// `messages` requests to `path` over 100 seconds (two or three one-minute rows).
fn stream(path: &str, messages: i64) -> Vec<pb::AddRequest> {
    (0..messages)
        .map(|i| add(GET, path, NOON + i % 100))
        .collect()
}

/// Sends `requests` as one stream with a `grpc-timeout` of `timeout`.
async fn send(
    served: &Served,
    requests: Vec<pb::AddRequest>,
    timeout: Duration,
) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(tokio_stream::iter(requests));
    request.set_timeout(timeout);
    served.client().await.add(request).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_inside_the_call_and_counted_once() {
    let memory = Arc::new(MemoryCounter::new());
    let flaky = Arc::new(FlakyCounter::new(Shared(memory.clone())));
    // Fails before writing, then writes and loses the reply, then a panic: each
    // retried under the stream's one batch id.
    flaky.plan([Fault::FailBefore, Fault::FailAfter, Fault::Panic]);
    let served = Served::start(quick_retries(flaky.clone())).await;
    send(&served, stream("/retried", 1000), Duration::from_secs(10))
        .await
        .expect("written within the deadline");
    assert_eq!(total_of(&*memory, "/retried").await, 1000);
    assert_eq!(flaky.attempts(), 4);
    let stats = served.handler.stats();
    assert_eq!(
        (
            stats.add_streams_ok,
            stats.write_attempts_failed,
            stats.batches_written
        ),
        (1, 3, 1)
    );
    assert_eq!(stats.requests_written, 1000);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_means_nothing_was_written_so_a_resend_counts_once() {
    let memory = Arc::new(MemoryCounter::new());
    // Every attempt fails before writing, until the deadline.
    let down = Arc::new(FlakyCounter::new(Shared(memory.clone())).with_rates(100, 0));
    let failing = Served::start(quick_retries(down.clone())).await;
    let status = send(&failing, stream("/resent", 500), Duration::from_millis(800))
        .await
        .unwrap_err();
    assert_status(
        &status,
        Code::Unavailable,
        &["nothing of the stream was written"],
    );
    // Told apart from a lost connection's UNAVAILABLE by its trailer.
    assert_eq!(
        status.metadata().get("count-written-messages").unwrap(),
        "0"
    );
    assert!(down.attempts() > 1, "retried: {}", down.attempts());
    // Nothing is written later either.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(total_of(&*memory, "/resent").await, 0);
    assert_eq!(failing.handler.stats().add_streams_unavailable, 1);

    // The client resends to a server whose storage works: counted once.
    let working = Served::counter(memory.clone()).await;
    send(&working, stream("/resent", 500), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(total_of(&*memory, "/resent").await, 500);
    failing.stop().await;
    working.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_outcome_at_the_deadline_answers_unknown() {
    let memory = Arc::new(MemoryCounter::new());
    // Writes and loses the reply, then every retry fails before writing.
    let flaky = Arc::new(FlakyCounter::new(Shared(memory.clone())).with_rates(100, 0));
    flaky.plan([Fault::FailAfter]);
    let served = Served::start(quick_retries(flaky.clone())).await;
    let status = send(&served, stream("/unknown", 300), Duration::from_millis(800))
        .await
        .unwrap_err();
    assert_status(
        &status,
        Code::Unknown,
        &["outcome unknown", "do not resend the stream blindly"],
    );
    // It was in fact written, once.
    assert_eq!(total_of(&*memory, "/unknown").await, 300);
    let stats = served.handler.stats();
    assert_eq!(stats.add_streams_outcome_unknown, 1);
    assert_eq!(stats.add_streams_unavailable, 0);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_timeout_the_handler_setting_is_the_deadline() {
    let memory = Arc::new(MemoryCounter::new());
    let down: Arc<dyn Counter> =
        Arc::new(FlakyCounter::new(Shared(memory.clone())).with_rates(100, 0));
    let handler = CountV1Handler::builder(down)
        .add_timeout(Duration::from_millis(500))
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(20))
        .build();
    let served = Served::start(handler).await;
    let mut client = served.client().await;
    let status = client
        .add(tokio_stream::iter(stream("/no-timeout", 10)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_mid_stream_writes_nothing_of_the_stream() {
    let (memory, served) = Served::memory().await;
    let mut requests = stream("/mid", 1000);
    requests.push(add(GET, "no leading slash\u{0}", NOON));
    requests.extend(stream("/mid", 1000));
    let status = send(&served, requests, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_status(
        &status,
        Code::InvalidArgument,
        &["message 1000 of the stream", "path"],
    );
    assert_eq!(total_of(&*memory, "/mid").await, 0);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_over_the_row_bound_writes_nothing_and_leaves_others_alone() {
    let memory = Arc::new(MemoryCounter::new());
    let handler = CountV1Handler::builder(memory.clone())
        .max_stream_rows(100)
        .build();
    let served = Served::start(handler).await;
    // 101 distinct minutes: one row too many.
    let too_many: Vec<_> = (0..101)
        .map(|i| add(GET, "/flood", NOON + 60 * i))
        .collect();
    let other =
        tokio::spawn({
            let url = served.url();
            async move {
                let mut client =
                count_grpc::proto::count::v1::count_service_client::CountServiceClient::connect(url)
                    .await
                    .unwrap();
                client
                    .add(tokio_stream::iter(stream("/neighbour", 5000)))
                    .await
            }
        });
    let status = send(&served, too_many, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_status(
        &status,
        Code::ResourceExhausted,
        &[
            "message 100 of the stream",
            "at most 100 distinct rows",
            "nothing of the stream was written",
        ],
    );
    other.await.unwrap().expect("another client's stream");
    assert_eq!(total_of(&*memory, "/flood").await, 0);
    assert_eq!(total_of(&*memory, "/neighbour").await, 5000);
    // Exactly at the bound, and many requests per row, is fine.
    let at_bound: Vec<_> = (0..1000)
        .map(|i| add(GET, "/flood", NOON + 60 * (i % 100)))
        .collect();
    send(&served, at_bound, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(total_of(&*memory, "/flood").await, 1000);
    let stats = served.handler.stats();
    assert_eq!((stats.add_streams_too_large, stats.add_streams_ok), (1, 2));
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_stream_is_ok_and_writes_no_batch() {
    let (_, served) = Served::memory().await;
    send(&served, Vec::new(), Duration::from_secs(10))
        .await
        .unwrap();
    let stats = served.handler.stats();
    assert_eq!((stats.add_streams_ok, stats.batches_written), (1, 0));
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_left_open_past_its_deadline_writes_nothing() {
    let (memory, served) = Served::memory().await;
    let mut client = served.client().await;
    let (send, receive) = tokio::sync::mpsc::channel(4);
    send.send(add(GET, "/abandoned", NOON)).await.unwrap();
    // The client never ends its stream; at its grpc-timeout the call is dropped.
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(receive));
    request.set_timeout(Duration::from_millis(300));
    let status = client.add(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
    // The handler may answer UNAVAILABLE at its own deadline (just before the
    // client's) or see the call dropped first: either way nothing is written.
    let ended = |s: &count_grpc::ServiceStats| s.add_streams_failed + s.add_streams_unavailable;
    let mut stats = served.handler.stats();
    for _ in 0..250 {
        if ended(&stats) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        stats = served.handler.stats();
    }
    assert_eq!(ended(&stats), 1, "{stats:?}");
    assert_eq!(stats.add_streams_ok, 0, "{stats:?}");
    assert_eq!(total_of(&*memory, "/abandoned").await, 0);
    drop(send);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_client_cancels_writes_nothing() {
    let (memory, served) = Served::memory().await;
    for round in 0..20 {
        let (send, receive) = tokio::sync::mpsc::channel(16);
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(receive));
        request.set_timeout(Duration::from_secs(30));
        let mut client = served.client().await;
        let call = tokio::spawn(async move { client.add(request).await });
        send.send(add(GET, "/cancelled", NOON)).await.unwrap();
        let handler = served.handler.clone();
        let held = wait_for(
            Duration::from_secs(5),
            move || std::future::ready(handler.stats().pending_rows),
            |&rows| rows == 1,
        )
        .await;
        assert_eq!(held, 1, "round {round}");
        // The client gives up on the call (tonic tells the handler a cancel as an end
        // of stream).
        call.abort();
        let handler = served.handler.clone();
        let failed = wait_for(
            Duration::from_secs(5),
            move || {
                std::future::ready(
                    handler.stats().add_streams_failed + handler.stats().add_streams_ok,
                )
            },
            |&ended| ended == round + 1,
        )
        .await;
        assert_eq!(failed, round + 1);
        drop(send);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(total_of(&*memory, "/cancelled").await, 0);
    let stats = served.handler.stats();
    assert_eq!(
        (stats.add_streams_ok, stats.add_streams_failed),
        (0, 20),
        "{stats:?}"
    );
    served.stop().await;
}
