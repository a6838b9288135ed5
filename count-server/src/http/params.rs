//! The parameters of `GET /api/v1/totals`, read from the raw query string: every
//! value checked where it enters, every refusal naming the parameter and the rule.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use super::Format;
use count_core::{
    DateRange, Day, Dimension, Endpoint, Error, Method, Period, StatusFilter, Subject, TotalsQuery,
    Zone,
};

/// The parameters `/api/v1/totals` knows, in the order its docs list them.
const KNOWN: [&str; 9] = [
    "from", "to", "period", "tz", "group", "subject", "status", "endpoint", "format",
];

/// The longest parameter name shown back in an error.
const MAX_SHOWN_NAME: usize = 64;

/// A totals request: what to sum and in which form to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) struct TotalsParams {
    /// The range, grouping and filters.
    pub(crate) query: TotalsQuery,
    /// The parameter that gave the range: `period`, or `from` (with `to`).
    pub(crate) range_parameter: &'static str,
    /// The form asked for with `format=`; `None`: decided by the `Accept` header.
    pub(crate) format: Option<Format>,
}

/// A refused parameter: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) struct ParamError {
    /// The parameter's name (as given, for an unknown one; shortened if long).
    pub(crate) parameter: String,
    /// What is wrong and what the rule is.
    pub(crate) message: String,
    /// True when the request was fine but the server cannot serve it now (a filter
    /// value it has no room left to look up): answer 503, not 400.
    pub(crate) unavailable: bool,
}

impl ParamError {
    fn new(parameter: impl Into<String>, message: impl Into<String>) -> ParamError {
        ParamError {
            parameter: parameter.into(),
            message: message.into(),
            unavailable: false,
        }
    }

    /// A refusal of `parameter`'s value by count-core, rephrased to name the parameter.
    fn from_core(parameter: &str, error: Error) -> ParamError {
        match error {
            Error::InvalidInput { value, rule, .. } => {
                ParamError::new(parameter, format!("invalid {parameter} {value}: {rule}"))
            }
            Error::LimitReached(why) => ParamError {
                unavailable: true,
                ..ParamError::new(parameter, format!("cannot look up this {parameter}: {why}"))
            },
            other => ParamError::new(parameter, format!("invalid {parameter}: {other}")),
        }
    }
}

impl ParamError {
    /// The backend's refusal of a report it cannot answer exactly (hours or a zone's
    /// days no longer kept, a zone's clock off the quarter hour), as a refusal of the
    /// parameter that asked for it (`range_parameter` for the range); any other
    /// error is the backend's, given back.
    pub(crate) fn of_report(error: Error, range_parameter: &str) -> Result<ParamError, Error> {
        match &error {
            Error::InvalidInput { field: "range", .. } => {
                Ok(ParamError::from_core(range_parameter, error))
            }
            Error::InvalidInput {
                field: "time zone", ..
            } => Ok(ParamError::from_core("tz", error)),
            _ => Err(error),
        }
    }
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParamError {}

impl TotalsParams {
    /// Reads `raw`, the query string after `?` (percent-encoded, `+` for a space).
    ///
    /// `from=YYYY-MM-DD&to=YYYY-MM-DD` (both included) or
    /// `period=YYYY|YYYY-MM|YYYY-MM-DD|YYYY-Www|cycle/N[/-K|/YYYY-MM-DD]`, days of the
    /// zone `tz=` (an IANA name; UTC when absent); `group=` a comma-separated list of
    /// `day`, `hour`, `endpoint` (the default), `subject`, `status`; filters
    /// `subject=`, `status=` (a code, or a class such as `5xx`), `endpoint=<METHOD>
    /// <path>`; `format=json|csv`.
    ///
    /// # Errors
    ///
    /// A [`ParamError`] naming the first parameter that is unknown, given twice,
    /// missing, not decodable, or whose value breaks its rule.
    pub(crate) fn parse(raw: &str) -> Result<TotalsParams, ParamError> {
        let mut given: [Option<String>; KNOWN.len()] = Default::default();
        for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(name).map_err(|rule| {
                ParamError::new(shorten(&String::from_utf8_lossy(name.as_bytes())), rule)
            })?;
            let Some(slot) = KNOWN.iter().position(|known| *known == name) else {
                return Err(ParamError::new(
                    shorten(&name),
                    format!(
                        "unknown parameter {:?}; expected from, to, period, tz, group, subject, status, endpoint or format",
                        shorten(&name)
                    ),
                ));
            };
            let value = decode(value).map_err(|rule| ParamError::new(KNOWN[slot], rule))?;
            if given[slot].is_some() {
                return Err(ParamError::new(
                    KNOWN[slot],
                    format!("{} is given more than once", KNOWN[slot]),
                ));
            }
            given[slot] = Some(value.into_owned());
        }
        let [
            from,
            to,
            period,
            tz,
            group,
            subject,
            status,
            endpoint,
            format,
        ] = given;

