//! `Endpoint`: the unit that is counted.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::{Error, Method, Path, Result};

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

    /// Splits `METHOD PATH` (`GET /users/{id}`, as an endpoint is shown) into its
    /// method and its path's text, both checked, the path not interned: for a
    /// report's filter, which must not make a path of a made-up text.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `endpoint`) without a space, for a method that
    /// is not one ([`Method::from_str`]) or a path that breaks a rule of [`Path::new`].
    pub fn split_text(text: &str) -> Result<(Method, &str)> {
        let (method, path) = text.split_once(' ').ok_or_else(|| {
            Error::invalid(
                "endpoint",
                text,
                "expected <METHOD> <path>, such as \"GET /users/{id}\"",
            )
        })?;
        let method = Method::from_str(method)?;
        Path::check(path)?;
        Ok((method, path))
    }
}

/// `METHOD PATH`, as an endpoint is shown; the path interned.
impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(text: &str) -> Result<Endpoint> {
        let (method, path) = Endpoint::split_text(text)?;
        Endpoint::parse(method, path)
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

    #[test]
    fn reads_back_what_it_shows_and_splits_without_interning() {
        let shown = Endpoint::parse(Method::Patch, "/users/{id}").unwrap();
        assert_eq!(shown.to_string().parse::<Endpoint>().unwrap(), shown);
        let (method, path) = Endpoint::split_text("GET /never/interned/{x}").unwrap();
        assert_eq!((method, path), (Method::Get, "/never/interned/{x}"));
        assert!(Path::lookup(path).is_none());
        for (bad, says) in [
            ("/users", "expected <METHOD> <path>"),
            ("FETCH /users", "invalid method \"FETCH\""),
            ("GET ", "a path may not be empty"),
        ] {
            let error = Endpoint::split_text(bad).unwrap_err().to_string();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
