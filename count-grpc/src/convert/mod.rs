//! Between count.v1's wire types and count-core's, in both directions. Every value
//! coming off the wire is checked here, where it enters, and refused naming its
//! field.

// The client and the server each use one direction; with one feature off, the other
// direction is unused.
#![cfg_attr(not(all(feature = "client", feature = "server")), allow(dead_code))]

pub(crate) mod codes;
pub(crate) mod totals;

use count_core::jiff::Timestamp;
use count_core::{
    Batch, BatchId, BucketCount, CountKey, DailyTotal, Day, Endpoint, Error, Method, Path, Period,
    PeriodTotal, Status, Subject, uuid::Uuid,
};

use crate::proto::count::v1 as pb;
use crate::proto::google::r#type::Date;

/// A wire method number of `field` to a [`Method`]; unknown numbers are refused.
pub(crate) fn method(field: &'static str, number: i32) -> Result<Method, Error> {
    Method::from_number(number).map_err(|e| renamed(e, field, number.to_string()))
}

/// A required date of `field`: missing or impossible dates are refused.
pub(crate) fn day(field: &'static str, date: Option<Date>) -> Result<Day, Error> {
    let date = date.ok_or_else(|| Error::invalid(field, "missing", "a date is required"))?;
    let (month, d) = month_and_day(field, date)?;
    Day::new(date.year, month, d).map_err(|e| renamed(e, field, shown_date(date)))
}

/// `GetPeriodTotals`' partly set date (day and month 0: a year; day 0: a month).
pub(crate) fn period(field: &'static str, date: Option<Date>) -> Result<Period, Error> {
    let date = date.ok_or_else(|| Error::invalid(field, "missing", "a date is required"))?;
    let (month, d) = month_and_day(field, date)?;
    Period::from_parts(date.year, month, d).map_err(|e| renamed(e, field, shown_date(date)))
}

fn month_and_day(field: &'static str, date: Date) -> Result<(u32, u32), Error> {
    match (u32::try_from(date.month), u32::try_from(date.day)) {
        (Ok(month), Ok(day)) => Ok((month, day)),
        _ => Err(Error::invalid(
            field,
            shown_date(date),
            "month and day cannot be negative",
        )),
    }
}

fn shown_date(date: Date) -> String {
    format!("{:04}-{:02}-{:02}", date.year, date.month, date.day)
}

/// A required timestamp of `field`, in count's supported range.
pub(crate) fn timestamp(
    field: &'static str,
    at: Option<prost_types::Timestamp>,
) -> Result<Timestamp, Error> {
    let at = at.ok_or_else(|| Error::invalid(field, "missing", "a timestamp is required"))?;
    let shown = || format!("{}s {}ns", at.seconds, at.nanos);
    if !(0..1_000_000_000).contains(&at.nanos) {
        // google.protobuf.Timestamp: nanos are never negative, even before 1970.
        return Err(Error::invalid(
            field,
            shown(),
            "nanos must be 0 to 999,999,999",
        ));
    }
    let parsed = Timestamp::new(at.seconds, at.nanos)
        .map_err(|e| Error::invalid(field, shown(), e.to_string()))?;
    count_core::backend::check_timestamp(parsed).map_err(|e| renamed(e, field, shown()))
}

/// A count's key as it came off the wire: every field checked by the rules of
/// [`Path::new`] and [`Subject::new`], its texts not interned. Interning waits until
/// the counts are accepted, so that input that is then refused cannot fill the
/// process-wide interners.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WireKey<'a> {
    pub(crate) method: Method,
    pub(crate) path: &'a str,
    pub(crate) subject: Option<&'a str>,
    pub(crate) status: Option<Status>,
}

/// Checks a count's key fields (`method`, `path`, `subject`, `status`) without
/// interning its texts.
pub(crate) fn wire_key<'a>(
    method_number: i32,
    path: &'a str,
    subject: Option<&'a str>,
    status_code: Option<i32>,
) -> Result<WireKey<'a>, Error> {
    let method = method("method", method_number)?;
    Path::check(path).map_err(|e| renamed_keeping_value(e, "path"))?;
    if let Some(text) = subject {
        Subject::check(text).map_err(|e| renamed_keeping_value(e, "subject"))?;
    }
    Ok(WireKey {
        method,
        path,
        subject,
        status: status("status", method, status_code)?,
    })
}

impl WireKey<'_> {
    /// The key with its texts interned.
    ///
    /// # Errors
    ///
    /// [`Error::LimitReached`] when a new path or subject cannot be interned (the
    /// texts were checked already).
    pub(crate) fn interned(&self) -> Result<CountKey, Error> {
        Ok(CountKey::of(
            self.method,
            Path::new(self.path)?,
            self.subject.map(Subject::new).transpose()?,
            self.status,
        ))
    }
}

impl std::fmt::Display for WireKey<'_> {
    /// As [`CountKey`] shows itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if let Some(subject) = self.subject {
            write!(f, " subject={subject}")?;
        }
        if let Some(status) = self.status {
            write!(f, " status={status}")?;
        }
        Ok(())
    }
}

/// An optional status of `field` for `method`: absent is "not recorded"; a gRPC code
/// outside 0..=16 for `GRPC`, an HTTP code outside 100..=599 for the others, is
/// refused.
pub(crate) fn status(
    field: &'static str,
    method: Method,
    code: Option<i32>,
) -> Result<Option<Status>, Error> {
    code.map(|code| {
        Status::for_method(method, code.into()).map_err(|e| renamed_keeping_value(e, field))
    })
    .transpose()
}

/// A [`Day`] on the wire.
pub(crate) fn date(day: Day) -> Date {
    Date {
        year: day.year(),
        month: day.month() as i32,
        day: day.day() as i32,
    }
}

