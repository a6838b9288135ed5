//! The process-wide interners behind [`Path`](super::Path) and
//! [`Subject`](super::Subject): each distinct text is checked once, stored once for
//! the life of the process, and then named by a single pointer.
//!
//! An interner's memory is capped, and the cap counts what an entry really costs (the
//! text's allocation, the entry's box, its share of the map), not only the text's
//! bytes: a million short paths cost about 120 bytes each, not 10.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::error::ShownValue;
use crate::{Error, Result};

/// The one heap copy of an interned text. Boxed again so a handle is a thin pointer.
/// (`pub` only to be named by the sealed [`TextKind`](super::TextKind) machinery;
/// the module is private.)
#[derive(Debug)]
pub struct Interned(Box<str>);

impl Interned {
    pub(crate) fn as_str(&'static self) -> &'static str {
        &self.0
    }
}

/// What an interner holds, for monitoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InternerUse {
    /// Distinct texts interned.
    pub entries: u64,
    /// The memory of the texts that came from outside to be counted, as the cap
    /// counts it: each text with its allocator overhead, its box and its share of
    /// the map (about 120 bytes for a short text).
    pub bytes: u64,
    /// The cap on `bytes`.
    pub limit: u64,
    /// The memory of the texts first read back from storage (`Path::from_storage`):
    /// outside the cap, so that reading reports never uses up what counting needs,
    /// and bounded by what the storage holds.
    pub stored_bytes: u64,
    /// Texts refused because the cap was reached.
    pub refused: u64,
}

/// Which budget a new text is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    /// A text from outside that is to be counted: capped by the interner's limit.
    Counted,
    /// A text read back from storage: uncapped (it was capped when it was counted).
    Stored,
}

/// What one interned text of `len` bytes costs, allocator overhead included: its
/// `Box<str>`, its `Box<Interned>` and its entry in the map (the entry's own box and
/// its slots in a table kept at most half full). Measured by
/// `tests/interner_memory.rs`, which fails if the real cost ever exceeds this.
pub(crate) const fn entry_cost(len: usize) -> usize {
    /// glibc's chunk for `size` requested bytes: 8 bytes of header, 16-byte
    /// granules, 32 bytes at least.
    const fn chunk(size: usize) -> usize {
        let with_header = size + 8;
        let rounded = with_header.div_ceil(16) * 16;
        if rounded < 32 { 32 } else { rounded }
    }
    // The text, the `Interned` box (16 bytes), the map entry (key, value and links,
    // about 40 bytes), and two table slots of 17 bytes (pointer + control byte) with
    // room for the table being resized.
    chunk(len) + chunk(16) + chunk(40) + 2 * 17 + 24
}

/// A set of texts of one kind (paths, subjects).
pub struct Interner {
    /// `"path"`, `"subject"`: the field name in errors.
    kind: &'static str,
    /// What a bounded set of such texts looks like, for the refusal past the cap.
    bounded: &'static str,
    /// foldhash: a lookup is on the request path of the layer; SipHash costs several
    /// times more for a route-sized key.
    texts: papaya::HashMap<&'static str, &'static Interned, foldhash::fast::RandomState>,
    /// One writer at a time for new texts, so no text is ever leaked twice.
    adding: Mutex<()>,
    limit: usize,
    bytes: AtomicUsize,
    stored_bytes: AtomicUsize,
    entries: AtomicU64,
    refused: AtomicU64,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner")
            .field("kind", &self.kind)
            .field("usage", &self.usage())
            .finish_non_exhaustive()
    }
}

impl Interner {
    pub(crate) fn new(kind: &'static str, limit: usize, bounded: &'static str) -> Interner {
        Interner {
            kind,
            bounded,
            texts: papaya::HashMap::with_hasher(foldhash::fast::RandomState::default()),
            adding: Mutex::new(()),
            limit,
            bytes: AtomicUsize::new(0),
            stored_bytes: AtomicUsize::new(0),
            entries: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// The interned copy of `text`, if there is one. Lock-free.
    #[inline]
    pub(crate) fn get(&self, text: &str) -> Option<&'static Interned> {
        self.texts.pin().get(text).copied()
    }

    /// The interned copy of `text` (already validated by the caller), adding it if it
    /// is new, charged to `budget` (refused past that budget's cap).
    pub(crate) fn insert(&self, text: &str, budget: Budget) -> Result<&'static Interned> {
        if let Some(found) = self.get(text) {
            return Ok(found);
        }
        // A poisoned lock only means another thread panicked while adding; the map is
        // always consistent, so carry on.
        let _adding = self.adding.lock().unwrap_or_else(|e| e.into_inner());
        let texts = self.texts.pin();
        if let Some(found) = texts.get(text) {
            return Ok(found);
        }
        let cost = entry_cost(text.len());
        let (used, limit) = match budget {
            Budget::Counted => (&self.bytes, Some(self.limit)),
            Budget::Stored => (&self.stored_bytes, None),
        };
        let bytes = used.load(Relaxed) + cost;
        if let Some(limit) = limit
            && bytes > limit
        {
            self.refused.fetch_add(1, Relaxed);
            let what = "texts counted";
            let bounded = self.bounded;
            return Err(Error::LimitReached(format!(
                "cannot intern {} {}: the {} {what} so far take {} MiB, the limit \
                 ({}s are meant to be a bounded set, such as {bounded})",
                self.kind,
                ShownValue::new(text),
                self.kind,
                limit >> 20,
                self.kind,
            )));
        }
        used.store(bytes, Relaxed);
        self.entries.fetch_add(1, Relaxed);
        // Leaked on purpose: an interned text lives as long as the process.
        let interned: &'static Interned = Box::leak(Box::new(Interned(text.into())));
        texts.insert(interned.as_str(), interned);
        Ok(interned)
    }

