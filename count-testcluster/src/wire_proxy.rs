//! A TCP proxy on the PostgreSQL wire protocol that breaks COMMITs on command, as a
//! CockroachDB node or the network between can: the connection drops before or just
//! after COMMIT reaches the server, or the server's reply is replaced by CockroachDB's
//! `40003 result is ambiguous`. Like CockroachDB's SQL proxy it also takes
//! `--cluster=<name>` out of the startup `options` (PostgreSQL would refuse it) and
//! remembers the name; and it turns CockroachDB's `SET TRANSACTION AS OF SYSTEM TIME
//! ...` (a follower read, which PostgreSQL cannot parse) into `SET TRANSACTION READ
//! ONLY`, counting them: a test sees that reads asked for it, not that they were stale.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What happens to a COMMIT chosen for a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitFault {
    /// The connection drops before COMMIT reaches the server: not applied.
    DropBeforeCommit,
    /// COMMIT reaches the server, then the connection drops before its reply:
    /// applied, but the client cannot know.
    DropAfterCommit,
    /// The server's reply to COMMIT is replaced by `ErrorResponse` SQLSTATE 40003.
    /// The commit applied.
    Ambiguous,
}

impl CommitFault {
    const ALL: [CommitFault; 3] = [
        CommitFault::DropBeforeCommit,
        CommitFault::DropAfterCommit,
        CommitFault::Ambiguous,
    ];
}

/// CockroachDB's text for 40003, so a client's handling sees what it would there.
const AMBIGUOUS_MESSAGE: &str = "result is ambiguous: error=rpc error: code = Unavailable desc = transport is closing (emulated)";

/// The proxy: listens on a loopback port, forwards to `upstream`; stops when dropped.
#[derive(Debug)]
pub struct WireProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Faults for the next COMMITs, in order, before any chosen by `percent`.
    queued: Mutex<VecDeque<CommitFault>>,
    /// Percent of COMMITs given a fault (kinds in turn), chosen deterministically.
    percent: AtomicU32,
    commits: AtomicU64,
    injected: [AtomicU64; 3],
    cluster: Mutex<Option<String>>,
    follower_reads: AtomicU64,
}

impl WireProxy {
    /// Starts a proxy to the server at `upstream`. Needs a tokio runtime.
    pub async fn start(upstream: SocketAddr) -> io::Result<WireProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared::default());
        let accept = tokio::spawn({
            let shared = shared.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(upstream).await {
                            // A connection ends when either side closes or a fault
                            // cuts it; neither is this proxy's error.
                            let _ = relay(client, server, shared).await;
                        }
                    });
                }
            }
        });
        Ok(WireProxy {
            port,
            shared,
            accept,
        })
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Gives the next COMMIT (after those already queued) `fault`.
    pub fn queue(&self, fault: CommitFault) {
        self.shared.queued.lock().unwrap().push_back(fault);
    }

    /// From now on, `percent` of COMMITs get a fault, the three kinds in turn.
    pub fn set_fault_percent(&self, percent: u32) {
        self.shared
            .percent
            .store(percent.min(100), Ordering::Relaxed);
    }

    /// COMMITs seen.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// Faults injected of `kind`.
    pub fn injected(&self, kind: CommitFault) -> u64 {
        let i = CommitFault::ALL.iter().position(|k| *k == kind).unwrap();
        self.shared.injected[i].load(Ordering::Relaxed)
    }

    /// `AS OF SYSTEM TIME` statements seen (and rewritten).
    pub fn follower_reads(&self) -> u64 {
        self.shared.follower_reads.load(Ordering::Relaxed)
    }

    /// The `--cluster=<name>` a client last passed in its startup `options`.
    pub fn cluster_name(&self) -> Option<String> {
        self.shared.cluster.lock().unwrap().clone()
    }
}

impl Drop for WireProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Shared {
    /// The fault for the COMMIT being forwarded, if any.
    fn fault_for_commit(&self) -> Option<CommitFault> {
        let k = self.commits.fetch_add(1, Ordering::Relaxed);
        let fault = self.queued.lock().unwrap().pop_front().or_else(|| {
            // 61 is coprime with 100: any 100 consecutive commits hit each residue
            // once, so the rate is exact and the faults spread out.
            let chosen = (k * 61) % 100 < u64::from(self.percent.load(Ordering::Relaxed));
            chosen.then(|| CommitFault::ALL[(k % 3) as usize])
        })?;
        let i = CommitFault::ALL.iter().position(|f| *f == fault).unwrap();
        self.injected[i].fetch_add(1, Ordering::Relaxed);
        Some(fault)
    }
}

