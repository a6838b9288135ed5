//! UTC civil time: [`Day`], [`Period`], [`DateRange`], and the range of timestamps
//! count accepts. Every day boundary is midnight UTC, computed here and never taken
//! from a database session's time zone.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::Offset;

use crate::{Error, Result};

const SECONDS_PER_DAY: i64 = 86_400;

/// The first instant count accepts: 0001-01-01T00:00:00Z (as `google.protobuf.Timestamp`).
pub const MIN_TIMESTAMP: Timestamp = Timestamp::constant(-62_135_596_800, 0);

/// The last second count accepts: 9999-12-30T22:00:00Z, the end of `jiff`'s range
/// (which keeps room for any UTC offset).
pub const MAX_TIMESTAMP: Timestamp = Timestamp::constant(253_402_207_200, 0);

/// Refuses a timestamp outside [`MIN_TIMESTAMP`]`..=`[`MAX_TIMESTAMP`].
///
/// # Errors
///
/// [`Error::InvalidInput`] (field `timestamp`) for a timestamp out of that range.
pub fn check_timestamp(at: Timestamp) -> Result<Timestamp> {
    if at < MIN_TIMESTAMP || at.as_second() > MAX_TIMESTAMP.as_second() {
        return Err(Error::invalid(
            "timestamp",
            at,
            "out of range: timestamps must be from 0001-01-01T00:00:00Z to 9999-12-30T22:00:00Z",
        ));
    }
    Ok(at)
}

/// The Unix second holding `at`, rounding down: the one way count turns a timestamp
/// into whole seconds (`as_second` truncates toward zero, which would put
/// 1969-12-31T23:59:59.5Z into 1970).
pub fn floor_second(at: Timestamp) -> i64 {
    at.as_second() - i64::from(at.subsec_nanosecond() < 0)
}

/// One UTC calendar day, from 0001-01-01 to 9999-12-30 (`google.type.Date`'s range,
/// less the last day, whose midnight is past [`MAX_TIMESTAMP`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(Date);

impl Day {
    /// The first supported day, 0001-01-01.
    pub const MIN: Day = Day(jiff::civil::date(1, 1, 1));
    /// The last supported day, 9999-12-30.
    pub const MAX: Day = Day(jiff::civil::date(9999, 12, 30));

    /// The day `year-month-day`; a date that does not exist (month 13, February 30,
    /// year 0) is an error naming it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `date`) naming the date and the rule it breaks.
    pub fn new(year: i32, month: u32, day: u32) -> Result<Day> {
        let shown = format!("{year:04}-{month:02}-{day:02}");
        if !(1..=9999).contains(&year) {
            return Err(Error::invalid("date", shown, "the year must be 1 to 9999"));
        }
        if !(1..=12).contains(&month) {
            return Err(Error::invalid("date", shown, "the month must be 1 to 12"));
        }
        // In range now, so the narrowing casts are exact.
        let first = Date::new(year as i16, month as i8, 1).expect("year and month checked");
        let days_in_month = first.days_in_month() as u32;
        if !(1..=days_in_month).contains(&day) {
            return Err(Error::invalid(
                "date",
                shown,
                format!("day must be 1 to {days_in_month} in {year:04}-{month:02}"),
            ));
        }
        let date = Date::new(year as i16, month as i8, day as i8).expect("checked");
        if date > Day::MAX.0 {
            return Err(Error::invalid(
                "date",
                shown,
                "past the last supported day, 9999-12-30",
            ));
        }
        Ok(Day(date))
    }

    /// The UTC day that holds `at`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a timestamp outside years 1 to 9999.
    pub fn of(at: Timestamp) -> Result<Day> {
        check_timestamp(at)?;
        Ok(Day(Offset::UTC.to_datetime(at).date()))
    }

    /// Today, in UTC.
    ///
    /// # Panics
    ///
    /// If the system clock is set outside years 1 to 9999.
    pub fn today() -> Day {
        Day::of(Timestamp::now()).expect("the system clock is within years 1 to 9999")
    }

