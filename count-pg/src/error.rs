//! From tokio-postgres and deadpool errors to `count_core::Error`, by what a caller
//! can do about them: retry (the server or the connection failed for a passing
//! reason), or not (the server refused the statement).

use std::sync::Arc;

use count_core::Error;
use tokio_postgres::error::SqlState;

/// Classifies a database error met while `doing` something, outside COMMIT.
///
/// Transient, so [`Error::Unavailable`]: a lost connection (no SQLSTATE), and the
/// classes 08 (connection), 40 (serialization failure, deadlock), 53 (insufficient
/// resources), 55 (a lock not available), 57 (operator intervention: a shutdown, a
/// terminated backend, a server starting up) and 58 (system errors: I/O). Every other
/// error is the statement's and retrying it as is fails again: [`Error::Backend`].
pub(crate) fn classify(doing: &str, e: tokio_postgres::Error) -> Error {
    if e.code() == Some(&SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN) {
        // 40003: CockroachDB could not tell whether the statement applied.
        return ambiguous(doing, e);
    }
    let message = describe(doing, &e);
    let transient = match e.code() {
        None => true,
        Some(code) => matches!(&code.code()[..2], "08" | "40" | "53" | "55" | "57" | "58"),
    };
    let source: count_core::SourceError = Arc::new(e);
    if transient {
        Error::Unavailable {
            message,
            source: Some(source),
        }
    } else {
        Error::Backend { message, source }
    }
}

/// A failure of COMMIT itself (or of a statement run without a transaction, which
/// commits on its own). A lost connection and 40003 leave the outcome unknown; any
/// other error the server sent (a serialization failure, a deferred constraint) means
/// it rolled the transaction back.
pub(crate) fn ambiguous(doing: &str, e: tokio_postgres::Error) -> Error {
    if e.code()
        .is_some_and(|c| *c != SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN)
    {
        return classify(doing, e);
    }
    Error::Ambiguous {
        message: describe(doing, &e),
        source: Some(Arc::new(e)),
    }
}

/// The pool could not give a connection.
pub(crate) fn pool(target: &str, e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => {
            classify(&format!("connecting to PostgreSQL at {target}"), e)
        }
        other => Error::Unavailable {
            message: format!("no connection to PostgreSQL at {target}: {other}"),
            source: Some(Arc::new(other)),
        },
    }
}

/// `doing: what the server said (SQLSTATE)`, or `doing: the error: its causes`:
/// tokio-postgres's own `Display` of a server error is only "db error", and of a TLS
/// failure only "error performing TLS handshake", so the causes are what says why
/// (an untrusted certificate, a host name it does not name).
fn describe(doing: &str, e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{doing}: {} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = format!("{doing}: {e}");
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let shown = c.to_string();
        // An io::Error wrapping an error shows that error's text: say it once.
        if !text.ends_with(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        cause = c.source();
    }
    text
}