async fn relay(mut client: TcpStream, server: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    // Messages are forwarded one by one: without NODELAY, Nagle's algorithm and
    // delayed ACKs would hold small ones back for tens of milliseconds.
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut from_server, mut to_server) = server.into_split();
    // Startup: SSLRequest is refused ("N"); the startup message is forwarded with
    // `--cluster=` taken out of its options.
    let startup = loop {
        let message = read_untyped(&mut client).await?;
        if message.get(4..8) == Some(&[0x04, 0xd2, 0x16, 0x2f]) {
            client.write_all(b"N").await?;
            continue;
        }
        break message;
    };
    to_server
        .write_all(&strip_cluster_option(&startup, &shared))
        .await?;
    let (mut from_client, mut to_client) = client.into_split();

    let replace_next = Arc::new(AtomicU32::new(0));
    let mut back = tokio::spawn({
        let replace_next = replace_next.clone();
        async move { server_to_client(&mut from_server, &mut to_client, &replace_next).await }
    });
    let result = async {
        loop {
            let mut message = read_typed(&mut from_client).await?;
            if message[0] == b'Q' && is_follower_read(&message[5..]) {
                shared.follower_reads.fetch_add(1, Ordering::Relaxed);
                message = simple_query("SET TRANSACTION READ ONLY");
            }
            let fault = if message[0] == b'Q' && is_commit(&message[5..]) {
                shared.fault_for_commit()
            } else {
                None
            };
            match fault {
                Some(CommitFault::DropBeforeCommit) => return Ok(()),
                Some(CommitFault::DropAfterCommit) => {
                    // Cut the way back first, so the server's reply can never
                    // reach the client.
                    back.abort();
                    let _ = (&mut back).await;
                    to_server.write_all(&message).await?;
                    to_server.flush().await?;
                    return Ok(());
                }
                Some(CommitFault::Ambiguous) => {
                    replace_next.fetch_add(1, Ordering::SeqCst);
                }
                None => {}
            }
            to_server.write_all(&message).await?;
        }
    }
    .await;
    // Dropping both halves of each socket closes the connections.
    back.abort();
    result
}

async fn server_to_client(
    from_server: &mut OwnedReadHalf,
    to_client: &mut OwnedWriteHalf,
    replace_next: &AtomicU32,
) -> io::Result<()> {
    loop {
        let message = read_typed(from_server).await?;
        // The reply to a COMMIT marked for a fault: its CommandComplete ("COMMIT", or
        // "ROLLBACK" for a failed transaction) is replaced by CockroachDB's
        // ambiguous-result error; an error the server sent instead (the commit
        // failed) passes, and the mark with it. The client sends COMMIT only once
        // its earlier statements have answered, so the next of these is COMMIT's.
        let completes = message[0] == b'C'
            && (message[5..].starts_with(b"COMMIT") || message[5..].starts_with(b"ROLLBACK"));
        let fails = message[0] == b'E';
        let marked = (completes || fails)
            && replace_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if marked && completes {
            to_client.write_all(&ambiguous_error()).await?;
        } else {
            to_client.write_all(&message).await?;
        }
    }
}

fn is_commit(query: &[u8]) -> bool {
    let text = String::from_utf8_lossy(query);
    let text = text.trim_end_matches('\0').trim().trim_end_matches(';');
    text.eq_ignore_ascii_case("COMMIT") || text.eq_ignore_ascii_case("END")
}

fn is_follower_read(query: &[u8]) -> bool {
    let text = String::from_utf8_lossy(query).to_ascii_uppercase();
    text.trim_start()
        .starts_with("SET TRANSACTION AS OF SYSTEM TIME")
}

/// A `Query` message.
fn simple_query(sql: &str) -> Vec<u8> {
    let mut message = vec![b'Q'];
    message.extend_from_slice(&(sql.len() as u32 + 5).to_be_bytes());
    message.extend_from_slice(sql.as_bytes());
    message.push(0);
    message
}

/// `ErrorResponse`: severity, code 40003, CockroachDB's message.
fn ambiguous_error() -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', "40003"),
        (b'M', AMBIGUOUS_MESSAGE),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    message.extend_from_slice(&body);
    message
}

/// The startup message with `--cluster=<name>` removed from `options` (remembered).
fn strip_cluster_option(startup: &[u8], shared: &Shared) -> Vec<u8> {
    // length(4) version(4) then key\0value\0 ... \0
    let mut out = startup[4..8].to_vec();
    let mut fields = startup[8..].split(|b| *b == 0);
    while let Some(key) = fields.next().filter(|k| !k.is_empty()) {
        let value = fields.next().unwrap_or_default();
        let value = if key == b"options" {
            let text = String::from_utf8_lossy(value).into_owned();
            let (cluster, rest): (Vec<&str>, Vec<&str>) = text
                .split_whitespace()
                .partition(|o| o.starts_with("--cluster="));
            if let Some(name) = cluster.last() {
                *shared.cluster.lock().unwrap() = Some(name["--cluster=".len()..].to_owned());
            }
            if rest.is_empty() {
                continue;
            }
            rest.join(" ").into_bytes()
        } else {
            value.to_vec()
        };
        out.extend_from_slice(key);
        out.push(0);
        out.extend_from_slice(&value);
        out.push(0);
    }
    out.push(0);
    let mut message = ((out.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&out);
    message
}

/// A message without a type byte (startup, SSLRequest): length, then the rest.
async fn read_untyped(from: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut message = vec![0; 4];
    from.read_exact(&mut message).await?;
    let len = u32::from_be_bytes(message[..4].try_into().unwrap()) as usize;
    if !(8..=1 << 20).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad startup length",
        ));
    }
    message.resize(len, 0);
    from.read_exact(&mut message[4..]).await?;
    Ok(message)
}

/// A typed message: the type byte, the length, the body, as one buffer.
async fn read_typed(from: &mut OwnedReadHalf) -> io::Result<Vec<u8>> {
    let mut message = vec![0; 5];
    from.read_exact(&mut message).await?;
    let len = u32::from_be_bytes(message[1..5].try_into().unwrap()) as usize;
    if len < 4 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad message length",
        ));
    }
    message.resize(1 + len, 0);
    from.read_exact(&mut message[5..]).await?;
    Ok(message)
}
