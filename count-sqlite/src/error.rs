//! SQLite's errors as count's: what a caller can retry, and what it cannot.

use std::sync::Arc;

use count_core::Error;
use rusqlite::ErrorCode;

/// `e`, met while `doing`: [`Error::Unavailable`] when retrying may succeed (the
/// write lock held by another process past the busy timeout, a full disk, an I/O
/// error), [`Error::Backend`] otherwise.
pub(crate) fn classify(doing: &str, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Unavailable {
            message: format!(
                "{doing}: the database is busy (another connection or process held its \
                 write lock past the busy timeout)"
            ),
            source: Some(Arc::new(e)),
        },
        Some(
            ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::OutOfMemory
            | ErrorCode::CannotOpen,
        ) => Error::Unavailable {
            message: format!("{doing}: {e}"),
            source: Some(Arc::new(e)),
        },
        _ => Error::Backend {
            message: format!("{doing}: {e}"),
            source: Arc::new(e),
        },
    }
}

/// A failed `COMMIT`. SQLite rolls a failed commit back, but an I/O error while
/// syncing may leave the outcome unknown: [`Error::Ambiguous`] (retrying a batch is
/// safe), except for a busy database, which certainly did not commit.
pub(crate) fn commit_failed(doing: &str, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => classify(doing, e),
        _ => Error::Ambiguous {
            message: format!("{doing}: {e}"),
            source: Some(Arc::new(e)),
        },
    }
}

/// The writer thread is gone (it stops only when the counter is dropped, or a job
/// panicked and took its reply with it).
pub(crate) fn writer_stopped(doing: &str) -> Error {
    Error::unavailable(format!(
        "{doing}: the SQLite writer thread stopped before answering"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_error(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn busy_is_retryable_and_says_why() {
        let err = classify("writing batch x", sqlite_error(rusqlite::ffi::SQLITE_BUSY));
        assert!(err.is_retryable());
        assert!(err.to_string().contains("writing batch x"), "{err}");
        assert!(err.to_string().contains("busy timeout"), "{err}");
    }

    #[test]
    fn a_broken_file_is_not_retryable() {
        let err = classify("reading", sqlite_error(rusqlite::ffi::SQLITE_CORRUPT));
        assert!(!err.is_retryable(), "{err}");
        let err = commit_failed("committing", sqlite_error(rusqlite::ffi::SQLITE_IOERR));
        assert!(matches!(err, Error::Ambiguous { .. }), "{err}");
        let err = commit_failed("committing", sqlite_error(rusqlite::ffi::SQLITE_BUSY));
        assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    }
}