    /// The day from a `jiff` civil date.
    ///
    /// # Errors
    ///
    /// As [`Day::new`]: a date before 0001-01-01 or after 9999-12-30.
    pub fn from_date(date: Date) -> Result<Day> {
        Day::new(date.year().into(), date.month() as u32, date.day() as u32)
    }

    /// The civil date.
    pub fn date(self) -> Date {
        self.0
    }

    /// The year, 1 to 9999.
    pub fn year(self) -> i32 {
        self.0.year().into()
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u32 {
        self.0.month() as u32
    }

    /// The day of the month, 1 to 31.
    pub fn day(self) -> u32 {
        self.0.day() as u32
    }

    /// Midnight UTC at the start of this day.
    pub fn start(self) -> Timestamp {
        Offset::UTC
            .to_timestamp(self.0.to_datetime(Time::midnight()))
            .expect("days are within the timestamp range")
    }

    /// The following day, unless this is the last supported one, 9999-12-30.
    pub fn next(self) -> Option<Day> {
        self.0.tomorrow().ok().and_then(|d| Day::from_date(d).ok())
    }

    /// The previous day, unless this is 0001-01-01.
    pub fn prev(self) -> Option<Day> {
        self.0.yesterday().ok().and_then(|d| Day::from_date(d).ok())
    }

    /// The day `days` after 1970-01-01 (negative: before), as SQL `date - date` gives.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `day`) for a day outside 0001-01-01 to 9999-12-30.
    pub fn from_unix_day(days: i64) -> Result<Day> {
        let at = days
            .checked_mul(Day::SECONDS)
            .and_then(|s| Timestamp::from_second(s).ok())
            .ok_or_else(|| Error::invalid("day", days, "out of range for a date"))?;
        Day::of(at).map_err(|_| {
            Error::invalid(
                "day",
                days,
                "out of range: days must be from 0001-01-01 to 9999-12-30",
            )
        })
    }

    /// Days since 1970-01-01 (negative before it).
    pub fn unix_day(self) -> i64 {
        self.start().as_second().div_euclid(Day::SECONDS)
    }

    /// The day of a Unix second count (seconds since 1970-01-01T00:00:00Z), already
    /// known to be in range.
    pub(crate) fn of_unix_second(second: i64) -> Day {
        let at = Timestamp::from_second(second).expect("checked at record time");
        Day::of(at).expect("checked at record time")
    }

    /// The Unix second of this day's midnight UTC.
    pub fn start_second(self) -> i64 {
        self.start().as_second()
    }

    pub(crate) const SECONDS: i64 = SECONDS_PER_DAY;
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Day({})", self.0)
    }
}

impl std::str::FromStr for Day {
    type Err = Error;

    /// `YYYY-MM-DD`, as ISO 8601 and `Display` write it.
    fn from_str(text: &str) -> Result<Day> {
        let parts = split_date(text, "date", "expected a date as YYYY-MM-DD")?;
        match parts {
            (year, Some(month), Some(day)) => Day::new(year, month, day),
            _ => Err(Error::invalid(
                "date",
                text,
                "expected a date as YYYY-MM-DD",
            )),
        }
    }
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD` split into numbers (four digits for the year,
/// two for the others), or an error for `field` with `rule`.
fn split_date(
    text: &str,
    field: &'static str,
    rule: &str,
) -> Result<(i32, Option<u32>, Option<u32>)> {
    let refuse = || Error::invalid(field, text, rule.to_owned());
    let number = |part: &str, digits: usize| {
        (part.len() == digits && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u32>().ok())
            .flatten()
            .ok_or_else(refuse)
    };
    let mut parts = text.split('-');
    let year = number(parts.next().unwrap_or_default(), 4)? as i32;
    let month = parts.next().map(|p| number(p, 2)).transpose()?;
    let day = parts.next().map(|p| number(p, 2)).transpose()?;
    if parts.next().is_some() {
        return Err(refuse());
    }
    Ok((year, month, day))
}

/// The days from `start` to `end`, both included. Never empty: `start <= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DateRange {
    start: Day,
    end: Day,
}

impl DateRange {
    /// `start..=end`; `start` after `end` is an error.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `date range`) when `start` is after `end`.
    pub fn new(start: Day, end: Day) -> Result<DateRange> {
        if start > end {
            return Err(Error::invalid(
                "date range",
                format!("{start}..={end}"),
                "the start date is after the end date",
            ));
        }
        Ok(DateRange { start, end })
    }

