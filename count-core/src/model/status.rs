//! `Status`: how a counted request ended, an HTTP status code or a gRPC status code;
//! `StatusClass` and `StatusFilter` for reports.

use std::fmt;
use std::num::NonZeroU16;
use std::str::FromStr;

use crate::{Error, Result};

/// How a counted request ended: the HTTP status code of its response (100 to 599), or,
/// for a gRPC call, its gRPC status code (0 `OK` to 16 `UNAUTHENTICATED`).
///
/// The two ranges do not overlap, so one number names a status of either kind, and
/// that number is what backends store. Optional on every count: a request counted
/// without a status ("not recorded") is distinct from every code.
///
/// ```
/// use count_core::{Status, StatusClass};
///
/// let not_found = Status::http(404)?;
/// assert_eq!(not_found.class(), StatusClass::ClientError);
/// let unavailable = Status::grpc(14)?;
/// assert!(unavailable.is_grpc());
/// assert_eq!(unavailable.class(), StatusClass::ServerError);
/// assert!(Status::http(600).is_err());
/// # Ok::<(), count_core::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Status(
    /// The code + 1: never zero, so `Option<Status>` is two bytes and "no status" is
    /// 0, which is how the record queue packs it.
    NonZeroU16,
);

impl Status {
    /// HTTP's 200 OK.
    pub const OK: Status = Status::known(200);
    /// HTTP's 500 Internal Server Error.
    pub const INTERNAL_SERVER_ERROR: Status = Status::known(500);

    /// The status of a code already checked.
    const fn known(code: u16) -> Status {
        match NonZeroU16::new(code + 1) {
            Some(packed) => Status(packed),
            None => panic!("code + 1 is never zero"),
        }
    }

    /// The HTTP status `code`, 100 to 599.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a code outside 100 to 599.
    pub fn http(code: u16) -> Result<Status> {
        if !(100..=599).contains(&code) {
            return Err(Error::invalid(
                "status",
                code,
                "HTTP status codes are 100 to 599",
            ));
        }
        Ok(Status::known(code))
    }

    /// The gRPC status `code`, 0 (`OK`) to 16 (`UNAUTHENTICATED`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a code outside 0 to 16.
    pub fn grpc(code: i64) -> Result<Status> {
        if !(0..=16).contains(&code) {
            return Err(Error::invalid(
                "status",
                code,
                "gRPC status codes are 0 (OK) to 16 (UNAUTHENTICATED)",
            ));
        }
        Ok(Status::known(code as u16))
    }

    /// The status a backend stored as `code`: gRPC for 0 to 16, HTTP for 100 to 599.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a number in neither range.
    pub fn from_code(code: i64) -> Result<Status> {
        match code {
            0..=16 | 100..=599 => Ok(Status::known(code as u16)),
            _ => Err(Error::invalid(
                "status",
                code,
                "a status is an HTTP code (100 to 599) or a gRPC code (0 to 16)",
            )),
        }
    }

    /// The status `code` of a request made with `method`: a gRPC code for
    /// [`Method::Grpc`](crate::Method::Grpc), an HTTP code otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the method's range when `code` is outside it.
    pub fn for_method(method: crate::Method, code: i64) -> Result<Status> {
        if method == crate::Method::Grpc {
            Status::grpc(code)
        } else {
            let http = u16::try_from(code).unwrap_or(0);
            Status::http(http).map_err(|_| {
                Error::invalid(
                    "status",
                    code,
                    format!("HTTP status codes are 100 to 599 (the method is {method})"),
                )
            })
        }
    }

    /// The code: 100 to 599 for HTTP, 0 to 16 for gRPC.
    pub const fn code(self) -> u16 {
        self.0.get() - 1
    }

    /// Whether this is a gRPC status code.
    pub const fn is_grpc(self) -> bool {
        self.code() <= 16
    }

