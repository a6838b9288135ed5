//! [`Text`]: one checked, interned text of a kind ([`Path`](super::Path),
//! [`Subject`](super::Subject)), a single pointer for the life of the process. What
//! sets the kinds apart (name, limits, rules, interner) is a [`TextKind`].

use std::cell::Cell;
use std::hash::BuildHasher;
use std::marker::PhantomData;

use super::intern::{self, Budget, Interned, Interner, InternerUse};
use crate::{Error, Result};

/// What sets one kind of interned text apart. Sealed: the kinds are count's own.
pub trait TextKind: sealed::Sealed + 'static {
    /// The kind's name in errors: `path`, `subject`.
    const NAME: &'static str;
    /// The longest text accepted, in bytes.
    const MAX_LEN: usize;
    /// How much memory the process spends on distinct texts of the kind at most.
    const MAX_INTERNED_BYTES: usize;
    /// The rule an empty text breaks.
    #[doc(hidden)]
    const EMPTY_RULE: &'static str;
    /// What a bounded set of such texts looks like, for the interner's refusal.
    #[doc(hidden)]
    const BOUNDED_SET: &'static str;
}

pub(crate) mod sealed {
    use std::thread::LocalKey;

    use super::{Interner, Recent};

    /// A kind's interner and per-thread cache: count's own.
    pub trait Sealed {
        fn interner() -> &'static Interner;
        fn recent() -> &'static LocalKey<Recent>;
    }
}

/// Slots of the per-thread cache of recent lookups.
pub(crate) const RECENT_SLOTS: usize = 64;

/// A thread's recent lookups of one kind, by the hash of the text looked up.
pub(crate) type Recent = [Cell<Option<(u64, &'static Interned)>>; RECENT_SLOTS];

/// The cache's hasher: fixed, so every thread's cache agrees (the slot only narrows
/// the search; a hit is confirmed by comparing the text).
static RECENT_HASHER: foldhash::fast::FixedState =
    foldhash::fast::FixedState::with_seed(0x0063_6f75_6e74);

/// A checked text of kind `K`, interned: `Copy`, one pointer wide, compared and
/// hashed by address (equal text is one allocation), ordered and shown by its text.
/// Used as [`Path`](super::Path) and [`Subject`](super::Subject), whose docs say
/// their rules.
pub struct Text<K: TextKind>(&'static Interned, PhantomData<fn() -> K>);

impl<K: TextKind> Text<K> {
    /// The longest text accepted, in bytes.
    pub const MAX_LEN: usize = K::MAX_LEN;
    /// How much memory the process spends on distinct texts of this kind at most
    /// (each counted with its real cost, allocator and map overhead included).
    pub const MAX_INTERNED_BYTES: usize = K::MAX_INTERNED_BYTES;

    /// Checks `text` and returns it interned.
    ///
    /// A text looked up recently on this thread is found in a per-thread cache keyed
    /// by the text's hash (a subject from a header is a new string each request; the
    /// interner's concurrent map costs several times more); one interned already takes
    /// no lock (and no check: it was checked when it was first interned).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an empty text, one over `MAX_LEN` bytes, or one
    /// holding a control or invisible character; [`Error::LimitReached`] for a new
    /// text once `MAX_INTERNED_BYTES` are in use.
    pub fn new(text: &str) -> Result<Text<K>> {
        if text.len() > K::MAX_LEN {
            // Refused before any lookup, which would hash all of it (a server may be
            // sent texts of megabytes).
            return Err(intern::too_long(K::NAME, text, K::MAX_LEN));
        }
        let hash = RECENT_HASHER.hash_one(text);
        let slot = (hash % RECENT_SLOTS as u64) as usize;
        let recent = K::recent()
            .try_with(|recent| recent[slot].get())
            .ok()
            .flatten();
        if let Some((seen, interned)) = recent
            && seen == hash
            && interned.as_str() == text
        {
            return Ok(Text::of(interned));
        }
        let found = Text::intern(text, Budget::Counted)?;
        let _ = K::recent().try_with(|recent| recent[slot].set(Some((hash, found.0))));
        Ok(found)
    }

    /// Checks `text` against the rules of [`Text::new`] without interning it: for a
    /// caller that holds texts before deciding to count them (a stream that may yet be
    /// refused must not fill the interner).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `text` breaks a rule of [`Text::new`].
    pub fn check(text: &str) -> Result<()> {
        Text::<K>::lookup_or_check(text).map(|_| ())
    }

    /// Like [`Text::new`], for a text a backend reads back from its storage: interned
    /// even past `MAX_INTERNED_BYTES`, so that reports keep working when no new text
    /// can be counted. (Stored texts were capped when they were counted.)
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when `text` breaks a rule of [`Text::new`].
    pub fn from_storage(text: &str) -> Result<Text<K>> {
        Text::intern(text, Budget::Stored)
    }

    /// The text if it is interned already; never adds one (the layer's question:
    /// was this gRPC method answered before?).
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn lookup(text: &str) -> Option<Text<K>> {
        if text.len() > K::MAX_LEN {
            return None;
        }
        K::interner().get(text).map(Text::of)
    }

    /// What the interner of this kind holds.
    pub fn interned() -> InternerUse {
        K::interner().usage()
    }

    /// The text.
    pub fn as_str(self) -> &'static str {
        self.0.as_str()
    }

    fn of(interned: &'static Interned) -> Text<K> {
        Text(interned, PhantomData)
    }

    /// The interned text, if there is one, else `None` once `text` is checked.
    fn lookup_or_check(text: &str) -> Result<Option<&'static Interned>> {
        if text.len() > K::MAX_LEN {
            return Err(intern::too_long(K::NAME, text, K::MAX_LEN));
        }
        if let Some(found) = K::interner().get(text) {
            return Ok(Some(found));
        }
        if text.is_empty() {
            return Err(Error::invalid(K::NAME, text, K::EMPTY_RULE));
        }
        intern::validate(K::NAME, text)?;
        Ok(None)
    }

    fn intern(text: &str, budget: Budget) -> Result<Text<K>> {
        let interned = match Text::<K>::lookup_or_check(text)? {
            Some(found) => found,
            None => K::interner().insert(text, budget)?,
        };
        Ok(Text::of(interned))
    }
}

impl<K: TextKind> Clone for Text<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K: TextKind> Copy for Text<K> {}

impl<K: TextKind> PartialEq for Text<K> {
    fn eq(&self, other: &Text<K>) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl<K: TextKind> Eq for Text<K> {}

impl<K: TextKind> std::hash::Hash for Text<K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(self.0, state);
    }
}

impl<K: TextKind> PartialOrd for Text<K> {
    fn partial_cmp(&self, other: &Text<K>) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// By text, byte for byte, so reports sort the same on every backend.
impl<K: TextKind> Ord for Text<K> {
    fn cmp(&self, other: &Text<K>) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl<K: TextKind> PartialEq<str> for Text<K> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<K: TextKind> PartialEq<&str> for Text<K> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<K: TextKind> AsRef<str> for Text<K> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl<K: TextKind> std::str::FromStr for Text<K> {
    type Err = Error;

    fn from_str(text: &str) -> Result<Text<K>> {
        Text::new(text)
    }
}

impl<K: TextKind> TryFrom<&str> for Text<K> {
    type Error = Error;

    fn try_from(text: &str) -> Result<Text<K>> {
        Text::new(text)
    }
}

impl<K: TextKind> std::fmt::Display for Text<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<K: TextKind> std::fmt::Debug for Text<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}
