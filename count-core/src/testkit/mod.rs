//! The conformance suite of the [`Counter`](crate::Counter) contract, and helpers for testing with it.
//!
//! Every backend's tests call [`run_all`] (or each function) on an instance of it.
//! The functions are plain `async fn`s over a counter: each works under a path prefix
//! (and subjects) of its own and looks only at its own counts, so they can share one
//! database, run in any order, and run against a counter that already holds data.
//! A failed clause panics with what differed.

mod dimensions;
mod faults;
mod limits;
mod suite;
mod zones;

pub use dimensions::*;
pub use faults::{Fault, FlakyCounter};
pub use limits::*;
pub use suite::*;
pub use zones::*;

use jiff::Timestamp;
use uuid::Uuid;

use crate::{
    Batch, BatchId, BucketCount, CountKey, DailyTotal, Day, Endpoint, GroupedTotal, Method, Path,
    PeriodTotal, Status, Subject,
};

/// Parses `YYYY-MM-DD`; panics on a bad date (test input).
pub fn day(text: &str) -> Day {
    text.parse().expect("a YYYY-MM-DD date")
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
        .map(|&(path, bucket, n)| {
            let endpoint = Endpoint::new(Method::Get, Path::new(path).expect("a valid path"));
            BucketCount::new(endpoint, at(bucket), n)
        })
        .collect();
    Batch::new(fresh_id(), counts).expect("a valid batch")
}

/// A path prefix (and subject prefix) of one test's own, so tests can share a
/// counter.
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

    /// The scoped subject for `local` (`acme` → `<id>:acme`).
    pub fn subject(&self, local: &str) -> Subject {
        let id = &self.prefix["/conformance/".len()..];
        Subject::new(&format!("{id}:{local}")).expect("a valid subject")
    }

    /// A scoped key: `(method, local path, local subject, status code)`.
    pub fn key(
        &self,
        method: Method,
        local: &str,
        subject: Option<&str>,
        status: Option<u16>,
    ) -> CountKey {
        CountKey::of(
            method,
            self.path(local),
            subject.map(|s| self.subject(s)),
            status.map(|code| Status::for_method(method, code.into()).expect("a valid status")),
        )
    }

    /// A batch with a fresh id of `(method, local path, bucket timestamp, n)`.
    pub fn batch(&self, rows: &[(Method, &str, &str, u64)]) -> Batch {
        let counts = rows
            .iter()
            .map(|&(method, local, bucket, n)| {
                BucketCount::new(self.endpoint(method, local), at(bucket), n)
            })
            .collect();
        Batch::new(fresh_id(), counts).expect("a valid batch")
    }

    /// A batch with a fresh id of `(key, bucket timestamp, n)`.
    pub fn batch_of_keys(&self, rows: &[(CountKey, &str, u64)]) -> Batch {
        let counts = rows
            .iter()
            .map(|&(key, bucket, n)| BucketCount::new(key, at(bucket), n))
            .collect();
        Batch::new(fresh_id(), counts).expect("a valid batch")
    }

    /// The local path of `path`, if it is in this scope.
    pub fn local<'a>(&self, path: &'a Path) -> Option<&'a str> {
        path.as_str().strip_prefix(self.prefix.as_str())
    }

    /// The local name of `subject`, if it is in this scope.
    pub fn local_subject(&self, subject: &Subject) -> Option<&'static str> {
        let id = &self.prefix["/conformance/".len()..];
        subject.as_str().strip_prefix(id)?.strip_prefix(':')
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

    /// The grouped totals that belong to this scope: rows grouped by endpoint whose
    /// endpoint is in it; rows not grouped by endpoint are all kept (the caller
    /// filtered such queries to this scope's endpoints or subjects).
    pub fn grouped(&self, totals: &[GroupedTotal]) -> Vec<GroupedTotal> {
        totals
            .iter()
            .filter(|t| t.endpoint.is_none_or(|e| self.local(&e.path).is_some()))
            .copied()
            .collect()
    }
}

impl Default for Scope {
    fn default() -> Self {
        Scope::new()
    }
}
