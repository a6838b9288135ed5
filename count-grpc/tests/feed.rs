//! `Add` streams without a deadline are feeds: written part by part as they go, each
//! part exactly once, and answered at their end.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use count_core::testkit::{Fault, FlakyCounter};
use count_grpc::CountV1Handler;
use count_grpc::proto::count::v1 as pb;
use count_memory::MemoryCounter;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_held_open_past_the_add_timeout_is_written_as_it_goes() {
    let memory = Arc::new(MemoryCounter::new());
    let handler = CountV1Handler::builder(memory.clone())
        .add_timeout(Duration::from_millis(500))
        .build();
    let served = Served::start(handler).await;
    let (feed, answer) = open_feed(&served).await;
    // Three seconds of messages, six times the add timeout.
    for i in 0..30 {
        feed.send(add(GET, "/feed", NOON + i)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Most of them are counted while the stream is still open.
    let seen = wait_for(
        Duration::from_secs(3),
        || total_of(&*memory, "/feed"),
        |&n| n >= 20,
    )
    .await;
    assert!(seen >= 20, "counted before the stream ended: {seen}");
    assert!(!answer.is_finished(), "the feed is still open");
    drop(feed);
    answer.await.unwrap().expect("the feed is answered OK");
    assert_eq!(total_of(&*memory, "/feed").await, 30);
    let stats = served.handler.stats();
    assert_eq!(stats.add_streams_ok, 1, "{stats:?}");
    assert!(stats.batches_written >= 2, "written in parts: {stats:?}");
    assert_eq!(stats.requests_written, 30, "{stats:?}");
    served.stop().await;
}

/// A trailer of an error answer, as a number.
fn trailer(status: &tonic::Status, name: &str) -> Option<u64> {
    status.metadata().get(name)?.to_str().ok()?.parse().ok()
}

/// A handler over `counter` writing feeds every `flush`, retrying quickly, giving a
/// write half a second.
fn handler(counter: Arc<dyn count_core::Counter>, flush: Duration) -> CountV1Handler {
    CountV1Handler::builder(counter)
        .feed_flush(flush)
        .add_timeout(Duration::from_millis(500))
        .retry_backoff(Duration::from_millis(5), Duration::from_millis(20))
        .build()
}

/// Sends `n` requests to `path`.
async fn send_n(feed: &tokio::sync::mpsc::Sender<pb::AddRequest>, path: &str, n: i64) {
    for i in 0..n {
        feed.send(add(GET, path, NOON + i)).await.unwrap();
    }
}

/// A feed over a storage that fails on plan, whose first `n` requests to `path` are
/// written.
async fn feed_with_a_written_part(
    path: &str,
    n: i64,
) -> (
    Arc<MemoryCounter>,
    Arc<FlakyCounter<Shared>>,
    Served,
    tokio::sync::mpsc::Sender<pb::AddRequest>,
    Answer,
) {
    let memory = Arc::new(MemoryCounter::new());
    let flaky = Arc::new(FlakyCounter::new(Shared(memory.clone())));
    let served = Served::start(handler(flaky.clone(), Duration::from_millis(50))).await;
    let (feed, answer) = open_feed(&served).await;
    send_n(&feed, path, n).await;
    let written = wait_for(
        Duration::from_secs(5),
        || total_of(&*memory, path),
        |&seen| seen == n as u64,
    )
    .await;
    assert_eq!(written, n as u64);
    (memory, flaky, served, feed, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_whose_storage_fails_ends_saying_how_many_messages_are_written() {
    let (memory, flaky, served, feed, answer) = feed_with_a_written_part("/failing", 10).await;
    // The storage goes down for good: the next part cannot be written.
    flaky.plan(std::iter::repeat_n(Fault::FailBefore, 100_000));
    send_n(&feed, "/failing", 7).await;
    let status = answer.await.unwrap().unwrap_err();
    assert_status(
        &status,
        Code::Unavailable,
        &[
            "the first 10 messages of the stream are written",
            "the 7 after",
        ],
    );
    assert_eq!(trailer(&status, "count-written-messages"), Some(10));
    assert_eq!(trailer(&status, "count-unknown-messages"), None);
    assert_eq!(total_of(&*memory, "/failing").await, 10);
    let stats = served.handler.stats();
    assert_eq!((stats.add_feeds, stats.add_streams_unavailable), (1, 1));
    assert_eq!(stats.pending_rows, 0, "{stats:?}");
    drop(feed);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_part_of_unknown_outcome_is_named_in_the_answer() {
    let (memory, flaky, served, feed, answer) = feed_with_a_written_part("/unknown", 4).await;
    // Written with its reply lost, then no attempt gets through.
    flaky.plan([Fault::FailAfter]);
    flaky.plan(std::iter::repeat_n(Fault::FailBefore, 100_000));
    send_n(&feed, "/unknown", 6).await;
    let status = answer.await.unwrap().unwrap_err();
    assert_status(
        &status,
        Code::Unknown,
        &[
            "outcome unknown",
            "the first 4 messages",
            "the 6 after them",
        ],
    );
    assert_eq!(trailer(&status, "count-written-messages"), Some(4));
    assert_eq!(trailer(&status, "count-unknown-messages"), Some(6));
    // They were in fact written, once.
    assert_eq!(total_of(&*memory, "/unknown").await, 10);
    assert_eq!(served.handler.stats().add_streams_outcome_unknown, 1);
    drop(feed);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_ends_a_feed_after_the_messages_before_it_are_written() {
    let (memory, served) = Served::memory().await;
    let (feed, answer) = open_feed(&served).await;
    send_n(&feed, "/before-bad", 3).await;
    feed.send(add(GET, "/bad\0", NOON)).await.unwrap();
    send_n(&feed, "/after-bad", 2).await;
    let status = answer.await.unwrap().unwrap_err();
    assert_status(
        &status,
        Code::InvalidArgument,
        &[
            "message 3 of the stream",
            "path",
            "the 3 messages before it are written",
        ],
    );
    assert_eq!(trailer(&status, "count-written-messages"), Some(3));
    assert_eq!(total_of(&*memory, "/before-bad").await, 3);
    assert_eq!(total_of(&*memory, "/after-bad").await, 0);
    assert_eq!(served.handler.stats().add_streams_invalid, 1);
    drop(feed);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_row_bound_applies_to_each_part_of_a_feed() {
    let memory = Arc::new(MemoryCounter::new());
    let flaky = Arc::new(FlakyCounter::new(Shared(memory.clone())));
    // A slow first write: the next part fills up meanwhile, and waits for it.
    flaky.plan([Fault::Delay(Duration::from_millis(300))]);
    let handler = CountV1Handler::builder(flaky.clone())
        .max_stream_rows(10)
        .feed_flush(Duration::from_secs(60))
        .build();
    let served = Served::start(handler).await;
    let (feed, answer) = open_feed(&served).await;
    // 35 distinct minutes: four parts at most 10 rows each.
    for i in 0..35 {
        feed.send(add(GET, "/parts", NOON + 60 * i)).await.unwrap();
    }
    drop(feed);
    answer.await.unwrap().expect("every part written");
    let day = count_core::Day::new(2024, 3, 10).unwrap();
    assert_eq!(
        sum(&*memory, count_core::DateRange::day(day)).await,
        35,
        "every message counted"
    );
    let stats = served.handler.stats();
    assert_eq!(stats.batches_written, 4, "{stats:?}");
    assert_eq!(stats.requests_written, 35);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pending_budget_is_shared_by_all_streams_and_visible() {
    let memory = Arc::new(MemoryCounter::new());
    let handler = CountV1Handler::builder(memory.clone())
        .max_pending_rows(100)
        .feed_flush(Duration::from_secs(60))
        .build();
    let served = Served::start(handler).await;
    // A stream with a deadline holding 80 rows, not yet ended.
    let (held, receive) = tokio::sync::mpsc::channel(1024);
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(receive));
    request.set_timeout(Duration::from_secs(30));
    let mut client = served.client().await;
    let held_answer = tokio::spawn(async move { client.add(request).await });
    for i in 0..80 {
        held.send(add(GET, &format!("/held/{i}"), NOON))
            .await
            .unwrap();
    }
    let stats = wait_for(
        Duration::from_secs(5),
        || async { served.handler.stats() },
        |s| s.pending_rows == 80,
    )
    .await;
    assert_eq!((stats.pending_rows, stats.pending_rows_limit), (80, 100));
    assert!(stats.pending_text_bytes > 0, "{stats:?}");

    // Another stream with a deadline that would pass the budget: nothing written.
    let over: Vec<_> = (0..30)
        .map(|i| add(GET, &format!("/over/{i}"), NOON))
        .collect();
    let mut request = tonic::Request::new(tokio_stream::iter(over));
    request.set_timeout(Duration::from_secs(10));
    let status = served.client().await.add(request).await.unwrap_err();
    assert_status(
        &status,
        Code::ResourceExhausted,
        &[
            "message 20 of the stream",
            "limit is 100 rows",
            "nothing of the stream was written",
        ],
    );
    assert_eq!(total_of(&*memory, "/over/0").await, 0);

    // A feed that would pass it: what it received before is written.
    let (feed, answer) = open_feed(&served).await;
    for i in 0..30 {
        feed.send(add(GET, &format!("/fed/{i}"), NOON))
            .await
            .unwrap();
    }
    let status = answer.await.unwrap().unwrap_err();
    assert_status(
        &status,
        Code::ResourceExhausted,
        &[
            "message 20 of the stream",
            "the 20 messages before it are written",
        ],
    );
    assert_eq!(trailer(&status, "count-written-messages"), Some(20));
    let day = count_core::Day::new(2024, 3, 10).unwrap();
    assert_eq!(sum(&*memory, count_core::DateRange::day(day)).await, 20);

    drop(held);
    held_answer.await.unwrap().expect("the held stream");
    assert_eq!(sum(&*memory, count_core::DateRange::day(day)).await, 100);
    let stats = served.handler.stats();
    assert_eq!(stats.add_streams_over_budget, 2, "{stats:?}");
    assert_eq!(stats.add_streams_too_large, 2, "{stats:?}");
    assert_eq!((stats.pending_rows, stats.pending_text_bytes), (0, 0));
    drop(feed);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_cut_off_still_writes_what_it_received() {
    let memory = Arc::new(MemoryCounter::new());
    let day = count_core::Day::new(2024, 3, 10).unwrap();
    let served = Served::start(handler(memory.clone(), Duration::from_secs(60))).await;
    let handler = served.handler.clone();
    let pending = |rows: u64| {
        let handler = handler.clone();
        wait_for(
            Duration::from_secs(5),
            move || std::future::ready(handler.stats().pending_rows),
            move |&seen| seen == rows,
        )
    };

    // The client cancels its call: the feed ends there, as if the client had ended it.
    let (cancelled, answer) = open_feed(&served).await;
    for i in 0..3 {
        cancelled
            .send(add(GET, &format!("/cancelled/{i}"), NOON))
            .await
            .unwrap();
    }
    assert_eq!(pending(3).await, 3);
    answer.abort();
    tokio::time::timeout(Duration::from_secs(5), handler.wait_for_feeds())
        .await
        .expect("the cancelled feed ends");
    assert_eq!(sum(&*memory, count_core::DateRange::day(day)).await, 3);

    // The connection breaks (the network, or a server closing its connections at
    // the end of its shutdown grace) while a feed is open.
    let relay = Relay::to(&served).await;
    let (cut, answer) = open_feed_at(&relay.url).await;
    for i in 0..5 {
        cut.send(add(GET, &format!("/cut/{i}"), NOON))
            .await
            .unwrap();
    }
    assert_eq!(pending(5).await, 5);
    drop(relay);
    tokio::time::timeout(Duration::from_secs(5), handler.wait_for_feeds())
        .await
        .expect("the cut feed ends");
    assert_eq!(sum(&*memory, count_core::DateRange::day(day)).await, 8);
    let status = answer.await.unwrap().unwrap_err();
    assert!(
        trailer(&status, "count-written-messages").is_none(),
        "never reached the client: {status:?}"
    );
    let stats = handler.stats();
    assert_eq!(
        (
            stats.add_feeds,
            stats.add_streams_ok,
            stats.add_streams_failed,
            stats.add_feeds_open
        ),
        (2, 1, 1, 0),
        "{stats:?}"
    );
    drop((cancelled, cut));
    served.stop().await;
}