    /// The range of one day.
    pub fn day(day: Day) -> DateRange {
        DateRange {
            start: day,
            end: day,
        }
    }

    /// The first day.
    pub fn start(self) -> Day {
        self.start
    }

    /// The last day (included).
    pub fn end(self) -> Day {
        self.end
    }

    /// Whether `day` lies in the range.
    pub fn contains(self, day: Day) -> bool {
        self.start <= day && day <= self.end
    }

    /// Every day of the range, in order.
    pub fn days(self) -> impl Iterator<Item = Day> {
        std::iter::successors(Some(self.start), move |d| {
            d.next().filter(|n| *n <= self.end)
        })
    }
}

impl fmt::Display for DateRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={}", self.start, self.end)
    }
}

/// A day, an ISO week, a month, a year or a billing cycle: days of the calendar, which
/// a report's [`Zone`](crate::Zone) turns into instants.
///
/// Made with [`Period::year`], [`Period::month`], [`Period::week`], [`Period::Day`],
/// [`Period::cycle`] and [`Period::cycle_containing`], or parsed: the other variants
/// cannot be built directly outside this crate, so every `Period` names days that
/// exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Period {
    /// One day.
    Day(Day),
    /// One month of a year.
    #[non_exhaustive]
    Month {
        /// 1 to 9999.
        year: i32,
        /// 1 to 12.
        month: u32,
    },
    /// One year.
    #[non_exhaustive]
    Year {
        /// 1 to 9999.
        year: i32,
    },
    /// One ISO week: Monday to Sunday, in the ISO week-numbering year.
    #[non_exhaustive]
    Week {
        /// The ISO week-numbering year, 1 to 9999.
        year: i32,
        /// 1 to 52 or 53.
        week: u32,
    },
    /// The billing cycle that starts in `year`-`month` on its anchor day (clamped to
    /// the month's last day: an anchor of 31 starts on February 28 or 29 and April
    /// 30) and ends the day before the next one starts.
    #[non_exhaustive]
    Cycle {
        /// The day of the month cycles start on, 1 to 31.
        anchor: u32,
        /// The year the cycle starts in.
        year: i32,
        /// The month the cycle starts in, 1 to 12.
        month: u32,
    },
}

impl Period {
    /// The period that `count.v1`'s `GetPeriodTotals` means by a partly set date:
    /// day and month 0 → the year; day 0 → the month; all set → that day.
    /// A day without a month, or any impossible part, is an error.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the partly set date and the rule.
    pub fn from_parts(year: i32, month: u32, day: u32) -> Result<Period> {
        match (month, day) {
            (0, 0) => Period::year(year),
            (_, 0) => Period::month(year, month),
            (0, _) => Err(Error::invalid(
                "period",
                format!("{year:04}-00-{day:02}"),
                "a day is set without a month (set the month, or leave the day 0 too)",
            )),
            _ => Day::new(year, month, day).map(Period::Day),
        }
    }

    /// The whole of `year`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a year outside 1 to 9999.
    pub fn year(year: i32) -> Result<Period> {
        Day::new(year, 1, 1).map(|_| Period::Year { year })
    }

    /// The whole of `month` of `year`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a year outside 1 to 9999 or a month outside 1 to 12.
    pub fn month(year: i32, month: u32) -> Result<Period> {
        Day::new(year, month, 1).map(|_| Period::Month { year, month })
    }

