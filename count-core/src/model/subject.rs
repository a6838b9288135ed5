//! `Subject`: who a counted request was made for (a tenant, a customer, an API key's
//! id), interned like a [`Path`](super::Path).

use std::cell::Cell;
use std::sync::LazyLock;
use std::thread::LocalKey;

use super::intern::Interner;
use super::text::{RECENT_SLOTS, Recent, Text, TextKind, sealed};

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
/// [`OVERFLOW_SUBJECT`](crate::backend::OVERFLOW_SUBJECT) and in
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
pub type Subject = Text<SubjectKind>;

/// The rules of a [`Subject`]: at most 256 bytes, not empty (leave it out to count
/// without one), no control or invisible character; 64 MiB of distinct subjects at
/// most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {}

impl TextKind for SubjectKind {
    const NAME: &'static str = "subject";
    const MAX_LEN: usize = 256;
    const MAX_INTERNED_BYTES: usize = 64 << 20;
    const EMPTY_RULE: &'static str =
        "a subject may not be empty: leave it out to count without one";
    const BOUNDED_SET: &'static str = "tenants, customers or API keys";
}

impl sealed::Sealed for SubjectKind {
    fn interner() -> &'static Interner {
        &SUBJECTS
    }

    fn recent() -> &'static LocalKey<Recent> {
        &RECENT
    }
}

static SUBJECTS: LazyLock<Interner> = LazyLock::new(|| {
    Interner::new(
        SubjectKind::NAME,
        SubjectKind::MAX_INTERNED_BYTES,
        SubjectKind::BOUNDED_SET,
    )
});

thread_local! {
    /// Recent lookups: a subject usually comes from a request (a header, a token's
    /// claim), a new string each time, so the cache is keyed by the text's hash.
    static RECENT: Recent = const { [const { Cell::new(None) }; RECENT_SLOTS] };
}

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
        assert!(Subject::lookup("checked-only-never-interned").is_none());
    }
}
