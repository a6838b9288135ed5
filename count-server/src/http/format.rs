//! The forms of a totals answer: JSON and CSV (one writer each, shared by
//! `/api/v1/totals` and the operator commands so that both print the same bytes),
//! and the operator commands' table.
//!
//! Each row holds only the grouped fields, in this order: `day` (`"2026-11-27"`),
//! `method` and `path` (grouped by endpoint), `subject` (text; `null` / an empty CSV
//! field for counts made without one), `status` (an integer; `null` / empty when it
//! was not recorded), then `total`.

use count_core::{Dimension, GroupedTotal, TotalsQuery};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// The form of a totals answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
#[non_exhaustive]
pub(crate) enum Format {
    /// Aligned columns with thousands separators and a total line, for people (the
    /// operator commands' default; not served over HTTP).
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// A JSON array of row objects (the HTTP API's default).
    Json,
}

impl Format {
    /// The form an `Accept` header asks for: CSV when it names `text/csv` before (or
    /// without) `application/json`, else JSON.
    pub(crate) fn from_accept(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Json;
        };
        let position = |media: &str| {
            accept
                .split(',')
                .position(|item| item.trim().to_ascii_lowercase().starts_with(media))
        };
        match (position("text/csv"), position("application/json")) {
            (Some(csv), Some(json)) if csv < json => Format::Csv,
            (Some(_), None) => Format::Csv,
            _ => Format::Json,
        }
    }

    /// The answer's media type.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Table => "text/plain; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8; header=present",
            Format::Json => "application/json",
        }
    }

    /// The answer to `query` in this form.
    pub(crate) fn render(self, query: &TotalsQuery, rows: &[GroupedTotal]) -> String {
        match self {
            Format::Table => crate::cli::table::render(query, rows),
            Format::Csv => totals_csv(query, rows),
            Format::Json => totals_json(query, rows),
        }
    }
}

/// The answer to `query` as JSON: a top-level array of row objects (`[]` when
/// nothing was counted).
///
/// ```
/// use count_core::{Day, Dimension, GroupedTotal, TotalsQuery, DateRange};
///
/// let day = Day::new(2026, 11, 27)?;
/// let query = TotalsQuery::new(DateRange::day(day), &[Dimension::Day, Dimension::Subject])?;
/// let rows = [GroupedTotal::new(3).with_day(day)];
/// assert_eq!(
///     count_server::http::totals_json(&query, &rows),
///     r#"[{"day":"2026-11-27","subject":null,"total":3}]"#
/// );
/// # Ok::<(), count_core::Error>(())
/// ```
pub fn totals_json(query: &TotalsQuery, rows: &[GroupedTotal]) -> String {
    let rows: Vec<JsonRow<'_>> = rows.iter().map(|row| JsonRow { query, row }).collect();
    // Serialising strings, integers and nulls into a String cannot fail.
    serde_json::to_string(&rows).unwrap_or_else(|_| "[]".to_owned())
}