    /// ISO week `week` of the ISO week-numbering year `year` (Monday to Sunday).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `week`) for a week the year does not have.
    pub fn week(year: i32, week: u32) -> Result<Period> {
        let shown = format!("{year:04}-W{week:02}");
        let monday = i16::try_from(year)
            .ok()
            .filter(|y| (1..=9999).contains(y))
            .zip(i8::try_from(week).ok())
            .and_then(|(y, w)| {
                jiff::civil::ISOWeekDate::new(y, w, jiff::civil::Weekday::Monday).ok()
            })
            .ok_or_else(|| {
                Error::invalid(
                    "week",
                    &shown,
                    "expected an ISO week 1 to 52 (or 53) of years 1 to 9999",
                )
            })?;
        Day::from_date(monday.date())
            .map_err(|_| Error::invalid("week", &shown, "starts before 0001-01-01"))?;
        Ok(Period::Week { year, week })
    }

    /// The billing cycle anchored on day `anchor` (1 to 31) that starts in
    /// `year`-`month`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `cycle anchor`) for an anchor outside 1 to 31;
    /// as [`Period::month`] for the month.
    pub fn cycle(anchor: u32, year: i32, month: u32) -> Result<Period> {
        if !(1..=31).contains(&anchor) {
            return Err(Error::invalid(
                "cycle anchor",
                anchor,
                "the day cycles start on must be 1 to 31 (past a month's last day, they start on its last day)",
            ));
        }
        Period::month(year, month)?;
        Ok(Period::Cycle {
            anchor,
            year,
            month,
        })
    }

    /// The billing cycle anchored on day `anchor` that holds `day`.
    ///
    /// # Errors
    ///
    /// As [`Period::cycle`].
    pub fn cycle_containing(anchor: u32, day: Day) -> Result<Period> {
        let this = Period::cycle(anchor, day.year(), day.month())?;
        if day >= this.range().start {
            return Ok(this);
        }
        match previous_month(day.year(), day.month()) {
            Some((year, month)) => Period::cycle(anchor, year, month),
            None => Err(Error::invalid(
                "period",
                format!("the cycle from day {anchor} holding {day}"),
                "starts before 0001-01-01",
            )),
        }
    }

    /// A period as the HTTP API and the CLI take it: what [`FromStr`](std::str::FromStr)
    /// reads, or a billing cycle: `cycle/N` (the one anchored on day N holding
    /// `today`), `cycle/N/-K` (K cycles before it) or `cycle/N/YYYY-MM-DD` (the one
    /// holding that day).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `period`) naming the text and the forms.
    pub fn parse_on(text: &str, today: Day) -> Result<Period> {
        const CYCLE: &str = "expected cycle/N, cycle/N/-K or cycle/N/YYYY-MM-DD (N: the day of the month cycles start on, 1 to 31; K: cycles back)";
        let Some(cycle) = text.strip_prefix("cycle/") else {
            return text.parse();
        };
        let refuse = || Error::invalid("period", text, CYCLE);
        let (anchor, which) = cycle
            .split_once('/')
            .map_or((cycle, None), |(a, w)| (a, Some(w)));
        let anchor: u32 = (!anchor.is_empty() && anchor.bytes().all(|b| b.is_ascii_digit()))
            .then(|| anchor.parse().ok())
            .flatten()
            .ok_or_else(refuse)?;
        match which {
            None => Period::cycle_containing(anchor, today),
            Some(back) if back.starts_with('-') => {
                let digits = &back[1..];
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(refuse());
                }
                let back: u32 = digits.parse().map_err(|_| refuse())?;
                Period::cycle_containing(anchor, today)?
                    .cycles_back(back)
                    .ok_or_else(|| Error::invalid("period", text, "reaches before year 1"))
            }
            Some(date) => Period::cycle_containing(anchor, date.parse().map_err(|_| refuse())?),
        }
    }

    /// The cycle `back` cycles before this one (a cycle period only: others are
    /// returned as they are); `None` before year 1.
    pub fn cycles_back(self, back: u32) -> Option<Period> {
        let Period::Cycle {
            anchor,
            mut year,
            mut month,
        } = self
        else {
            return Some(self);
        };
        for _ in 0..back {
            (year, month) = previous_month(year, month)?;
        }
        Period::cycle(anchor, year, month).ok()
    }

    /// The days of the period.
    pub fn range(self) -> DateRange {
        let (start, end) = match self {
            Period::Day(day) => (day, day),
            Period::Month { year, month } => {
                let start = Day::new(year, month, 1).expect("checked at construction");
                (start, Day(start.date().last_of_month()).min(Day::MAX))
            }
            Period::Year { year } => (
                Day::new(year, 1, 1).expect("checked at construction"),
                Day(jiff::civil::date(year as i16, 12, 31)).min(Day::MAX),
            ),
            Period::Week { year, week } => {
                let monday = jiff::civil::ISOWeekDate::new(
                    year as i16,
                    week as i8,
                    jiff::civil::Weekday::Monday,
                )
                .expect("checked at construction")
                .date();
                // Past 9999-12-30 only in the last week: it ends on the last day.
                let sunday = monday
                    .checked_add(jiff::Span::new().days(6))
                    .unwrap_or(Day::MAX.0);
                (Day(monday), Day(sunday).min(Day::MAX))
            }
            Period::Cycle {
                anchor,
                year,
                month,
            } => {
                let start = cycle_start(anchor, year, month);
                let end = next_month(year, month)
                    .map(|(y, m)| cycle_start(anchor, y, m))
                    .and_then(Day::prev)
                    .unwrap_or(Day::MAX);
                (start, end)
            }
        };
        DateRange { start, end }
    }
}

