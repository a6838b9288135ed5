//! Four processes, eight threads each, on one SQLite file and on one PostgreSQL
//! database, under one hard limit of 10,000 a day for one subject: together they
//! admit at most 10,000, and exactly 10,000 when none dies; with one SIGKILLed while
//! it holds a lease, at least 10,000 less the documented bound (what one replica can
//! hold: less than one and a half of the largest lease, amount / 64). What they
//! admitted is what the reports show.
//!
//! The processes are this test binary again, run on its `replica` entry.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use count_core::limits::{
    Admission, Assignment, Limit, LimitPeriod, Limiter, LimiterSettings, Policy, Window, used_in,
};
use count_core::{CountKey, CountQueue, CounterExt, Method, Path, Status, Subject, Zone};
use count_testcluster::TestCluster;

const ROLE: &str = "REPLICA_ROLE";
const URL: &str = "REPLICA_URL";
const ZONE: &str = "REPLICA_ZONE";
const AMOUNT: u64 = 10_000;
/// The most one crashed replica strands: the rest of a lease below its refill mark
/// (half of it) and the next lease, each at most amount / 64.
const BOUND: u64 = AMOUNT * 3 / 128;
const SUBJECT: &str = "acme";
const ROUTE: &str = "/limited";
/// What the holder admits before it stops, holding its lease, to be killed.
const HOLDER_STOPS_AT: u64 = 1_500;

/// A zone whose day is not about to end, so the whole test runs in one window.
fn zone_away_from_midnight() -> &'static str {
    let now = jiff::Timestamp::now();
    ["UTC", "Asia/Tokyo", "America/New_York"]
        .into_iter()
        .find(|name| {
            let hour = Zone::new(name).unwrap().time_zone().to_datetime(now).hour();
            (1..=22).contains(&hour)
        })
        .expect("one of three zones nine hours apart is away from midnight")
}

