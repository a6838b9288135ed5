//! A `count-server` process for the tests that drive it from outside (a browser, the
//! operator commands): spawned on a free port as a user would start it, its output
//! kept for failure messages, killed when dropped. Also the known counts those tests
//! send it, and what every report over them must answer.

#![allow(dead_code)] // each test file uses its own part of the helpers

#[path = "../common/output.rs"]
mod output;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use count_core::uuid::Uuid;
use count_core::{
    Batch, BatchId, BucketCount, CountKey, Counter, Day, Endpoint, GroupedTotal, Method, Path,
    Status, Subject, TotalsQuery,
};
use output::collect_output;

/// The `count-server` binary under test.
pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_count-server");

/// A spawned server; killed when dropped.
pub(crate) struct Spawned {
    child: Child,
    /// The port it serves gRPC and HTTP on.
    pub(crate) port: u16,
    log: Arc<Mutex<String>>,
}

impl Spawned {
    /// Starts the binary with `args` and `env` (nothing inherited that configures
    /// it), listening on a free loopback port, and waits until it answers HTTP.
    pub(crate) fn start(args: &[&str], env: &[(&str, &str)]) -> Spawned {
        let port = free_port();
        let mut command = Command::new(BINARY);
        command
            .args(args)
            .env_remove("DB_URL")
            .env_remove("COUNT_TOKEN")
            .env_remove("COUNT_DB_PATH")
            .env_remove("COUNT_BACKEND")
            .env("COUNT_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("spawn count-server");
        let log = collect_output(&mut child).log;
        let mut spawned = Spawned { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = spawned.child.try_wait().unwrap() {
                panic!("count-server exited ({status}): {}", spawned.log());
            }
            // With TLS, a plain GET gets no answer: a listening port is enough.
            let ready = if args.contains(&"--tls-cert") {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            } else {
                spawned.get("/healthz", None).0 == 200
            };
            if ready {
                return spawned;
            }
            assert!(Instant::now() < deadline, "no server: {}", spawned.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its URL, for gRPC and HTTP alike.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it printed so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `GET path` over HTTP/1.1, with a bearer `token` if given: the status and body.
    pub(crate) fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        http_get(self.port, path, token).unwrap_or((0, String::new()))
    }

    /// Stops it with SIGTERM and waits until it has exited.
    pub(crate) fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "still running: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.1 GET: the status and the body (read by `Content-Length`, by
/// chunks, or to the end).
pub(crate) fn http_get(
    port: u16,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        &stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    match length {
        Some(length) if !chunked => {
            body.resize(length, 0);
            reader.read_exact(&mut body)?;
        }
        _ => {
            reader.read_to_end(&mut body)?;
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    Ok((status, if chunked { dechunk(&body) } else { body }))
}

/// The body of a chunked response.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// One count the tests send: `n` requests on `day` to `method path`, by `subject`,
/// ending with `status`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Known {
    /// The UTC day.
    pub(crate) day: Day,
    /// The request's method.
    pub(crate) method: Method,
    /// The route.
    pub(crate) path: &'static str,
    /// Who made it.
    pub(crate) subject: Option<&'static str>,
    /// How it ended.
    pub(crate) status: Option<u16>,
    /// How many requests.
    pub(crate) n: u64,
}

impl Known {
    /// Its key, as count-core models it.
    pub(crate) fn key(&self) -> CountKey {
        let mut key = CountKey::new(Endpoint::new(self.method, Path::new(self.path).unwrap()));
        if let Some(subject) = self.subject {
            key = key.with_subject(Subject::new(subject).unwrap());
        }
        if let Some(code) = self.status {
            key = key.with_status(Status::from_code(i64::from(code)).unwrap());
        }
        key
    }
}

/// The day `days` before `day`.
pub(crate) fn days_before(day: Day, days: i64) -> Day {
    Day::from_unix_day(day.unix_day() - days).unwrap()
}

/// Counts over several endpoints, days, subjects and statuses, placed relative to
/// `today` so that "today", "the last 7 days" and "the last 30 days" each hold a
/// different part of them. More than six endpoints: a chart stacks six and sums the
/// rest as "other".
pub(crate) fn known_counts(today: Day) -> Vec<Known> {
    let day = |back| days_before(today, back);
    let known = |back, method, path, subject, status, n| Known {
        day: day(back),
        method,
        path,
        subject,
        status,
        n,
    };
    let mut counts = vec![
        known(
            0,
            Method::Get,
            "/users/{id}",
            Some("acme"),
            Some(200),
            1_200,
        ),
        known(1, Method::Get, "/users/{id}", Some("acme"), Some(200), 530),
        known(1, Method::Get, "/users/{id}", Some("globex"), Some(503), 21),
        known(10, Method::Get, "/users/{id}", None, Some(200), 300),
        known(0, Method::Post, "/orders", Some("globex"), Some(201), 250),
        known(3, Method::Post, "/orders", Some("acme"), Some(500), 47),
        known(
            10,
            Method::Delete,
            "/users/{id}",
            Some("acme"),
            Some(404),
            7,
        ),
        known(
            2,
            Method::Grpc,
            "/shop.v1.Cart/Checkout",
            Some("initech"),
            Some(14),
            12,
        ),
        known(
            2,
            Method::Grpc,
            "/shop.v1.Cart/Checkout",
            Some("initech"),
            Some(0),
            88,
        ),
        known(40, Method::Get, "/health", None, None, 9_999),
    ];
    for (i, path) in ["/items/{n}", "/items", "/search", "/cart", "/login"]
        .into_iter()
        .enumerate()
    {
        counts.push(known(
            i as i64,
            Method::Get,
            path,
            None,
            Some(200),
            3 + i as u64,
        ));
    }
    counts
}

/// Sends `counts` to `counter` as one batch (through a server: one `AddCounts` call).
pub(crate) async fn send(counter: &dyn Counter, counts: &[Known]) {
    let counts = counts
        .iter()
        .map(|c| BucketCount::new(c.key(), c.day.start(), c.n))
        .collect();
    let id = BatchId {
        writer: Uuid::new_v4(),
        seq: 1,
    };
    counter
        .write(&Batch::new(id, counts).unwrap())
        .await
        .expect("the known counts are written");
}

/// A server on the memory backend, with `env` (a token, say) added, holding
/// [`known_counts`] of today (sent with `token` if given): the server, today, the
/// counts.
pub(crate) async fn serving_known_counts(
    env: &[(&str, &str)],
    token: Option<&str>,
) -> (Spawned, Day, Vec<Known>) {
    let mut all_env = vec![("DB_URL", "memory:")];
    all_env.extend_from_slice(env);
    let spawned = Spawned::start(&[], &all_env);
    let today = Day::today();
    let counts = known_counts(today);
    let mut client = count_grpc::GrpcCounter::builder(&spawned.url());
    if let Some(token) = token {
        client = client.token(token);
    }
    send(&client.connect().await.unwrap(), &counts).await;
    (spawned, today, counts)
}

/// What any backend must answer to `query` over `counts`: count-core's reference
/// grouping.
pub(crate) fn expected(counts: &[Known], query: &TotalsQuery) -> Vec<GroupedTotal> {
    query.group(counts.iter().map(|c| (c.day.start_second(), c.key(), c.n)))
}

/// `1234567` as `1,234,567`, as the table and the page write numbers.
pub(crate) fn thousands(n: u64) -> String {
    let digits: Vec<char> = n.to_string().chars().collect();
    let groups: Vec<String> = digits.rchunks(3).rev().map(String::from_iter).collect();
    groups.join(",")
}
