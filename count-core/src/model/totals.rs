//! What reports return: [`DailyTotal`]s and [`PeriodTotal`]s per endpoint, and
//! [`GroupedTotal`]s for a [`TotalsQuery`] over any of the dimensions.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use std::sync::Arc;

use crate::{
    CountKey, DateRange, Day, Endpoint, Error, Hour, Method, Period, Result, Status, StatusFilter,
    Subject, Zone,
};

/// The count of one endpoint on one day, summed over subjects and statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct DailyTotal {
    /// The UTC day.
    pub day: Day,
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Requests counted that day.
    pub total: u64,
}

impl DailyTotal {
    /// `total` requests to `endpoint` on `day`.
    pub const fn new(day: Day, endpoint: Endpoint, total: u64) -> DailyTotal {
        DailyTotal {
            day,
            endpoint,
            total,
        }
    }
}

/// The count of one endpoint over a [`Period`], summed over subjects and statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct PeriodTotal {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Requests counted in the period.
    pub total: u64,
}

impl PeriodTotal {
    /// `total` requests to `endpoint`.
    pub const fn new(endpoint: Endpoint, total: u64) -> PeriodTotal {
        PeriodTotal { endpoint, total }
    }
}

/// Sums daily totals per endpoint, ordered by path then method. Sums saturate at
/// `i64::MAX`, as every backend's do.
pub fn sum_by_endpoint(daily: impl IntoIterator<Item = DailyTotal>) -> Vec<PeriodTotal> {
    let mut sums = BTreeMap::<Endpoint, u64>::new();
    for t in daily {
        let sum = sums.entry(t.endpoint).or_default();
        *sum = add_saturating(*sum, t.total);
    }
    sums.into_iter()
        .map(|(endpoint, total)| PeriodTotal { endpoint, total })
        .collect()
}

/// `a + b`, stopping at `i64::MAX`: the largest total any backend can hold.
pub fn add_saturating(a: u64, b: u64) -> u64 {
    a.saturating_add(b).min(i64::MAX as u64)
}

/// What a [`TotalsQuery`] can group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    /// Per day (of the report's zone).
    Day,
    /// Per hour (of the report's zone's clock).
    Hour,
    /// Per endpoint (method and path).
    Endpoint,
    /// Per subject (requests without one form a group of their own).
    Subject,
    /// Per status (requests without one form a group of their own).
    Status,
}

impl Dimension {
    /// Every dimension, in the order rows are sorted by.
    pub const ALL: [Dimension; 5] = [
        Dimension::Day,
        Dimension::Hour,
        Dimension::Endpoint,
        Dimension::Subject,
        Dimension::Status,
    ];

    /// `"day"`, `"hour"`, `"endpoint"`, `"subject"`, `"status"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Dimension::Day => "day",
            Dimension::Hour => "hour",
            Dimension::Endpoint => "endpoint",
            Dimension::Subject => "subject",
            Dimension::Status => "status",
        }
    }
}

impl FromStr for Dimension {
    type Err = Error;

