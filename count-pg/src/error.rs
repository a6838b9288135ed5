//! From tokio-postgres and deadpool errors to `count_core::Error`, by what a caller
//! can do about them.

use std::sync::Arc;

use count_core::Error;
use tokio_postgres::error::SqlState;

/// Classifies a database error met while `doing` something.
pub(crate) fn classify(doing: &str, e: tokio_postgres::Error) -> Error {
    if e.code() == Some(&SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN) {
        // 40003: CockroachDB could not tell whether the statement applied.
        return ambiguous(doing, e);
    }
    let message = describe(doing, &e);
    let transient = match e.code() {
        // No code: the connection failed or closed.
        None => true,
        Some(code) => {
            let class = &code.code()[..2];
            // Connection exceptions, insufficient resources, operator intervention
            // (a terminated backend, a shutdown), serialization failures and deadlocks.
            matches!(class, "08" | "53" | "57" | "40")
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
        }
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

/// A failure of COMMIT itself. Lost connections and 40003 leave the outcome unknown;
/// any other error the server sent (a serialization failure, a deferred constraint)
/// means it rolled the transaction back.
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

/// `doing: what the server said (SQLSTATE)`: tokio-postgres's own `Display` of a server
/// error is only "db error".
fn describe(doing: &str, e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("{doing}: {} (SQLSTATE {})", db.message(), db.code().code()),
        (None, Some(cause)) => format!("{doing}: {e}: {cause}"),
        (None, None) => format!("{doing}: {e}"),
    }
}
