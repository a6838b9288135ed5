//! `Subject`: who a counted request was made for (a tenant, a customer, an API key's
//! id), interned like a [`Path`](super::Path).

use std::cell::Cell;
use std::hash::BuildHasher;
use std::sync::LazyLock;

use super::intern::{self, Budget, Interned, Interner, InternerUse};
use crate::{Error, Result};

/// The caller a request is counted for: an opaque id of the application's choosing,
/// such as a tenant, a customer or an API key's id (never the secret itself).
///
/// Optional on every count: a request counted without one has no subject, which is
/// distinct from every subject. Checked once when it is made (not empty, at most
/// [`Subject::MAX_LEN`] bytes, no control character) and interned for the life of the
/// process, so it is `Copy` and one pointer wide, like [`Path`](super::Path).
///
/// # Keeping the number of subjects bounded
///
/// Every distinct subject is interned, stored and reported: take it from something the
/// application has checked (the tenant an authenticated key belongs to, an id an auth
/// middleware put in the request's extensions), never from an unchecked header, or
/// every made-up value becomes a subject. Two limits stand behind that: the interner
/// spends at most [`Subject::MAX_INTERNED_BYTES`] (new subjects past it are refused),
/// and a [`CountQueue`](crate::CountQueue) counts at most `max_subjects` distinct
/// subjects a day as themselves; later new ones are counted under
/// [`OVERFLOW_SUBJECT`](crate::OVERFLOW_SUBJECT) and in
/// [`Stats::overflowed_subjects`](crate::Stats::overflowed_subjects).
///
/// ```
/// use count_core::Subject;
///
/// let tenant = Subject::new("acme-corp")?;
/// assert_eq!(tenant.as_str(), "acme-corp");
/// assert!(Subject::new("").is_err());
/// assert!(Subject::new("line\nbreak").is_err());
/// # Ok::<(), count_core::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct Subject(&'static Interned);

impl Subject {
    /// The longest subject accepted, in bytes.
    pub const MAX_LEN: usize = 256;
    /// How much memory the process spends on distinct subjects at most.
    pub const MAX_INTERNED_BYTES: usize = 64 << 20;
    /// How much memory texts first seen as report filters may take (apart from
    /// [`Subject::MAX_INTERNED_BYTES`]); see [`Subject::for_filter`].
    pub const MAX_FILTER_BYTES: usize = intern::FILTER_BYTES;

    /// Checks `text` and returns its interned `Subject`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an empty subject (leave the subject out to mean
    /// "none"), one over [`Subject::MAX_LEN`] bytes, or one holding a control
    /// character; [`Error::LimitReached`] for a new subject once
    /// [`Subject::MAX_INTERNED_BYTES`] are in use.
    pub fn new(text: &str) -> Result<Subject> {
        if text.len() > Subject::MAX_LEN {
            // Refused before hashing all of it.
            return Err(intern::too_long("subject", text, Subject::MAX_LEN));
        }
        // A subject usually comes from a request (a header, a token's claim): a new
        // string each time, so the cache is keyed by the text's hash, not its address.
        let hash = RECENT_HASHER.hash_one(text);
        let slot = (hash % RECENT_SLOTS as u64) as usize;
        let recent = RECENT.try_with(|recent| recent[slot].get()).ok().flatten();
        if let Some((seen, subject)) = recent
            && seen == hash
            && subject.as_str() == text
        {
            return Ok(subject);
        }
        let subject = Subject::intern(text, Budget::Counted)?;
        let _ = RECENT.try_with(|recent| recent[slot].set(Some((hash, subject))));
        Ok(subject)
    }

    /// Checks `text` against the rules of [`Subject::new`] without interning it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `text` breaks a rule of [`Subject::new`].
    pub fn check(text: &str) -> Result<()> {
        if text.len() > Subject::MAX_LEN {
            return Err(intern::too_long("subject", text, Subject::MAX_LEN));
        }
        if text.is_empty() {
            return Err(empty(text));
        }
        intern::validate("subject", text, Subject::MAX_LEN)
    }

