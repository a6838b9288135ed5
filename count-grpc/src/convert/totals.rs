//! `GetTotals`: its request ⇄ a [`TotalsQuery`], its rows ⇄ [`GroupedTotal`]s.

use count_core::{
    DateRange, Dimension, Error, GroupedTotal, Hour, Path, Status, StatusClass, StatusFilter,
    Subject, TotalsQuery, Zone,
};

use super::{date, day, method, period, renamed_keeping_value, total, wire_total};
use crate::proto::count::v1 as pb;
use crate::proto::count::v1::get_totals_request::Range;
use crate::proto::count::v1::status_filter::Filter;

/// A `GetTotalsRequest`, every field checked and named when refused (the subject and
/// endpoint filters by the rules of [`Subject`] and [`Path`], kept as text).
pub(crate) fn query(request: pb::GetTotalsRequest) -> Result<TotalsQuery, Error> {
    let range = match request.range {
        Some(Range::Days(days)) => {
            let start = day("days.start_date", days.start_date)?;
            let end = day("days.end_date", days.end_date)?;
            DateRange::new(start, end).map_err(|e| renamed_keeping_value(e, "days"))?
        }
        Some(Range::Period(date)) => period("period", Some(date))?.range(),
        None => {
            return Err(Error::invalid(
                "range",
                "missing",
                "set days (a date range) or period (a year, month or day)",
            ));
        }
    };
    let group_by = dimensions(&request.group_by)?;
    let mut query =
        TotalsQuery::new(range, &group_by).map_err(|e| renamed_keeping_value(e, "group_by"))?;
    if let Some(subject) = request.subject.as_deref() {
        Subject::check(subject).map_err(|e| renamed_keeping_value(e, "subject"))?;
        query = query.subject(subject);
    }
    if let Some(filter) = request.status {
        query = query.status(status_filter(filter)?);
    }
    if let Some(endpoint) = request.endpoint {
        let method = method("endpoint.method", endpoint.method)?;
        Path::check(&endpoint.path).map_err(|e| renamed_keeping_value(e, "endpoint.path"))?;
        query = query.endpoint_at(method, &endpoint.path);
    }
    if let Some(name) = request.time_zone.as_deref() {
        query = query.in_zone(Zone::new(name).map_err(|e| renamed_keeping_value(e, "time_zone"))?);
    }
    Ok(query)
}

fn dimensions(numbers: &[i32]) -> Result<Vec<Dimension>, Error> {
    let mut dimensions = Vec::with_capacity(numbers.len());
    for &number in numbers {
        let dimension = match pb::Dimension::try_from(number) {
            Ok(pb::Dimension::Day) => Dimension::Day,
            Ok(pb::Dimension::Endpoint) => Dimension::Endpoint,
            Ok(pb::Dimension::Subject) => Dimension::Subject,
            Ok(pb::Dimension::Status) => Dimension::Status,
            Ok(pb::Dimension::Hour) => Dimension::Hour,
            Ok(pb::Dimension::Unspecified) | Err(_) => {
                return Err(Error::invalid(
                    "group_by",
                    number,
                    "expected DIMENSION_DAY (1), DIMENSION_ENDPOINT (2), DIMENSION_SUBJECT (3), \
                     DIMENSION_STATUS (4) or DIMENSION_HOUR (5)",
                ));
            }
        };
        if dimensions.contains(&dimension) {
            return Err(Error::invalid(
                "group_by",
                number,
                format!("{dimension} is named twice: name each dimension at most once"),
            ));
        }
        dimensions.push(dimension);
    }
    Ok(dimensions)
}

fn status_filter(filter: pb::StatusFilter) -> Result<StatusFilter, Error> {
    match filter.filter {
        Some(Filter::Code(code)) => Status::from_code(code.into())
            .map(StatusFilter::Code)
            .map_err(|e| renamed_keeping_value(e, "status.code")),
        Some(Filter::Class(number)) => {
            let class = match pb::StatusClass::try_from(number) {
                Ok(pb::StatusClass::StatusClass1xx) => StatusClass::Informational,
                Ok(pb::StatusClass::StatusClass2xx) => StatusClass::Success,
                Ok(pb::StatusClass::StatusClass3xx) => StatusClass::Redirection,
                Ok(pb::StatusClass::StatusClass4xx) => StatusClass::ClientError,
                Ok(pb::StatusClass::StatusClass5xx) => StatusClass::ServerError,
                Ok(pb::StatusClass::Unspecified) | Err(_) => {
                    return Err(Error::invalid(
                        "status.class",
                        number,
                        "expected a class: STATUS_CLASS_1XX (1) to STATUS_CLASS_5XX (5)",
                    ));
                }
            };
            Ok(StatusFilter::Class(class))
        }
        None => Err(Error::invalid(
            "status",
            "empty",
            "set code or class, or leave the status filter out",
        )),
    }
}

