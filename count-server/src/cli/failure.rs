//! Why a command failed, and the exit code each kind of failure ends with.

use std::fmt;
use std::process::ExitCode;

/// A command's failure: what it prints on standard error, and its exit code.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A bad or missing argument (exit 2, as clap's own usage errors).
    Usage(String),
    /// What was asked for does not exist (exit 3).
    NotFound(String),
    /// The schema lacks migrations (exit 4).
    SchemaNotCurrent(String),
    /// The server refused the access token (exit 5).
    Refused(String),
    /// The backend or the server failed (exit 1).
    Backend(count_core::Error),
}

impl Failure {
    /// The exit code scripts see.
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Failure::Backend(_) => 1,
            Failure::Usage(_) => 2,
            Failure::NotFound(_) => 3,
            Failure::SchemaNotCurrent(_) => 4,
            Failure::Refused(_) => 5,
        })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(message)
            | Failure::NotFound(message)
            | Failure::SchemaNotCurrent(message)
            | Failure::Refused(message) => f.write_str(message),
            Failure::Backend(error) => write!(f, "{error}"),
        }
    }
}

impl From<count_core::Error> for Failure {
    /// Sorts a backend's error: a schema that is not current is
    /// [`Failure::SchemaNotCurrent`], a missing database file [`Failure::NotFound`],
    /// another refused value a usage error, a refused token [`Failure::Refused`],
    /// anything else a backend failure.
    fn from(error: count_core::Error) -> Failure {
        if count::is_schema_not_current(&error) {
            let message = error.to_string();
            // A schema newer than this build's cannot be migrated to it.
            return Failure::SchemaNotCurrent(if message.contains("newer version") {
                message
            } else {
                format!("{message}\n(`count-server migrate` applies the missing migrations)")
            });
        }
        match &error {
            count_core::Error::NotFound(_) => Failure::NotFound(error.to_string()),
            count_core::Error::InvalidInput { .. } => Failure::Usage(error.to_string()),
            count_core::Error::Backend { source, .. } => {
                match source
                    .downcast_ref::<tonic::Status>()
                    .map(tonic::Status::code)
                {
                    Some(tonic::Code::Unauthenticated | tonic::Code::PermissionDenied) => {
                        Failure::Refused(format!(
                            "the server refused the access token (--token or COUNT_TOKEN): {}",
                            source
                        ))
                    }
                    _ => Failure::Backend(error),
                }
            }
            _ => Failure::Backend(error),
        }
    }
}