    /// The class: HTTP's first digit; a gRPC code by the HTTP status it maps to
    /// (`OK` is 2xx; the caller's mistakes, such as `INVALID_ARGUMENT`, `NOT_FOUND`
    /// or `UNAUTHENTICATED`, are 4xx; the server's, such as `INTERNAL` or
    /// `UNAVAILABLE`, are 5xx).
    pub const fn class(self) -> StatusClass {
        if self.is_grpc() {
            return match self.code() {
                0 => StatusClass::Success,
                // CANCELLED, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
                // PERMISSION_DENIED, FAILED_PRECONDITION, OUT_OF_RANGE, UNAUTHENTICATED
                1 | 3 | 5 | 6 | 7 | 9 | 11 | 16 => StatusClass::ClientError,
                // UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED,
                // UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS
                _ => StatusClass::ServerError,
            };
        }
        match self.code() / 100 {
            1 => StatusClass::Informational,
            2 => StatusClass::Success,
            3 => StatusClass::Redirection,
            4 => StatusClass::ClientError,
            _ => StatusClass::ServerError,
        }
    }

    /// Packs an optional status into 16 bits for the record queue: 0 for none.
    #[inline]
    pub(crate) const fn pack(status: Option<Status>) -> u16 {
        match status {
            Some(Status(packed)) => packed.get(),
            None => 0,
        }
    }

    #[inline]
    pub(crate) const fn unpack(packed: u16) -> Option<Status> {
        match NonZeroU16::new(packed) {
            Some(packed) => Some(Status(packed)),
            None => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.is_grpc() { "grpc" } else { "http" };
        write!(f, "Status({kind} {})", self.code())
    }
}

/// A class of statuses: `1xx` to `5xx` (gRPC codes fall in 2xx, 4xx or 5xx; see
/// [`Status::class`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StatusClass {
    /// `1xx`
    Informational = 1,
    /// `2xx`
    Success = 2,
    /// `3xx`
    Redirection = 3,
    /// `4xx`: the caller's mistake.
    ClientError = 4,
    /// `5xx`: the server's failure.
    ServerError = 5,
}

impl StatusClass {
    /// `"1xx"` to `"5xx"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirection => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
        }
    }
}

impl fmt::Display for StatusClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which statuses a report keeps: one code, or a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusFilter {
    /// Exactly this status.
    Code(Status),
    /// Every status of this class (never a count without a status).
    Class(StatusClass),
}

impl StatusFilter {
    /// Whether a count with `status` passes.
    pub fn matches(self, status: Option<Status>) -> bool {
        match (self, status) {
            (StatusFilter::Code(want), Some(got)) => want == got,
            (StatusFilter::Class(want), Some(got)) => got.class() == want,
            (_, None) => false,
        }
    }
}

impl FromStr for StatusFilter {
    type Err = Error;

    /// `"404"`, `"0"` (a gRPC code) or a class, `"5xx"` (any case).
    fn from_str(text: &str) -> Result<StatusFilter> {
        const RULE: &str = "expected a status code (100 to 599, or a gRPC code 0 to 16) \
                            or a class: 1xx, 2xx, 3xx, 4xx or 5xx";
        let class = match text.to_ascii_lowercase().as_str() {
            "1xx" => Some(StatusClass::Informational),
            "2xx" => Some(StatusClass::Success),
            "3xx" => Some(StatusClass::Redirection),
            "4xx" => Some(StatusClass::ClientError),
            "5xx" => Some(StatusClass::ServerError),
            _ => None,
        };
        if let Some(class) = class {
            return Ok(StatusFilter::Class(class));
        }
        if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::invalid("status", text, RULE));
        }
        let code: i64 = text
            .parse()
            .map_err(|_| Error::invalid("status", text, RULE))?;
        Status::from_code(code)
            .map(StatusFilter::Code)
            .map_err(|_| Error::invalid("status", text, RULE))
    }
}

