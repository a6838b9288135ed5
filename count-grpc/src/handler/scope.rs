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
        // Marked first, so that `shown` (a client's own id) is not hidden below.
        const OWN: &str = "\u{0}";
        let text = text
            .replace(OWN, "")
            .replace(&id.to_string(), OWN)
            .replace(&id.writer.to_string(), OWN);
        // A storage's message may name other batches of a group written together.
        hide_other_ids(&text).replace(OWN, shown)
    };
    match error {
        conflict @ Error::BatchConflict { .. } => match conflict_as {
            Some(id) => Error::BatchConflict { id },
            None => Error::Backend {
                message: format!("the server's own batch id for {shown} was already used"),
                source: std::sync::Arc::new(conflict),
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

/// `text` with every batch id (`<uuid>#<seq>`) or writer UUID in it shown as
/// "another batch".
fn hide_other_ids(text: &str) -> String {
    // A hyphenated UUID is 36 bytes; the uuid crate reads it.
    const UUID_LEN: usize = 36;
    let bytes = text.as_bytes();
    let mut shown = String::with_capacity(text.len());
    let (mut rest, mut at) = (0, 0);
    while at + UUID_LEN <= bytes.len() {
        let starts_word = at == 0 || !bytes[at - 1].is_ascii_hexdigit();
        if !starts_word || Uuid::try_parse_ascii(&bytes[at..at + UUID_LEN]).is_err() {
            at += 1;
            continue;
        }
        let mut end = at + UUID_LEN;
        // A sequence number, if one follows.
        if bytes.get(end) == Some(&b'#') {
            end += 1 + bytes[end + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
        }
        shown.push_str(&text[rest..at]);
        shown.push_str("another batch");
        (rest, at) = (end, end);
    }
    shown.push_str(&text[rest..]);
    shown
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
    fn other_batch_ids_are_hidden_too() {
        let other = id(0x1234, 9);
        let text = format!("disk full writing batch {other} (writer {})", other.writer);
        assert_eq!(
            hide_other_ids(&text),
            "disk full writing batch another batch (writer another batch)"
        );
        assert_eq!(
            hide_other_ids("no ids, #7 and abc-def"),
            "no ids, #7 and abc-def"
        );
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
        // A client's own id, shown in place of the stored one, stays.
        let unknown = Error::ambiguous(format!("lost committing {internal}"));
        let shown = hide_id(unknown, internal, &client.to_string(), Some(client)).to_string();
        assert!(shown.contains(&client.to_string()), "{shown}");
        let shown = hide_id(conflict, internal, "this stream's batch", None).to_string();
        assert!(!shown.contains(&internal.writer.to_string()), "{shown}");
    }
}
