//! `Endpoint`: the unit that is counted.

use std::cmp::Ordering;
use std::fmt;

use crate::{Method, Path, Result};

/// One counted endpoint: a method and a path. `Copy`, as both parts are.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The request method.
    pub method: Method,
    /// The route template or gRPC method.
    pub path: Path,
}

impl Endpoint {
    /// The endpoint for `method` and an already checked `path`.
    pub const fn new(method: Method, path: Path) -> Endpoint {
        Endpoint { method, path }
    }

    /// Checks and interns `path` (see [`Path::new`]) for `method`.
    ///
    /// # Errors
    ///
    /// As [`Path::new`].
    pub fn parse(method: Method, path: &str) -> Result<Endpoint> {
        Ok(Endpoint::new(method, Path::new(path)?))
    }
}

/// Path first, then method: the order of count.v1's reports.
impl Ord for Endpoint {
    fn cmp(&self, other: &Endpoint) -> Ordering {
        (self.path, self.method).cmp(&(other.path, other.method))
    }
}

impl PartialOrd for Endpoint {
    fn partial_cmp(&self, other: &Endpoint) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({} {:?})", self.method, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_path_then_method() {
        let e = |m, p| Endpoint::parse(m, p).unwrap();
        let mut all = vec![
            e(Method::Post, "/b"),
            e(Method::Get, "/b"),
            e(Method::Grpc, "/a"),
        ];
        all.sort();
        assert_eq!(
            all,
            [
                e(Method::Grpc, "/a"),
                e(Method::Get, "/b"),
                e(Method::Post, "/b")
            ]
        );
        assert_eq!(e(Method::Get, "/x").to_string(), "GET /x");
    }
}
