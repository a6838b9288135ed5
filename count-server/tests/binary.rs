//! The `count-server` binary, spawned as a user would run it: flags and env, the
//! SQLite file it counts into without a database URL (and that survives a restart),
//! memory only when asked for, the token from the environment (never an empty one),
//! the warning when serving without one to the network, log formats, SIGTERM with a
//! stream in flight on PostgreSQL and with a stream held past the grace period, out
//! of file descriptors.

mod common;
#[path = "common/output.rs"]
mod output;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{GET, Held, NOON, add, date, hold_a_stream, temp_dir};
use count::pg::PgCounter;
use count_core::{Counter, DateRange, Day};
use count_grpc::GrpcCounter;
use count_grpc::proto::count::v1 as pb;
use count_grpc::proto::count::v1::count_service_client::CountServiceClient;
use count_testcluster::TestCluster;
use output::{Output, collect_output};

/// Variables that configure the binary: none is inherited from the test's environment.
const CONFIGURING: [&str; 20] = [
    "DB_URL",
    "COUNT_DB_PATH",
    "COUNT_BACKEND",
    "COUNT_TOKEN",
    "COUNT_NO_ROLLUP",
    "COUNT_MAX_MESSAGE_BYTES",
    "COUNT_MAX_RESPONSE_BYTES",
    "COUNT_MAX_STREAMS",
    "COUNT_MAX_CALLS",
    "COUNT_MAX_ADD_STREAMS",
    "COUNT_MAX_CONNECTIONS",
    "COUNT_HEADER_READ_TIMEOUT",
    "COUNT_TLS_CERT",
    "COUNT_TLS_KEY",
    "COUNT_SHUTDOWN_GRACE",
    "COUNT_ADD_TIMEOUT",
    "COUNT_LOG_FORMAT",
    "XDG_DATA_HOME",
    "NO_COLOR",
    "RUST_LOG",
];

fn command(home: &Path) -> Command {
    configured(Command::new(env!("CARGO_BIN_EXE_count-server")), home)
}

/// The binary under `prlimit`, allowed `files` open file descriptors.
fn command_with_file_limit(home: &Path, files: u32) -> Command {
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={files}:{files}"))
        .arg(env!("CARGO_BIN_EXE_count-server"));
    configured(command, home)
}

fn configured(mut command: Command, home: &Path) -> Command {
    for name in CONFIGURING {
        command.env_remove(name);
    }
    // Never the real home's data directory.
    command.env("HOME", home);
    command
}

/// A spawned server; killed if the test ends without stopping it.
struct Spawned {
    child: Child,
    port: u16,
    output: Output,
}