    fn from_str(text: &str) -> Result<Dimension> {
        Dimension::ALL
            .into_iter()
            .find(|d| d.as_str() == text)
            .ok_or_else(|| {
                Error::invalid(
                    "group",
                    text,
                    "expected day, hour, endpoint, subject or status",
                )
            })
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A report over the dimensions: totals over a day range in a time zone (UTC unless
/// [`in_zone`](TotalsQuery::in_zone) says otherwise), kept only where the filters
/// match, grouped by one or more [`Dimension`]s. Live, like every report.
///
/// ```
/// use count_core::{Dimension, Period, StatusFilter, Subject, TotalsQuery};
///
/// // Per customer and day, the 5xx of November 2026.
/// let query = TotalsQuery::new(Period::month(2026, 11)?.range(), &[Dimension::Subject, Dimension::Day])?
///     .status("5xx".parse::<StatusFilter>()?);
/// assert!(query.groups(Dimension::Subject) && !query.groups(Dimension::Endpoint));
/// # Ok::<(), count_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TotalsQuery {
    /// The days summed over, on the calendar of `zone`.
    pub range: DateRange,
    /// Where the days (and hours) begin.
    pub zone: Zone,
    /// Which dimensions rows are kept apart by: `group[d as usize]`.
    group: [bool; 5],
    /// Only counts of the subject of this text. A filter is text, never interned: a
    /// text never counted matches nothing, and a made-up one costs no memory.
    pub subject: Option<Arc<str>>,
    /// Only counts whose status passes.
    pub status: Option<StatusFilter>,
    /// Only counts of the endpoint of this method and path text.
    pub endpoint: Option<(Method, Arc<str>)>,
}

impl TotalsQuery {
    /// Totals over `range`, grouped by `group_by` (in any order; repeats are
    /// ignored), with no filter.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `group_by` is empty.
    pub fn new(range: DateRange, group_by: &[Dimension]) -> Result<TotalsQuery> {
        if group_by.is_empty() {
            return Err(Error::invalid(
                "group",
                "",
                "group by at least one of day, hour, endpoint, subject or status",
            ));
        }
        let mut group = [false; 5];
        for &dimension in group_by {
            group[dimension as usize] = true;
        }
        Ok(TotalsQuery {
            range,
            zone: Zone::UTC,
            group,
            subject: None,
            status: None,
            endpoint: None,
        })
    }

    /// [`TotalsQuery::new`] over the days of `period`.
    ///
    /// # Errors
    ///
    /// As [`TotalsQuery::new`].
    pub fn for_period(period: Period, group_by: &[Dimension]) -> Result<TotalsQuery> {
        TotalsQuery::new(period.range(), group_by)
    }

    /// The report's days (and hours) in `zone` instead of UTC.
    pub fn in_zone(mut self, zone: Zone) -> Self {
        self.zone = zone;
        self
    }

    /// The Unix seconds the report covers, `start..end`: from the first day's start
    /// in its zone to the last day's end.
    pub fn seconds(&self) -> (i64, i64) {
        (
            self.zone.start(self.range.start()),
            self.zone.end(self.range.end()),
        )
    }

    /// Where a backend that keeps `kept` reads this report's rolled-up counts from.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `range`) when the report needs hours (or days
    /// of a zone) the backend no longer keeps, naming what it keeps; (field `time
    /// zone`) when the zone's days there do not begin on a quarter hour.
    pub fn source(&self, kept: &Kept) -> Result<Source> {
        let by_hour = self.groups(Dimension::Hour);
        if self.zone.is_utc() && !by_hour {
            return Ok(Source::UtcDays);
        }
        let (start, end) = self.seconds();
        self.zone.check_quarters(start, end)?;
        let zone_days = kept.zone_days.iter().find(|(zone, _)| *zone == self.zone);
        if !by_hour && zone_days.is_some_and(|(_, from)| start >= from.start_second()) {
            return Ok(Source::ZoneDays);
        }
        if kept
            .quarters_from
            .is_some_and(|from| start >= from.start_second())
        {
            return Ok(Source::Quarters);
        }
        let zones: String = std::iter::once("UTC".to_owned())
            .chain(
                kept.zone_days
                    .iter()
                    .map(|(zone, from)| format!("{zone} (from {from})")),
            )
            .collect::<Vec<_>>()
            .join(", ");
        let wanted = if by_hour {
            "hours"
        } else {
            "days in this zone"
        };
        let rule = match kept.quarters_from {
            Some(from) => format!(
                "{wanted} are no longer kept: hours, and days in any zone, are kept from \
                 {from} on (the hour retention, or the day an older database was upgraded); \
                 before that only days in {zones}"
            ),
            None => format!("{wanted} are not kept by this backend: only days in {zones}"),
        };
        Err(Error::invalid(
            "range",
            format!("{} in {}", self.range, self.zone),
            rule,
        ))
    }

    /// Keeps only counts of the subject `subject` (a [`Subject`], or its text: checked
    /// where it enters, by [`Subject::check`], else it may only match nothing).
    pub fn subject(mut self, subject: impl AsRef<str>) -> Self {
        self.subject = Some(subject.as_ref().into());
        self
    }

    /// Keeps only counts whose status passes `filter` (counts without a status never
    /// do).
    pub fn status(mut self, filter: StatusFilter) -> Self {
        self.status = Some(filter);
        self
    }

    /// Keeps only counts of `endpoint`.
    pub fn endpoint(self, endpoint: Endpoint) -> Self {
        self.endpoint_at(endpoint.method, endpoint.path)
    }

    /// Keeps only counts of `method` and the path `path` (a [`Path`](crate::Path), or
    /// its text: checked where it enters, by [`Path::check`](crate::Path::check)).
    pub fn endpoint_at(mut self, method: Method, path: impl AsRef<str>) -> Self {
        self.endpoint = Some((method, path.as_ref().into()));
        self
    }

    /// Whether rows are kept apart by `dimension`.
    pub fn groups(&self, dimension: Dimension) -> bool {
        self.group[dimension as usize]
    }

    /// The grouped dimensions, in [`Dimension::ALL`] order.
    pub fn group_by(&self) -> impl Iterator<Item = Dimension> + '_ {
        Dimension::ALL.into_iter().filter(|d| self.groups(*d))
    }

    /// Whether a count of `key` at the Unix second `second` is in the report.
    pub fn matches(&self, second: i64, key: &CountKey) -> bool {
        let (start, end) = self.seconds();
        (start..end).contains(&second) && self.keeps(key)
    }

    /// Whether the filters keep `key`.
    pub fn keeps(&self, key: &CountKey) -> bool {
        self.endpoint.as_ref().is_none_or(|(method, path)| {
            *method == key.endpoint.method && **path == *key.endpoint.path.as_str()
        }) && (self.subject.as_deref()).is_none_or(|s| key.subject.is_some_and(|k| k.as_str() == s))
            && self.status.is_none_or(|f| f.matches(key.status))
    }

    /// The row a count of `key` at the Unix second `second` is summed into: the
    /// grouped parts kept (its day and hour in the report's zone), the others `None`.
    pub fn row_of(&self, second: i64, key: &CountKey, total: u64) -> GroupedTotal {
        self.in_slot(self.slot_of(second), key, total)
    }

    /// The row of a count of `key` kept by the day, on `day` of the report's zone
    /// (a report grouped by hour never reads days).
    pub fn row_of_day(&self, day: Day, key: &CountKey, total: u64) -> GroupedTotal {
        self.in_slot(self.slot_of_day(day), key, total)
    }

    /// The time of a row holding the Unix second `second`: its day and hour in the
    /// report's zone where the report groups by them, nothing else set.
    pub fn slot_of(&self, second: i64) -> GroupedTotal {
        GroupedTotal {
            day: self
                .groups(Dimension::Day)
                .then(|| self.zone.day_of(second)),
            hour: self
                .groups(Dimension::Hour)
                .then(|| self.zone.hour_of(second)),
            ..GroupedTotal::new(0)
        }
    }

    /// The time of a row of counts kept by the day, on `day` of the report's zone.
    pub fn slot_of_day(&self, day: Day) -> GroupedTotal {
        GroupedTotal {
            day: self.groups(Dimension::Day).then_some(day),
            ..GroupedTotal::new(0)
        }
    }

    /// `slot` (a row's time) with the parts of `key` the report groups by, and `total`.
    pub fn in_slot(&self, slot: GroupedTotal, key: &CountKey, total: u64) -> GroupedTotal {
        GroupedTotal {
            endpoint: self.groups(Dimension::Endpoint).then_some(key.endpoint),
            subject: if self.groups(Dimension::Subject) {
                key.subject
            } else {
                None
            },
            status: if self.groups(Dimension::Status) {
                key.status
            } else {
                None
            },
            total,
            ..slot
        }
    }

    /// The reference answer: `counts` (Unix second, key, n) filtered, grouped,
    /// summed (saturating) and ordered as the contract says. Backends that cannot
    /// group in their storage use it; the others are checked against it.
    pub fn group(
        &self,
        counts: impl IntoIterator<Item = (i64, CountKey, u64)>,
    ) -> Vec<GroupedTotal> {
        let (start, end) = self.seconds();
        let mut sums = Sums::default();
        for (second, key, n) in counts {
            if (start..end).contains(&second) && self.keeps(&key) {
                sums.add(self.row_of(second, &key, 0), n);
            }
        }
        sums.rows()
    }
}

/// Rows being summed: each total saturates, and [`Sums::rows`] gives them in the
/// contract's order without the empty ones.
#[derive(Debug, Default)]
pub struct Sums(BTreeMap<GroupedTotal, u64>);

impl Sums {
    /// Adds `n` to `row` (its own `total` ignored).
    pub fn add(&mut self, row: GroupedTotal, n: u64) {
        let sum = self.0.entry(GroupedTotal { total: 0, ..row }).or_default();
        *sum = add_saturating(*sum, n);
    }