pub(crate) fn wire_timestamp(at: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.as_second(),
        nanos: at.subsec_nanosecond(),
    }
}

/// A period back to `GetPeriodTotals`' partly set date; `None` for a week or a
/// cycle, which it cannot name (ask for their days instead).
pub(crate) fn period_date(period: Period) -> Option<Date> {
    match period {
        Period::Day(day) => Some(date(day)),
        Period::Month { year, month, .. } => Some(Date {
            year,
            month: month as i32,
            day: 0,
        }),
        Period::Year { year, .. } => Some(Date {
            year,
            month: 0,
            day: 0,
        }),
        _ => None,
    }
}

pub(crate) fn daily_count(total: &DailyTotal) -> pb::MethodCount {
    pb::MethodCount {
        method: total.endpoint.method.number(),
        path: total.endpoint.path.as_str().to_owned(),
        count: wire_total(total.total),
        date: Some(date(total.day)),
    }
}

pub(crate) fn period_count(total: &PeriodTotal) -> pb::MethodCount {
    pb::MethodCount {
        method: total.endpoint.method.number(),
        path: total.endpoint.path.as_str().to_owned(),
        count: wire_total(total.total),
        date: None,
    }
}

/// A total on the wire (int64, as the Go server has it). Totals saturate at
/// `i64::MAX` in every backend (the contract).
pub(crate) fn wire_total(total: u64) -> i64 {
    i64::try_from(total).unwrap_or(i64::MAX)
}

pub(crate) fn daily_total(count: pb::MethodCount) -> Result<DailyTotal, Error> {
    Ok(DailyTotal::new(
        day("date", count.date)?,
        endpoint(count.method, &count.path)?,
        total(count.count)?,
    ))
}

pub(crate) fn period_total(count: pb::MethodCount) -> Result<PeriodTotal, Error> {
    Ok(PeriodTotal::new(
        endpoint(count.method, &count.path)?,
        total(count.count)?,
    ))
}

pub(crate) fn total(count: i64) -> Result<u64, Error> {
    u64::try_from(count).map_err(|_| Error::invalid("count", count, "cannot be negative"))
}

/// An endpoint a server reported, from its wire method number and path. The path
/// passed the server's checks when it was counted, so only its rules apply here, not
/// the interner's cap: a full interner must not break reports.
pub(crate) fn endpoint(method_number: i32, path: &str) -> Result<Endpoint, Error> {
    Ok(Endpoint::new(
        method("method", method_number)?,
        Path::from_storage(path)?,
    ))
}

pub(crate) fn wire_endpoint(endpoint: Endpoint) -> pb::Endpoint {
    pb::Endpoint {
        method: endpoint.method.number(),
        path: endpoint.path.as_str().to_owned(),
    }
}

/// `AddCounts`' batch id: present, 16 bytes, not the nil UUID, seq at most
/// `i64::MAX`.
pub(crate) fn batch_id(id: Option<pb::BatchId>) -> Result<BatchId, Error> {
    let id = id.ok_or_else(|| Error::invalid("batch_id", "missing", "a batch id is required"))?;
    let writer = Uuid::from_slice(&id.writer)
        .map_err(|_| Error::invalid("batch_id.writer", &id.writer, "must be a UUID of 16 bytes"))?;
    if writer.is_nil() {
        return Err(Error::invalid(
            "batch_id.writer",
            writer.to_string(),
            "the writer id may not be the nil UUID: make one random UUID per writer",
        ));
    }
    if id.seq > i64::MAX as u64 {
        return Err(Error::invalid(
            "batch_id.seq",
            id.seq,
            format!("must be at most {}", i64::MAX),
        ));
    }
    Ok(BatchId {
        writer,
        seq: id.seq,
    })
}

pub(crate) fn wire_batch_id(id: BatchId) -> pb::BatchId {
    pb::BatchId {
        writer: id.writer.as_bytes().to_vec(),
        seq: id.seq,
    }
}

/// One of `AddCounts`' counts, every field checked (`n` by `Batch::new`'s rule), its
/// texts not interned.
pub(crate) fn checked_bucket_count(
    count: &pb::BucketCount,
) -> Result<(WireKey<'_>, Timestamp, u64), Error> {
    let key = wire_key(
        count.method,
        &count.path,
        count.subject.as_deref(),
        count.status,
    )?;
    if count.n == 0 || count.n > Batch::MAX_COUNT {
        return Err(Error::invalid(
            "n",
            count.n,
            format!(
                "the count for {key} must be 1 to {} (2^40)",
                Batch::MAX_COUNT
            ),
        ));
    }
    Ok((key, timestamp("bucket", count.bucket)?, count.n))
}

pub(crate) fn wire_bucket_count(count: &BucketCount) -> pb::BucketCount {
    pb::BucketCount {
        method: count.key.endpoint.method.number(),
        path: count.key.endpoint.path.as_str().to_owned(),
        bucket: Some(wire_timestamp(count.bucket)),
        n: count.n,
        subject: count.key.subject.map(|s| s.as_str().to_owned()),
        status: count.key.status.map(|s| i32::from(s.code())),
    }
}

/// An invalid-input error re-labelled with the wire field and value it came from.
pub(crate) fn renamed(error: Error, field: &'static str, shown: String) -> Error {
    match error {
        Error::InvalidInput { rule, .. } => Error::invalid(field, shown, rule),
        other => other,
    }
}

/// An invalid-input error re-labelled with the wire field, keeping the value as the
/// model showed it.
pub(crate) fn renamed_keeping_value(error: Error, field: &'static str) -> Error {
    match error {
        Error::InvalidInput { value, rule, .. } => Error::InvalidInput { field, value, rule },
        other => other,
    }
}
