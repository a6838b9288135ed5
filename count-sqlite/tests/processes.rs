//! Real processes on one file: a process killed with SIGKILL right after `flush()`
//! returned keeps every flushed count, once; two processes writing (the same batch
//! ids too) and rolling up the same day at once count exactly.
//!
//! The child processes are this test binary itself, run with `CHILD_ROLE` set on
//! its `child_process` entry.

use std::io::{BufRead, BufReader};
use std::path::Path as FsPath;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use count_core::testkit::{at, day};
use count_core::uuid::Uuid;
use count_core::{
    Batch, BatchId, BucketCount, CountQueue, Counter, CounterExt, Endpoint, Method, Path, Period,
};
use count_sqlite::SqliteCounter;

const ROLE: &str = "CHILD_ROLE";
const URL: &str = "CHILD_URL";
/// Requests each round of the killed child records before its flush.
const ROUND: u64 = 500;
/// Batches each racing process writes under the shared writer id, and of its own.
const RACE_BATCHES: u64 = 150;
/// The writer id both racing processes write under: each batch id twice, with the
/// same counts, from two processes.
const SHARED_WRITER: Uuid = Uuid::from_u128(0x5111_7e5e_c0de_4bad_a55e_0000_0000_0001);

/// This binary again, running only [`child_process`] as `role` on `url`, in `dir`.
fn spawn_child(role: &str, url: &str, dir: &FsPath) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(URL, url)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// What a child says on its standard output: lines starting with `child: `.
fn said(line: &str) -> Option<&str> {
    line.find("child: ").map(|at| &line[at + "child: ".len()..])
}