    /// The rows, ordered, none zero.
    pub fn rows(self) -> Vec<GroupedTotal> {
        self.0
            .into_iter()
            .filter(|(_, total)| *total > 0)
            .map(|(row, total)| GroupedTotal { total, ..row })
            .collect()
    }
}

/// What a backend keeps besides its UTC days (which it keeps forever): what a report
/// in another zone, or by the hour, can be answered from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Kept {
    /// The first UTC day from whose midnight counts are kept by the quarter hour
    /// (hours, and days in every zone); `None` when the backend keeps none.
    pub quarters_from: Option<Day>,
    /// Zones whose days are kept forever, each with the UTC day from whose midnight
    /// they are complete.
    pub zone_days: Vec<(Zone, Day)>,
}

/// Where a report's rolled-up counts are read from (see [`TotalsQuery::source`]);
/// counts not yet rolled up are read from the raw buckets, whatever the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The UTC days.
    UtcDays,
    /// The days kept for the report's zone.
    ZoneDays,
    /// The quarter hours.
    Quarters,
}

/// One row of a [`TotalsQuery`]'s answer.
///
/// Only the grouped dimensions are set; the others are `None`. Where a query groups by
/// subject (or status), `None` in that field is the group of counts made without one.
/// Rows are ordered by day, hour, endpoint (path, then method), subject (none first, then by
/// text) and status (none first, then by code); no total is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct GroupedTotal {
    /// The day, when grouped by day.
    pub day: Option<Day>,
    /// The hour, when grouped by hour.
    pub hour: Option<Hour>,
    /// The endpoint, when grouped by endpoint.
    pub endpoint: Option<Endpoint>,
    /// The subject, when grouped by subject (`None` also for counts without one).
    pub subject: Option<Subject>,
    /// The status, when grouped by status (`None` also for counts without one).
    pub status: Option<Status>,
    /// Requests counted in the group.
    pub total: u64,
}

