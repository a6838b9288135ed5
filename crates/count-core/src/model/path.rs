//! `Path`: a validated route template or gRPC method name, interned so that it is
//! `Copy` and recording it costs no reference count.

use std::cell::Cell;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, Mutex};

use crate::{Error, Result};

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
/// of distinct raw paths from eating memory, the interner holds at most
/// [`Path::MAX_INTERNED_BYTES`]; past that, new paths are refused with
/// [`Error::LimitReached`].
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

/// The one heap copy of a path's text. Boxed again so `Path` is a thin pointer.
struct Interned(Box<str>);

impl Path {
    /// The longest path accepted, in bytes.
    pub const MAX_LEN: usize = 1024;
    /// How many bytes of distinct path text the process interns at most.
    pub const MAX_INTERNED_BYTES: usize = 64 << 20;

    /// Checks `text` and returns its interned `Path`.
    ///
    /// Finding a path that is already interned takes no lock (and no check: it was
    /// checked when it was first interned).
    pub fn new(text: &str) -> Result<Path> {
        INTERNER.intern(text)
    }

    /// The path's text.
    pub fn as_str(self) -> &'static str {
        &self.0.0
    }
}

fn too_long(text: &str) -> Error {
    Error::invalid(
        "path",
        text,
        format!(
            "the path is {} bytes, the limit is {}",
            text.len(),
            Path::MAX_LEN
        ),
    )
}

fn validate(text: &str) -> Result<()> {
    if text.is_empty() {
        return Err(Error::invalid("path", text, "a path may not be empty"));
    }
    if text.len() > Path::MAX_LEN {
        return Err(too_long(text));
    }
    if let Some((at, c)) = text.char_indices().find(|(_, c)| c.is_control()) {
        return Err(Error::invalid(
            "path",
            text,
            format!(
                "control character U+{:04X} at byte {at}: paths may not hold NUL or other control characters",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// The process-wide set of paths: lock-free lookups, one writer at a time for new ones
/// (so no text is ever leaked twice).
struct Interner {
    /// foldhash: a lookup is on the request path of `CountLayer`; SipHash costs
    /// several times more for a route-sized key.
    paths: papaya::HashMap<&'static str, Path, foldhash::fast::RandomState>,
    adding: Mutex<()>,
    bytes: AtomicUsize,
}

static INTERNER: LazyLock<Interner> = LazyLock::new(|| Interner {
    paths: papaya::HashMap::with_hasher(foldhash::fast::RandomState::default()),
    adding: Mutex::new(()),
    bytes: AtomicUsize::new(0),
});

/// Slots of the per-thread cache of recent lookups.
const RECENT_SLOTS: usize = 64;

thread_local! {
    /// Recent lookups by the address of the text looked up. Callers that look up the
    /// same string again (axum's `MatchedPath` of a route, a `&'static str`) skip the
    /// map. A hit is confirmed by comparing the text, so a reused address is harmless.
    static RECENT: [Cell<Option<(usize, Path)>>; RECENT_SLOTS] =
        const { [const { Cell::new(None) }; RECENT_SLOTS] };
}

impl Interner {
    fn intern(&self, text: &str) -> Result<Path> {
        if text.len() > Path::MAX_LEN {
            // Refused before any lookup, which would hash all of it (a server may be
            // sent paths of megabytes).
            return Err(too_long(text));
        }
        let address = text.as_ptr() as usize;
        let slot = (address >> 3) % RECENT_SLOTS;
        let recent = RECENT.try_with(|recent| recent[slot].get()).ok().flatten();
        if let Some((seen, path)) = recent
            && seen == address
            && path.as_str() == text
        {
            return Ok(path);
        }
        let path = self.lookup_or_insert(text)?;
        let _ = RECENT.try_with(|recent| recent[slot].set(Some((address, path))));
        Ok(path)
    }

    fn lookup_or_insert(&self, text: &str) -> Result<Path> {
        if let Some(path) = self.paths.pin().get(text) {
            return Ok(*path);
        }
        validate(text)?;
        // A poisoned lock only means another thread panicked while adding; the map
        // itself is always consistent, so carry on.
        let _adding = self.adding.lock().unwrap_or_else(|e| e.into_inner());
        let paths = self.paths.pin();
        if let Some(path) = paths.get(text) {
            return Ok(*path);
        }
        let bytes = self.bytes.load(Ordering::Relaxed) + text.len();
        if bytes > Path::MAX_INTERNED_BYTES {
            return Err(Error::LimitReached(format!(
                "cannot intern path {}: {} MiB of distinct paths are interned, the limit \
                 (paths are meant to be route templates, not raw URLs)",
                crate::error::ShownValue::new(text),
                Path::MAX_INTERNED_BYTES >> 20
            )));
        }
        self.bytes.store(bytes, Ordering::Relaxed);
        // Leaked on purpose: a path lives as long as the process, like a route.
        let interned: &'static Interned = Box::leak(Box::new(Interned(text.into())));
        let path = Path(interned);
        paths.insert(path.as_str(), path);
        Ok(path)
    }
}

impl PartialEq for Path {
    fn eq(&self, other: &Path) -> bool {
        // Interned: equal text is the same allocation.
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Path {}

impl Hash for Path {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(self.0, state);
    }
}

impl PartialOrd for Path {
    fn partial_cmp(&self, other: &Path) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// By text, byte for byte, so reports sort the same on every backend.
impl Ord for Path {
    fn cmp(&self, other: &Path) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialEq<str> for Path {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Path {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl AsRef<str> for Path {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for Path {
    type Err = Error;

    fn from_str(text: &str) -> Result<Path> {
        Path::new(text)
    }
}

impl TryFrom<&str> for Path {
    type Error = Error;

    fn try_from(text: &str) -> Result<Path> {
        Path::new(text)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

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
    fn concurrent_interning_yields_one_path() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| Path::new("/concurrent/intern").unwrap()))
            .collect();
        let paths: Vec<Path> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(paths.windows(2).all(|w| w[0] == w[1]));
    }
}
