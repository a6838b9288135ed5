//! Whose batch ids `AddCounts` takes: a client's ids live in a namespace of their
//! own (one per token, when the server has tokens), so that no client can claim the
//! server's own batch ids (those of `Add` streams) or another client's.
//!
//! A client's id `(writer, seq)` is stored as `(v5(scope, writer), seq)`: a name-based
//! UUID (version 5), while the handler's own writer id is random (version 4), so the
//! two can never be equal; and two scopes map one writer to two unrelated UUIDs.
//! Answers show a client its own id, never the stored one nor the handler's.

use count_core::uuid::Uuid;
use count_core::{BatchId, Error};

/// Who sends a call, for the namespace of its `AddCounts` batch ids: an auth layer
/// puts one in the request's extensions (say, [`ClientScope::of_token`] for the
/// token it accepted). Calls without one share the default scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientScope(Uuid);

/// The root of every scope (a fixed, random UUID: count's own namespace).
const ROOT: Uuid = Uuid::from_u128(0x5c2e_61d4_8f0b_4a27_9d3e_0b6f_41c8_a913);

impl ClientScope {
    /// The scope of the clients that present `token`.
    pub fn of_token(token: &[u8]) -> ClientScope {
        ClientScope(Uuid::new_v5(&ROOT, token))
    }

    /// The scope of calls that carry none.
    fn default_scope() -> ClientScope {
        ClientScope(ROOT)
    }

    /// The id a client's `id` is stored under.
    pub(crate) fn stored_id(scope: Option<&ClientScope>, id: BatchId) -> BatchId {
        let scope = scope.copied().unwrap_or_else(ClientScope::default_scope);
        BatchId {
            writer: Uuid::new_v5(&scope.0, id.writer.as_bytes()),
            seq: id.seq,
        }
    }
}

/// `error` as its sender may see it: the internal `id` (the handler's own batch id,
/// or a client's id as stored) shown as `shown` instead, and a conflict on it as a
/// conflict on `conflict_as` (the client's own id), or, for the handler's own
/// batches, as a server error.
pub(crate) fn hide_id(
    error: Error,
    id: BatchId,
    shown: &str,
    conflict_as: Option<BatchId>,
) -> Error {
    let hide = |text: String| {
        text.replace(&id.to_string(), shown)
            .replace(&id.writer.to_string(), shown)
    };
    match error {
        Error::BatchConflict { .. } => match conflict_as {
            Some(id) => Error::BatchConflict { id },
            None => Error::Backend {
                message: format!("the server's own batch id for {shown} was already used"),
                source: std::sync::Arc::new(Error::ambiguous("a batch id reused")),
            },
        },
        Error::Unavailable { message, source } => Error::Unavailable {
            message: hide(message),
            source,
        },
        Error::Ambiguous { message, source } => Error::Ambiguous {
            message: hide(message),
            source,
        },
        Error::Backend { message, source } => Error::Backend {
            message: hide(message),
            source,
        },
        Error::NotFound(message) => Error::NotFound(hide(message)),
        Error::LimitReached(message) => Error::LimitReached(hide(message)),
        Error::NotWritten {
            count,
            in_doubt,
            reason,
        } => Error::NotWritten {
            count,
            in_doubt,
            reason: hide(reason),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(writer: u128, seq: u64) -> BatchId {
        BatchId {
            writer: Uuid::from_u128(writer),
            seq,
        }
    }

    #[test]
    fn a_client_id_is_stored_per_scope_and_never_as_a_random_id() {
        let client = id(7, 3);
        let none = ClientScope::stored_id(None, client);
        let a = ClientScope::of_token(b"token a");
        let b = ClientScope::of_token(b"token b");
        let in_a = ClientScope::stored_id(Some(&a), client);
        let in_b = ClientScope::stored_id(Some(&b), client);
        assert_eq!(in_a, ClientScope::stored_id(Some(&a), client), "stable");
        assert!(none != in_a && in_a != in_b && none != in_b);
        assert_eq!(in_a.seq, 3);
        // The handler's own writer ids are version 4; stored client ids never are.
        for stored in [none, in_a, in_b] {
            assert_eq!(stored.writer.get_version_num(), 5);
        }
        let own = Uuid::new_v4();
        let claimed = ClientScope::stored_id(
            None,
            BatchId {
                writer: own,
                seq: 0,
            },
        );
        assert_ne!(claimed.writer, own);
    }

    #[test]
    fn answers_show_no_internal_id() {
        let internal = id(0xabc, 42);
        let error = Error::ambiguous(format!("the write of batch {internal} timed out"));
        let shown = hide_id(error, internal, "this stream's batch", None).to_string();
        assert!(!shown.contains(&internal.writer.to_string()), "{shown}");
        assert!(shown.contains("this stream's batch"), "{shown}");
        let conflict = Error::BatchConflict { id: internal };
        let client = id(1, 2);
        let shown = hide_id(conflict.clone(), internal, "x", Some(client));
        assert!(matches!(shown, Error::BatchConflict { id } if id == client));
        let shown = hide_id(conflict, internal, "this stream's batch", None).to_string();
        assert!(!shown.contains(&internal.writer.to_string()), "{shown}");
    }
}
