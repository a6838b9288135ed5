//! Batch ids: a client's `AddCounts` ids live in a namespace of their own (per
//! token), so no client can claim the server's own ids (those of `Add` streams) or
//! another token's; and no answer shows an id the server uses internally.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use count_core::uuid::Uuid;
use count_core::{Batch, BatchId, Counter, DateRange};
use count_grpc::proto::count::v1 as pb;
use count_grpc::proto::count::v1::count_service_server::CountService;
use count_grpc::{ClientScope, CountV1Handler};
use count_memory::MemoryCounter;
use tonic::Code;

/// A counter that remembers every batch id written to it; with `ambiguous`, every
/// write fails with an unknown outcome whose message names the batch (as backends'
/// messages may).
#[derive(Debug, Default)]
struct Recording {
    memory: MemoryCounter,
    ids: Mutex<Vec<BatchId>>,
    ambiguous: bool,
}

#[async_trait::async_trait]
impl Counter for Recording {
    async fn write(&self, batch: &Batch) -> count_core::Result<()> {
        self.ids.lock().unwrap().push(batch.id());
        if self.ambiguous {
            return Err(count_core::Error::ambiguous(format!(
                "the connection was lost while committing batch {}",
                batch.id()
            )));
        }
        self.memory.write(batch).await
    }

    async fn rollup(
        &self,
        day: count_core::Day,
    ) -> count_core::Result<Vec<count_core::DailyTotal>> {
        self.memory.rollup(day).await
    }

    async fn daily_totals(
        &self,
        range: DateRange,
    ) -> count_core::Result<Vec<count_core::DailyTotal>> {
        self.memory.daily_totals(range).await
    }

    async fn totals(
        &self,
        query: &count_core::TotalsQuery,
    ) -> count_core::Result<Vec<count_core::GroupedTotal>> {
        self.memory.totals(query).await
    }

    async fn unrolled_days(
        &self,
        before: count_core::Day,
    ) -> count_core::Result<Vec<count_core::Day>> {
        self.memory.unrolled_days(before).await
    }
}

async fn unit_add(served: &Served, path: &str, n: i64) -> Result<(), tonic::Status> {
    let messages: Vec<_> = (0..n).map(|i| add(GET, path, NOON + i)).collect();
    let mut request = tonic::Request::new(tokio_stream::iter(messages));
    request.set_timeout(Duration::from_secs(10));
    served.client().await.add(request).await.map(|_| ())
}

fn add_counts(writer: Uuid, seq: u64, path: &str, n: u64) -> pb::AddCountsRequest {
    pb::AddCountsRequest {
        batch_id: Some(pb::BatchId {
            writer: writer.as_bytes().to_vec(),
            seq,
        }),
        counts: vec![bucket_count(GET, path, NOON, n)],
    }
}

/// The review's attack: a client claims the server's next 200 batch ids with
/// `AddCounts`; every other client's `Add` streams must still be written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_counts_cannot_claim_the_ids_of_add_streams() {
    let recording = Arc::new(Recording::default());
    let served = Served::counter(recording.clone()).await;
    unit_add(&served, "/first", 3).await.unwrap();
    let own = recording.ids.lock().unwrap()[0];
    let mut attacker = served.client().await;
    for seq in own.seq + 1..=own.seq + 200 {
        attacker
            .add_counts(add_counts(own.writer, seq, "/claimed", 1))
            .await
            .unwrap();
    }
    for _ in 0..20 {
        unit_add(&served, "/added", 5)
            .await
            .expect("an Add stream is written whatever ids AddCounts was sent");
    }
    assert_eq!(total_of(&recording.memory, "/added").await, 100);
    assert_eq!(total_of(&recording.memory, "/claimed").await, 200);
    let claimed = (recording.ids.lock().unwrap().iter())
        .filter(|id| id.writer != own.writer)
        .count();
    assert_eq!(
        claimed, 200,
        "the claimed ids were stored under the server's writer"
    );
    served.stop().await;
}

/// One client id in two tokens' scopes is two batches; within one scope, the same id
/// with other counts is refused, the answer naming the client's id as sent.
#[tokio::test]
async fn each_token_has_its_own_batch_ids() {
    let memory = Arc::new(MemoryCounter::new());
    let handler = CountV1Handler::new(memory.clone());
    let writer = Uuid::new_v4();
    let send = |scope: Option<&[u8]>, path: &str, n| {
        let mut request = tonic::Request::new(add_counts(writer, 9, path, n));
        if let Some(token) = scope {
            request
                .extensions_mut()
                .insert(ClientScope::of_token(token));
        }
        let handler = handler.clone();
        async move { handler.add_counts(request).await }
    };
    send(Some(b"token-a"), "/a", 1).await.unwrap();
    send(Some(b"token-b"), "/b", 2).await.unwrap();
    send(None, "/none", 3).await.unwrap();
    // A resend in the same scope is applied once.
    send(Some(b"token-a"), "/a", 1).await.unwrap();
    let conflict = send(Some(b"token-a"), "/other", 4).await.unwrap_err();
    assert_status(
        &conflict,
        Code::AlreadyExists,
        &[&BatchId { writer, seq: 9 }.to_string()],
    );
    assert_eq!(total_of(&*memory, "/a").await, 1);
    assert_eq!(total_of(&*memory, "/b").await, 2);
    assert_eq!(total_of(&*memory, "/none").await, 3);
    assert_eq!(total_of(&*memory, "/other").await, 0);
}

/// An `Add` stream whose write ends unknown is answered without the server's batch
/// id, though the storage's message named it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_show_no_id_of_the_servers() {
    let recording = Arc::new(Recording {
        ambiguous: true,
        ..Recording::default()
    });
    let handler = CountV1Handler::builder(recording.clone())
        .add_timeout(Duration::from_millis(300))
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(20))
        .build();
    let served = Served::start(handler).await;
    let status = unit_add(&served, "/unknown", 2).await.unwrap_err();
    assert_eq!(status.code(), Code::Unknown, "{status:?}");
    let own = recording.ids.lock().unwrap()[0];
    assert!(
        !status.message().contains(&own.writer.to_string()),
        "the answer shows the server's batch id: {}",
        status.message()
    );
    // Nor does a feed's answer.
    let status = served
        .client()
        .await
        .add(tokio_stream::iter(vec![add(GET, "/feed", NOON)]))
        .await
        .unwrap_err();
    assert!(
        !status.message().contains(&own.writer.to_string()),
        "{}",
        status.message()
    );
    served.stop().await;
}