        let zone = tz
            .as_deref()
            .map(Zone::new)
            .transpose()
            .map_err(|e| ParamError::from_core("tz", e))?
            .unwrap_or_default();
        let today = zone.day_of(count_core::jiff::Timestamp::now().as_second());
        let range = range(from.as_deref(), to.as_deref(), period.as_deref(), today)?;
        let dimensions = group_by(group.as_deref())?;
        let mut query = TotalsQuery::new(range, &dimensions)
            .map_err(|e| ParamError::from_core("group", e))?
            .in_zone(zone);
        if let Some(subject) = subject {
            Subject::check(&subject).map_err(|e| ParamError::from_core("subject", e))?;
            query = query.subject(subject);
        }
        if let Some(status) = status {
            query = query.status(
                StatusFilter::from_str(&status).map_err(|e| ParamError::from_core("status", e))?,
            );
        }
        if let Some(endpoint) = endpoint {
            let (method, path) = parse_endpoint(&endpoint)?;
            query = query.endpoint_at(method, path);
        }
        let format = format.as_deref().map(parse_format).transpose()?;
        let range_parameter = if period.is_some() { "period" } else { "from" };
        Ok(TotalsParams {
            query,
            range_parameter,
            format,
        })
    }
}

/// The days asked for: `from` and `to`, or `period`.
fn range(
    from: Option<&str>,
    to: Option<&str>,
    period: Option<&str>,
    today: Day,
) -> Result<DateRange, ParamError> {
    let day =
        |name: &str, text: &str| Day::from_str(text).map_err(|e| ParamError::from_core(name, e));
    match (from, to, period) {
        (None, None, Some(period)) => Period::parse_on(period, today)
            .map(Period::range)
            .map_err(|e| ParamError::from_core("period", e)),
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => Err(ParamError::new(
            "period",
            "give either period or from and to, not both",
        )),
        (Some(from), Some(to), None) => {
            let (start, end) = (day("from", from)?, day("to", to)?);
            DateRange::new(start, end).map_err(|_| {
                ParamError::new(
                    "from",
                    format!("from {from} is after to {to}: the range is from..=to"),
                )
            })
        }
        (Some(_), None, None) => Err(ParamError::new(
            "to",
            "missing: give to (YYYY-MM-DD, included) with from",
        )),
        (None, Some(_), None) => Err(ParamError::new(
            "from",
            "missing: give from (YYYY-MM-DD, included) with to",
        )),
        (None, None, None) => Err(ParamError::new(
            "period",
            "missing: give period (YYYY, YYYY-MM, YYYY-MM-DD, YYYY-Www or cycle/N), or from and to (YYYY-MM-DD, both included)",
        )),
    }
}

/// `group=`: comma-separated dimensions, each at most once; `endpoint` when absent.
fn group_by(group: Option<&str>) -> Result<Vec<Dimension>, ParamError> {
    let Some(group) = group else {
        return Ok(vec![Dimension::Endpoint]);
    };
    let mut dimensions = Vec::with_capacity(Dimension::ALL.len());
    for item in group.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(ParamError::new(
                "group",
                format!(
                    "invalid group {:?}: expected a comma-separated list of day, hour, endpoint, subject or status",
                    shorten(group)
                ),
            ));
        }
        let dimension = Dimension::from_str(item).map_err(|e| ParamError::from_core("group", e))?;
        if dimensions.contains(&dimension) {
            return Err(ParamError::new(
                "group",
                format!("invalid group: {dimension} is named more than once"),
            ));
        }
        dimensions.push(dimension);
    }
    Ok(dimensions)
}

/// `endpoint=<METHOD> <path>`, as the dashboard sends it: `GET /users/{id}`.
fn parse_endpoint(text: &str) -> Result<(Method, &str), ParamError> {
    Endpoint::split_text(text).map_err(|e| ParamError::from_core("endpoint", e))
}

fn parse_format(text: &str) -> Result<Format, ParamError> {
    match text {
        "json" => Ok(Format::Json),
        "csv" => Ok(Format::Csv),
        // A table is for a terminal (the CLI's), not the API.
        other => Err(ParamError::new(
            "format",
            format!("invalid format {:?}: expected json or csv", shorten(other)),
        )),
    }
}