impl std::str::FromStr for Period {
    type Err = Error;

    /// `YYYY` (a year), `YYYY-MM` (a month), `YYYY-MM-DD` (a day) or `YYYY-Www` (an
    /// ISO week).
    fn from_str(text: &str) -> Result<Period> {
        const RULE: &str = "expected a year (YYYY), a month (YYYY-MM), a day (YYYY-MM-DD) or an ISO week (YYYY-Www)";
        if let Some((year, week)) = text.split_once("-W") {
            let number = |part: &str, digits: usize| {
                (part.len() == digits && part.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| part.parse::<u32>().ok())
                    .flatten()
                    .ok_or_else(|| Error::invalid("period", text, RULE))
            };
            return Period::week(number(year, 4)? as i32, number(week, 2)?);
        }
        match split_date(text, "period", RULE)? {
            (year, None, None) => Period::year(year),
            (year, Some(month), None) => Period::month(year, month),
            (year, Some(month), Some(day)) => Day::new(year, month, day).map(Period::Day),
            _ => Err(Error::invalid("period", text, RULE)),
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::Day(day) => write!(f, "{day}"),
            Period::Month { year, month } => write!(f, "{year:04}-{month:02}"),
            Period::Year { year } => write!(f, "{year:04}"),
            Period::Week { year, week } => write!(f, "{year:04}-W{week:02}"),
            // As `Period::parse_on` reads it back.
            Period::Cycle { anchor, .. } => write!(f, "cycle/{anchor}/{}", self.range().start),
        }
    }
}

/// The first day of the cycle anchored on `anchor` that starts in `year`-`month`.
fn cycle_start(anchor: u32, year: i32, month: u32) -> Day {
    let first = Day::new(year, month, 1).expect("checked at construction");
    let last = first.date().days_in_month() as u32;
    Day::new(year, month, anchor.min(last)).unwrap_or(Day::MAX)
}

fn previous_month(year: i32, month: u32) -> Option<(i32, u32)> {
    match month {
        1 if year > 1 => Some((year - 1, 12)),
        1 => None,
        m => Some((year, m - 1)),
    }
}

