//! A throwaway PostgreSQL cluster for tests and benches: `initdb` and `postgres` in a
//! temporary directory, on a free loopback port, removed when the last user drops it.
//!
//! - `COUNT_TEST_DATABASE_URL` set: that server is used instead, and nothing is started.
//! - No PostgreSQL binaries: [`TestCluster::shared`] returns `None` with the reason
//!   printed, so a test can skip, except when `CI` is set: then it panics, so CI
//!   never passes by skipping.
//! - As root (sessions and CI here), `initdb` and `postgres` run as the `postgres`
//!   user, which owns the data directory.
//! - [`cockroach::CockroachEmulation`] sets a database up as CockroachDB's stand-in,
//!   with a [`wire_proxy::WireProxy`] that breaks COMMITs on command.

pub mod cockroach;
pub mod wire_proxy;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Skips the calling test because something it needs is missing (`reason` says what
/// and how to get it): said where a default `cargo test` shows it; with `CI` set, a
/// panic instead, so CI never passes by skipping.
///
/// # Panics
///
/// When `CI` is set.
pub fn skip(reason: &str) {
    if in_ci() {
        panic!("CI is set, so this test must run, but: {reason}");
    }
    announce_skip(reason);
}

/// Whether this is a CI run: `CI` set to anything but empty, `0` or `false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| !matches!(ci.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// Says that the calling test skips its work, and why, on the terminal: written to
/// the standard error itself, past the test harness's capture (which takes only
/// what `eprintln!` prints, and shows it only for a failed test).
pub fn announce_skip(reason: &str) {
    use std::io::Write;
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// Where PostgreSQL's server binaries are looked for, besides `PATH`.
const BIN_DIRS: [&str; 3] = [
    "/usr/lib/postgresql/15/bin",
    "/usr/lib/postgresql/16/bin",
    "/usr/lib/postgresql/17/bin",
];

/// A PostgreSQL server for tests: one started here, or the one at
/// `COUNT_TEST_DATABASE_URL`.
#[derive(Debug)]
pub struct TestCluster {
    kind: Kind,
    databases: AtomicU64,
}

#[derive(Debug)]
enum Kind {
    External(String),
    Started(Started),
}

#[derive(Debug)]
struct Started {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as_postgres: bool,
}

static SHARED: Mutex<Weak<TestCluster>> = Mutex::new(Weak::new());

/// The `postgres` user's password on a cluster started here.
pub const PASSWORD: &str = "count-test";

impl TestCluster {
    /// The cluster shared by this process's tests, started on first use and stopped
    /// when the last `Arc` is dropped. `None` (with the reason printed) when there is
    /// no PostgreSQL to use; panics instead when `CI` is set.
    pub fn shared() -> Option<Arc<TestCluster>> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cluster) = shared.upgrade() {
            return Some(cluster);
        }
        let cluster = match TestCluster::start() {
            Ok(cluster) => Arc::new(cluster),
            Err(reason) => {
                skip(&format!("no PostgreSQL to test with: {reason}"));
                return None;
            }
        };
        *shared = Arc::downgrade(&cluster);
        Some(cluster)
    }

    /// A cluster of the caller's own, for tests that stop and restart it. `None`
    /// (with the reason printed) when there is no PostgreSQL here or the server is
    /// `COUNT_TEST_DATABASE_URL`'s; panics instead when `CI` is set.
    pub fn own() -> Option<TestCluster> {
        let reason = match TestCluster::start() {
            Ok(cluster) if cluster.port().is_some() => return Some(cluster),
            Ok(_) => "COUNT_TEST_DATABASE_URL is set: its server is not ours to stop".to_owned(),
            Err(reason) => reason,
        };
        if std::env::var_os("COUNT_TEST_DATABASE_URL").is_some() {
            announce_skip(&reason);
        } else {
            skip(&format!("no PostgreSQL of its own to stop: {reason}"));
        }
        None
    }

    /// Starts a cluster of its own (or wraps `COUNT_TEST_DATABASE_URL`).
    pub fn start() -> Result<TestCluster, String> {
        if let Ok(url) = std::env::var("COUNT_TEST_DATABASE_URL") {
            return Ok(TestCluster {
                kind: Kind::External(url),
                databases: AtomicU64::new(0),
            });
        }
        let bin = find_bin()?;
        let run_as_postgres = is_root();
        remove_orphans(&bin, run_as_postgres);
        let dir = std::env::temp_dir().join(format!(
            "count-pg-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let started = Started {
            bin,
            dir,
            port: free_port()?,
            run_as_postgres,
        };
        if run_as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&started.dir))?;
        }
        let data = started.data_dir();
        // Passwords over TCP (so a wrong one is refused, as in production), trust
        // over the socket.
        let password_file = started.dir.join("password");
        std::fs::write(&password_file, PASSWORD).map_err(|e| format!("write password: {e}"))?;
        if run_as_postgres {
            run(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&password_file))?;
        }
        started.run_pg(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "--pwfile",
                path_str(&password_file),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        started.pg_ctl_start()?;
        Ok(TestCluster {
            kind: Kind::Started(started),
            databases: AtomicU64::new(0),
        })
    }

    /// The URL of the `postgres` database.
    pub fn url(&self) -> String {
        self.url_of("postgres")
    }

    /// The URL of `database` on this server.
    pub fn url_of(&self, database: &str) -> String {
        match &self.kind {
            Kind::External(url) => replace_database(url, database),
            Kind::Started(s) => format!(
                "postgresql://postgres:{PASSWORD}@127.0.0.1:{}/{database}?sslmode=disable",
                s.port
            ),
        }
    }

    /// The server's port, when it was started here.
    pub fn port(&self) -> Option<u16> {
        match &self.kind {
            Kind::Started(s) => Some(s.port),
            Kind::External(_) => None,
        }
    }

    /// Creates a fresh, empty database and returns its URL.
    pub fn fresh_database(&self, prefix: &str) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}_{}_{n}", std::process::id());
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        self.url_of(&name)
    }

    /// Runs SQL through `psql` against `database`, returning its output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let url = self.url_of(database);
        let output = run(Command::new("psql").args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            &url,
            "-c",
            sql,
        ]))?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`).
    pub fn stop_immediate(&self) -> Result<(), String> {
        self.started()?.stop_immediate()
    }

    /// Kills the server with SIGKILL, as a crash or the kernel's OOM killer would:
    /// the postmaster and every process it started, at once, with no shutdown of any
    /// kind; returns when they are gone. [`restart`](TestCluster::restart) starts it
    /// again on the same port and data directory (PostgreSQL then recovers from its
    /// write-ahead log).
    pub fn kill(&self) -> Result<(), String> {
        let s = self.started()?;
        let pid_file = s.data_dir().join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file)
            .map_err(|e| format!("read {}: {e}", pid_file.display()))?;
        let postmaster: u32 = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| format!("no pid in {}", pid_file.display()))?;
        // Its children first noted, then the postmaster killed (so it starts no
        // more), then them.
        let children = children_of(postmaster);
        let mut all = vec![postmaster];
        all.extend(children);
        let mut kill = Command::new("kill");
        kill.arg("-9").args(all.iter().map(u32::to_string));
        // A process may end by itself between the listing and the kill: `kill` then
        // fails for it alone, which is what was wanted.
        let _ = kill.output();
        let gone = wait_until(Duration::from_secs(10), || {
            all.iter().all(|&p| !is_alive(p))
        });
        if !gone {
            return Err(format!(
                "server processes {all:?} still alive after SIGKILL"
            ));
        }
        // A killed postmaster whose parent does not reap it stays a zombie, which
        // the next postmaster would take for a running server (its lock files name
        // it and `kill(pid, 0)` succeeds): the lock files go, as a reboot would take
        // the zombie.
        let socket_lock = s.dir.join(format!(".s.PGSQL.{}.lock", s.port));
        for lock in [pid_file, socket_lock] {
            match std::fs::remove_file(&lock) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(format!("remove {}: {e}", lock.display()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Starts the server again after [`stop_immediate`](TestCluster::stop_immediate)
    /// or [`kill`](TestCluster::kill), on the same port and data directory.
    pub fn restart(&self) -> Result<(), String> {
        self.started()?.pg_ctl_start()
    }

    /// Turns TLS on with a fresh self-signed certificate for `localhost` (not for
    /// 127.0.0.1, so host-name checks can be seen failing), and returns the
    /// certificate's path: a client that trusts it verifies the server.
    pub fn enable_tls(&self) -> Result<PathBuf, String> {
        let s = self.started()?;
        let data = s.data_dir();
        let (cert, key) = (data.join("server.crt"), data.join("server.key"));
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert))?;
        if s.run_as_postgres {
            run(Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&cert)
                .arg(&key))?;
        }
        run(Command::new("chmod").arg("600").arg(&key))?;
        self.psql("postgres", "ALTER SYSTEM SET ssl = on")?;
        self.psql("postgres", "SELECT pg_reload_conf()")?;
        // The reload is asynchronous: wait until new connections get TLS.
        let ready = wait_until(Duration::from_secs(10), || {
            self.psql("postgres", "SHOW ssl").is_ok_and(|v| v == "on")
        });
        if !ready {
            return Err("the server did not turn TLS on".into());
        }
        let copy = s.dir.join("root.crt");
        std::fs::copy(&cert, &copy).map_err(|e| format!("copy the certificate: {e}"))?;
        Ok(copy)
    }

    fn started(&self) -> Result<&Started, String> {
        match &self.kind {
            Kind::Started(s) => Ok(s),
            Kind::External(_) => {
                Err("the server at COUNT_TEST_DATABASE_URL is not ours to stop".into())
            }
        }
    }
}

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

impl Started {
    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        // fsync off: the machine does not crash in a test, only the server, and a
        // committed transaction's WAL is in the OS's cache by then. Not
        // synchronous_commit off: that would lose commits the server had confirmed
        // when a test stops it with `-m immediate`.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c full_page_writes=off -c max_connections=200 -c shared_buffers=128MB",
            self.port,
            path_str(&self.dir)
        );
        let log = self.dir.join("postgres.log");
        let data = self.data_dir();
        self.run_pg(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-o",
                &options,
                "-l",
                path_str(&log),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .map_err(|e| {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            format!("{e}\npostgres.log:\n{log}")
        })?;
        Ok(())
    }

    /// `pg_ctl stop -m immediate`, as a crash would stop it.
    fn stop_immediate(&self) -> Result<(), String> {
        let data = self.data_dir();
        self.run_pg(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "immediate", "-w", "stop"],
        )
        .map(drop)
    }

    fn run_pg(&self, program: &str, args: &[&str]) -> Result<Output, String> {
        let program = self.bin.join(program);
        let mut command = if self.run_as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.args(args).current_dir(&self.dir);
        run(&mut command)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if let Kind::Started(s) = &self.kind {
            let _ = s.stop_immediate();
            let _ = std::fs::remove_dir_all(&s.dir);
        }
    }
}

/// Stops and removes clusters left by test processes that died without dropping
/// them (a killed bench, a test binary aborted).
fn remove_orphans(bin: &Path, run_as_postgres: bool) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("count-pg-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let orphan = Started {
            bin: bin.to_owned(),
            dir: entry.path(),
            port: 0,
            run_as_postgres,
        };
        let _ = orphan.stop_immediate();
        let _ = std::fs::remove_dir_all(&orphan.dir);
    }
}

/// The processes whose parent is `parent`, from `/proc`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_of(pid) == Some(parent))
        .collect()
}

/// The parent of `pid` (the fourth field of `/proc/<pid>/stat`, after the command
/// name in parentheses, which may hold spaces).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` runs (a zombie waiting to be reaped counts as gone).
fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X"))
}