impl GroupedTotal {
    /// A row with `total` and no dimension set; set the grouped ones with the
    /// `with_` methods.
    pub const fn new(total: u64) -> GroupedTotal {
        GroupedTotal {
            day: None,
            hour: None,
            endpoint: None,
            subject: None,
            status: None,
            total,
        }
    }

    /// The row with its day.
    pub const fn with_day(mut self, day: Day) -> Self {
        self.day = Some(day);
        self
    }

    /// The row with its hour.
    pub const fn with_hour(mut self, hour: Hour) -> Self {
        self.hour = Some(hour);
        self
    }

    /// The row with its endpoint.
    pub const fn with_endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// The row with its subject (`None`: the group without one).
    pub const fn with_subject(mut self, subject: Option<Subject>) -> Self {
        self.subject = subject;
        self
    }

    /// The row with its status (`None`: the group without one).
    pub const fn with_status(mut self, status: Option<Status>) -> Self {
        self.status = status;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Method, Path, StatusClass};

    fn day(d: u32) -> Day {
        Day::new(2026, 1, d).unwrap()
    }

    #[test]
    fn period_sums_are_ordered_by_path_then_method_and_saturate() {
        let e = |m, p| Endpoint::new(m, Path::new(p).unwrap());
        let daily = [
            DailyTotal::new(day(1), e(Method::Post, "/b"), 1),
            DailyTotal::new(day(1), e(Method::Get, "/b"), 2),
            DailyTotal::new(day(2), e(Method::Get, "/b"), 3),
            DailyTotal::new(day(1), e(Method::Get, "/a"), i64::MAX as u64),
            DailyTotal::new(day(2), e(Method::Get, "/a"), 5),
        ];
        let sums: Vec<(Endpoint, u64)> = sum_by_endpoint(daily)
            .into_iter()
            .map(|t| (t.endpoint, t.total))
            .collect();
        assert_eq!(
            sums,
            [
                (e(Method::Get, "/a"), i64::MAX as u64),
                (e(Method::Get, "/b"), 5),
                (e(Method::Post, "/b"), 1)
            ]
        );
    }

