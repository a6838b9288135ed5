//! `Path`: a validated route template or gRPC method name, interned so that it is
//! `Copy` and recording it costs no reference count.

use std::cell::Cell;
use std::sync::LazyLock;
use std::thread::LocalKey;

use super::intern::Interner;
use super::text::{RECENT_SLOTS, Recent, Text, TextKind, sealed};
#[cfg(any(doc, test))]
use crate::Error;

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
pub type Path = Text<PathKind>;

/// The rules of a [`Path`]: at most 1,024 bytes, not empty, no control or invisible
/// character; 64 MiB of distinct paths at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathKind {}

impl TextKind for PathKind {
    const NAME: &'static str = "path";
    const MAX_LEN: usize = 1024;
    const MAX_INTERNED_BYTES: usize = 64 << 20;
    const EMPTY_RULE: &'static str = "a path may not be empty";
    const BOUNDED_SET: &'static str = "route templates";
}

impl sealed::Sealed for PathKind {
    fn interner() -> &'static Interner {
        &PATHS
    }

    fn recent() -> &'static LocalKey<Recent> {
        &RECENT
    }
}

static PATHS: LazyLock<Interner> = LazyLock::new(|| {
    Interner::new(
        PathKind::NAME,
        PathKind::MAX_INTERNED_BYTES,
        PathKind::BOUNDED_SET,
    )
});

thread_local! {
    /// Recent lookups: the layer looks up the same few routes (axum's `MatchedPath`,
    /// a gRPC method) over and over.
    static RECENT: Recent = const { [const { Cell::new(None) }; RECENT_SLOTS] };
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
    fn check_applies_the_rules_without_interning() {
        assert!(Path::check("/a\0").is_err() && Path::check("").is_err());
        Path::check("/checked/only").unwrap();
        assert!(Path::lookup("/checked/only").is_none());
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
