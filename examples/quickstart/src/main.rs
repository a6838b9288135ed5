//! Quickstart: count simulated API traffic into a SQLite file, roll up, print a report.
//!
//! `cargo run -p quickstart` counts into `count-quickstart.db` in the working
//! directory; run it twice and the second report holds both runs' counts. `DB_URL`
//! picks another place: `sqlite:path/to/file.db`, `postgresql://user:pass@host/db`,
//! or `memory:`.

use std::time::Duration;

use count::jiff::{SignedDuration, Timestamp};
use count::{
    CountKey, CountQueue, DateRange, Day, Dimension, Method, Path, RollupScheduler, Status,
    Subject, TotalsQuery,
};

/// Requests each run records: yesterday's, then today's.
const YESTERDAY: u32 = 30_000;
const TODAY: u32 = 50_000;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("quickstart: {e}");
        std::process::exit(1);
    }
}

async fn run() -> count::Result<()> {
    let url = std::env::var("DB_URL").unwrap_or_else(|_| "sqlite:count-quickstart.db".into());
    let opened = count::open(&url).await?;
    println!("counting into {}", opened.description());
    let counter = opened.counter();
    let queue = CountQueue::builder(counter.clone()).build()?;

    // Routes, callers and outcomes are checked and interned once; recording one is a
    // few stores.
    let routes = [
        (Method::Get, Path::new("/users/{id}")?),
        (Method::Post, Path::new("/users")?),
        (Method::Patch, Path::new("/users/{id}")?),
        (Method::Grpc, Path::new("/billing.v1.Billing/Charge")?),
    ];
    let callers = [Subject::new("acme")?, Subject::new("globex")?];
    let key = |i: u32| {
        let (method, path) = routes[(i % 7 % 4) as usize];
        let status = match (method, i % 50) {
            (Method::Grpc, 0) => Status::grpc(14),
            (Method::Grpc, _) => Status::grpc(0),
            (_, 0) => Status::http(503),
            (Method::Post, _) => Status::http(201),
            _ => Status::http(200),
        };
        Ok::<_, count::Error>(CountKey::of(
            method,
            path,
            Some(callers[(i % 3 % 2) as usize]),
            Some(status?),
        ))
    };

    // Yesterday's traffic, with the timestamps the requests carried...
    let now = Timestamp::now();
    let yesterday = now - SignedDuration::from_hours(24);
    for i in 0..YESTERDAY {
        let at = yesterday + SignedDuration::from_secs(i64::from(i % 3600));
        queue.record_at(key(i)?, at)?;
    }
    // ...and today's, stamped as it happens: no lock, no allocation, no blocking.
    for i in 0..TODAY {
        queue.record_key(key(i)?);
    }
    queue.flush().await?;
    let stats = queue.stats();
    println!(
        "this run: recorded {} · written {} in {} batch(es) · dropped {} · pending {}",
        stats.recorded,
        stats.written,
        stats.batches_written,
        stats.dropped(),
        stats.pending
    );

    // Yesterday is finished: the scheduler rolls it up (a server runs it in the background).
    let rolled = RollupScheduler::new(counter.clone())
        .grace(Duration::ZERO)
        .run_once(now)
        .await?;
    println!("rolled up: {rolled:?}\n");

    let today = Day::today();
    let range = DateRange::new(today.prev().unwrap_or(today), today)?;
    println!(
        "{:<10}  {:<6}  {:<28}  {:>9}",
        "day", "method", "path", "requests"
    );
    for t in counter.daily_totals(range).await? {
        let (method, path) = (t.endpoint.method.as_str(), t.endpoint.path.as_str());
        println!(
            "{:<10}  {method:<6}  {path:<28}  {:>9}",
            t.day.to_string(),
            t.total
        );
    }

    println!("\ntoday, per caller and status:");
    let query = TotalsQuery::new(
        DateRange::day(today),
        &[Dimension::Subject, Dimension::Status],
    )?;
    for t in counter.totals(&query).await? {
        let caller = t.subject.map_or("(none)", |s| s.as_str());
        let status = t.status.map_or("-".to_owned(), |s| s.to_string());
        println!("{caller:<10}  {status:>6}  {:>9}", t.total);
    }

    let stored: u64 = counter
        .daily_totals(range)
        .await?
        .iter()
        .map(|t| t.total)
        .sum();
    let this_run = u64::from(YESTERDAY + TODAY);
    println!(
        "\n{stored} requests stored for yesterday and today: {} run(s) of {this_run}{}",
        stored / this_run,
        if stored > this_run {
            " (earlier runs' counts are still there)"
        } else {
            " (run it again: they stay)"
        }
    );
    queue.shutdown().await?;
    // Every count into the database file itself, out of its -wal: a copy of the file
    // then holds them all.
    opened.stop().await?;
    Ok(())
}
