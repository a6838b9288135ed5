//! Quickstart: count simulated API traffic, roll up, print a report.
//!
//! `cargo run -p quickstart` counts in memory; with `DB_URL=postgresql://...` set, in
//! PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use count_core::jiff::{SignedDuration, Timestamp};
use count_core::{CountQueue, Counter, DateRange, Day, Method, Path, Period, RollupScheduler};
use count_memory::MemoryCounter;
use count_pg::PgCounter;

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("quickstart: {e}");
        std::process::exit(1);
    }
}

async fn run() -> count_core::Result<()> {
    let counter: Arc<dyn Counter> = match std::env::var("DB_URL") {
        Ok(url) => {
            println!(
                "counting in PostgreSQL ({})",
                url.split('@').next_back().unwrap_or("")
            );
            Arc::new(PgCounter::connect(&url).await?)
        }
        Err(_) => {
            println!("counting in memory (set DB_URL=postgresql://... for PostgreSQL)");
            Arc::new(MemoryCounter::new())
        }
    };
    let queue = CountQueue::builder(counter.clone()).build()?;

    // Routes are interned once; recording one is a pointer copy.
    let routes = [
        (Method::Get, Path::new("/users/{id}")?),
        (Method::Post, Path::new("/users")?),
        (Method::Patch, Path::new("/users/{id}")?),
        (Method::Grpc, Path::new("/billing.v1.Billing/Charge")?),
    ];

    // Yesterday's traffic, with the timestamps the requests carried...
    let now = Timestamp::now();
    let yesterday = now - SignedDuration::from_hours(24);
    for i in 0..30_000u32 {
        let (method, path) = routes[(i % 7 % 4) as usize];
        let at = yesterday + SignedDuration::from_secs(i64::from(i % 3600));
        queue.record_at(method, path, at)?;
    }
    // ...and today's, stamped as it happens: no lock, no allocation, no blocking.
    for i in 0..50_000u32 {
        let (method, path) = routes[(i % 5 % 4) as usize];
        queue.record(method, path);
    }
    queue.flush().await?;

    // Yesterday is finished: the scheduler rolls it up (a server runs it in the background).
    let rolled = RollupScheduler::new(counter.clone())
        .grace(Duration::ZERO)
        .run_once(now)
        .await?;
    let today = Day::today();
    let left = counter.unrolled_days(today).await?;
    println!("rolled up: {rolled:?}; finished days left to roll up: {left:?}\n");

    let range = DateRange::new(today.prev().unwrap_or(today), today)?;
    println!(
        "{:<10}  {:<6}  {:<28}  {:>7}",
        "day", "method", "path", "count"
    );
    for t in counter.daily_totals(range).await? {
        let (method, path) = (t.endpoint.method.as_str(), t.endpoint.path.as_str());
        println!(
            "{:<10}  {method:<6}  {path:<28}  {:>7}",
            t.day.to_string(),
            t.total
        );
    }

    let month = Period::month(today.year(), today.month())?;
    println!("\nthis month ({month}):");
    for t in counter.period_totals(month).await? {
        let (method, path) = (t.endpoint.method.as_str(), t.endpoint.path.as_str());
        println!("{:<10}  {method:<6}  {path:<28}  {:>7}", "", t.total);
    }

    let stats = queue.stats();
    println!(
        "\nrecorded {} · written {} in {} batches · dropped {} · pending {}",
        stats.recorded,
        stats.written,
        stats.batches_written,
        stats.dropped(),
        stats.pending
    );
    queue.shutdown().await
}
