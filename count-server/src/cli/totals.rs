//! `count-server totals`: the requests counted over a range of days, grouped and
//! filtered as `/api/v1/totals` does, printed as a table, CSV or JSON.

use count_core::{
    DateRange, Day, Dimension, Endpoint, Method, Period, StatusFilter, Subject, TotalsQuery, Zone,
};

use super::failure::Failure;
use super::source::Source;
use count::Migrations;

use crate::http::Format;

pub(super) const HELP: &str = concat!(
    "\
Examples:
  count-server totals --server http://localhost:7777 --day 2026-11-27
  count-server totals --db-path /var/lib/count/count.db --month 2026-11 --group day
  count-server totals --db-url postgresql://count@db/count --year 2026 --status 5xx --format csv
  count-server totals --from 2026-11-01 --to 2026-11-07 --group endpoint,status \\
      --endpoint 'GET /users/{id}' --subject acme --format json
  count-server totals --db-path count.db --tz Asia/Kolkata --day 2026-11-27 --group hour
  count-server totals --db-path count.db --tz America/New_York --period cycle/15 --subject acme

Without a range option the totals are today's (in --tz, UTC by default). CSV and JSON are exactly what
GET /api/v1/totals answers for the same options. An empty answer is no failure.

",
    super::exit_codes!()
);

/// The options of `count-server totals`.
#[derive(Debug, Clone, clap::Args)]
pub struct TotalsArgs {
    #[command(flatten)]
    range: RangeArgs,

    /// Keep rows apart by these dimensions, comma separated: endpoint, day, hour,
    /// subject, status.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "endpoint",
        value_name = "DIMENSION,..."
    )]
    group: Vec<Dimension>,

    /// Only the requests of this subject (a customer, a tenant, an API key's id).
    #[arg(long, value_parser = parse_subject, value_name = "SUBJECT")]
    subject: Option<String>,

    /// Only the requests with this status: a code (404; a gRPC code 0 to 16) or a
    /// class (5xx).
    #[arg(long, value_name = "CODE|CLASS")]
    status: Option<StatusFilter>,

    /// Only the requests of this endpoint: its method and path, as 'GET /users/{id}'.
    #[arg(long, value_parser = parse_endpoint, value_name = "'METHOD PATH'")]
    endpoint: Option<(Method, String)>,

    /// How to print the totals.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,

    #[command(flatten)]
    source: Source,
}

/// The days a command covers: one of `--day`, `--month`, `--year`, `--period`, or
/// `--from` with `--to`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RangeArgs {
    /// The IANA time zone the days (and hours) are of, as Europe/Zurich; UTC when
    /// absent.
    #[arg(long, value_name = "ZONE")]
    tz: Option<Zone>,

    /// One day.
    #[arg(long, group = "range", value_name = "YYYY-MM-DD")]
    day: Option<Day>,

    /// One month.
    #[arg(long, group = "range", value_parser = parse_month, value_name = "YYYY-MM")]
    month: Option<Period>,

    /// One year.
    #[arg(long, group = "range", value_parser = parse_year, value_name = "YYYY")]
    year: Option<Period>,

    /// A year, a month, a day, an ISO week (YYYY-Www) or a billing cycle (cycle/N:
    /// the one anchored on day N holding today; cycle/N/-K: K before it;
    /// cycle/N/YYYY-MM-DD: the one holding that day), as /api/v1/totals takes it.
    #[arg(long, group = "range", value_name = "PERIOD")]
    period: Option<String>,

    /// The first day of a range (with --to; both included).
    #[arg(long, group = "range", requires = "to", value_name = "YYYY-MM-DD")]
    from: Option<Day>,

    /// The last day of a range (with --from; included).
    #[arg(
        long,
        requires = "from",
        conflicts_with_all = ["day", "month", "year", "period"],
        value_name = "YYYY-MM-DD"
    )]
    to: Option<Day>,
}

impl RangeArgs {
    /// The zone asked for; UTC when none was.
    fn zone(&self) -> Zone {
        self.tz.clone().unwrap_or_default()
    }

    /// The days asked for; today (in the zone) when none was.
    fn range(&self) -> Result<DateRange, Failure> {
        let today = self
            .zone()
            .day_of(count_core::jiff::Timestamp::now().as_second());
        let period = match &self.period {
            Some(text) => Some(Period::parse_on(text, today)?),
            None => self.day.map(Period::Day).or(self.month).or(self.year),
        };
        if let Some(period) = period {
            return Ok(period.range());
        }
        match (self.from, self.to) {
            (Some(from), Some(to)) => DateRange::new(from, to).map_err(|_| {
                Failure::Usage(format!(
                    "invalid range --from {from} --to {to}: --from must be on or before --to"
                ))
            }),
            _ => Ok(DateRange::day(today)),
        }
    }
}

impl TotalsArgs {
    /// The report these options ask for.
    fn query(&self) -> Result<TotalsQuery, Failure> {
        let mut query =
            TotalsQuery::new(self.range.range()?, &self.group)?.in_zone(self.range.zone());
        if let Some(status) = self.status {
            query = query.status(status);
        }
        if let Some(subject) = &self.subject {
            Subject::check(subject)?;
            query = query.subject(subject);
        }
        if let Some((method, path)) = &self.endpoint {
            query = query.endpoint_at(*method, path);
        }
        Ok(query)
    }
}

pub(super) async fn run(args: TotalsArgs) -> Result<(), Failure> {
    let query = args.query()?;
    let counter = args.source.open(Migrations::ReadOnly).await?;
    let rows = counter.totals(&query).await?;
    super::print(&args.format.render(&query, &rows))
}

fn parse_subject(text: &str) -> count_core::Result<String> {
    Subject::check(text).map(|()| text.to_owned())
}

fn parse_month(text: &str) -> Result<Period, String> {
    match text.parse::<Period>().map_err(|e| e.to_string())? {
        month @ Period::Month { .. } => Ok(month),
        _ => Err(format!("invalid month {text:?}: expected YYYY-MM")),
    }
}

fn parse_year(text: &str) -> Result<Period, String> {
    match text.parse::<Period>().map_err(|e| e.to_string())? {
        year @ Period::Year { .. } => Ok(year),
        _ => Err(format!("invalid year {text:?}: expected YYYY")),
    }
}

/// `METHOD PATH`, as the endpoint filter of /api/v1/totals takes it.
fn parse_endpoint(text: &str) -> Result<(Method, String), String> {
    let (method, path) = Endpoint::split_text(text).map_err(|e| e.to_string())?;
    Ok((method, path.to_owned()))
}