fn spawn(role: &str, url: &str, zone: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "replica",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(URL, url)
        .env(ZONE, zone)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The lines a replica says: `replica: <what>`.
fn said(line: &str) -> Option<&str> {
    line.find("replica: ")
        .map(|at| &line[at + "replica: ".len()..])
}

fn limit(zone: &str) -> Limit {
    let mut limit = Limit::new(LimitPeriod::Day, AMOUNT);
    limit.zone = Zone::new(zone).unwrap();
    limit
}

async fn set_policy(url: &str, zone: &str) {
    let counter = count::open(url).await.unwrap().counter();
    let mut policy = Policy::default();
    policy.limits.insert("daily".into(), limit(zone));
    policy.plans.insert("free".into(), vec!["daily".into()]);
    policy
        .subjects
        .insert(SUBJECT.into(), Assignment::plan("free"));
    let version = counter.policy().await.unwrap().version;
    counter.replace_policy(version, &policy).await.unwrap();
}

/// Admitted, as each replica said when it ended.
fn admitted_by(child: &mut Child) -> u64 {
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let admitted = lines
        .map_while(Result::ok)
        .filter_map(|l| {
            said(&l)
                .and_then(|s| s.strip_prefix("admitted "))
                .map(str::to_owned)
        })
        .last()
        .expect("the replica said how many it admitted");
    assert!(child.wait().unwrap().success());
    admitted.parse().unwrap()
}

async fn four_replicas(url: &str, kill_one: bool) {
    let zone = zone_away_from_midnight();
    set_policy(url, zone).await;
    let mut killed_admitted = 0;
    // The one to be killed goes first, so that it holds leases when it dies.
    if kill_one {
        let mut holder = spawn("holder", url, zone);
        let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("the holder stopped early").unwrap();
            if let Some(n) = said(&line).and_then(|s| s.strip_prefix("holding after ")) {
                killed_admitted = n.parse().unwrap();
                break;
            }
        }
        holder.kill().unwrap(); // SIGKILL, holding a lease it never gives back.
        holder.wait().unwrap();
    }
    let replicas = if kill_one { 3 } else { 4 };
    let mut hammers: Vec<Child> = (0..replicas).map(|_| spawn("hammer", url, zone)).collect();
    let survivors: u64 = hammers.iter_mut().map(admitted_by).sum();
    let total = survivors + killed_admitted;
    eprintln!("admitted {survivors} by the survivors, {killed_admitted} by the killed one");
    assert!(
        total <= AMOUNT,
        "admitted {total}, past the limit of {AMOUNT}"
    );
    if kill_one {
        assert!(
            total >= AMOUNT - BOUND,
            "admitted {total}: more under than one lease"
        );
    } else {
        assert_eq!(total, AMOUNT, "no replica died: every unit is used");
    }
    // One truth: what was admitted (and flushed) is what the reports show.
    let counter = count::open(url).await.unwrap().counter();
    let now = jiff::Timestamp::now().as_second();
    let zone = Zone::new(zone).unwrap();
    let window = Window::of(LimitPeriod::Day, &zone, now);
    let used = used_in(&*counter, SUBJECT, &limit(zone.name()), window)
        .await
        .unwrap();
    assert_eq!(used, total, "the reports show what was admitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_on_one_sqlite_file_never_pass_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("limits.db").display());
    four_replicas(&url, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_one_sqlite_file_a_killed_replica_strands_less_than_a_lease_and_a_half() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("limits.db").display());
    four_replicas(&url, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_on_one_postgres_database_never_pass_the_limit() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    four_replicas(&cluster.fresh_database("replicas"), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_killed_replica_strands_less_than_a_lease_and_a_half() {
    let Some(cluster) = TestCluster::shared() else {
        return;
    };
    four_replicas(&cluster.fresh_database("replicas_killed"), true).await;
}

/// One replica: eight threads admitting the subject's requests until the limit has
/// refused them for two seconds on end (the holder: until it admitted
/// [`HOLDER_STOPS_AT`], then it waits to be killed).
#[test]
#[ignore = "run as a child process by the tests of this file"]
fn replica() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let role = std::env::var(ROLE).unwrap();
        let url = std::env::var(URL).unwrap();
        let counter = count::open(&url).await.unwrap().counter();
        let queue = CountQueue::builder(Arc::clone(&counter)).build().unwrap();
        let limiter = Limiter::start(counter, LimiterSettings::default())
            .await
            .unwrap();
        let subject = Subject::new(SUBJECT).unwrap();
        let path = Path::new(ROUTE).unwrap();
        let key = move |code: u16| {
            CountKey::of(Method::Get, path, Some(subject), Status::http(code).ok())
        };
        let admitted = Arc::new(AtomicU64::new(0));
        let holder = role == "holder";
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (limiter, queue, admitted) =
                    (limiter.clone(), queue.clone(), Arc::clone(&admitted));
                tokio::spawn(async move {
                    let mut refused_since: Option<Instant> = None;
                    let started = Instant::now();
                    while started.elapsed() < Duration::from_secs(90) {
                        if holder && admitted.load(Relaxed) >= HOLDER_STOPS_AT {
                            return;
                        }
                        match limiter.admit(Some(subject), Method::Get, ROUTE).await {
                            Admission::Admitted(ticket) => {
                                refused_since = None;
                                admitted.fetch_add(1, Relaxed);
                                queue.record_key(key(200));
                                limiter.settle(ticket, Status::http(200).ok());
                            }
                            Admission::Refused(_) => {
                                queue.record_key(key(429));
                                let since = *refused_since.get_or_insert_with(Instant::now);
                                if since.elapsed() > Duration::from_secs(2) {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            other => panic!("the subject has a plan: {other:?}"),
                        }
                    }
                    panic!("still admitting after 90 s");
                })
            })
            .collect();
        for thread in threads {
            thread.await.unwrap();
        }
        queue.flush().await.unwrap();
        let n = admitted.load(Relaxed);
        if holder {
            println!("replica: holding after {n}");
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        limiter.stop().await;
        queue.shutdown().await.unwrap();
        println!("replica: admitted {n}");
    });
}
