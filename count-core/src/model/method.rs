//! `Method`: what kind of request was counted.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// The method of a counted request: an HTTP method, or [`Method::Grpc`] for a gRPC call.
///
/// The discriminants are the `count.v1.Method` wire numbers, and the order is theirs:
/// reports list endpoints by path, then by this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Method {
    /// Any other method: what `CountLayer` (feature `tower`) counts an
    /// extension HTTP method (`PROPFIND`, ...) as, and `count.v1`'s
    /// `METHOD_UNSPECIFIED` (the Go server's clients send PATCH as that).
    Other = 0,
    /// `CONNECT`
    Connect = 1,
    /// `DELETE`
    Delete = 2,
    /// `GET`
    Get = 3,
    /// `HEAD`
    Head = 4,
    /// `OPTIONS`
    Options = 5,
    /// `POST`
    Post = 6,
    /// `PUT`
    Put = 7,
    /// `TRACE`
    Trace = 8,
    /// `PATCH` (counted as `METHOD_UNSPECIFIED` by the Go server, which lacks it)
    Patch = 9,
    /// A gRPC call; its path is the gRPC method, `/package.Service/Method`.
    Grpc = 100,
}

impl Method {
    /// Every method, in wire-number order.
    pub const ALL: [Method; 11] = [
        Method::Other,
        Method::Connect,
        Method::Delete,
        Method::Get,
        Method::Head,
        Method::Options,
        Method::Post,
        Method::Put,
        Method::Trace,
        Method::Patch,
        Method::Grpc,
    ];

    /// The upper-case name: `"GET"`, `"GRPC"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Other => "OTHER",
            Method::Connect => "CONNECT",
            Method::Delete => "DELETE",
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Grpc => "GRPC",
        }
    }

    /// The `count.v1.Method` wire number.
    pub const fn number(self) -> i32 {
        self as i32
    }

    /// The method whose discriminant (wire number) is `repr`.
    pub(crate) const fn from_repr(repr: u8) -> Option<Method> {
        Some(match repr {
            0 => Method::Other,
            1 => Method::Connect,
            2 => Method::Delete,
            3 => Method::Get,
            4 => Method::Head,
            5 => Method::Options,
            6 => Method::Post,
            7 => Method::Put,
            8 => Method::Trace,
            9 => Method::Patch,
            100 => Method::Grpc,
            _ => return None,
        })
    }

    /// The method with this `count.v1.Method` wire number; `0` (`METHOD_UNSPECIFIED`)
    /// is [`Method::Other`], and numbers the enum does not define are refused.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `method`) for a number `count.v1` does not define.
    pub fn from_number(number: i32) -> Result<Method> {
        u8::try_from(number)
            .ok()
            .and_then(Method::from_repr)
            .ok_or_else(|| Error::invalid("method", number, Self::EXPECTED_NUMBERS))
    }

    const EXPECTED_NUMBERS: &'static str =
        "expected a count.v1.Method number: 0..=9 (METHOD_UNSPECIFIED..PATCH) or 100 (GRPC)";
    const EXPECTED_NAMES: &'static str = "expected one of CONNECT, DELETE, GET, HEAD, OPTIONS, \
         POST, PUT, TRACE, PATCH, GRPC or OTHER (any case)";
}

impl FromStr for Method {
    type Err = Error;

    /// Parses a method name in any case; an unknown name is an error, never a default.
    fn from_str(name: &str) -> Result<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| Error::invalid("method", name, Self::EXPECTED_NAMES))
    }
}

impl Method {
    /// The standard HTTP methods; `None` for an extension method. The layer's hot
    /// path: no error is built for the common case.
    #[cfg(feature = "tower")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
    #[inline]
    pub fn from_http(method: &http::Method) -> Option<Method> {
        Some(match *method {
            http::Method::GET => Method::Get,
            http::Method::POST => Method::Post,
            http::Method::PUT => Method::Put,
            http::Method::DELETE => Method::Delete,
            http::Method::PATCH => Method::Patch,
            http::Method::HEAD => Method::Head,
            http::Method::OPTIONS => Method::Options,
            http::Method::CONNECT => Method::Connect,
            http::Method::TRACE => Method::Trace,
            _ => return None,
        })
    }
}

#[cfg(feature = "tower")]
impl TryFrom<&http::Method> for Method {
    type Error = Error;

    /// Maps the standard HTTP methods; an extension method (`PROPFIND`, ...) is an error.
    fn try_from(method: &http::Method) -> Result<Method> {
        Method::from_http(method)
            .ok_or_else(|| Error::invalid("method", method.as_str(), Self::EXPECTED_NAMES))
    }
}

#[cfg(feature = "tower")]
impl TryFrom<http::Method> for Method {
    type Error = Error;

    fn try_from(method: http::Method) -> Result<Method> {
        Method::try_from(&method)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_in_any_case() {
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>().unwrap(), m);
            assert_eq!(m.as_str().to_lowercase().parse::<Method>().unwrap(), m);
        }
        assert_eq!("pAtCh".parse::<Method>().unwrap(), Method::Patch);
    }

    #[test]
    fn unknown_names_are_errors_naming_the_value() {
        for bad in ["", "FETCH", "GET ", "get\0"] {
            let err = bad.parse::<Method>().unwrap_err();
            assert!(matches!(
                err,
                Error::InvalidInput {
                    field: "method",
                    ..
                }
            ));
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    #[cfg(feature = "tower")]
    fn maps_http_methods_and_refuses_extensions() {
        assert_eq!(
            Method::try_from(http::Method::PATCH).unwrap(),
            Method::Patch
        );
        assert_eq!(Method::try_from(&http::Method::GET).unwrap(), Method::Get);
        let propfind = http::Method::from_bytes(b"PROPFIND").unwrap();
        let err = Method::try_from(&propfind).unwrap_err();
        assert!(err.to_string().contains("\"PROPFIND\""), "{err}");
    }

    #[test]
    fn wire_numbers_round_trip_and_order_follows_them() {
        for m in Method::ALL {
            assert_eq!(Method::from_number(m.number()).unwrap(), m);
        }
        assert_eq!(Method::Grpc.number(), 100);
        assert_eq!(Method::Patch.number(), 9);
        assert_eq!(Method::from_number(0).unwrap(), Method::Other);
        for bad in [10, 99, 101, -1, 256] {
            assert!(Method::from_number(bad).is_err());
        }
        let mut sorted = Method::ALL;
        sorted.sort();
        assert_eq!(sorted, Method::ALL);
    }
}