    /// Like [`Subject::new`], for a subject a backend reads back from its storage:
    /// interned even past the cap, so that reports keep working.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `text` breaks a rule of [`Subject::new`].
    pub fn from_storage(text: &str) -> Result<Subject> {
        Subject::intern(text, Budget::Stored)
    }

    /// Like [`Subject::new`], for a value a report is filtered by: a subject already
    /// interned (counted, or read back from storage) is found; a new one is interned
    /// on a budget of its own ([`Subject::MAX_FILTER_BYTES`]), so that queries
    /// for made-up subjects never stop new ones from being counted.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `text` breaks a rule of [`Subject::new`];
    /// [`Error::LimitReached`] for a new text once the filter budget is spent.
    pub fn for_filter(text: &str) -> Result<Subject> {
        Subject::intern(text, Budget::Filter)
    }

    /// The subject of `text` if it is interned already; never adds one.
    pub(crate) fn lookup(text: &str) -> Option<Subject> {
        if text.len() > Subject::MAX_LEN {
            return None;
        }
        SUBJECTS.get(text).map(Subject)
    }

    fn intern(text: &str, budget: Budget) -> Result<Subject> {
        if text.len() > Subject::MAX_LEN {
            return Err(intern::too_long("subject", text, Subject::MAX_LEN));
        }
        if let Some(found) = SUBJECTS.get(text) {
            return Ok(Subject(found));
        }
        if text.is_empty() {
            return Err(empty(text));
        }
        intern::validate("subject", text, Subject::MAX_LEN)?;
        SUBJECTS.insert(text, budget).map(Subject)
    }

    /// The subject's text.
    pub fn as_str(self) -> &'static str {
        self.0.as_str()
    }

    /// What the subject interner holds.
    pub fn interned() -> InternerUse {
        SUBJECTS.usage()
    }
}

fn empty(text: &str) -> Error {
    Error::invalid(
        "subject",
        text,
        "a subject may not be empty: leave it out to count without one",
    )
}

/// Slots of the per-thread cache of recent lookups.
const RECENT_SLOTS: usize = 64;

/// The cache's hasher: fixed, so every thread's cache agrees (the slot only narrows
/// the search; a hit is confirmed by comparing the text).
static RECENT_HASHER: foldhash::fast::FixedState =
    foldhash::fast::FixedState::with_seed(0x0063_6f75_6e74);

thread_local! {
    /// Recent lookups by the hash of the text looked up: the interner's map is a
    /// shared, concurrent one, and finding a text there costs several times more.
    static RECENT: [Cell<Option<(u64, Subject)>>; RECENT_SLOTS] =
        const { [const { Cell::new(None) }; RECENT_SLOTS] };
}

static SUBJECTS: LazyLock<Interner> =
    LazyLock::new(|| Interner::new("subject", Subject::MAX_INTERNED_BYTES));

intern::text_handle_impls!(Subject);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_text_is_one_subject() {
        let a = Subject::new("tenant-7").unwrap();
        let b = Subject::new(&String::from("tenant-7")).unwrap();
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_eq!(
            std::mem::size_of::<Option<Subject>>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn refuses_empty_long_and_control_text_naming_the_rule() {
        let err = Subject::new("").unwrap_err().to_string();
        assert!(err.contains("may not be empty: leave it out"), "{err}");
        let err = Subject::new(&"k".repeat(257)).unwrap_err().to_string();
        assert!(
            err.contains("the subject is 257 bytes, the limit is 256"),
            "{err}"
        );
        let err = Subject::new("a\u{1b}[31m").unwrap_err().to_string();
        assert!(
            err.contains("invalid subject") && err.contains("U+001B at byte 1"),
            "{err}"
        );
        assert_eq!(Subject::new(&"k".repeat(256)).unwrap().as_str().len(), 256);
        assert_eq!(Subject::new("ünï 😀 'q\"").unwrap().as_str(), "ünï 😀 'q\"");
    }

    #[test]
    fn check_applies_the_rules_without_interning() {
        assert!(Subject::check("").is_err() && Subject::check("a\nb").is_err());
        Subject::check("checked-only-never-interned").unwrap();
        assert!(SUBJECTS.get("checked-only-never-interned").is_none());
    }
}