fn next_month(year: i32, month: u32) -> Option<(i32, u32)> {
    match month {
        12 if year < 9999 => Some((year + 1, 1)),
        12 => None,
        m => Some((year, m + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_clamp_their_anchor_to_the_month_and_follow_each_other() {
        let range = |p: Period| (p.range().start.to_string(), p.range().end.to_string());
        let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        // Anchored on the 31st across February of a leap year.
        assert_eq!(
            range(Period::cycle(31, 2024, 1).unwrap()),
            s("2024-01-31", "2024-02-28")
        );
        assert_eq!(
            range(Period::cycle(31, 2024, 2).unwrap()),
            s("2024-02-29", "2024-03-30")
        );
        assert_eq!(
            range(Period::cycle(31, 2024, 3).unwrap()),
            s("2024-03-31", "2024-04-29")
        );
        assert_eq!(
            range(Period::cycle(31, 2024, 4).unwrap()),
            s("2024-04-30", "2024-05-30")
        );
        assert_eq!(
            range(Period::cycle(31, 2023, 2).unwrap()),
            s("2023-02-28", "2023-03-30")
        );
        assert_eq!(
            range(Period::cycle(1, 2024, 12).unwrap()),
            s("2024-12-01", "2024-12-31")
        );
        assert_eq!(
            range(Period::cycle(15, 2024, 12).unwrap()),
            s("2024-12-15", "2025-01-14")
        );
        assert_eq!(
            Period::cycle_containing(31, day(2024, 2, 28)).unwrap(),
            Period::cycle(31, 2024, 1).unwrap()
        );
        assert_eq!(
            Period::cycle_containing(31, day(2024, 2, 29)).unwrap(),
            Period::cycle(31, 2024, 2).unwrap()
        );
        assert_eq!(
            Period::cycle(31, 2024, 3).unwrap().cycles_back(2),
            Some(Period::cycle(31, 2024, 1).unwrap())
        );
        assert_eq!(Period::cycle(5, 1, 1).unwrap().cycles_back(1), None);
        let err = Period::cycle(32, 2024, 1).unwrap_err().to_string();
        assert!(err.contains("32") && err.contains("1 to 31"), "{err}");
        // Every day of a stretch is in exactly one cycle, the one holding it.
        let mut d = day(2023, 12, 1);
        while d < day(2025, 3, 1) {
            let cycle = Period::cycle_containing(31, d).unwrap();
            assert!(cycle.range().contains(d), "{d} {cycle}");
            let next = cycle.range().end.next().unwrap();
            assert_eq!(
                Period::cycle_containing(31, next).unwrap().range().start,
                next
            );
            d = d.next().unwrap();
        }
    }

    #[test]
    fn cycles_are_named_by_anchor_and_offset_or_date() {
        let today = day(2024, 3, 10);
        let at = |text: &str| Period::parse_on(text, today).map(|p| p.range().to_string());
        assert_eq!(at("cycle/31").unwrap(), "2024-02-29..=2024-03-30");
        assert_eq!(at("cycle/31/-1").unwrap(), "2024-01-31..=2024-02-28");
        assert_eq!(
            at("cycle/15/2024-01-14").unwrap(),
            "2023-12-15..=2024-01-14"
        );
        assert_eq!(at("2024-02").unwrap(), "2024-02-01..=2024-02-29");
        for bad in [
            "cycle/",
            "cycle/x",
            "cycle/31/-x",
            "cycle/31/-+5",
            "cycle/31/2024-13-01",
        ] {
            let err = at(bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains("cycle/N/-K"),
                "{err}"
            );
        }
        let err = at("cycle/0").unwrap_err().to_string();
        assert!(err.contains("anchor 0") && err.contains("1 to 31"), "{err}");
        let cycle = Period::parse_on("cycle/31/-1", today).unwrap();
        assert_eq!(Period::parse_on(&cycle.to_string(), today).unwrap(), cycle);
        assert!(Period::cycle_containing(15, day(1, 1, 5)).is_err());
        let last = Period::week(9999, 52).unwrap().range();
        assert_eq!(last.start.to_string(), "9999-12-27");
        assert_eq!(last.end, Day::MAX);
    }

    #[test]
    fn iso_weeks_run_monday_to_sunday() {
        let week: Period = "2026-W01".parse().unwrap();
        assert_eq!(week.range().start, day(2025, 12, 29));
        assert_eq!(week.range().end, day(2026, 1, 4));
        assert_eq!(week.to_string(), "2026-W01");
        let err = Period::week(2025, 53).unwrap_err().to_string();
        assert!(err.contains("2025-W53"), "{err}");
        assert!(Period::week(2026, 53).is_ok());
        assert!(Period::week(2020, 53).is_ok());
        assert!("2026-W1".parse::<Period>().is_err());
    }

    fn day(y: i32, m: u32, d: u32) -> Day {
        Day::new(y, m, d).unwrap()
    }

    #[test]
    fn refuses_dates_that_do_not_exist() {
        for ((y, m, d), rule) in [
            ((2024, 13, 1), "the month must be 1 to 12"),
            ((2024, 0, 1), "the month must be 1 to 12"),
            ((2023, 2, 29), "day must be 1 to 28 in 2023-02"),
            ((2024, 2, 30), "day must be 1 to 29 in 2024-02"),
            ((2024, 4, 31), "day must be 1 to 30 in 2024-04"),
            ((2024, 1, 32), "day must be 1 to 31 in 2024-01"),
            ((2024, 1, 0), "day must be 1 to 31 in 2024-01"),
            ((0, 1, 1), "the year must be 1 to 9999"),
            ((10000, 1, 1), "the year must be 1 to 9999"),
            ((9999, 12, 31), "past the last supported day, 9999-12-30"),
        ] {
            let err = Day::new(y, m, d).unwrap_err().to_string();
            assert!(err.contains(rule), "{err}");
            assert!(err.contains(&format!("{y:04}-{m:02}-{d:02}")), "{err}");
        }
        assert_eq!(day(2024, 2, 29).to_string(), "2024-02-29");
    }

    #[test]
    fn day_of_a_timestamp_is_utc() {
        let at: Timestamp = "2024-03-01T23:59:59+01:00".parse().unwrap();
        assert_eq!(Day::of(at).unwrap(), day(2024, 3, 1));
        let at: Timestamp = "2024-03-01T00:30:00+01:00".parse().unwrap();
        assert_eq!(Day::of(at).unwrap(), day(2024, 2, 29));
        assert_eq!(day(1970, 1, 2).start().as_second(), 86_400);
        assert_eq!(Day::of_unix_second(-1), day(1969, 12, 31));
        for d in [
            day(1970, 1, 1),
            day(1969, 12, 31),
            Day::MIN,
            Day::MAX,
            day(2024, 2, 29),
        ] {
            assert_eq!(Day::from_unix_day(d.unix_day()).unwrap(), d);
        }
        assert_eq!(day(1970, 1, 2).unix_day(), 1);
        assert!(Day::from_unix_day(Day::MAX.unix_day() + 1).is_err());
        assert!(Day::from_unix_day(i64::MAX).is_err());
        let half_before_epoch = Timestamp::new(0, -500_000_000).unwrap();
        assert_eq!(floor_second(half_before_epoch), -1);
        assert_eq!(floor_second(Timestamp::new(5, 5).unwrap()), 5);
    }

    #[test]
    fn timestamps_out_of_range_are_refused() {
        assert!(check_timestamp(MIN_TIMESTAMP).is_ok());
        assert!(check_timestamp(MAX_TIMESTAMP).is_ok());
        let before = Timestamp::from_second(MIN_TIMESTAMP.as_second() - 1).unwrap();
        let err = check_timestamp(before).unwrap_err().to_string();
        assert!(
            err.contains("from 0001-01-01T00:00:00Z to 9999-12-30T22:00:00Z"),
            "{err}"
        );
        // jiff itself ends at MAX_TIMESTAMP's second: nothing later can be made.
        assert_eq!(Timestamp::MAX.as_second(), MAX_TIMESTAMP.as_second());
        assert_eq!(Day::of(Timestamp::MAX).unwrap(), Day::MAX);
        assert_eq!(Day::of(MAX_TIMESTAMP).unwrap(), Day::MAX);
        assert_eq!(
            Day::MAX.start().as_second(),
            MAX_TIMESTAMP.as_second() - 22 * 3600
        );
        assert_eq!(Day::MAX.next(), None);
        assert_eq!(Day::MIN.prev(), None);
        assert_eq!(Day::of(MIN_TIMESTAMP).unwrap(), day(1, 1, 1));
    }

    #[test]
    fn periods_follow_the_count_v1_rules() {
        assert_eq!(
            Period::from_parts(2024, 0, 0).unwrap(),
            Period::Year { year: 2024 }
        );
        assert_eq!(
            Period::from_parts(2024, 2, 0).unwrap(),
            Period::Month {
                year: 2024,
                month: 2
            }
        );
        assert_eq!(
            Period::from_parts(2024, 2, 29).unwrap(),
            Period::Day(day(2024, 2, 29))
        );
        let err = Period::from_parts(2024, 0, 5).unwrap_err().to_string();
        assert!(
            err.contains("2024-00-05") && err.contains("without a month"),
            "{err}"
        );
        assert!(Period::from_parts(2024, 13, 0).is_err());
        assert!(Period::from_parts(2023, 2, 29).is_err());
        assert!(Period::from_parts(0, 0, 0).is_err());
    }

    #[test]
    fn period_ranges_cover_leap_months_and_years() {
        let feb = Period::month(2024, 2).unwrap().range();
        assert_eq!(
            (feb.start(), feb.end()),
            (day(2024, 2, 1), day(2024, 2, 29))
        );
        let feb = Period::month(2100, 2).unwrap().range();
        assert_eq!(feb.end(), day(2100, 2, 28));
        let year = Period::year(2000).unwrap().range();
        assert_eq!(year.days().count(), 366);
        assert_eq!(
            Period::Day(day(2024, 5, 5)).range(),
            DateRange::day(day(2024, 5, 5))
        );
        assert_eq!(Period::year(9999).unwrap().range().end(), Day::MAX);
    }

    #[test]
    fn days_and_periods_parse_from_their_iso_forms() {
        assert_eq!("2024-02-29".parse::<Day>().unwrap(), day(2024, 2, 29));
        for bad in [
            "2024-2-29",
            "2024-02-30",
            "24-02-01",
            "2024-02",
            "2024-02-01x",
            "",
            "2024/02/01",
            "+024-02-01",
        ] {
            let err = bad.parse::<Day>().unwrap_err().to_string();
            assert!(err.contains("invalid date"), "{bad}: {err}");
        }
        assert_eq!(
            "2024".parse::<Period>().unwrap(),
            Period::Year { year: 2024 }
        );
        assert_eq!(
            "2024-02".parse::<Period>().unwrap(),
            Period::Month {
                year: 2024,
                month: 2
            }
        );
        assert_eq!(
            "2024-02-29".parse::<Period>().unwrap(),
            Period::Day(day(2024, 2, 29))
        );
        for bad in [
            "2024-13",
            "0000",
            "2024-02-30",
            "2024-",
            "20245",
            "2024-02-01-01",
        ] {
            let err = bad.parse::<Period>().unwrap_err().to_string();
            assert!(err.contains("invalid"), "{bad}: {err}");
        }
        for p in ["2024", "2024-02", "2024-02-29"] {
            assert_eq!(p.parse::<Period>().unwrap().to_string(), p);
        }
    }

    #[test]
    fn ranges_are_inclusive_and_ordered() {
        let r = DateRange::new(day(2023, 12, 30), day(2024, 1, 2)).unwrap();
        let days: Vec<String> = r.days().map(|d| d.to_string()).collect();
        assert_eq!(
            days,
            ["2023-12-30", "2023-12-31", "2024-01-01", "2024-01-02"]
        );
        assert!(r.contains(day(2024, 1, 2)) && !r.contains(day(2024, 1, 3)));
        let err = DateRange::new(day(2024, 1, 2), day(2024, 1, 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2024-01-02..=2024-01-01") && err.contains("after"),
            "{err}"
        );
    }
}
