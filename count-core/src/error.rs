//! The one error type of count: every backend converts its own errors into it.

use std::fmt;

/// A driver's error, kept as the source of an [`Error`]. Shared, so that `Error` is
/// `Clone`: one failed write is reported to every `flush` waiting on it.
pub type SourceError = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// `Result<T, count_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on.
///
/// Match on the variant, or ask [`Error::is_retryable`]: [`Error::Unavailable`] and
/// [`Error::Ambiguous`] pass, and retrying the same operation is worth it (writes are
/// idempotent by batch id, so a retry never double counts); every other variant needs
/// something changed first (the input, the backend, the configuration), and retrying
/// as is fails again. A [`CountQueue`](crate::CountQueue) retries the first kind and
/// counts a batch refused with the second kind as lost, so it cannot block the counts
/// behind it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value was refused where it entered: it breaks the named rule.
    #[error("invalid {field} {value}: {rule}")]
    InvalidInput {
        /// Which input: `path`, `method`, `date`, `timestamp`, ...
        field: &'static str,
        /// The value as given, quoted, escaped and shortened for display.
        value: ShownValue,
        /// The rule it breaks.
        rule: String,
    },
    /// The backend cannot be reached or refused for a passing reason; retry later.
    #[error("backend unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// The driver's error, when there is one.
        #[source]
        source: Option<SourceError>,
    },
    /// The operation may or may not have been applied (a timeout, a connection lost
    /// during COMMIT, CockroachDB's 40003). Retrying an idempotent write is safe.
    #[error("outcome unknown: {message}")]
    Ambiguous {
        /// What happened.
        message: String,
        /// The driver's error, when there is one.
        #[source]
        source: Option<SourceError>,
    },
    /// Nothing was found for the request.
    #[error("not found: {0}")]
    NotFound(String),
    /// A fixed limit was reached; the message names it.
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// A batch id was already applied with other counts: the id was reused (a
    /// writer id shared by two writers, or a client that changed a batch before
    /// retrying it). Nothing was written.
    #[error("batch {id} was already applied with other counts; batch ids must not be reused")]
    BatchConflict {
        /// The reused id.
        id: crate::BatchId,
    },
    /// What was changed was changed by someone else first (a policy of limits whose
    /// version moved): read it again, then change it.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The [`CountQueue`](crate::CountQueue) was shut down.
    #[error("the count queue is shut down")]
    Closed,
    /// Counts that were accepted will not be written: `count` of them are counted as
    /// lost in [`Stats`](crate::Stats), and `in_doubt` more were in a write whose
    /// outcome is unknown (they are in the backend, or lost; never both).
    #[error("{count} counted requests were not written{}: {reason}", in_doubt_text(*in_doubt))]
    NotWritten {
        /// How many requests were certainly not written.
        count: u64,
        /// How many more may or may not have been written.
        in_doubt: u64,
        /// Why.
        reason: String,
    },
    /// The backend refused the operation for a reason retrying will not cure (a
    /// statement it rejects, a missing table, a constraint), with its source.
    #[error("backend error: {message}")]
    Backend {
        /// What the backend was doing.
        message: String,
        /// The driver's error.
        #[source]
        source: SourceError,
    },
}

fn in_doubt_text(in_doubt: u64) -> String {
    if in_doubt == 0 {
        String::new()
    } else {
        format!(", and {in_doubt} more may or may not have been")
    }
}

impl Error {
    /// An [`Error::InvalidInput`] for `value` of `field`, breaking `rule`.
    pub fn invalid(field: &'static str, value: impl fmt::Debug, rule: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            value: ShownValue::new(value),
            rule: rule.into(),
        }
    }

    /// An [`Error::Unavailable`] with no source.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Ambiguous`] with no source.
    pub fn ambiguous(message: impl Into<String>) -> Self {
        Error::Ambiguous {
            message: message.into(),
            source: None,
        }
    }

    /// Whether retrying the same operation may succeed (and, for writes, is safe):
    /// true for [`Error::Unavailable`] and [`Error::Ambiguous`] only.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::Ambiguous { .. })
    }
}

/// A refused value, shown `Debug`-quoted (so control bytes are visible) and cut to a
/// readable length: a 1 MiB path must not become a 1 MiB log line.
#[derive(Clone, PartialEq, Eq)]
pub struct ShownValue(String);

impl ShownValue {
    const MAX_CHARS: usize = 80;

    pub(crate) fn new(value: impl fmt::Debug) -> Self {
        let full = format!("{value:?}");
        let total = full.chars().count();
        if total <= Self::MAX_CHARS {
            return ShownValue(full);
        }
        let head: String = full.chars().take(Self::MAX_CHARS).collect();
        ShownValue(format!("{head}… ({total} chars)"))
    }

    /// The shown text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ShownValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_names_field_value_and_rule() {
        let err = Error::invalid("method", "FETCH", "not an HTTP method");
        assert_eq!(
            err.to_string(),
            r#"invalid method "FETCH": not an HTTP method"#
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn long_values_are_shortened() {
        let long = "x".repeat(5000);
        let shown = Error::invalid("path", &long, "too long").to_string();
        assert!(shown.len() < 200, "{shown}");
        assert!(shown.contains("(5002 chars)"), "{shown}");
    }

    #[test]
    fn transient_errors_are_retryable() {
        assert!(Error::unavailable("down").is_retryable());
        assert!(Error::ambiguous("lost during commit").is_retryable());
        assert!(!Error::Closed.is_retryable());
        assert!(!Error::NotFound("x".into()).is_retryable());
        let backend = Error::Backend {
            message: "relation does not exist".into(),
            source: std::sync::Arc::new(std::io::Error::other("x")),
        };
        assert!(!backend.is_retryable());
        let id = crate::BatchId {
            writer: uuid::Uuid::from_u128(7),
            seq: 3,
        };
        let conflict = Error::BatchConflict { id };
        assert!(!conflict.is_retryable());
        assert!(conflict.to_string().contains(&id.to_string()));
    }
}