fn run(command: &mut Command) -> Result<Output, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(output)
}

fn find_bin() -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    BIN_DIRS
        .iter()
        .map(PathBuf::from)
        .chain(on_path)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .ok_or_else(|| {
            "no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or on PATH; \
             install postgresql-15, or set COUNT_TEST_DATABASE_URL"
                .to_owned()
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// `url` with its database (the path) replaced by `database`.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|i| start + i))
        .unwrap_or(base.len());
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Waits until `f` returns true or `timeout` passes; returns whether it did.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_of_a_url() {
        assert_eq!(
            replace_database("postgresql://u:p@h:5432/db?sslmode=require", "t1"),
            "postgresql://u:p@h:5432/t1?sslmode=require"
        );
        assert_eq!(
            replace_database("postgresql://h", "t1"),
            "postgresql://h/t1"
        );
    }

    /// Runs this test binary's [`a_test_that_skips`] alone, as `cargo test` would
    /// (output captured), with `CI` set or not; its exit status and output.
    fn run_the_skipping_test(ci: bool) -> (bool, String) {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.args([
            "--exact",
            "tests::a_test_that_skips",
            "--ignored",
            "--test-threads=1",
        ]);
        if ci {
            command.env("CI", "true");
        } else {
            command.env_remove("CI");
        }
        let output = command.output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    }

    #[test]
    #[ignore = "run by a_skip_is_seen_in_the_default_output_and_fails_in_ci, as a child"]
    fn a_test_that_skips() {
        skip("the widget is not installed (apt-get install widget)");
    }

    #[test]
    fn a_skip_is_seen_in_the_default_output_and_fails_in_ci() {
        let (passed, output) = run_the_skipping_test(false);
        assert!(passed, "{output}");
        assert!(
            output.contains(
                "SKIPPED tests::a_test_that_skips: the widget is not installed \
                 (apt-get install widget)"
            ),
            "the skip is not in the default output:\n{output}"
        );
        let (passed, output) = run_the_skipping_test(true);
        assert!(!passed, "{output}");
        assert!(
            output.contains("CI is set, so this test must run, but: the widget"),
            "{output}"
        );
    }

    #[test]
    fn starts_a_cluster_that_answers_and_stops_and_restarts() {
        let Some(cluster) = TestCluster::shared() else {
            return;
        };
        assert_eq!(cluster.psql("postgres", "SELECT 1 + 1").unwrap(), "2");
        if cluster.port().is_some() {
            cluster.stop_immediate().unwrap();
            assert!(cluster.psql("postgres", "SELECT 1").is_err());
            cluster.restart().unwrap();
            assert_eq!(cluster.psql("postgres", "SELECT 3").unwrap(), "3");
            // Killed with SIGKILL: committed rows survive the restart.
            cluster
                .psql(
                    "postgres",
                    "CREATE TABLE IF NOT EXISTS killed (n int); INSERT INTO killed VALUES (7)",
                )
                .unwrap();
            cluster.kill().unwrap();
            assert!(cluster.psql("postgres", "SELECT 1").is_err());
            cluster.restart().unwrap();
            assert_eq!(
                cluster
                    .psql("postgres", "SELECT sum(n) FROM killed")
                    .unwrap(),
                "7"
            );
        }
    }
}
