//! What the server's tests share: a server in this process, an HTTP/1.1 client made of
//! hyper's connection API (plaintext or any stream), raw TCP for requests no client
//! would send, a counter that can be switched off, certificates, and request builders.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use count::Opened;
use count::memory::MemoryCounter;
use count_core::{
    Batch, Counter, DailyTotal, DateRange, Day, Error, GroupedTotal, Period, PeriodTotal,
    TotalsQuery,
};
use count_grpc::proto::count::v1 as pb;
use count_grpc::proto::count::v1::count_service_client::CountServiceClient;
use count_grpc::proto::google::r#type::Date;
use count_server::ServerConfig;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub const GET: i32 = pb::Method::Get as i32;
pub const POST: i32 = pb::Method::Post as i32;

/// 2024-03-10T12:00:00Z.
pub const NOON: i64 = 1_710_072_000;

/// A server in this process, stopped by [`Running::stop`].
pub struct Running {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<count_core::Result<()>>,
}

impl Running {
    /// Serves `counter` with `config` on a free loopback port.
    pub async fn start(config: ServerConfig, counter: Arc<dyn Counter>) -> Running {
        let opened = Opened::custom(counter, "a test's counter", true);
        Running::start_backend(config, opened).await
    }

    /// Serves a backend [`count::open`] opened.
    pub async fn start_backend(config: ServerConfig, opened: Opened) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(count_server::serve(config, opened, listener, async move {
            let _ = stopped.await;
        }));
        Running {
            address,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub async fn client(&self) -> CountServiceClient<Channel> {
        CountServiceClient::connect(self.url()).await.unwrap()
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// `GET path` over HTTP/1.1 with `headers`.
    /// The error `serve` stops with at once for `config` (a setting that cannot
    /// work), over a memory counter.
    pub async fn refused(config: ServerConfig) -> count_core::Error {
        let (_, counter) = memory();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let opened = Opened::custom(counter, "a test's counter", true);
        count_server::serve(config, opened, listener, async {})
            .await
            .unwrap_err()
    }

    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let tcp = tokio::net::TcpStream::connect(self.address).await.unwrap();
        http1_get(tcp, &self.address.to_string(), path, headers).await
    }

    /// `method path` with a JSON `body`, over HTTP/1.1.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let tcp = tokio::net::TcpStream::connect(self.address).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.address.to_string())
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = http_body_util::Full::new(Bytes::from(body.to_owned()));
        let response = sender
            .send_request(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    /// Asks the server to stop; returns once it has.
    pub async fn stop(mut self) -> count_core::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap()
    }

    /// Whether the server task has ended (without being asked to stop).
    pub fn has_ended(&self) -> bool {
        self.task.is_finished()
    }
}

/// An HTTP answer, body as text.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The `error` of a JSON error answer.
    pub fn error(&self) -> String {
        let body = self.json();
        body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {body}"))
            .to_owned()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// `GET path` over HTTP/1.1 on `stream` (plaintext or TLS), one request.
pub async fn http1_get(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::get(path).header("host", host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// Writes `bytes` to `address` as they are and returns what comes back until the
/// server closes the connection (or 5 s pass).
pub async fn raw(address: SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

pub fn memory() -> (Arc<MemoryCounter>, Arc<dyn Counter>) {
    let counter = Arc::new(MemoryCounter::new());
    (counter.clone(), counter)
}

pub async fn sum(counter: &dyn Counter, range: DateRange) -> u64 {
    let totals = counter.daily_totals(range).await.unwrap();
    totals.iter().map(|t| t.total).sum()
}

pub fn date(year: i32, month: i32, day: i32) -> Date {
    Date { year, month, day }
}

pub fn add(method: i32, path: &str, seconds: i64) -> pb::AddRequest {
    pb::AddRequest {
        method,
        path: path.to_owned(),
        request_timestamp: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        ..Default::default()
    }
}

/// [`add`] with a subject and a status.
pub fn add_with(
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

/// An `AddCounts` of `n` requests to `GET path` at [`NOON`], as batch `seq` of a
/// writer whose id is `writer` repeated.
pub fn add_counts(writer: u8, seq: u64, path: &str, n: u64) -> pb::AddCountsRequest {
    pb::AddCountsRequest {
        batch_id: Some(pb::BatchId {
            writer: vec![writer; 16],
            seq,
        }),
        counts: vec![pb::BucketCount {
            method: GET,
            path: path.to_owned(),
            bucket: Some(prost_types::Timestamp {
                seconds: NOON,
                nanos: 0,
            }),
            n,
            ..Default::default()
        }],
    }
}

/// Sends `requests` as one `Add` stream.
pub async fn add_all(client: &mut CountServiceClient<Channel>, requests: Vec<pb::AddRequest>) {
    client.add(tokio_stream::iter(requests)).await.unwrap();
}

/// A fresh directory under the system's temporary one, named for the test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("count-server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A CA and a server certificate for `localhost` it signed, made with `openssl`:
/// (CA, certificate, key).
pub fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=count test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// A counter over memory that can be switched off: while off, every call (health
/// included) fails with `Unavailable`, as a database that went away; while hung,
/// reads and health checks never answer, as a database that stopped responding;
/// while its reports are held, `totals` waits (health answers).
#[derive(Debug, Default)]
pub struct Switch {
    pub inner: MemoryCounter,
    off: AtomicBool,
    hung: AtomicBool,
    reports_held: AtomicBool,
}

impl Switch {
    /// Holds `totals` calls (they wait) until called again with `false`.
    pub fn hold_reports(&self, held: bool) {
        self.reports_held.store(held, Ordering::SeqCst);
    }

    pub fn set_down(&self, down: bool) {
        self.off.store(down, Ordering::SeqCst);
    }

    pub fn set_hung(&self, hung: bool) {
        self.hung.store(hung, Ordering::SeqCst);
    }

    fn up(&self) -> count_core::Result<()> {
        if self.off.load(Ordering::SeqCst) {
            Err(Error::unavailable("switched off by the test"))
        } else {
            Ok(())
        }
    }

    async fn answering(&self) -> count_core::Result<()> {
        if self.hung.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.up()
    }
}

#[async_trait]
impl Counter for Switch {
    async fn write(&self, batch: &Batch) -> count_core::Result<()> {
        self.up()?;
        self.inner.write(batch).await
    }

    async fn rollup(&self, day: Day) -> count_core::Result<Vec<DailyTotal>> {
        self.up()?;
        self.inner.rollup(day).await
    }

    async fn daily_totals(&self, range: DateRange) -> count_core::Result<Vec<DailyTotal>> {
        self.up()?;
        self.inner.daily_totals(range).await
    }

    async fn period_totals(&self, period: Period) -> count_core::Result<Vec<PeriodTotal>> {
        self.up()?;
        self.inner.period_totals(period).await
    }

    async fn totals(&self, query: &TotalsQuery) -> count_core::Result<Vec<GroupedTotal>> {
        while self.reports_held.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.answering().await?;
        self.inner.totals(query).await
    }

    async fn unrolled_days(&self, before: Day) -> count_core::Result<Vec<Day>> {
        self.up()?;
        self.inner.unrolled_days(before).await
    }

    async fn kept(&self) -> count_core::Result<count_core::Kept> {
        self.inner.kept().await
    }

    async fn forget_quarters_before(&self, day: count_core::Day) -> count_core::Result<()> {
        self.inner.forget_quarters_before(day).await
    }

    async fn keep_zone_days(&self, zone: &count_core::Zone) -> count_core::Result<count_core::Day> {
        self.inner.keep_zone_days(zone).await
    }

    async fn policy_since(
        &self,
        version: u64,
    ) -> count_core::Result<Option<count_core::StoredPolicy>> {
        self.inner.policy_since(version).await
    }

    async fn replace_policy(
        &self,
        expected: u64,
        policy: &count_core::limits::Policy,
    ) -> count_core::Result<u64> {
        self.inner.replace_policy(expected, policy).await
    }

    async fn lease(
        &self,
        ask: &count_core::limits::LeaseAsk<'_>,
    ) -> count_core::Result<count_core::limits::LeaseGrant> {
        self.inner.lease(ask).await
    }

    async fn health(&self) -> count_core::Result<()> {
        self.answering().await
    }
}

/// Polls `condition` every 20 ms for up to 10 s; panics with `what` if it never holds.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..500 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

/// An `Add` stream held open, as the Go project's client holds one for its life.
pub struct Held {
    /// Sends more of the stream; dropping it ends the stream.
    pub send: tokio::sync::mpsc::Sender<pb::AddRequest>,
    /// The call, answered when the stream ends (or is cut).
    pub call: tokio::task::JoinHandle<Result<tonic::Response<pb::AddResponse>, tonic::Status>>,
}

/// Opens an `Add` stream on `client` with one message (`GET /held` at noon) and
/// leaves it open.
pub async fn hold_a_stream(mut client: CountServiceClient<Channel>) -> Held {
    let (send, receive) = tokio::sync::mpsc::channel(4);
    send.send(add(GET, "/held", NOON)).await.unwrap();
    let call = tokio::spawn(async move {
        client
            .add(tokio_stream::wrappers::ReceiverStream::new(receive))
            .await
    });
    Held { send, call }
}
