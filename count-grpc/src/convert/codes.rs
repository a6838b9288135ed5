//! count errors ⇄ gRPC status codes, chosen by what the other side should do: fix the
//! input, resend, resend the same batch, or give up.

use std::sync::Arc;

use count_core::{BatchId, Error};
use tonic::{Code, Status};

/// A count error as the handler answers it.
///
/// | error | code |
/// |---|---|
/// | `InvalidInput` | `INVALID_ARGUMENT` |
/// | `BatchConflict` | `ALREADY_EXISTS` |
/// | `LimitReached` | `RESOURCE_EXHAUSTED` |
/// | `Unavailable`, `Closed` | `UNAVAILABLE` (retry) |
/// | `Ambiguous` | `UNKNOWN` (may have applied) |
/// | `NotFound` | `NOT_FOUND` |
/// | `Conflict` | `FAILED_PRECONDITION` (read again, then change) |
/// | `Backend` and the rest | `INTERNAL` |
pub(crate) fn status(error: Error) -> Status {
    let code = match &error {
        Error::InvalidInput { .. } => Code::InvalidArgument,
        Error::BatchConflict { .. } => Code::AlreadyExists,
        Error::LimitReached(_) => Code::ResourceExhausted,
        Error::Unavailable { .. } | Error::Closed => Code::Unavailable,
        Error::Ambiguous { .. } => Code::Unknown,
        Error::NotFound(_) => Code::NotFound,
        Error::Conflict(_) => Code::FailedPrecondition,
        _ => Code::Internal,
    };
    Status::new(code, error.to_string())
}

/// What a call did, for reading a server's error back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// A read: an unknown outcome is only a failure to retry.
    Read,
    /// A write of this batch: an unknown outcome may have applied it.
    Write(BatchId),
    /// A change that is not idempotent (a lease, a policy): an unknown outcome may
    /// have applied it, and it must not be retried blindly.
    Change,
}

/// A server's status back to a count error, retryable only when retrying can cure it:
/// [`Error::Unavailable`] for `UNAVAILABLE` (and, for reads, for every transient
/// code), [`Error::Ambiguous`] for a write whose outcome is unknown (`UNKNOWN`,
/// `DEADLINE_EXCEEDED`, `CANCELLED`, `ABORTED`). Everything else is final: a refused
/// input, a reused batch id ([`Error::BatchConflict`]), a limit, a failed
/// authentication, a server error.
pub(crate) fn error(status: Status, call: Call) -> Error {
    let message = format!("count server: {}", status.message());
    let source = Arc::new(status);
    match source.code() {
        Code::Unavailable => Error::Unavailable {
            message,
            source: Some(source),
        },
        Code::Unknown | Code::DeadlineExceeded | Code::Cancelled | Code::Aborted => match call {
            Call::Write(_) | Call::Change => Error::Ambiguous {
                message,
                source: Some(source),
            },
            Call::Read => Error::Unavailable {
                message,
                source: Some(source),
            },
        },
        Code::AlreadyExists => match call {
            Call::Write(id) => Error::BatchConflict { id },
            Call::Read | Call::Change => Error::Backend { message, source },
        },
        Code::NotFound => Error::NotFound(message),
        Code::FailedPrecondition => Error::Conflict(message),
        Code::ResourceExhausted => Error::LimitReached(message),
        Code::InvalidArgument => Error::Backend {
            message: format!("{message} (the server refused the request)"),
            source,
        },
        _ => Error::Backend { message, source },
    }
}