/// Percent-decodes one name or value of a query string (`+` is a space), refusing a
/// `%` not followed by two hex digits and bytes that are not UTF-8.
pub(super) fn decode(text: &str) -> Result<Cow<'_, str>, String> {
    let bytes = text.as_bytes();
    if let Some(at) = bytes.iter().enumerate().position(|(i, &b)| {
        b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    }) {
        return Err(format!(
            "malformed percent-encoding at byte {at}: a % must be followed by two hex digits"
        ));
    }
    let spaced: Cow<'_, [u8]> = if bytes.contains(&b'+') {
        Cow::Owned(
            bytes
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(bytes)
    };
    let decoded: Cow<'_, [u8]> = percent_encoding::percent_decode(&spaced).into();
    match String::from_utf8(decoded.into_owned()) {
        Ok(text) => Ok(Cow::Owned(text)),
        Err(_) => Err("is not UTF-8 once percent-decoded".to_owned()),
    }
}

/// `text` cut to a length fit for an error message.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_SHOWN_NAME) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> ParamError {
        TotalsParams::parse(raw).unwrap_err()
    }

    #[test]
    fn decoding_handles_plus_percent_and_refuses_broken_escapes() {
        assert_eq!(
            decode("GET+%2Fusers%2F%7Bid%7D").unwrap(),
            "GET /users/{id}"
        );
        assert_eq!(decode("caf%C3%A9").unwrap(), "café");
        assert!(decode("%zz").unwrap_err().contains("two hex digits"));
        assert!(decode("a%2").unwrap_err().contains("byte 1"));
        assert!(decode("%FF").unwrap_err().contains("UTF-8"));
    }

    #[test]
    fn the_range_is_from_and_to_or_a_period() {
        let params = TotalsParams::parse("from=2026-11-01&to=2026-11-30").unwrap();
        assert_eq!(params.query.range.start().to_string(), "2026-11-01");
        assert_eq!(params.query.range.end().to_string(), "2026-11-30");
        let year = TotalsParams::parse("period=2026").unwrap();
        assert_eq!(year.query.range.end().to_string(), "2026-12-31");
        // Every refusal, through HTTP: tests/http_api.rs.
    }

    #[test]
    fn unknown_repeated_and_badly_formed_parameters_are_named() {
        let error = refused("period=2026&tenant=x");
        assert_eq!(error.parameter, "tenant");
        assert!(error.message.contains("unknown parameter"), "{error}");
        let long = format!("period=2026&{}=1", "n".repeat(10_000));
        let error = refused(&long);
        assert!(error.parameter.chars().count() <= MAX_SHOWN_NAME + 1);
        assert!(error.message.len() < 300, "{}", error.message);
        let error = refused("period=2026&period=2025");
        assert_eq!(error.parameter, "period");
        assert!(error.message.contains("more than once"), "{error}");
        let error = refused("period=2026&subject=%E0%A4");
        assert_eq!(error.parameter, "subject");
        assert!(error.message.contains("UTF-8"), "{error}");
        // Empty pairs are skipped, as browsers make them.
        assert!(TotalsParams::parse("&period=2026&&").is_ok());
    }

    #[test]
    fn group_filters_and_format() {
        let params =
            TotalsParams::parse("period=2026-11&group=day,+subject&status=5xx&format=csv").unwrap();
        assert!(params.query.groups(Dimension::Day) && params.query.groups(Dimension::Subject));
        assert!(!params.query.groups(Dimension::Endpoint));
        assert_eq!(params.format, Some(Format::Csv));
        let endpoint =
            TotalsParams::parse("period=2026&endpoint=GET%20%2Fusers%2F%7Bid%7D").unwrap();
        assert_eq!(
            endpoint.query.endpoint,
            Some((Method::Get, "/users/{id}".into()))
        );
        let error = refused("period=2026&group=day,day");
        assert_eq!(
            (error.parameter.as_str(), error.unavailable),
            ("group", false)
        );
    }

    #[test]
    fn accept_chooses_csv_only_when_it_comes_first() {
        assert_eq!(Format::from_accept(None), Format::Json);
        assert_eq!(Format::from_accept(Some("text/csv")), Format::Csv);
        assert_eq!(
            Format::from_accept(Some("text/csv, application/json")),
            Format::Csv
        );
        assert_eq!(
            Format::from_accept(Some("application/json, text/csv")),
            Format::Json
        );
        assert_eq!(Format::from_accept(Some("*/*")), Format::Json);
    }
}