    #[test]
    fn an_empty_group_by_is_refused_and_dimensions_parse() {
        let range = DateRange::day(day(1));
        let err = TotalsQuery::new(range, &[]).unwrap_err().to_string();
        assert!(
            err.contains("invalid group") && err.contains("at least one"),
            "{err}"
        );
        assert_eq!("subject".parse::<Dimension>().unwrap(), Dimension::Subject);
        let err = "tenant".parse::<Dimension>().unwrap_err().to_string();
        assert!(
            err.contains("\"tenant\"") && err.contains("day, hour, endpoint"),
            "{err}"
        );
    }

    #[test]
    fn the_reference_grouping_filters_sums_and_orders() {
        let get = Endpoint::new(Method::Get, Path::new("/g").unwrap());
        let acme = Subject::new("acme").unwrap();
        let ok = Status::http(200).unwrap();
        let bad = Status::http(503).unwrap();
        let counts = [
            (
                day(1),
                CountKey::new(get).with_subject(acme).with_status(ok),
                5,
            ),
            (day(1), CountKey::new(get).with_status(bad), 2),
            (
                day(2),
                CountKey::new(get).with_subject(acme).with_status(bad),
                3,
            ),
            (day(2), CountKey::new(get), 7),
            (day(3), CountKey::new(get).with_subject(acme), 100),
        ];
        let counts = counts.map(|(d, key, n)| (d.start_second(), key, n));
        let range = DateRange::new(day(1), day(2)).unwrap();
        let by_subject = TotalsQuery::new(range, &[Dimension::Subject]).unwrap();
        assert_eq!(
            by_subject.group(counts),
            [
                GroupedTotal::new(9),
                GroupedTotal::new(8).with_subject(Some(acme)),
            ]
        );
        let five = TotalsQuery::new(range, &[Dimension::Day, Dimension::Status])
            .unwrap()
            .status(StatusFilter::Class(StatusClass::ServerError));
        assert_eq!(
            five.group(counts),
            [
                GroupedTotal::new(2).with_day(day(1)).with_status(Some(bad)),
                GroupedTotal::new(3).with_day(day(2)).with_status(Some(bad)),
            ]
        );
        let acme_only = TotalsQuery::new(range, &[Dimension::Endpoint])
            .unwrap()
            .subject(acme);
        assert_eq!(
            acme_only.group(counts),
            [GroupedTotal::new(8).with_endpoint(get)]
        );
    }
}
