//! Paths and subjects of a stream or batch that is refused are never interned (the
//! process-wide interner would keep them for ever); accepted ones are. Alone in its
//! test binary, so that nothing else interns while it measures.

mod common;

use std::time::Duration;

use common::*;
use count_core::{Path, Subject};
use count_grpc::CountV1Handler;
use count_grpc::proto::count::v1 as pb;
use count_memory::MemoryCounter;
use tonic::Code;

/// `n` requests to distinct paths and subjects never seen before, under `prefix`.
fn distinct(prefix: &str, n: i64) -> Vec<pb::AddRequest> {
    (0..n)
        .map(|i| {
            let path = format!("/{prefix}/{i}");
            let subject = format!("{prefix}-{i}");
            add_key(GET, &path, NOON, Some(&subject), None)
        })
        .collect()
}

async fn send(served: &Served, requests: Vec<pb::AddRequest>) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(tokio_stream::iter(requests));
    request.set_timeout(Duration::from_secs(10));
    served.client().await.add(request).await.map(|_| ())
}

fn interned() -> (u64, u64) {
    (Path::interned().entries, Subject::interned().entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_streams_and_batches_intern_nothing() {
    let memory = std::sync::Arc::new(MemoryCounter::new());
    let handler = CountV1Handler::builder(memory.clone())
        .max_stream_rows(100)
        .build();
    let served = Served::start(handler).await;
    let before = interned();

    // Over the row bound: refused after 100 distinct rows were taken in.
    let status = send(&served, distinct("too-many", 101)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(interned(), before, "a stream refused for its size");

    // A bad message after 50 good ones.
    let mut requests = distinct("bad-end", 50);
    requests.push(add(GET, "/bad\0", NOON));
    let status = send(&served, requests).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(interned(), before, "a stream refused for a bad message");

    // AddCounts with a bad count after 50 good ones.
    let mut counts: Vec<_> = (0..50)
        .map(|i| bucket_count(GET, &format!("/batch/{i}"), NOON, 1))
        .collect();
    counts.push(bucket_count(GET, "/batch/zero", NOON, 0));
    let status = served
        .client()
        .await
        .add_counts(pb::AddCountsRequest {
            batch_id: batch_id(1),
            counts,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(interned(), before, "a refused batch");

    // An accepted stream interns what it counted.
    send(&served, distinct("accepted", 40)).await.unwrap();
    assert_eq!(interned(), (before.0 + 40, before.1 + 40));
    assert_eq!(total_of(&*memory, "/accepted/7").await, 1);
    served.stop().await;
}
