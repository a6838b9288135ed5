//! `CountKey`: everything a count is kept apart by.

use std::cmp::Ordering;
use std::fmt;

use crate::{Endpoint, Method, Path, Status, Subject};

/// What one count is kept apart by: the endpoint, and optionally who the request was
/// for ([`Subject`]) and how it ended ([`Status`]).
///
/// A key without subject and status is what `record(method, path)` counts; reports
/// per endpoint sum over every subject and status.
///
/// ```
/// use count_core::{CountKey, Endpoint, Method, Path, Status, Subject};
///
/// let key = CountKey::new(Endpoint::new(Method::Get, Path::new("/users/{id}")?))
///     .with_subject(Subject::new("acme")?)
///     .with_status(Status::http(200)?);
/// assert_eq!(key.to_string(), "GET /users/{id} subject=acme status=200");
/// # Ok::<(), count_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CountKey {
    /// The method and route.
    pub endpoint: Endpoint,
    /// Who the request was for; `None`: counted without a subject.
    pub subject: Option<Subject>,
    /// How it ended; `None`: not recorded.
    pub status: Option<Status>,
}

impl CountKey {
    /// The key of `endpoint` alone: no subject, no status.
    pub const fn new(endpoint: Endpoint) -> CountKey {
        CountKey {
            endpoint,
            subject: None,
            status: None,
        }
    }

    /// The same key with `subject`.
    pub const fn with_subject(mut self, subject: Subject) -> CountKey {
        self.subject = Some(subject);
        self
    }

    /// The same key with `status`.
    pub const fn with_status(mut self, status: Status) -> CountKey {
        self.status = Some(status);
        self
    }

    /// The key of `method` and `path` with optional dimensions.
    pub const fn of(
        method: Method,
        path: Path,
        subject: Option<Subject>,
        status: Option<Status>,
    ) -> CountKey {
        CountKey {
            endpoint: Endpoint::new(method, path),
            subject,
            status,
        }
    }
}

impl CountKey {
    /// Whether the status (if any) is of its method's kind: a gRPC code for
    /// [`Method::Grpc`], an HTTP code otherwise.
    pub fn status_fits_method(&self) -> bool {
        self.status
            .is_none_or(|status| status.is_grpc() == (self.endpoint.method == Method::Grpc))
    }
}

impl From<(Method, Path)> for CountKey {
    /// The endpoint `method path`, without subject or status.
    fn from((method, path): (Method, Path)) -> CountKey {
        CountKey::of(method, path, None, None)
    }
}

impl From<Endpoint> for CountKey {
    fn from(endpoint: Endpoint) -> CountKey {
        CountKey::new(endpoint)
    }
}

/// Endpoint first (path, then method), then subject (none first, then by text), then
/// status (none first, then by code): the order of every report.
impl Ord for CountKey {
    fn cmp(&self, other: &CountKey) -> Ordering {
        (self.endpoint, self.subject, self.status).cmp(&(
            other.endpoint,
            other.subject,
            other.status,
        ))
    }
}

impl PartialOrd for CountKey {
    fn partial_cmp(&self, other: &CountKey) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for CountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.endpoint)?;
        if let Some(subject) = self.subject {
            write!(f, " subject={subject}")?;
        }
        if let Some(status) = self.status {
            write!(f, " status={status}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountKey({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_endpoint_then_subject_then_status_with_none_first() {
        let endpoint = |p| Endpoint::parse(Method::Get, p).unwrap();
        let subject = |s| Subject::new(s).unwrap();
        let status = |c| Status::http(c).unwrap();
        let a = CountKey::new(endpoint("/a"));
        let mut keys = [
            CountKey::new(endpoint("/b")),
            a.with_subject(subject("y")),
            a.with_subject(subject("x")).with_status(status(500)),
            a.with_status(status(200)),
            a,
            a.with_subject(subject("x")),
        ];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "GET /a",
                "GET /a status=200",
                "GET /a subject=x",
                "GET /a subject=x status=500",
                "GET /a subject=y",
                "GET /b",
            ]
        );
    }
}