impl fmt::Display for StatusFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusFilter::Code(status) => write!(f, "{status}"),
            StatusFilter::Class(class) => write!(f, "{class}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Method;

    #[test]
    fn http_and_grpc_ranges_are_checked_and_do_not_overlap() {
        assert_eq!(Status::http(100).unwrap().code(), 100);
        assert_eq!(Status::http(599).unwrap().code(), 599);
        for bad in [0, 99, 600, 1000] {
            let err = Status::http(bad).unwrap_err().to_string();
            assert!(
                err.contains("100 to 599") && err.contains(&bad.to_string()),
                "{err}"
            );
        }
        assert!(Status::grpc(0).unwrap().is_grpc());
        assert!(Status::grpc(16).unwrap().is_grpc());
        for bad in [-1, 17, 200] {
            let err = Status::grpc(bad).unwrap_err().to_string();
            assert!(err.contains("0 (OK) to 16"), "{err}");
        }
        assert!(!Status::http(200).unwrap().is_grpc());
        for code in [0, 16, 100, 599] {
            assert_eq!(Status::from_code(code).unwrap().code() as i64, code);
        }
        for bad in [-1, 17, 99, 600] {
            assert!(Status::from_code(bad).is_err());
        }
    }

    #[test]
    fn the_method_decides_the_range() {
        assert!(Status::for_method(Method::Grpc, 14).unwrap().is_grpc());
        let err = Status::for_method(Method::Grpc, 200)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gRPC status codes"), "{err}");
        let err = Status::for_method(Method::Get, 14).unwrap_err().to_string();
        assert!(err.contains("(the method is GET)"), "{err}");
        assert_eq!(Status::for_method(Method::Post, 201).unwrap().code(), 201);
    }

    #[test]
    fn classes_follow_the_first_digit_and_the_grpc_mapping() {
        let class = |code| Status::from_code(code).unwrap().class();
        assert_eq!(class(101), StatusClass::Informational);
        assert_eq!(class(204), StatusClass::Success);
        assert_eq!(class(302), StatusClass::Redirection);
        assert_eq!(class(429), StatusClass::ClientError);
        assert_eq!(class(503), StatusClass::ServerError);
        assert_eq!(class(0), StatusClass::Success);
        for client in [1, 3, 5, 6, 7, 9, 11, 16] {
            assert_eq!(class(client), StatusClass::ClientError, "{client}");
        }
        for server in [2, 4, 8, 10, 12, 13, 14, 15] {
            assert_eq!(class(server), StatusClass::ServerError, "{server}");
        }
    }

    #[test]
    fn filters_parse_codes_and_classes() {
        assert_eq!(
            "404".parse::<StatusFilter>().unwrap(),
            StatusFilter::Code(Status::http(404).unwrap())
        );
        assert_eq!(
            "5XX".parse::<StatusFilter>().unwrap(),
            StatusFilter::Class(StatusClass::ServerError)
        );
        assert_eq!(
            "0".parse::<StatusFilter>().unwrap(),
            StatusFilter::Code(Status::grpc(0).unwrap())
        );
        for bad in ["6xx", "", "abc", "99", "600", "-1", "+200", "0200", "2xxx"] {
            let err = bad.parse::<StatusFilter>().unwrap_err().to_string();
            assert!(
                err.contains("invalid status") && err.contains("5xx"),
                "{bad}: {err}"
            );
        }
        let five = StatusFilter::Class(StatusClass::ServerError);
        assert!(five.matches(Some(Status::http(502).unwrap())));
        assert!(five.matches(Some(Status::grpc(14).unwrap())));
        assert!(!five.matches(Some(Status::http(404).unwrap())));
        assert!(!five.matches(None));
    }

    #[test]
    fn packs_into_sixteen_bits_with_none_distinct() {
        for status in [
            None,
            Some(Status::grpc(0).unwrap()),
            Some(Status::http(599).unwrap()),
        ] {
            assert_eq!(Status::unpack(Status::pack(status)), status);
        }
        assert_ne!(
            Status::pack(None),
            Status::pack(Some(Status::grpc(0).unwrap()))
        );
        assert_eq!(std::mem::size_of::<Option<Status>>(), 2);
        assert_eq!(Status::http(404).unwrap().to_string(), "404");
    }
}
