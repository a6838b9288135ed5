//! Totals as a table for people: one column per grouped dimension, requests right
//! aligned with thousands separators, and a total line.

use count_core::backend::add_saturating;
use count_core::{Dimension, GroupedTotal, TotalsQuery};

/// The table of `rows`, the answer to `query`, ending with a newline.
pub(crate) fn render(query: &TotalsQuery, rows: &[GroupedTotal]) -> String {
    let range = query.range;
    let span = if range.start() == range.end() {
        format!("on {}", range.start())
    } else {
        format!("from {} to {}", range.start(), range.end())
    };
    if rows.is_empty() {
        return format!("No requests counted {span} ({}).\n", query.zone);
    }
    let columns = columns(query);
    let mut cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| cells_of(query, &columns, row))
        .collect();
    let total = rows
        .iter()
        .fold(0, |sum, row| add_saturating(sum, row.total));
    let mut total_line = vec![String::new(); columns.len()];
    total_line[0] = "TOTAL".to_owned();
    total_line.push(thousands(total));

    let headers: Vec<&str> = columns
        .iter()
        .map(|c| c.header())
        .chain(["REQUESTS"])
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for line in cells.iter().chain([&total_line]) {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let by = query
        .group_by()
        .map(Dimension::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = format!("Requests {span} ({}), by {by}\n\n", query.zone);
    let headers: Vec<String> = headers.into_iter().map(str::to_owned).collect();
    write_line(&mut out, &headers, &widths);
    cells.push(Vec::new()); // the rule above the total line
    for line in &cells {
        if line.is_empty() {
            let rule = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(rule));
            out.push('\n');
        } else {
            write_line(&mut out, line, &widths);
        }
    }
    write_line(&mut out, &total_line, &widths);
    out
}

/// A text column of the table (the requests column is always last).
#[derive(Debug, Clone, Copy)]
enum Column {
    Day,
    Hour,
    Method,
    Path,
    Subject,
    Status,
}

impl Column {
    fn header(self) -> &'static str {
        match self {
            Column::Day => "DAY",
            Column::Hour => "HOUR",
            Column::Method => "METHOD",
            Column::Path => "PATH",
            Column::Subject => "SUBJECT",
            Column::Status => "STATUS",
        }
    }
}

fn columns(query: &TotalsQuery) -> Vec<Column> {
    query
        .group_by()
        .flat_map(|dimension| match dimension {
            Dimension::Day => &[Column::Day][..],
            Dimension::Hour => &[Column::Hour][..],
            Dimension::Endpoint => &[Column::Method, Column::Path][..],
            Dimension::Subject => &[Column::Subject][..],
            Dimension::Status => &[Column::Status][..],
        })
        .copied()
        .collect()
}

/// The text cells of `row`, then its requests.
fn cells_of(query: &TotalsQuery, columns: &[Column], row: &GroupedTotal) -> Vec<String> {
    let none = || "(none)".to_owned();
    let mut cells: Vec<String> = columns
        .iter()
        .map(|column| match column {
            Column::Day => row.day.map_or_else(none, |d| d.to_string()),
            Column::Hour => row.hour.map_or_else(none, |h| h.in_zone(&query.zone)),
            Column::Method => row.endpoint.map_or_else(none, |e| e.method.to_string()),
            Column::Path => row
                .endpoint
                .map_or_else(none, |e| e.path.as_str().to_owned()),
            Column::Subject => row.subject.map_or_else(none, |s| s.as_str().to_owned()),
            Column::Status => row.status.map_or_else(none, |s| {
                if s.is_grpc() {
                    format!("gRPC {s}")
                } else {
                    s.to_string()
                }
            }),
        })
        .collect();
    cells.push(thousands(row.total));
    cells
}

/// Text cells left aligned, the last (a number) right aligned, two spaces apart.
fn write_line(out: &mut String, cells: &[String], widths: &[usize]) {
    let last = cells.len() - 1;
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        let pad = width - cell.chars().count();
        if i == last {
            line.extend(std::iter::repeat_n(' ', pad));
            line.push_str(cell);
        } else {
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use count_core::{DateRange, Day, Endpoint, Method, Path, Status, Subject};

    fn day(d: u32) -> Day {
        Day::new(2026, 11, d).unwrap()
    }

    #[test]
    fn thousands_separators() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (123_456, "123,456"),
            (1_234_567, "1,234,567"),
            (i64::MAX as u64, "9,223,372,036,854,775,807"),
        ] {
            assert_eq!(thousands(n), text);
        }
    }

    #[test]
    fn a_table_aligns_its_columns_and_ends_with_the_total() {
        let range = DateRange::new(day(1), day(2)).unwrap();
        let query = TotalsQuery::new(
            range,
            &[Dimension::Endpoint, Dimension::Subject, Dimension::Status],
        )
        .unwrap();
        let get = Endpoint::new(Method::Get, Path::new("/users/{id}").unwrap());
        let post = Endpoint::new(Method::Post, Path::new("/orders").unwrap());
        let rows = [
            GroupedTotal::new(1_234_567)
                .with_endpoint(get)
                .with_subject(Some(Subject::new("acme").unwrap()))
                .with_status(Some(Status::from_code(200).unwrap())),
            GroupedTotal::new(5)
                .with_endpoint(post)
                .with_status(Some(Status::from_code(14).unwrap())),
        ];
        let expected = "\
Requests from 2026-11-01 to 2026-11-02 (UTC), by endpoint, subject, status

METHOD  PATH         SUBJECT  STATUS    REQUESTS
GET     /users/{id}  acme     200      1,234,567
POST    /orders      (none)   gRPC 14          5
------------------------------------------------
TOTAL                                  1,234,572
";
        assert_eq!(render(&query, &rows), expected);
    }

    #[test]
    fn an_empty_answer_says_so() {
        let query = TotalsQuery::new(DateRange::day(day(3)), &[Dimension::Day]).unwrap();
        assert_eq!(
            render(&query, &[]),
            "No requests counted on 2026-11-03 (UTC).\n"
        );
    }
}
