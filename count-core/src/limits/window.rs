//! [`Window`]: the stretch of time one period of a limit covers, in its zone, and what
//! a limit has used in it according to the reports.

use std::collections::BTreeMap;

use jiff::ToSpan;

use super::policy::{Limit, LimitPeriod};
use crate::model::QUARTER_SECONDS;
use crate::{Counter, DateRange, Day, Dimension, Hour, Period, Result, TotalsQuery, Zone};

/// One period of a limit: the Unix seconds `start..end` (end excluded), in its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    /// The first second.
    pub start: i64,
    /// The second after the last.
    pub end: i64,
}

impl Window {
    /// The window of `period` in `zone` that holds the Unix second `second`.
    pub fn of(period: LimitPeriod, zone: &Zone, second: i64) -> Window {
        let day = zone.day_of(second);
        let days = |first: Day, last: Day| Window {
            start: zone.start(first),
            end: zone.end(last),
        };
        match period {
            LimitPeriod::Hour => {
                let start = zone.hour_of(second).unix_second();
                // Offsets change by whole quarter hours: the hour ends at the first
                // quarter that is another hour (30 minutes on Lord Howe, some days).
                let mut end = start + QUARTER_SECONDS;
                while end < start + 2 * 3600 && zone.hour_of(end).unix_second() == start {
                    end += QUARTER_SECONDS;
                }
                Window { start, end }
            }
            LimitPeriod::Day => days(day, day),
            LimitPeriod::Week => {
                let date = day.date();
                let monday = date
                    .checked_sub(i64::from(date.weekday().to_monday_zero_offset()).days())
                    .ok()
                    .and_then(|d| Day::from_date(d).ok())
                    .unwrap_or(Day::MIN);
                let sunday = monday
                    .date()
                    .checked_add(6.days())
                    .ok()
                    .and_then(|d| Day::from_date(d).ok())
                    .unwrap_or(Day::MAX);
                days(monday, sunday)
            }
            LimitPeriod::Month => {
                let range = Period::month(day.year(), day.month())
                    .expect("a day's month")
                    .range();
                days(range.start(), range.end())
            }
            LimitPeriod::Cycle { anchor } => {
                let range = Period::cycle_containing(anchor, day)
                    .map_or(DateRange::day(day), Period::range);
                days(range.start(), range.end())
            }
        }
    }

    /// Seconds from `now` to the window's end (at least 1).
    pub fn seconds_left(self, now: i64) -> u64 {
        (self.end - now).max(1) as u64
    }
}

/// What `limit` has used for `subject` in `window`, as the reports say: the counts of
/// its endpoints and statuses (never a 429 or `RESOURCE_EXHAUSTED`), live.
///
/// # Errors
///
/// As [`Counter::totals`] (a zone or an hour whose quarters are no longer kept).
pub async fn used_in(
    counter: &dyn Counter,
    subject: &str,
    limit: &Limit,
    window: Window,
) -> Result<u64> {
    let used = used_by_subject(counter, Some(subject), limit, window).await?;
    Ok(used.get(subject).copied().unwrap_or(0))
}

/// What `limit` has used in `window` for each subject with counts (only `subject`,
/// when given), as [`used_in`] reads it: one report for them all.
///
/// # Errors
///
/// As [`Counter::totals`].
pub async fn used_by_subject(
    counter: &dyn Counter,
    subject: Option<&str>,
    limit: &Limit,
    window: Window,
) -> Result<BTreeMap<String, u64>> {
    let zone = &limit.zone;
    let range = DateRange::new(zone.day_of(window.start), zone.day_of(window.end - 1))?;
    let by_hour = limit.period == LimitPeriod::Hour;
    let mut group = vec![Dimension::Subject, Dimension::Endpoint, Dimension::Status];
    if by_hour {
        group.push(Dimension::Hour);
    }
    let mut query = TotalsQuery::new(range, &group)?.in_zone(zone.clone());
    if let Some(subject) = subject {
        query = query.subject(subject);
    }
    let hour = Hour::starting_at(jiff::Timestamp::from_second(window.start).expect("in range"))
        .ok()
        .filter(|_| by_hour);
    let mut used = BTreeMap::<String, u64>::new();
    for row in counter.totals(&query).await? {
        let (Some(subject), Some(endpoint)) = (row.subject, row.endpoint) else {
            continue;
        };
        let counts = (hour.is_none() || row.hour == hour)
            && limit.covers(endpoint.method, endpoint.path.as_str())
            && limit.counts_status(row.status);
        if counts {
            let sum = used.entry(subject.as_str().to_owned()).or_default();
            *sum = sum.saturating_add(row.total);
        }
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(text: &str) -> i64 {
        text.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    fn window(period: &str, zone: &str, at: &str) -> (String, String) {
        let zone = Zone::new(zone).unwrap();
        let w = Window::of(period.parse().unwrap(), &zone, second(at));
        let show = |s: i64| jiff::Timestamp::from_second(s).unwrap().to_string();
        (show(w.start), show(w.end))
    }

    #[test]
    fn windows_begin_at_the_zones_midnight_and_the_cycles_anchor() {
        let w = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            window("day", "Europe/Zurich", "2026-03-29T12:00:00Z"),
            w("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"), // 23 hours
        );
        assert_eq!(
            window("day", "America/New_York", "2026-11-01T04:30:00Z"),
            w("2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"), // 25 hours
        );
        assert_eq!(
            window("hour", "Asia/Kathmandu", "2026-12-08T02:20:00Z"),
            w("2026-12-08T02:15:00Z", "2026-12-08T03:15:00Z"),
        );
        // Lord Howe leaves summer time at 02:00 local by going back to 01:30: the
        // second 01:30 to 02:00 is an hour of 30 minutes.
        assert_eq!(
            window("hour", "Australia/Lord_Howe", "2026-04-04T14:40:00Z"),
            w("2026-04-04T14:00:00Z", "2026-04-04T15:00:00Z"),
        );
        assert_eq!(
            window("hour", "Australia/Lord_Howe", "2026-04-04T15:10:00Z"),
            w("2026-04-04T15:00:00Z", "2026-04-04T15:30:00Z"),
        );
        assert_eq!(
            window("week", "UTC", "2026-12-08T02:20:00Z"),
            w("2026-12-07T00:00:00Z", "2026-12-14T00:00:00Z"),
        );
        assert_eq!(
            window("month", "Asia/Kolkata", "2026-11-30T20:00:00Z"),
            w("2026-11-30T18:30:00Z", "2026-12-31T18:30:00Z"),
        );
        // A cycle from the 31st: February's starts on the 28th.
        assert_eq!(
            window("cycle/31", "UTC", "2027-03-01T00:00:00Z"),
            w("2027-02-28T00:00:00Z", "2027-03-31T00:00:00Z"),
        );
        assert_eq!(
            window("cycle/15", "America/New_York", "2026-12-15T04:59:59Z"),
            w("2026-11-15T05:00:00Z", "2026-12-15T05:00:00Z"),
        );
    }
}
