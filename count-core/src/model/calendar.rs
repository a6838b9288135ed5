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

    /// The Unix second of this day's midnight.
    pub(crate) fn start_second(self) -> i64 {
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

/// A day, a month or a year: what `GetPeriodTotals` sums over.
///
/// Made with [`Period::year`], [`Period::month`], [`Period::Day`], or parsed: the
/// month and year variants cannot be built directly outside this crate, so every
/// `Period` names days that exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
        };
        DateRange { start, end }
    }
}

impl std::str::FromStr for Period {
    type Err = Error;

    /// `YYYY` (a year), `YYYY-MM` (a month) or `YYYY-MM-DD` (a day).
    fn from_str(text: &str) -> Result<Period> {
        const RULE: &str = "expected a year (YYYY), a month (YYYY-MM) or a day (YYYY-MM-DD)";
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