    pub(crate) fn usage(&self) -> InternerUse {
        InternerUse {
            entries: self.entries.load(Relaxed),
            bytes: self.bytes.load(Relaxed) as u64,
            limit: self.limit as u64,
            stored_bytes: self.stored_bytes.load(Relaxed) as u64,
            refused: self.refused.load(Relaxed),
        }
    }
}

/// Checks the characters of a path or subject: no control character, nothing
/// invisible. (Its length and emptiness are its kind's rules.)
pub(crate) fn validate(kind: &'static str, text: &str) -> Result<()> {
    if let Some((at, c)) = text.char_indices().find(|(_, c)| c.is_control()) {
        return Err(Error::invalid(
            kind,
            text,
            format!(
                "control character U+{:04X} at byte {at}: {kind}s may not hold NUL or other control characters",
                c as u32
            ),
        ));
    }
    if let Some((at, c)) = text.char_indices().find(|&(_, c)| is_invisible(c)) {
        return Err(Error::invalid(
            kind,
            text,
            format!(
                "invisible character U+{:04X} at byte {at}: {kind}s may not hold format or \
                 separator characters (zero-width, bidirectional, line separators), which \
                 would make two {kind}s that look alike",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// The characters of Unicode's categories Cf (format), Zl and Zp (line and paragraph
/// separators) that display as nothing or reorder text.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0001}'
            | '\u{E0020}'..='\u{E007F}'
    )
}

pub(crate) fn too_long(kind: &'static str, text: &str, max_len: usize) -> Error {
    Error::invalid(
        kind,
        text,
        format!("the {kind} is {} bytes, the limit is {max_len}", text.len()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_counts_whole_entries_and_refusals() {
        let interner = Interner::new("thing", entry_cost(1) * 3, "things");
        for text in ["a", "b", "c"] {
            interner.insert(text, Budget::Counted).unwrap();
        }
        assert!(matches!(
            interner.insert("d", Budget::Counted),
            Err(Error::LimitReached(_))
        ));
        // Known texts are still found, and texts read back from storage or filtered
        // on still go in, on budgets of their own.
        assert_eq!(interner.insert("a", Budget::Counted).unwrap().as_str(), "a");
        assert_eq!(interner.insert("e", Budget::Stored).unwrap().as_str(), "e");
        let usage = interner.usage();
        assert_eq!((usage.entries, usage.refused), (4, 1));
        assert_eq!(usage.bytes as usize, 3 * entry_cost(1));
        assert_eq!(usage.stored_bytes as usize, entry_cost(1));

        // Reading many stored texts, or filtering on many made-up ones, leaves the
        // counting budget as it was.
        let fresh = Interner::new("thing", entry_cost(1) * 3, "things");
        for i in 0..100 {
            fresh
                .insert(&format!("stored {i}"), Budget::Stored)
                .unwrap();
        }
        assert_eq!(fresh.insert("b", Budget::Counted).unwrap().as_str(), "b");
    }

    #[test]
    fn invisible_and_bidirectional_characters_are_refused() {
        for (bad, code) in [
            ("acme\u{200B}", "U+200B"),
            ("\u{FEFF}acme", "U+FEFF"),
            ("ac\u{202E}me", "U+202E"),
            ("a\u{2028}b", "U+2028"),
        ] {
            let err = validate("subject", bad).unwrap_err().to_string();
            assert!(err.contains(code) && err.contains("invisible"), "{err}");
        }
        validate("subject", "ünï 😀 \u{00E9}").unwrap();
    }

    #[test]
    fn an_entry_costs_more_than_its_text() {
        assert!(entry_cost(0) >= 100, "{}", entry_cost(0));
        assert_eq!(entry_cost(1000) - entry_cost(984), 16);
    }
}