/// The answer to `query` as CSV (RFC 4180: a header row, CRLF line ends, fields
/// quoted when they hold a comma, a quote or a line break, quotes doubled). Columns:
/// `day,method,path,subject,status,total`, keeping only the grouped ones.
///
/// Paths and subjects come from clients, and a spreadsheet takes a cell starting
/// with `=`, `+`, `-`, `@`, a tab or a carriage return for a formula. Such a field is
/// written with a single quote `'` in front (OWASP's advice against CSV injection),
/// so a spreadsheet shows it as text: the path `=1+1` is the field `'=1+1`. A
/// program reading the CSV sees that quote; the JSON answer holds the texts as they
/// are.
///
/// ```
/// use count_core::{Day, Dimension, Endpoint, GroupedTotal, Method, TotalsQuery, DateRange};
///
/// let day = Day::new(2026, 11, 27)?;
/// let query = TotalsQuery::new(DateRange::day(day), &[Dimension::Endpoint])?;
/// let users = Endpoint::parse(Method::Get, "/users/{id},x")?;
/// let rows = [GroupedTotal::new(7).with_endpoint(users)];
/// assert_eq!(
///     count_server::http::totals_csv(&query, &rows),
///     "method,path,total\r\nGET,\"/users/{id},x\",7\r\n"
/// );
/// # Ok::<(), count_core::Error>(())
/// ```
pub fn totals_csv(query: &TotalsQuery, rows: &[GroupedTotal]) -> String {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(64 + rows.len() * 48));
    let header: Vec<&str> = columns(query).collect();
    // Writing to a Vec cannot fail.
    let _ = out.write_record(&header);
    let mut fields: Vec<String> = Vec::with_capacity(header.len());
    for row in rows {
        fields.clear();
        for column in columns(query) {
            fields.push(spreadsheet_safe(match column {
                "day" => row.day.map(|d| d.to_string()).unwrap_or_default(),
                "hour" => row.hour.map(|h| h.in_zone(&query.zone)).unwrap_or_default(),
                "method" => row
                    .endpoint
                    .map(|e| e.method.as_str().to_owned())
                    .unwrap_or_default(),
                "path" => row
                    .endpoint
                    .map(|e| e.path.as_str().to_owned())
                    .unwrap_or_default(),
                "subject" => row
                    .subject
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                "status" => row.status.map(|s| s.code().to_string()).unwrap_or_default(),
                _ => row.total.to_string(),
            }));
        }
        let _ = out.write_record(&fields);
    }
    let bytes = out.into_inner().unwrap_or_default();
    // Every field is a `&str` or a number: the output is UTF-8.
    String::from_utf8(bytes).unwrap_or_default()
}

/// `field` with a `'` in front when a spreadsheet would take it for a formula.
fn spreadsheet_safe(field: String) -> String {
    if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{field}")
    } else {
        field
    }
}

/// The columns of `query`'s answer, in their fixed order.
fn columns(query: &TotalsQuery) -> impl Iterator<Item = &'static str> + '_ {
    let grouped = |dimension| query.groups(dimension);
    [
        ("day", grouped(Dimension::Day)),
        ("hour", grouped(Dimension::Hour)),
        ("method", grouped(Dimension::Endpoint)),
        ("path", grouped(Dimension::Endpoint)),
        ("subject", grouped(Dimension::Subject)),
        ("status", grouped(Dimension::Status)),
        ("total", true),
    ]
    .into_iter()
    .filter_map(|(name, shown)| shown.then_some(name))
}

/// One row as a JSON object with only the grouped fields.
struct JsonRow<'a> {
    query: &'a TotalsQuery,
    row: &'a GroupedTotal,
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (query, row) = (self.query, self.row);
        let mut map = serializer.serialize_map(None)?;
        if query.groups(Dimension::Day) {
            map.serialize_entry("day", &row.day.map(|d| d.to_string()))?;
        }
        if query.groups(Dimension::Hour) {
            map.serialize_entry("hour", &row.hour.map(|h| h.in_zone(&query.zone)))?;
        }
        if query.groups(Dimension::Endpoint) {
            map.serialize_entry("method", &row.endpoint.map(|e| e.method.as_str()))?;
            map.serialize_entry("path", &row.endpoint.map(|e| e.path.as_str()))?;
        }
        if query.groups(Dimension::Subject) {
            map.serialize_entry("subject", &row.subject.map(|s| s.as_str()))?;
        }
        if query.groups(Dimension::Status) {
            map.serialize_entry("status", &row.status.map(|s| s.code()))?;
        }
        map.serialize_entry("total", &row.total)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::spreadsheet_safe;

    /// Tab and carriage return are refused in paths and subjects, so no answer can
    /// show this rule on them (tests/http_api.rs shows the others).
    #[test]
    fn cells_starting_with_a_tab_or_return_start_with_a_quote() {
        assert_eq!(spreadsheet_safe("\tx".to_owned()), "'\tx");
        assert_eq!(spreadsheet_safe("\rx".to_owned()), "'\rx");
        assert_eq!(spreadsheet_safe("x=1".to_owned()), "x=1");
        assert_eq!(spreadsheet_safe("".to_owned()), "");
    }
}
