//! `count-server rollup`: fold days' counts into their daily totals.

use count_core::Day;
use count_core::backend::add_saturating;

use super::failure::Failure;
use super::source::Source;
use super::table::thousands;
use count::Migrations;

pub(super) const HELP: &str = concat!(
    "\
Examples:
  count-server rollup --db-path /var/lib/count/count.db
  count-server rollup --server http://localhost:7777 --day 2026-11-27

Without --day every finished day (before today, UTC) that holds counts not yet rolled
up is rolled up, oldest first. Rolling up a day twice is safe: the totals stay exact.
One line per day is printed: the day, its requests and its endpoints. Nothing to
roll up is no failure.

",
    super::exit_codes!()
);

/// The options of `count-server rollup`.
#[derive(Debug, Clone, clap::Args)]
pub struct RollupArgs {
    /// Roll up this UTC day only (today's too: later counts are rolled up next time).
    #[arg(long, value_name = "YYYY-MM-DD")]
    day: Option<Day>,

    #[command(flatten)]
    source: Source,
}

pub(super) async fn run(args: RollupArgs) -> Result<(), Failure> {
    let counter = args.source.open(Migrations::Check).await?;
    let days = match args.day {
        Some(day) => vec![day],
        None => counter.unrolled_days(Day::today()).await?,
    };
    if days.is_empty() {
        return super::print("No finished day holds counts that are not rolled up.\n");
    }
    for day in days {
        let totals = counter.rollup(day).await?;
        let requests = totals.iter().fold(0, |sum, t| add_saturating(sum, t.total));
        let endpoints = totals.len();
        super::print(&format!(
            "{day}  rolled up: {} requests, {} endpoint{}\n",
            thousands(requests),
            thousands(endpoints as u64),
            if endpoints == 1 { "" } else { "s" }
        ))?;
    }
    Ok(())
}