fn round_path(round: u64) -> Path {
    Path::new(&format!("/killed/round/{round}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_right_after_flush_keeps_every_flushed_count_once() {
    let dir = tempfile::tempdir().unwrap();
    // Relative to the child's working directory, in directories it creates.
    let mut child = spawn_child("killed", "sqlite:data/nested/count.db", dir.path());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut flushed = 0;
    while flushed < 20 {
        let line = lines.next().expect("the child stopped early").unwrap();
        if let Some(round) = said(&line).and_then(|s| s.strip_prefix("flushed round ")) {
            flushed = round.parse().unwrap();
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no shutdown, no last flush.
    child.wait().unwrap();
    // Rounds it said it flushed before it died.
    for line in lines {
        if let Some(round) = said(&line.unwrap()).and_then(|s| s.strip_prefix("flushed round ")) {
            flushed = flushed.max(round.parse().unwrap());
        }
    }
    let path = dir.path().join("data/nested/count.db");
    let counter = SqliteCounter::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    counter.health().await.unwrap();
    let counted = counter
        .period_totals(Period::year(today_year()).unwrap())
        .await
        .unwrap();
    let of_round = |round: u64| {
        let endpoint = Endpoint::new(Method::Get, round_path(round));
        counted
            .iter()
            .find(|t| t.endpoint == endpoint)
            .map_or(0, |t| t.total)
    };
    for round in 1..=flushed {
        assert_eq!(
            of_round(round),
            ROUND,
            "round {round} was flushed: all of it, once"
        );
    }
    // The round it was in when killed: some or none of it, never more.
    assert!(of_round(flushed + 1) <= ROUND, "{counted:?}");
    let total: u64 = counted.iter().map(|t| t.total).sum();
    assert!(
        total <= (flushed + 1) * ROUND,
        "no count twice, none from nowhere: {total}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_file_count_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let mut children = [
        spawn_child("racer-0", &url, dir.path()),
        spawn_child("racer-1", &url, dir.path()),
    ];
    for child in &mut children {
        let status = child.wait().unwrap();
        assert!(status.success(), "a racing process failed: {status}");
    }
    let counter = SqliteCounter::connect(&url).await.unwrap();
    let d = day(RACE_DAY);
    let totals = counter.rollup(d).await.unwrap();
    let of = |path: &str| {
        let endpoint = Endpoint::new(Method::Get, Path::new(path).unwrap());
        totals
            .iter()
            .find(|t| t.endpoint == endpoint)
            .map_or(0, |t| t.total)
    };
    // Each shared batch seq s carries s + 1, applied once though written twice.
    assert_eq!(of("/race/shared"), RACE_BATCHES * (RACE_BATCHES + 1) / 2);
    assert_eq!(of("/race/own/0"), RACE_BATCHES);
    assert_eq!(of("/race/own/1"), RACE_BATCHES);
    assert!(
        !counter
            .unrolled_days(d.next().unwrap())
            .await
            .unwrap()
            .contains(&d)
    );
}

const RACE_DAY: &str = "2025-10-10";

fn today_year() -> i32 {
    count_core::Day::today().year()
}

/// The children's entry point; does nothing useful without `CHILD_ROLE`.
#[test]
#[ignore = "run as a child process by the tests of this file"]
fn child_process() {
    let role = std::env::var(ROLE).expect("run by this file's tests, with CHILD_ROLE set");
    let url = std::env::var(URL).expect("CHILD_URL");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let counter = SqliteCounter::builder(&url)
            .rollup_chunk(7)
            .connect()
            .await
            .unwrap();
        match role.as_str() {
            "killed" => record_and_flush_until_killed(counter).await,
            racer => {
                race(
                    counter,
                    racer.strip_prefix("racer-").unwrap().parse().unwrap(),
                )
                .await
            }
        }
    });
}

/// Rounds of [`ROUND`] requests to a path of the round's own, each flushed, then
/// announced, until the process is killed.
async fn record_and_flush_until_killed(counter: SqliteCounter) {
    let queue = CountQueue::builder(Arc::new(counter)).build().unwrap();
    for round in 1.. {
        let path = round_path(round);
        for _ in 0..ROUND {
            queue
                .record_wait((Method::Get, path), count_core::jiff::Timestamp::now())
                .await
                .unwrap();
        }
        queue.flush().await.unwrap();
        println!("child: flushed round {round}");
    }
}

/// Writes the shared batches (the other racer writes the same ids with the same
/// counts) and batches of its own, rolling up the day as it goes.
async fn race(counter: SqliteCounter, racer: u64) {
    let shared = Endpoint::new(Method::Get, Path::new("/race/shared").unwrap());
    let own = Endpoint::new(
        Method::Get,
        Path::new(&format!("/race/own/{racer}")).unwrap(),
    );
    let d = day(RACE_DAY);
    for seq in 0..RACE_BATCHES {
        let bucket = at(&format!("{RACE_DAY}T{:02}:{:02}:00Z", seq / 60, seq % 60));
        let shared_batch = Batch::new(
            BatchId {
                writer: SHARED_WRITER,
                seq,
            },
            vec![BucketCount::new(shared, bucket, seq + 1)],
        )
        .unwrap();
        let own_batch = count_core::testkit::batch(&[]);
        let own_batch = Batch::new(own_batch.id(), vec![BucketCount::new(own, bucket, 1)]).unwrap();
        // In opposite orders in the two processes, so they meet on the same ids.
        let order = if racer == 0 {
            [&shared_batch, &own_batch]
        } else {
            [&own_batch, &shared_batch]
        };
        for batch in order {
            write_retrying(&counter, batch).await;
        }
        if seq % 10 == 0 {
            counter.rollup(d).await.unwrap();
        }
    }
    let total = counter.endpoint_total(own, Period::Day(d)).await.unwrap();
    assert_eq!(total, RACE_BATCHES);
}

/// As a `CountQueue` does: retry what may succeed later (the other process held the
/// write lock past the busy timeout).
async fn write_retrying(counter: &SqliteCounter, batch: &Batch) {
    for attempt in 0.. {
        match counter.write(batch).await {
            Ok(()) => return,
            Err(e) if e.is_retryable() && attempt < 20 => {
                eprintln!("retrying {}: {e}", batch.id());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("writing {}: {e}", batch.id()),
        }
    }
}
