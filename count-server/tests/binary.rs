//! The `count-server` binary, spawned as a user would run it: flags and env, the
//! in-memory warning, calls over loopback, auth, SIGTERM with a stream in flight,
//! and `DB_URL` pointing at a throwaway PostgreSQL.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{NOON, add, date};
use count_core::{Counter, DateRange, Day};
use count_grpc::GrpcCounter;
use count_grpc::proto::count::v1 as pb;
use count_grpc::proto::count::v1::count_service_client::CountServiceClient;
use count_pg::PgCounter;
use count_testcluster::TestCluster;

const GET: i32 = pb::Method::Get as i32;

/// A spawned server; killed if the test ends without stopping it.
struct Spawned {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Spawned {
    /// Starts the binary with `env` (and nothing inherited that configures it), on
    /// a free port given by `COUNT_LISTEN`, and waits until it answers.
    async fn start(args: &[&str], env: &[(&str, &str)]) -> Spawned {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_count-server"));
        command
            .args(args)
            .env_remove("DB_URL")
            .env_remove("COUNT_TOKEN")
            .env("COUNT_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn count-server");
        let log = Arc::new(Mutex::new(String::new()));
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let spawned = Spawned { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "no server: {}", spawned.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        spawned
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn sigterm(&self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// SIGTERM; the exit status once it has stopped.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        self.sigterm();
        self.exit_status().await
    }

    async fn exit_status(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running: {}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_every_flag_with_its_env() {
    let output = Command::new(env!("CARGO_BIN_EXE_count-server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for (flag, env) in [
        ("--listen", "COUNT_LISTEN"),
        ("--db-url", "DB_URL"),
        ("--token", "COUNT_TOKEN"),
        ("--backend", "COUNT_BACKEND"),
        ("--no-rollup", "COUNT_NO_ROLLUP"),
        ("--max-message-bytes", "COUNT_MAX_MESSAGE_BYTES"),
        ("--max-streams-per-connection", "COUNT_MAX_STREAMS"),
        ("--max-concurrent-calls", "COUNT_MAX_CALLS"),
        ("--tls-cert", "COUNT_TLS_CERT"),
        ("--tls-key", "COUNT_TLS_KEY"),
    ] {
        assert!(
            help.contains(flag) && help.contains(env),
            "{flag}/{env}: {help}"
        );
    }
    assert!(help.contains("0.0.0.0:7777"), "{help}");
    let bad = Command::new(env!("CARGO_BIN_EXE_count-server"))
        .args(["--listen", "nowhere"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nowhere"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_it_warns_serves_and_stops_cleanly() {
    let mut server = Spawned::start(&[], &[]).await;
    let mut client = CountServiceClient::connect(server.url()).await.unwrap();
    client
        .add(tokio_stream::iter(vec![
            add(GET, "/bin", NOON),
            add(GET, "/bin", NOON),
        ]))
        .await
        .unwrap();
    let totals = client
        .count_daily_totals(pb::CountDailyTotalsRequest {
            date: Some(date(2024, 3, 10)),
        })
        .await
        .unwrap()
        .into_inner()
        .method_counts;
    assert_eq!(totals.len(), 1);
    assert_eq!(totals[0].count, 2);
    let missing = client
        .count_daily_totals(pb::CountDailyTotalsRequest { date: None })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::InvalidArgument);
    let status = server.terminate().await;
    assert!(status.success(), "{status}: {}", server.log());
    let log = server.log();
    assert!(log.contains("counting in memory"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_the_environment_guards_every_call() {
    let mut server = Spawned::start(&[], &[("COUNT_TOKEN", "from-env")]).await;
    let mut client = CountServiceClient::connect(server.url()).await.unwrap();
    let status = client
        .add(tokio_stream::iter(vec![add(GET, "/x", NOON)]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let counter = GrpcCounter::builder(&server.url())
        .token("from-env")
        .connect()
        .await
        .unwrap();
    counter.health().await.unwrap();
    // SIGINT (Ctrl-C) stops it as cleanly as SIGTERM.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = server.exit_status().await;
    assert!(status.success(), "{status}: {}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_sigterm_mid_stream_loses_nothing() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let url = cluster.fresh_database("grpc_binary");
    let mut server = Spawned::start(&["--db-url", &url], &[]).await;
    assert!(!server.log().contains("counting in memory"));

    let mut client = CountServiceClient::connect(server.url()).await.unwrap();
    let (send, receive) = tokio::sync::mpsc::channel(64);
    let call = tokio::spawn(async move {
        client
            .add(tokio_stream::wrappers::ReceiverStream::new(receive))
            .await
    });
    for i in 0..20_000 {
        send.send(add(GET, "/pg", NOON + i % 300)).await.unwrap();
    }
    // SIGTERM with the stream open: the server stops accepting, lets it finish.
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..20_000 {
        send.send(add(GET, "/pg", NOON + i % 300)).await.unwrap();
    }
    drop(send);
    call.await.unwrap().expect("the stream in flight finishes");
    let status = server.exit_status().await;
    assert!(status.success(), "{status}: {}", server.log());

    let counter = PgCounter::connect(&url).await.unwrap();
    let d = Day::new(2024, 3, 10).unwrap();
    let totals = counter.daily_totals(DateRange::day(d)).await.unwrap();
    assert_eq!(totals.iter().map(|t| t.total).sum::<u64>(), 40_000);
}