/// The wire request for `query` (its range as days).
pub(crate) fn request(query: &TotalsQuery) -> pb::GetTotalsRequest {
    pb::GetTotalsRequest {
        range: Some(Range::Days(pb::DateRange {
            start_date: Some(date(query.range.start())),
            end_date: Some(date(query.range.end())),
        })),
        group_by: query
            .group_by()
            .map(|d| match d {
                Dimension::Day => pb::Dimension::Day,
                Dimension::Hour => pb::Dimension::Hour,
                Dimension::Endpoint => pb::Dimension::Endpoint,
                Dimension::Subject => pb::Dimension::Subject,
                Dimension::Status => pb::Dimension::Status,
            } as i32)
            .collect(),
        subject: query.subject.as_deref().map(str::to_owned),
        status: query.status.map(|filter| pb::StatusFilter {
            filter: Some(match filter {
                StatusFilter::Code(status) => Filter::Code(status.code().into()),
                StatusFilter::Class(class) => Filter::Class(match class {
                    StatusClass::Informational => pb::StatusClass::StatusClass1xx,
                    StatusClass::Success => pb::StatusClass::StatusClass2xx,
                    StatusClass::Redirection => pb::StatusClass::StatusClass3xx,
                    StatusClass::ClientError => pb::StatusClass::StatusClass4xx,
                    StatusClass::ServerError => pb::StatusClass::StatusClass5xx,
                } as i32),
            }),
        }),
        endpoint: query.endpoint.as_ref().map(|(method, path)| pb::Endpoint {
            method: method.number(),
            path: path.to_string(),
        }),
        // UTC is the default: an older server then still answers.
        time_zone: (!query.zone.is_utc()).then(|| query.zone.name().to_owned()),
    }
}

/// A row on the wire: exactly the dimensions `query` groups by are set.
pub(crate) fn wire_row(query: &TotalsQuery, row: &GroupedTotal) -> pb::TotalsRow {
    pb::TotalsRow {
        date: query
            .groups(Dimension::Day)
            .then_some(row.day)
            .flatten()
            .map(date),
        endpoint: query
            .groups(Dimension::Endpoint)
            .then_some(row.endpoint)
            .flatten()
            .map(super::wire_endpoint),
        subject: query.groups(Dimension::Subject).then(|| pb::SubjectGroup {
            subject: row.subject.map(|s| s.as_str().to_owned()),
        }),
        status: query.groups(Dimension::Status).then(|| pb::StatusGroup {
            code: row.status.map(|s| s.code().into()),
        }),
        count: wire_total(row.total),
        hour: query
            .groups(Dimension::Hour)
            .then_some(row.hour)
            .flatten()
            .map(|hour| super::wire_timestamp(hour.start())),
    }
}

/// A wire row back, checked against `query`: a grouped dimension must be present, an
/// ungrouped one absent.
pub(crate) fn row(query: &TotalsQuery, row: pb::TotalsRow) -> Result<GroupedTotal, Error> {
    let mut total = GroupedTotal::new(total(row.count)?);
    let expect = |dimension: Dimension, present: bool| {
        if query.groups(dimension) == present {
            Ok(())
        } else {
            Err(Error::invalid(
                "rows",
                dimension.as_str(),
                if present {
                    "the server sent a dimension the query does not group by"
                } else {
                    "the server left out a dimension the query groups by"
                },
            ))
        }
    };
    expect(Dimension::Day, row.date.is_some())?;
    expect(Dimension::Hour, row.hour.is_some())?;
    expect(Dimension::Endpoint, row.endpoint.is_some())?;
    expect(Dimension::Subject, row.subject.is_some())?;
    expect(Dimension::Status, row.status.is_some())?;
    if let Some(d) = row.date {
        total = total.with_day(day("date", Some(d))?);
    }
    if let Some(at) = row.hour {
        let start = super::timestamp("hour", Some(at))?;
        total = total
            .with_hour(Hour::starting_at(start).map_err(|e| renamed_keeping_value(e, "hour"))?);
    }
    if let Some(endpoint) = row.endpoint {
        total = total.with_endpoint(super::endpoint(endpoint.method, &endpoint.path)?);
    }
    if let Some(group) = row.subject {
        total = total.with_subject(subject_from_storage(group.subject.as_deref())?);
    }
    if let Some(group) = row.status {
        let status = group
            .code
            .map(|code| Status::from_code(code.into()))
            .transpose()?;
        total = total.with_status(status);
    }
    Ok(total)
}

/// A subject a server reports: it passed the server's checks, so only the interner's
/// cap applies.
fn subject_from_storage(text: Option<&str>) -> Result<Option<count_core::Subject>, Error> {
    text.map(count_core::Subject::from_storage).transpose()
}
