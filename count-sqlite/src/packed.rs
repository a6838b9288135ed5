//! The counts of one raw bucket, packed into one value: `(key id, n)` pairs sorted by
//! key id, each two little-endian `i64`s.
//!
//! A bucket is one row however many keys it holds: a write merges into it, a rollup
//! reads and deletes whole buckets, and a report decodes them in Rust, which is
//! cheaper than SQLite handling a row per key and bucket.

use count_core::{Error, Result};

const PAIR: usize = 16;

/// The pairs of a stored bucket.
///
/// # Errors
///
/// [`Error::InvalidInput`] when the value is not whole pairs (the file was changed
/// outside count).
pub(crate) fn pairs(packed: &[u8]) -> Result<impl Iterator<Item = (i64, i64)> + '_> {
    if !packed.chunks_exact(PAIR).remainder().is_empty() {
        return Err(Error::invalid(
            "raw bucket",
            format!("{} bytes", packed.len()),
            "is not whole (key id, count) pairs: the database was changed outside count",
        ));
    }
    Ok(packed.chunks_exact(PAIR).map(|pair| {
        let (key, n) = pair.split_at(8);
        (
            i64::from_le_bytes(key.try_into().expect("8 bytes")),
            i64::from_le_bytes(n.try_into().expect("8 bytes")),
        )
    }))
}

/// `stored` with `adds` added: `adds` sorted by key id, each key once. Counts of the
/// same key are added, stopping at `i64::MAX`.
///
/// # Errors
///
/// As [`pairs`], for `stored`.
pub(crate) fn merge(stored: &[u8], adds: &[(i64, i64)]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(stored.len() + adds.len() * PAIR);
    let mut push = |key: i64, n: i64| {
        out.extend_from_slice(&key.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
    };
    let mut old = pairs(stored)?.peekable();
    let mut new = adds.iter().copied().peekable();
    loop {
        match (old.peek().copied(), new.peek().copied()) {
            (Some((a, n)), Some((b, m))) if a == b => {
                push(a, n.saturating_add(m));
                old.next();
                new.next();
            }
            (Some((a, n)), Some((b, _))) if a < b => {
                push(a, n);
                old.next();
            }
            (_, Some((b, m))) => {
                push(b, m);
                new.next();
            }
            (Some((a, n)), None) => {
                push(a, n);
                old.next();
            }
            (None, None) => break,
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(pairs: &[(i64, i64)]) -> Vec<u8> {
        merge(&[], pairs).unwrap()
    }

    #[test]
    fn merging_adds_per_key_keeps_the_order_and_saturates() {
        let stored = pack(&[(1, 10), (3, 30), (7, i64::MAX - 1)]);
        let merged = merge(&stored, &[(0, 5), (3, 3), (4, 4), (7, 9), (9, 1)]).unwrap();
        let got: Vec<_> = pairs(&merged).unwrap().collect();
        assert_eq!(
            got,
            [(0, 5), (1, 10), (3, 33), (4, 4), (7, i64::MAX), (9, 1)]
        );
        assert_eq!(merge(&merged, &[]).unwrap(), merged);
    }

    #[test]
    fn a_value_that_is_not_whole_pairs_is_refused() {
        let err = pairs(&[0; 17]).err().unwrap().to_string();
        assert!(
            err.contains("17 bytes") && err.contains("outside count"),
            "{err}"
        );
    }
}
