//! The flusher's aggregate: drained events summed per `(endpoint, bucket)`, with the
//! cardinality cap and the bound on what waits for a failing backend.

use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;

use jiff::Timestamp;

use super::Event;
use crate::calendar::Day;
use crate::{BucketCount, BucketWidth, Endpoint, Path};

/// The path that endpoints past `max_endpoints` are counted under (with their method).
pub const OVERFLOW_PATH: &str = "(overflow)";

/// Where one added event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    /// Counted under the overflow endpoint.
    pub(crate) overflowed: bool,
    pub(crate) kept: Kept,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kept {
    /// In its own bucket.
    Exact,
    /// In the day-wide bucket of its day.
    Coarsened,
    /// Discarded: the hard bound was reached.
    Lost,
}

#[derive(Debug)]
pub(crate) struct Pending {
    /// foldhash: one lookup per drained event; the keys are our own (interned path
    /// pointers and seconds), not an attacker's choice of strings.
    rows: HashMap<(Endpoint, i64), u64, RandomState>,
    known: HashSet<Endpoint, RandomState>,
    overflow: Path,
    width: BucketWidth,
    max_endpoints: usize,
    max_rows: usize,
}

impl Pending {
    pub(crate) fn new(width: BucketWidth, max_endpoints: usize, max_rows: usize) -> Pending {
        Pending {
            rows: HashMap::default(),
            known: HashSet::default(),
            overflow: Path::new(OVERFLOW_PATH).expect("a valid path"),
            width,
            max_endpoints,
            max_rows,
        }
    }

    /// Adds one event. `rows_elsewhere` is the rows already frozen into batches that
    /// are not yet written: they count against the bound too.
    pub(crate) fn add(&mut self, event: Event, rows_elsewhere: usize) -> Placed {
        let method = event.method();
        let mut endpoint = Endpoint::new(method, event.path);
        let bucket = self.width.start_of(event.second());
        if let Some(n) = self.rows.get_mut(&(endpoint, bucket)) {
            *n += 1;
            return Placed {
                overflowed: false,
                kept: Kept::Exact,
            };
        }
        let overflowed = !self.admit(endpoint);
        if overflowed {
            endpoint = Endpoint::new(method, self.overflow);
        }
        let kept = self.insert(endpoint, bucket, rows_elsewhere);
        Placed { overflowed, kept }
    }

    /// Whether `endpoint` is, or may become, one of the `max_endpoints` known ones.
    fn admit(&mut self, endpoint: Endpoint) -> bool {
        if self.known.contains(&endpoint) {
            return true;
        }
        if self.known.len() >= self.max_endpoints {
            return false;
        }
        self.known.insert(endpoint);
        true
    }

    fn insert(&mut self, endpoint: Endpoint, bucket: i64, rows_elsewhere: usize) -> Kept {
        let rows = self.rows.len() + rows_elsewhere;
        let (bucket, kept) = if rows < self.max_rows {
            (bucket, Kept::Exact)
        } else {
            // Past the soft bound, keep the day exact and give up the bucket.
            let day_start = Day::of_unix_second(bucket).start_second();
            let key = (endpoint, day_start);
            if !self.rows.contains_key(&key) && rows >= self.max_rows.saturating_mul(2) {
                return Kept::Lost;
            }
            (day_start, Kept::Coarsened)
        };
        *self.rows.entry((endpoint, bucket)).or_default() += 1;
        kept
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Takes every row, sorted (endpoint, bucket), in chunks of at most `max_rows`.
    pub(crate) fn take_chunks(&mut self, max_rows: usize) -> Vec<Vec<BucketCount>> {
        let mut counts: Vec<BucketCount> = self
            .rows
            .drain()
            .map(|((endpoint, bucket), n)| BucketCount {
                endpoint,
                bucket: Timestamp::from_second(bucket).expect("checked at record time"),
                n,
            })
            .collect();
        counts.sort_unstable();
        let mut chunks = Vec::with_capacity(counts.len().div_ceil(max_rows));
        while counts.len() > max_rows {
            let rest = counts.split_off(max_rows);
            chunks.push(std::mem::replace(&mut counts, rest));
        }
        chunks.push(counts);
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Method;

    fn event(path: &str, second: i64) -> Event {
        Event::new(Method::Get, Path::new(path).unwrap(), second)
    }

    fn rows(p: &mut Pending) -> Vec<(String, i64, u64)> {
        p.take_chunks(usize::MAX)
            .concat()
            .into_iter()
            .map(|c| (c.endpoint.path.to_string(), c.bucket.as_second(), c.n))
            .collect()
    }

    #[test]
    fn sums_per_endpoint_and_bucket() {
        let mut p = Pending::new(BucketWidth::MINUTE, 10, 100);
        for s in [0, 59, 60, 61, 119] {
            assert_eq!(p.add(event("/a", s), 0).kept, Kept::Exact);
        }
        p.add(event("/b", 30), 0);
        assert_eq!(
            rows(&mut p),
            [
                ("/a".into(), 0, 2),
                ("/a".into(), 60, 3),
                ("/b".into(), 0, 1)
            ]
        );
        assert!(p.is_empty());
    }

    #[test]
    fn endpoints_past_the_cap_go_to_the_overflow_endpoint() {
        let mut p = Pending::new(BucketWidth::MINUTE, 2, 100);
        assert!(!p.add(event("/1", 0), 0).overflowed);
        assert!(!p.add(event("/2", 0), 0).overflowed);
        assert!(p.add(event("/3", 0), 0).overflowed);
        assert!(p.add(event("/4", 0), 0).overflowed);
        // Known endpoints stay counted as themselves in new buckets too.
        assert!(!p.add(event("/1", 600), 0).overflowed);
        assert_eq!(
            rows(&mut p),
            [
                (OVERFLOW_PATH.into(), 0, 2),
                ("/1".into(), 0, 1),
                ("/1".into(), 600, 1),
                ("/2".into(), 0, 1)
            ]
        );
    }

    #[test]
    fn past_the_bound_counts_keep_their_day_then_are_lost_and_said_so() {
        let mut p = Pending::new(BucketWidth::MINUTE, 100, 2);
        let day2 = 86_400;
        assert_eq!(p.add(event("/a", 60), 0).kept, Kept::Exact);
        assert_eq!(p.add(event("/a", 120), 0).kept, Kept::Exact);
        // Soft bound reached: a new bucket of day 1 folds into day 1's first bucket.
        assert_eq!(p.add(event("/a", 180), 0).kept, Kept::Coarsened);
        assert_eq!(p.add(event("/a", 240), 0).kept, Kept::Coarsened);
        // Rows elsewhere (frozen batches) count too: 3 here + 1 = 2 × bound.
        assert_eq!(p.add(event("/a", day2 + 60), 1).kept, Kept::Lost);
        assert_eq!(p.add(event("/a", day2 + 60), 0).kept, Kept::Coarsened);
        assert_eq!(
            rows(&mut p),
            [
                ("/a".into(), 0, 2),
                ("/a".into(), 60, 1),
                ("/a".into(), 120, 1),
                ("/a".into(), day2, 1)
            ]
        );
    }

    #[test]
    fn chunks_are_bounded() {
        let mut p = Pending::new(BucketWidth::MINUTE, 100, 1000);
        for i in 0..25 {
            p.add(event(&format!("/chunk/{i}"), 0), 0);
        }
        let sizes: Vec<usize> = p.take_chunks(10).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
    }
}
