//! A plain tonic server on a loopback port serving a `CountV1Handler` (and the
//! standard health service, which `GrpcCounter::health` asks), and helpers to build
//! requests.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use count_core::{Counter, DateRange};
use count_grpc::proto::count::v1 as pb;
use count_grpc::proto::count::v1::count_service_client::CountServiceClient;
use count_grpc::proto::google::r#type::Date;
use count_grpc::{CountV1Handler, SERVICE_NAME};
use count_memory::MemoryCounter;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Server};

pub const GET: i32 = pb::Method::Get as i32;
pub const POST: i32 = pb::Method::Post as i32;
pub const PATCH: i32 = pb::Method::Patch as i32;
pub const GRPC: i32 = pb::Method::Grpc as i32;
pub const UNSPECIFIED: i32 = pb::Method::Unspecified as i32;

/// 2024-03-10T12:00:00Z.
pub const NOON: i64 = 1_710_072_000;

/// A server in this process, stopped by [`Served::stop`].
pub struct Served {
    pub address: SocketAddr,
    pub handler: CountV1Handler,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Served {
    /// Serves `handler` with tonic's defaults (4 MiB messages).
    pub async fn start(handler: CountV1Handler) -> Served {
        Served::start_with(handler, 4 << 20).await
    }

    /// Serves `handler`, taking messages up to `max_message_bytes`.
    pub async fn start_with(handler: CountV1Handler, max_message_bytes: usize) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_service_status(SERVICE_NAME, tonic_health::ServingStatus::Serving)
            .await;
        let service = handler
            .clone()
            .into_service()
            .max_decoding_message_size(max_message_bytes);
        let task = tokio::spawn(
            Server::builder()
                .add_service(service)
                .add_service(health)
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                    let _ = stopped.await;
                }),
        );
        Served {
            address,
            handler,
            stop: Some(stop),
            task,
        }
    }

    /// Serves a default handler over `counter`.
    pub async fn counter(counter: Arc<dyn Counter>) -> Served {
        Served::start(CountV1Handler::new(counter)).await
    }

    /// Serves a default handler over a fresh in-memory counter, returned too.
    pub async fn memory() -> (Arc<MemoryCounter>, Served) {
        let memory = Arc::new(MemoryCounter::new());
        let served = Served::counter(memory.clone()).await;
        (memory, served)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub async fn client(&self) -> CountServiceClient<Channel> {
        CountServiceClient::connect(self.url()).await.unwrap()
    }

    /// Stops the server; returns once it has.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

pub fn date(year: i32, month: i32, day: i32) -> Date {
    Date { year, month, day }
}

pub fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

/// One request as the Go clients send it: no subject, no status.
pub fn add(method: i32, path: &str, seconds: i64) -> pb::AddRequest {
    pb::AddRequest {
        method,
        path: path.to_owned(),
        request_timestamp: ts(seconds),
        subject: None,
        status: None,
    }
}

/// One request with a subject and a status.
pub fn add_key(
    method: i32,
    path: &str,
    seconds: i64,
    subject: Option<&str>,
    status: Option<i32>,
) -> pb::AddRequest {
    pb::AddRequest {
        subject: subject.map(str::to_owned),
        status,
        ..add(method, path, seconds)
    }
}

/// One `AddCounts` row without subject and status.
pub fn bucket_count(method: i32, path: &str, seconds: i64, n: u64) -> pb::BucketCount {
    pb::BucketCount {
        method,
        path: path.to_owned(),
        bucket: ts(seconds),
        n,
        subject: None,
        status: None,
    }
}

/// A batch id with a random writer.
pub fn batch_id(seq: u64) -> Option<pb::BatchId> {
    Some(pb::BatchId {
        writer: count_core::uuid::Uuid::new_v4().as_bytes().to_vec(),
        seq,
    })
}

/// The sum of every daily total over `range`.
pub async fn sum(counter: &dyn Counter, range: DateRange) -> u64 {
    let totals = counter.daily_totals(range).await.unwrap();
    totals.iter().map(|t| t.total).sum()
}

/// The total of `path` (every method) on 2024-03-10.
pub async fn total_of(counter: &dyn Counter, path: &str) -> u64 {
    let day = count_core::Day::new(2024, 3, 10).unwrap();
    let totals = counter.daily_totals(DateRange::day(day)).await.unwrap();
    totals
        .iter()
        .filter(|t| t.endpoint.path.as_str() == path)
        .map(|t| t.total)
        .sum()
}

/// Asserts `status` has `code` and every word in its message.
#[track_caller]
pub fn assert_status(status: &tonic::Status, code: tonic::Code, words: &[&str]) {
    assert_eq!(status.code(), code, "{status:?}");
    for word in words {
        assert!(
            status.message().contains(word),
            "{word:?} not in {:?}",
            status.message()
        );
    }
}

/// A counter that passes everything to another one, so that two wrappers (a
/// `FlakyCounter` and a plain handler) can share one store.
#[derive(Debug, Clone)]
pub struct Shared(pub Arc<dyn Counter>);

#[async_trait::async_trait]
impl Counter for Shared {
    async fn write(&self, batch: &count_core::Batch) -> count_core::Result<()> {
        self.0.write(batch).await
    }

    async fn rollup(
        &self,
        day: count_core::Day,
    ) -> count_core::Result<Vec<count_core::DailyTotal>> {
        self.0.rollup(day).await
    }

    async fn daily_totals(
        &self,
        range: DateRange,
    ) -> count_core::Result<Vec<count_core::DailyTotal>> {
        self.0.daily_totals(range).await
    }

    async fn totals(
        &self,
        query: &count_core::TotalsQuery,
    ) -> count_core::Result<Vec<count_core::GroupedTotal>> {
        self.0.totals(query).await
    }

    async fn kept(&self) -> count_core::Result<count_core::Kept> {
        self.0.kept().await
    }

    async fn forget_quarters_before(&self, day: count_core::Day) -> count_core::Result<()> {
        self.0.forget_quarters_before(day).await
    }

    async fn keep_zone_days(&self, zone: &count_core::Zone) -> count_core::Result<count_core::Day> {
        self.0.keep_zone_days(zone).await
    }

    async fn policy_since(
        &self,
        version: u64,
    ) -> count_core::Result<Option<count_core::StoredPolicy>> {
        self.0.policy_since(version).await
    }

    async fn replace_policy(
        &self,
        expected: u64,
        policy: &count_core::limits::Policy,
    ) -> count_core::Result<u64> {
        self.0.replace_policy(expected, policy).await
    }

    async fn lease(
        &self,
        ask: &count_core::limits::LeaseAsk<'_>,
    ) -> count_core::Result<count_core::limits::LeaseGrant> {
        self.0.lease(ask).await
    }

    async fn unrolled_days(
        &self,
        before: count_core::Day,
    ) -> count_core::Result<Vec<count_core::Day>> {
        self.0.unrolled_days(before).await
    }
}

/// The answer of an `Add` call still in progress.
pub type Answer = JoinHandle<Result<tonic::Response<pb::AddResponse>, tonic::Status>>;

/// Opens an `Add` stream without a deadline (as the Go project's client does): send
/// its messages with the returned sender, end it by dropping the sender.
pub async fn open_feed(served: &Served) -> (tokio::sync::mpsc::Sender<pb::AddRequest>, Answer) {
    open_feed_at(&served.url()).await
}

/// [`open_feed`] to the server at `url`.
pub async fn open_feed_at(url: &str) -> (tokio::sync::mpsc::Sender<pb::AddRequest>, Answer) {
    let (send, receive) = tokio::sync::mpsc::channel(1024);
    let mut client = CountServiceClient::connect(url.to_owned()).await.unwrap();
    let answer = tokio::spawn(async move {
        client
            .add(tokio_stream::wrappers::ReceiverStream::new(receive))
            .await
    });
    (send, answer)
}

/// Polls `value` every 20 ms until `done` holds for it or `limit` has passed; returns
/// the last value.
pub async fn wait_for<T, F, Fut>(
    limit: std::time::Duration,
    mut value: F,
    done: impl Fn(&T) -> bool,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let until = tokio::time::Instant::now() + limit;
    loop {
        let seen = value().await;
        if done(&seen) || tokio::time::Instant::now() >= until {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A TCP relay to a server, whose connections all break at once when it is dropped
/// (a network cut, or a server closing its connections).
pub struct Relay {
    pub url: String,
    task: JoinHandle<()>,
}

impl Relay {
    pub async fn to(served: &Served) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let target = served.address;
        let task = tokio::spawn(async move {
            // Dropped with the task: every relayed connection goes with it.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Relay { url, task }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
