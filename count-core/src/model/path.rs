//! `Path`: a validated route template or gRPC method name, interned so that it is
//! `Copy` and recording it costs no reference count.

use std::cell::Cell;
use std::hash::BuildHasher;
use std::sync::LazyLock;

use super::intern::{self, Budget, Interned, Interner, InternerUse};
#[cfg(any(doc, test))]
use crate::Error;
use crate::Result;

/// The route of a counted request: a template such as `/users/{id}`, or a gRPC method
/// such as `/pkg.Service/Method`.
///
/// A `Path` is checked once, when it is made: it is not empty, holds at most
/// [`Path::MAX_LEN`] bytes, and has no NUL or other control character. It is then
/// interned for the life of the process, so it is a single pointer: `Copy`, compared
/// and hashed by address, and pushed onto the record queue without touching a
/// reference count (which two threads recording the same route would fight over).
///
/// Interning is meant for the bounded set of an application's routes. To keep a flood
/// of distinct raw paths from eating memory, the interner spends at most
/// [`Path::MAX_INTERNED_BYTES`] (counting what each entry really costs); past that,
/// new paths are refused with [`Error::LimitReached`].
///
/// ```
/// use count_core::Path;
///
/// let path = Path::new("/users/{id}")?;
/// assert_eq!(path.as_str(), "/users/{id}");
/// assert_eq!(path, Path::new("/users/{id}")?);
/// assert!(Path::new("").is_err());
/// # Ok::<(), count_core::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct Path(&'static Interned);

impl Path {
    /// The longest path accepted, in bytes.
    pub const MAX_LEN: usize = 1024;
    /// How much memory the process spends on distinct paths at most (each counted
    /// with its real cost, allocator and map overhead included).
    pub const MAX_INTERNED_BYTES: usize = 64 << 20;
    /// How much memory texts first seen as report filters may take (apart from
    /// [`Path::MAX_INTERNED_BYTES`]); see [`Path::for_filter`].
    pub const MAX_FILTER_BYTES: usize = intern::FILTER_BYTES;

    /// Checks `text` and returns its interned `Path`.
    ///
    /// Finding a path that is already interned takes no lock (and no check: it was
    /// checked when it was first interned).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an empty path, one over [`Path::MAX_LEN`] bytes, or
    /// one holding a control character; [`Error::LimitReached`] for a new path once
    /// [`Path::MAX_INTERNED_BYTES`] are in use.
    pub fn new(text: &str) -> Result<Path> {
        if text.len() > Path::MAX_LEN {
            // Refused before any lookup, which would hash all of it (a server may be
            // sent paths of megabytes).
            return Err(intern::too_long("path", text, Path::MAX_LEN));
        }
        let hash = RECENT_HASHER.hash_one(text);
        let slot = (hash % RECENT_SLOTS as u64) as usize;
        let recent = RECENT.try_with(|recent| recent[slot].get()).ok().flatten();
        if let Some((seen, path)) = recent
            && seen == hash
            && path.as_str() == text
        {
            return Ok(path);
        }
        let path = Path::intern(text, Budget::Counted)?;
        let _ = RECENT.try_with(|recent| recent[slot].set(Some((hash, path))));
        Ok(path)
    }

    /// Checks `text` against the rules of [`Path::new`] without interning it: for a
    /// caller that holds texts before deciding to count them (a stream that may yet be
    /// refused must not fill the interner).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `text` breaks a rule of [`Path::new`].
    pub fn check(text: &str) -> Result<()> {
        if text.len() > Path::MAX_LEN {
            return Err(intern::too_long("path", text, Path::MAX_LEN));
        }
        if PATHS.get(text).is_some() {
            return Ok(());
        }
        intern::validate("path", text, Path::MAX_LEN)
    }

    /// Like [`Path::new`], for a path a backend reads back from its storage: interned
    /// even past [`Path::MAX_INTERNED_BYTES`], so that reports keep working when no
    /// new path can be counted. (Stored paths were capped when they were counted.)
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `text` breaks a rule of [`Path::new`].
    pub fn from_storage(text: &str) -> Result<Path> {
        Path::intern(text, Budget::Stored)
    }

