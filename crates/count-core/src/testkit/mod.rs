//! The conformance suite of the [`Counter`](crate::Counter) contract, and helpers for testing with it.
//!
//! Every backend's tests call [`run_all`] (or each function) on an instance of it.
//! The functions are plain `async fn`s over `&dyn Counter`: each works under a path
//! prefix of its own and looks only at its own endpoints, so they can share one
//! database, run in any order, and run against a counter that already holds data.
//! A failed clause panics with what differed.

mod faults;
mod suite;

pub use faults::{Fault, FlakyCounter};
pub use suite::*;

use jiff::Timestamp;
use uuid::Uuid;

use crate::{Batch, BatchId, BucketCount, DailyTotal, Day, Endpoint, Method, Path, PeriodTotal};

/// Parses `YYYY-MM-DD`; panics on a bad date (test input).
pub fn day(text: &str) -> Day {
    let date: jiff::civil::Date = text.parse().expect("a YYYY-MM-DD date");
    Day::from_date(date).expect("a supported date")
}

/// Parses an RFC 3339 timestamp; panics on a bad one (test input).
pub fn at(text: &str) -> Timestamp {
    text.parse().expect("an RFC 3339 timestamp")
}

/// A batch id no other batch has.
pub fn fresh_id() -> BatchId {
    BatchId {
        writer: Uuid::new_v4(),
        seq: 0,
    }
}

/// A batch with a fresh id of `GET` counts: `(path, bucket timestamp, n)`.
pub fn batch(rows: &[(&str, &str, u64)]) -> Batch {
    let counts = rows
        .iter()
        .map(|&(path, bucket, n)| BucketCount {
            endpoint: Endpoint::new(Method::Get, Path::new(path).expect("a valid path")),
            bucket: at(bucket),
            n,
        })
        .collect();
    Batch::new(fresh_id(), counts).expect("a valid batch")
}

/// A path prefix of one test's own, so tests can share a counter.
#[derive(Debug, Clone)]
pub struct Scope {
    prefix: String,
}

impl Scope {
    /// A scope with a random prefix.
    pub fn new() -> Scope {
        Scope {
            prefix: format!("/conformance/{}", Uuid::new_v4().simple()),
        }
    }

    /// The scoped path for `local` (`/a` → `/conformance/<id>/a`).
    pub fn path(&self, local: &str) -> Path {
        Path::new(&format!("{}{local}", self.prefix)).expect("a valid path")
    }

    /// The scoped endpoint.
    pub fn endpoint(&self, method: Method, local: &str) -> Endpoint {
        Endpoint::new(method, self.path(local))
    }

    /// A batch with a fresh id of `(method, local path, bucket timestamp, n)`.
    pub fn batch(&self, rows: &[(Method, &str, &str, u64)]) -> Batch {
        let counts = rows
            .iter()
            .map(|&(method, local, bucket, n)| BucketCount {
                endpoint: self.endpoint(method, local),
                bucket: at(bucket),
                n,
            })
            .collect();
        Batch::new(fresh_id(), counts).expect("a valid batch")
    }

    /// The local path of `path`, if it is in this scope.
    pub fn local<'a>(&self, path: &'a Path) -> Option<&'a str> {
        path.as_str().strip_prefix(self.prefix.as_str())
    }

    /// This scope's daily totals as `(day, method, local path, total)`, in order.
    pub fn daily(&self, totals: &[DailyTotal]) -> Vec<(String, Method, String, u64)> {
        totals
            .iter()
            .filter_map(|t| {
                let local = self.local(&t.endpoint.path)?;
                Some((
                    t.day.to_string(),
                    t.endpoint.method,
                    local.to_owned(),
                    t.total,
                ))
            })
            .collect()
    }

    /// This scope's period totals as `(method, local path, total)`, in order.
    pub fn period(&self, totals: &[PeriodTotal]) -> Vec<(Method, String, u64)> {
        totals
            .iter()
            .filter_map(|t| {
                let local = self.local(&t.endpoint.path)?;
                Some((t.endpoint.method, local.to_owned(), t.total))
            })
            .collect()
    }
}

impl Default for Scope {
    fn default() -> Self {
        Scope::new()
    }
}