impl Spawned {
    /// Starts the binary with `args` and `env` (nothing inherited that configures it),
    /// its home in `home`, on a free port given by `COUNT_LISTEN`, and waits until it
    /// answers.
    async fn start(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Spawned {
        Spawned::start_command(command(home), "127.0.0.1", args, env).await
    }

    /// [`Spawned::start`] of `command`, listening on `host`.
    async fn start_command(
        mut command: Command,
        host: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Spawned {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        command
            .args(args)
            .env("COUNT_LISTEN", format!("{host}:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn count-server");
        let output = collect_output(&mut child);
        let mut spawned = Spawned {
            child,
            port,
            output,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = spawned.child.try_wait().unwrap() {
                panic!("count-server exited ({status}): {}", spawned.log());
            }
            assert!(Instant::now() < deadline, "no server: {}", spawned.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        spawned
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn client(&self) -> CountServiceClient<tonic::transport::Channel> {
        CountServiceClient::connect(self.url()).await.unwrap()
    }

    fn log(&self) -> String {
        self.output.log.lock().unwrap().clone()
    }

    /// The log once it holds `words` (the port opens before the backend is).
    async fn log_with(&self, words: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if log.contains(words) {
                return log;
            }
            assert!(Instant::now() < deadline, "no {words:?} in: {log}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(sent.success());
    }

    /// SIGTERM; the exit status once it has stopped.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        self.exit_status().await
    }

    async fn exit_status(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Exited, and every line it wrote is in the log.
            if let Some(status) = self.child.try_wait().unwrap()
                && self.output.ended()
            {
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

/// The total counted on 2024-03-10, through the gRPC report.
async fn counted_on_the_tenth(server: &Spawned) -> i64 {
    let totals = server
        .client()
        .await
        .count_daily_totals(pb::CountDailyTotalsRequest {
            date: Some(date(2024, 3, 10)),
        })
        .await
        .unwrap()
        .into_inner()
        .method_counts;
    totals.iter().map(|t| t.count).sum()
}

#[test]
fn help_lists_every_flag_with_its_env() {
    let home = temp_dir("binary-help");
    let output = command(&home).arg("--help").output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for (flag, env) in [
        ("--listen", "COUNT_LISTEN"),
        ("--db-url", "DB_URL"),
        ("--db-path", "COUNT_DB_PATH"),
        ("--backend", "COUNT_BACKEND"),
        ("--token", "COUNT_TOKEN"),
        ("--no-rollup", "COUNT_NO_ROLLUP"),
        ("--max-message-bytes", "COUNT_MAX_MESSAGE_BYTES"),
        ("--max-response-bytes", "COUNT_MAX_RESPONSE_BYTES"),
        ("--max-streams-per-connection", "COUNT_MAX_STREAMS"),
        ("--max-concurrent-calls", "COUNT_MAX_CALLS"),
        ("--max-add-streams", "COUNT_MAX_ADD_STREAMS"),
        ("--max-connections", "COUNT_MAX_CONNECTIONS"),
        ("--header-read-timeout", "COUNT_HEADER_READ_TIMEOUT"),
        ("--tls-cert", "COUNT_TLS_CERT"),
        ("--tls-key", "COUNT_TLS_KEY"),
        ("--shutdown-grace", "COUNT_SHUTDOWN_GRACE"),
        ("--add-timeout", "COUNT_ADD_TIMEOUT"),
        ("--log-format", "COUNT_LOG_FORMAT"),
    ] {
        let lines: Vec<&str> = help.lines().collect();
        let line = lines
            .iter()
            .position(|l| l.trim_start().starts_with(&format!("{flag} ")) || l.trim() == flag)
            .unwrap_or_else(|| panic!("{flag} missing: {help}"));
        // clap ends a flag's help text with its variable, before the next flag.
        let text: Vec<&str> = lines[line + 1..]
            .iter()
            .take_while(|l| !l.trim_start().starts_with("--"))
            .copied()
            .collect();
        assert!(
            text.iter().any(|l| l.contains(&format!("[env: {env}"))),
            "{flag}/{env}: {help}"
        );
    }
    for words in [
        "0.0.0.0:7777",
        "count/count.db",
        "./count.db",
        "sqlite:",
        "memory:",
        "- json:",
    ] {
        assert!(help.contains(words), "{words}: {help}");
    }
    let bad = command(&home)
        .args(["--listen", "nowhere"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("nowhere"));
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_database_url_counts_survive_a_restart_in_a_sqlite_file() {
    let home = temp_dir("binary-sqlite");
    let file = home.join("data").join("count.db");
    let file_env = file.to_str().unwrap();
    let mut first = Spawned::start(&home, &[], &[("COUNT_DB_PATH", file_env)]).await;
    let log = first
        .log_with(&format!("counting into SQLite file {}", file.display()))
        .await;
    assert!(!log.contains("lost"), "{log}");
    first
        .client()
        .await
        .add(tokio_stream::iter(vec![
            add(GET, "/kept", NOON),
            add(GET, "/kept", NOON + 1),
            add(GET, "/kept", NOON + 2),
        ]))
        .await
        .unwrap();
    let status = first.terminate().await;
    assert!(status.success(), "{status}: {}", first.log());
    assert!(file.exists());

    let mut second = Spawned::start(&home, &["--db-path", file_env], &[]).await;
    assert_eq!(counted_on_the_tenth(&second).await, 3, "{}", second.log());
    second
        .client()
        .await
        .add(tokio_stream::iter(vec![add(GET, "/kept", NOON)]))
        .await
        .unwrap();
    assert_eq!(counted_on_the_tenth(&second).await, 4);
    assert!(second.terminate().await.success(), "{}", second.log());
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_file_is_in_the_users_data_directory() {
    let home = temp_dir("binary-default");
    let data = home.join("xdg");
    let data_env = data.to_str().unwrap();
    let expected: PathBuf = data.join("count").join("count.db");
    let mut server = Spawned::start(&home, &[], &[("XDG_DATA_HOME", data_env)]).await;
    server
        .client()
        .await
        .add(tokio_stream::iter(vec![add(GET, "/default", NOON)]))
        .await
        .unwrap();
    assert!(server.terminate().await.success(), "{}", server.log());
    assert!(
        server
            .log()
            .contains(&format!("SQLite file {}", expected.display())),
        "{}",
        server.log()
    );
    assert!(expected.exists());
    // Without XDG_DATA_HOME, under the home directory.
    let mut server = Spawned::start(&home, &[], &[]).await;
    assert!(server.terminate().await.success(), "{}", server.log());
    assert!(
        home.join(".local/share/count/count.db").exists(),
        "{}",
        server.log()
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_only_when_asked_for_and_with_its_warning() {
    let home = temp_dir("binary-memory");
    for (args, env) in [
        (&[][..], &[("DB_URL", "memory:")][..]),
        (&["--backend", "memory"][..], &[][..]),
    ] {
        let mut server = Spawned::start(&home, args, env).await;
        server
            .client()
            .await
            .add(tokio_stream::iter(vec![
                add(GET, "/bin", NOON),
                add(GET, "/bin", NOON),
            ]))
            .await
            .unwrap();
        assert_eq!(counted_on_the_tenth(&server).await, 2);
        let status = server.terminate().await;
        assert!(status.success(), "{status}: {}", server.log());
        let log = server.log();
        assert!(
            log.contains("WARN") && log.contains("counting in memory"),
            "{log}"
        );
        assert!(log.contains("every count is lost"), "{log}");
        assert!(log.contains("stopped"), "{log}");
    }
    // Nothing was written to the default file.
    assert!(!home.join(".local/share/count").exists());
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_from_the_environment_guards_every_call() {
    let home = temp_dir("binary-token");
    let mut server = Spawned::start(
        &home,
        &["--backend", "memory"],
        &[("COUNT_TOKEN", "from-env")],
    )
    .await;
    let status = server
        .client()
        .await
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
    server.signal("-INT");
    let status = server.exit_status().await;
    assert!(status.success(), "{status}: {}", server.log());
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_lines_when_asked_and_never_coloured_off_a_terminal() {
    let home = temp_dir("binary-logs");
    for (args, env) in [
        (
            &["--backend", "memory", "--log-format", "json"][..],
            &[][..],
        ),
        (
            &["--backend", "memory"][..],
            &[("COUNT_LOG_FORMAT", "json")][..],
        ),
    ] {
        let mut server = Spawned::start(&home, args, env).await;
        assert!(server.terminate().await.success(), "{}", server.log());
        let log = server.log();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect();
        assert!(lines.len() >= 3, "{log}");
        assert!(lines.iter().any(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("counting in memory")
        }));
        assert!(lines.iter().all(|l| l["timestamp"].is_string()));
    }
    let mut text = Spawned::start(&home, &["--backend", "memory"], &[]).await;
    assert!(text.terminate().await.success());
    let log = text.log();
    assert!(log.contains("count-server: serving"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes off a terminal: {log:?}"
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_opened_stops_it_with_the_reason() {
    let home = temp_dir("binary-bad-db");
    // A directory where the file should be.
    let output = command(&home)
        .args(["--listen", "127.0.0.1:0", "--db-path"])
        .arg(&home)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(home.to_str().unwrap()), "{stderr}");
    let output = command(&home)
        .args(["--listen", "127.0.0.1:0"])
        .env("DB_URL", "mysql://root:hunter2@localhost/x")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("expected sqlite:") && !stderr.contains("hunter2"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_sigterm_mid_stream_loses_nothing() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    let home = temp_dir("binary-pg");
    let url = cluster.fresh_database("server_binary");
    let mut server = Spawned::start(&home, &["--db-url", &url], &[]).await;
    let log = server.log_with("counting into PostgreSQL at").await;
    assert!(!log.contains("counting in memory"));

    let mut client = server.client().await;
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
    server.signal("-TERM");
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
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn an_empty_token_or_two_databases_stop_it_with_the_reason() {
    let home = temp_dir("binary-refused");
    for (args, env, words) in [
        (&["--token", ""][..], &[][..], "is empty"),
        (&[][..], &[("COUNT_TOKEN", "")][..], "is empty"),
        (
            &[][..],
            &[("DB_URL", "memory:"), ("COUNT_DB_PATH", "/tmp/x.db")][..],
            "not both",
        ),
        (
            &["--db-url", "memory:", "--db-path", "/tmp/x.db"][..],
            &[][..],
            "not both",
        ),
    ] {
        let mut command = command(&home);
        command
            .args(["--listen", "127.0.0.1:0", "--backend", "memory"])
            .args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} {env:?}: {stderr}");
        assert!(stderr.contains(words), "{args:?} {env:?}: {stderr}");
        assert!(!stderr.contains("serving"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_rollup_takes_the_usual_ways_of_saying_yes() {
    let home = temp_dir("binary-no-rollup");
    for (value, rollup) in [
        ("1", false),
        ("yes", false),
        ("true", false),
        ("0", true),
        ("off", true),
    ] {
        let mut server = Spawned::start(
            &home,
            &["--backend", "memory"],
            &[("COUNT_NO_ROLLUP", value)],
        )
        .await;
        let log = server.log_with("serving gRPC and HTTP").await;
        assert!(log.contains(&format!("rollup={rollup}")), "{value}: {log}");
        assert!(server.terminate().await.success());
    }
    let _ = std::fs::remove_dir_all(&home);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_without_a_token_to_the_network_warns() {
    let home = temp_dir("binary-open");
    let warning = "serving without a token";
    let mut open =
        Spawned::start_command(command(&home), "0.0.0.0", &["--backend", "memory"], &[]).await;
    let log = open.log_with(warning).await;
    assert!(log.contains("WARN"), "{log}");
    assert!(open.terminate().await.success());
    for (host, env) in [
        ("127.0.0.1", &[][..]),
        ("0.0.0.0", &[("COUNT_TOKEN", "s3cret")][..]),
    ] {
        let mut quiet =
            Spawned::start_command(command(&home), host, &["--backend", "memory"], env).await;
        let log = quiet.log_with("serving gRPC and HTTP").await;
        assert!(quiet.terminate().await.success());
        assert!(!log.contains(warning), "{host} {env:?}: {log}");
    }
    let _ = std::fs::remove_dir_all(&home);
}

/// SIGTERM with a stream that is never closed: the server exits once the grace
/// period is over, every time, however the stop races the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_held_stream_exits_after_the_grace_period() {
    let home = temp_dir("binary-grace");
    for round in 0..5 {
        let mut server = Spawned::start(
            &home,
            &["--backend", "memory", "--shutdown-grace", "1"],
            &[],
        )
        .await;
        let Held { send, call: held } = hold_a_stream(server.client().await).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        server.signal("-TERM");
        let status = server.exit_status().await;
        let took = started.elapsed();
        assert!(
            status.success(),
            "round {round}: {status}: {}",
            server.log()
        );
        assert!(
            took < Duration::from_secs(4),
            "round {round}: exited {took:?} after SIGTERM with a 1 s grace: {}",
            server.log()
        );
        assert!(
            server.log().contains("grace period is over"),
            "{}",
            server.log()
        );
        drop(send);
        let _ = held.await;
    }
    let _ = std::fs::remove_dir_all(&home);
}

/// Out of file descriptors, the server backs off and warns about it now and then
/// (not every few milliseconds); the connections that sent nothing are closed after
/// the header read timeout, and it serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_it_backs_off_and_recovers() {
    let home = temp_dir("binary-fds");
    let server = Spawned::start_command(
        command_with_file_limit(&home, 64),
        "127.0.0.1",
        &[
            "--backend",
            "memory",
            "--max-connections",
            "1000",
            "--header-read-timeout",
            "3",
        ],
        &[],
    )
    .await;
    // Far more silent connections than the process may open files.
    let mut silent = Vec::new();
    for _ in 0..150 {
        silent.push(
            tokio::net::TcpStream::connect(("127.0.0.1", server.port))
                .await
                .unwrap(),
        );
    }
    let log = server.log_with("accepting a connection failed").await;
    assert!(log.contains("Too many open files"), "{log}");
    // Two seconds out of file descriptors: one warning (the next is due ten seconds
    // after the first).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let warnings = server
        .log()
        .matches("accepting a connection failed")
        .count();
    assert_eq!(warnings, 1, "{}", server.log());
    // The silent ones are closed after the timeout; the server answers again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        let answer = tokio::time::timeout(
            Duration::from_secs(2),
            common::http1_get(tcp, "x", "/healthz", &[]),
        )
        .await;
        if answer.is_ok_and(|reply| reply.status == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never served again: {}",
            server.log()
        );
    }
    drop(silent);
    let _ = std::fs::remove_dir_all(&home);
}
