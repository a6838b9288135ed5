//! Between count.v1's wire types and count-core's, in both directions. Every value
//! coming off the wire is checked here, where it enters.

use count_core::jiff::Timestamp;
use count_core::{
    BatchId, BucketCount, DailyTotal, Day, Error, Method, Path, Period, PeriodTotal, uuid::Uuid,
};
use tonic::{Code, Status};

use crate::proto::count::v1 as pb;
use crate::proto::google::r#type::Date;

/// A wire method number to a [`Method`]; unknown numbers are refused.
pub(crate) fn method(number: i32) -> Result<Method, Error> {
    Method::from_number(number)
}

/// A [`Method`] to its wire number.
pub(crate) fn method_number(method: Method) -> i32 {
    method.number()
}

/// A required date of `field`: missing or impossible dates are refused.
pub(crate) fn day(field: &'static str, date: Option<Date>) -> Result<Day, Error> {
    let date = date.ok_or_else(|| Error::invalid(field, "missing", "a date is required"))?;
    let shown = || format!("{:04}-{:02}-{:02}", date.year, date.month, date.day);
    let (Ok(month), Ok(d)) = (u32::try_from(date.month), u32::try_from(date.day)) else {
        return Err(Error::invalid(
            field,
            shown(),
            "month and day cannot be negative",
        ));
    };
    Day::new(date.year, month, d).map_err(|e| renamed(e, field, shown()))
}

/// `GetPeriodTotals`' partly set date.
pub(crate) fn period(date: Option<Date>) -> Result<Period, Error> {
    let date = date.ok_or_else(|| Error::invalid("period", "missing", "a date is required"))?;
    let shown = format!("{:04}-{:02}-{:02}", date.year, date.month, date.day);
    let (Ok(month), Ok(d)) = (u32::try_from(date.month), u32::try_from(date.day)) else {
        return Err(Error::invalid(
            "period",
            shown,
            "month and day cannot be negative",
        ));
    };
    Period::from_parts(date.year, month, d).map_err(|e| renamed(e, "period", shown))
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
    count_core::check_timestamp(parsed).map_err(|e| renamed(e, field, shown()))
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

/// A period back to `GetPeriodTotals`' partly set date.
pub(crate) fn period_date(period: Period) -> Date {
    match period {
        Period::Day(day) => date(day),
        Period::Month { year, month } => Date {
            year,
            month: month as i32,
            day: 0,
        },
        Period::Year(year) => Date {
            year,
            month: 0,
            day: 0,
        },
    }
}

pub(crate) fn daily_count(total: &DailyTotal) -> pb::MethodCount {
    pb::MethodCount {
        method: method_number(total.endpoint.method),
        path: total.endpoint.path.as_str().to_owned(),
        count: saturating_i64(total.total),
        date: Some(date(total.day)),
    }
}

pub(crate) fn period_count(total: &PeriodTotal) -> pb::MethodCount {
    pb::MethodCount {
        method: method_number(total.endpoint.method),
        path: total.endpoint.path.as_str().to_owned(),
        count: saturating_i64(total.total),
        date: None,
    }
}

/// A total on the wire (int64, as the Go server has it). Totals are sums of i64
/// rows in every backend; beyond i64 they could not have been stored.
fn saturating_i64(total: u64) -> i64 {
    i64::try_from(total).unwrap_or(i64::MAX)
}

pub(crate) fn daily_total(count: pb::MethodCount) -> Result<DailyTotal, Error> {
    Ok(DailyTotal {
        day: day("date", count.date)?,
        endpoint: endpoint(count.method, &count.path)?,
        total: total(count.count)?,
    })
}

pub(crate) fn period_total(count: pb::MethodCount) -> Result<PeriodTotal, Error> {
    Ok(PeriodTotal {
        endpoint: endpoint(count.method, &count.path)?,
        total: total(count.count)?,
    })
}

fn total(count: i64) -> Result<u64, Error> {
    u64::try_from(count).map_err(|_| Error::invalid("count", count, "cannot be negative"))
}

fn endpoint(method_number: i32, path: &str) -> Result<count_core::Endpoint, Error> {
    Ok(count_core::Endpoint::new(
        method(method_number)?,
        Path::new(path)?,
    ))
}

pub(crate) fn batch_id(id: Option<pb::BatchId>) -> Result<BatchId, Error> {
    let id = id.ok_or_else(|| Error::invalid("batch_id", "missing", "a batch id is required"))?;
    let writer = Uuid::from_slice(&id.writer)
        .map_err(|_| Error::invalid("batch_id.writer", &id.writer, "must be a UUID of 16 bytes"))?;
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

pub(crate) fn bucket_count(count: pb::BucketCount) -> Result<BucketCount, Error> {
    Ok(BucketCount {
        endpoint: endpoint(count.method, &count.path)?,
        bucket: timestamp("bucket", count.bucket)?,
        n: count.n,
    })
}

pub(crate) fn wire_bucket_count(count: &BucketCount) -> pb::BucketCount {
    pb::BucketCount {
        method: method_number(count.endpoint.method),
        path: count.endpoint.path.as_str().to_owned(),
        bucket: Some(wire_timestamp(count.bucket)),
        n: count.n,
    }
}

/// An invalid-input error re-labelled with the wire field and value it came from.
fn renamed(error: Error, field: &'static str, shown: String) -> Error {
    match error {
        Error::InvalidInput { rule, .. } => Error::invalid(field, shown, rule),
        other => other,
    }
}

/// A count error as a gRPC status, by what the client can do about it.
pub(crate) fn status(error: Error) -> Status {
    let code = match &error {
        Error::InvalidInput { .. } => Code::InvalidArgument,
        Error::Unavailable { .. } | Error::Closed => Code::Unavailable,
        // The write may have applied: retrying with the same batch id is safe.
        Error::Ambiguous { .. } => Code::Unknown,
        Error::NotFound(_) => Code::NotFound,
        Error::LimitReached(_) => Code::ResourceExhausted,
        _ => Code::Internal,
    };
    Status::new(code, error.to_string())
}

/// A gRPC status from a server back to a count error. `write` says whether the call
/// wrote: then an unknown outcome is [`Error::Ambiguous`].
pub(crate) fn error(status: Status, write: bool) -> Error {
    let message = status.message().to_owned();
    match status.code() {
        Code::InvalidArgument => Error::Backend {
            message: format!("the server refused the request: {message}"),
            source: std::sync::Arc::new(status),
        },
        Code::NotFound => Error::NotFound(message),
        Code::ResourceExhausted => Error::LimitReached(message),
        Code::Unavailable => Error::Unavailable {
            message: format!("count server: {message}"),
            source: Some(std::sync::Arc::new(status)),
        },
        Code::Unknown | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted if write => {
            Error::Ambiguous {
                message: format!("count server: {message}"),
                source: Some(std::sync::Arc::new(status)),
            }
        }
        Code::Unknown | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => {
            Error::Unavailable {
                message: format!("count server: {message}"),
                source: Some(std::sync::Arc::new(status)),
            }
        }
        _ => Error::Backend {
            message: format!("count server: {message}"),
            source: std::sync::Arc::new(status),
        },
    }
}