    /// Like [`Path::new`], for a value a report is filtered by: a path already
    /// interned (counted, or read back from storage) is found; a new one is interned
    /// on a budget of its own ([`Path::MAX_FILTER_BYTES`]), so that queries
    /// for made-up paths never stop new ones from being counted.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `text` breaks a rule of [`Path::new`];
    /// [`Error::LimitReached`] for a new text once the filter budget is spent.
    pub fn for_filter(text: &str) -> Result<Path> {
        Path::intern(text, Budget::Filter)
    }

    /// The path of `text` if it is interned already; never adds one.
    pub(crate) fn lookup(text: &str) -> Option<Path> {
        if text.len() > Path::MAX_LEN {
            return None;
        }
        PATHS.get(text).map(Path)
    }

    fn intern(text: &str, budget: Budget) -> Result<Path> {
        if let Some(found) = PATHS.get(text) {
            return Ok(Path(found));
        }
        intern::validate("path", text, Path::MAX_LEN)?;
        PATHS.insert(text, budget).map(Path)
    }

    /// The path's text.
    pub fn as_str(self) -> &'static str {
        self.0.as_str()
    }

    /// What the path interner holds.
    pub fn interned() -> InternerUse {
        PATHS.usage()
    }
}

static PATHS: LazyLock<Interner> =
    LazyLock::new(|| Interner::new("path", Path::MAX_INTERNED_BYTES));

/// Slots of the per-thread cache of recent lookups.
const RECENT_SLOTS: usize = 64;

/// The cache's hasher: fixed, so every thread's cache agrees (the slot only narrows
/// the search; a hit is confirmed by comparing the text).
static RECENT_HASHER: foldhash::fast::FixedState =
    foldhash::fast::FixedState::with_seed(0x7061_7468);

thread_local! {
    /// Recent lookups by the hash of the text looked up: the layer looks up the same
    /// few routes (axum's `MatchedPath`, a gRPC method) over and over, and the
    /// interner's concurrent map costs several times more than this.
    static RECENT: [Cell<Option<(u64, Path)>>; RECENT_SLOTS] =
        const { [const { Cell::new(None) }; RECENT_SLOTS] };
}

intern::text_handle_impls!(Path);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_text_is_one_interned_path() {
        let a = Path::new("/users/{id}").unwrap();
        let b = Path::new(&String::from("/users/{id}")).unwrap();
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_ne!(a, Path::new("/users/{id}/").unwrap());
        assert_eq!(std::mem::size_of::<Path>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn accepts_any_printable_text_up_to_the_limit() {
        for ok in [
            "/",
            "/pkg.Service/Method",
            "/a'b\"c\\d%e",
            "/ünï/😀",
            &"x".repeat(Path::MAX_LEN),
        ] {
            assert_eq!(Path::new(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_empty_paths() {
        let err = Path::new("").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid path "": a path may not be empty"#
        );
    }

    #[test]
    fn refuses_paths_over_the_limit_naming_both_lengths() {
        let err = Path::new(&"x".repeat(Path::MAX_LEN + 1)).unwrap_err();
        assert!(matches!(err, Error::InvalidInput { field: "path", .. }));
        assert!(
            err.to_string()
                .contains("the path is 1025 bytes, the limit is 1024"),
            "{err}"
        );
    }

    #[test]
    fn refuses_nul_and_control_characters_naming_where() {
        for (bad, code, at) in [
            ("/a\0b", "U+0000", 2),
            ("/a\nb", "U+000A", 2),
            ("\t", "U+0009", 0),
            ("/x\u{7f}", "U+007F", 2),
            ("/é\u{85}", "U+0085", 3),
        ] {
            let err = Path::new(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{code} at byte {at}")), "{err}");
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn orders_by_text() {
        let mut paths: Vec<Path> = ["/b", "/a/z", "/a"]
            .iter()
            .map(|p| Path::new(p).unwrap())
            .collect();
        paths.sort();
        let texts: Vec<&str> = paths.iter().map(|p| p.as_str()).collect();
        assert_eq!(texts, ["/a", "/a/z", "/b"]);
    }

    #[test]
    fn check_applies_the_rules_without_interning() {
        assert!(Path::check("/a\0").is_err() && Path::check("").is_err());
        Path::check("/checked/only").unwrap();
        assert!(PATHS.get("/checked/only").is_none());
    }

    #[test]
    fn concurrent_interning_yields_one_path() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| Path::new("/concurrent/intern").unwrap()))
            .collect();
        let paths: Vec<Path> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(paths.windows(2).all(|w| w[0] == w[1]));
    }
}
