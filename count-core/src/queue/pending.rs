//! The flusher's aggregate: drained events summed per `(key, bucket)`, with the
//! cardinality caps and the bound on what waits for a failing backend.

use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;
use jiff::Timestamp;

use super::Event;
use crate::{Batch, BucketCount, BucketWidth, CountKey, Day, Endpoint, Path, Subject};

/// The path that endpoints past `max_endpoints` are counted under (with their method).
pub const OVERFLOW_PATH: &str = "(overflow)";

/// The subject that subjects past `max_subjects` are counted under.
pub const OVERFLOW_SUBJECT: &str = "(overflow)";

/// Where one added event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placed {
    /// Counted under the overflow endpoint.
    pub(crate) overflowed: bool,
    /// Counted without its status, which was of the wrong kind for its method.
    pub(crate) status_dropped: bool,
    /// Counted under the overflow subject.
    pub(crate) overflowed_subject: bool,
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

/// The caps: which endpoints and subjects count as themselves today. They start
/// afresh each UTC day (by the queue's clock), so a burst of junk fills them for
/// the rest of that day at most, never for the life of the process.
#[derive(Debug)]
struct Known {
    day: i64,
    endpoints: HashSet<Endpoint, RandomState>,
    subjects: HashSet<Subject, RandomState>,
}

#[derive(Debug)]
pub(crate) struct Pending {
    /// foldhash: one lookup per drained event; the keys are our own (interned
    /// pointers and seconds), not an attacker's choice of strings.
    rows: HashMap<(CountKey, i64), u64, RandomState>,
    known: Known,
    overflow_path: Path,
    overflow_subject: Subject,
    width: BucketWidth,
    max_endpoints: usize,
    max_subjects: usize,
    max_rows: usize,
}

impl Pending {
    pub(crate) fn new(
        width: BucketWidth,
        max_endpoints: usize,
        max_subjects: usize,
        max_rows: usize,
    ) -> Pending {
        Pending {
            rows: HashMap::default(),
            known: Known {
                day: i64::MIN,
                endpoints: HashSet::default(),
                subjects: HashSet::default(),
            },
            // Interned past the cap: a queue must be able to say "overflow" when the
            // path interner is full.
            overflow_path: Path::from_storage(OVERFLOW_PATH).expect("a valid path"),
            overflow_subject: Subject::from_storage(OVERFLOW_SUBJECT).expect("a valid subject"),
            width,
            max_endpoints,
            max_subjects,
            max_rows,
        }
    }

    /// Starts the caps afresh when `today` (a Unix day) is a new day.
    pub(crate) fn set_today(&mut self, today: i64) {
        if today != self.known.day {
            self.known.day = today;
            self.known.endpoints.clear();
            self.known.subjects.clear();
        }
    }

    /// Adds one event. `rows_elsewhere` is the rows already frozen into batches that
    /// are not yet written: they count against the bound too.
    pub(crate) fn add(&mut self, event: Event, rows_elsewhere: usize) -> Placed {
        let mut key = event.key();
        // A backend would refuse the whole batch for it: keep the request, not the
        // status.
        let status_dropped = !key.status_fits_method();
        if status_dropped {
            key.status = None;
        }
        let bucket = self.width.start_of(event.second());
        if let Some(n) = self.rows.get_mut(&(key, bucket)) {
            *n += 1;
            return Placed {
                overflowed: false,
                status_dropped,
                overflowed_subject: false,
                kept: Kept::Exact,
            };
        }
        let overflowed = !admit(&mut self.known.endpoints, key.endpoint, self.max_endpoints);
        if overflowed {
            key.endpoint = Endpoint::new(key.endpoint.method, self.overflow_path);
        }
        let overflowed_subject = key
            .subject
            .is_some_and(|subject| !admit(&mut self.known.subjects, subject, self.max_subjects));
        if overflowed_subject {
            key.subject = Some(self.overflow_subject);
        }
        let kept = self.insert(key, bucket, rows_elsewhere);
        Placed {
            overflowed,
            status_dropped,
            overflowed_subject,
            kept,
        }
    }

    fn insert(&mut self, key: CountKey, bucket: i64, rows_elsewhere: usize) -> Kept {
        let rows = self.rows.len() + rows_elsewhere;
        let (bucket, kept) = if rows < self.max_rows {
            (bucket, Kept::Exact)
        } else {
            // Past the soft bound, keep the day exact and give up the bucket.
            let day_start = Day::of_unix_second(bucket).start_second();
            if !self.rows.contains_key(&(key, day_start)) && rows >= self.max_rows.saturating_mul(2)
            {
                return Kept::Lost;
            }
            (day_start, Kept::Coarsened)
        };
        *self.rows.entry((key, bucket)).or_default() += 1;
        kept
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Takes every row, sorted (key, bucket), in chunks of at most `max_rows`. A row
    /// over [`Batch::MAX_COUNT`] (only reachable in a day-wide bucket) is split.
    pub(crate) fn take_chunks(&mut self, max_rows: usize) -> Vec<Vec<BucketCount>> {
        let mut counts = Vec::with_capacity(self.rows.len());
        for ((key, bucket), mut n) in self.rows.drain() {
            let bucket = Timestamp::from_second(bucket).expect("checked at record time");
            while n > 0 {
                let part = n.min(Batch::MAX_COUNT);
                counts.push(BucketCount::new(key, bucket, part));
                n -= part;
            }
        }
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

/// Whether `item` is, or may become, one of the `max` known ones.
fn admit<T: std::hash::Hash + Eq>(
    known: &mut HashSet<T, RandomState>,
    item: T,
    max: usize,
) -> bool {
    if known.contains(&item) {
        return true;
    }
    if known.len() >= max {
        return false;
    }
    known.insert(item);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Method, Status};

    fn event(path: &str, second: i64) -> Event {
        Event::new(Method::Get, Path::new(path).unwrap(), None, None, second)
    }

    fn rows(p: &mut Pending) -> Vec<(String, i64, u64)> {
        p.take_chunks(usize::MAX)
            .concat()
            .into_iter()
            .map(|c| (c.key.to_string(), c.bucket.as_second(), c.n))
            .collect()
    }

    #[test]
    fn sums_per_key_and_bucket() {
        let mut p = Pending::new(BucketWidth::MINUTE, 10, 10, 100);
        for s in [0, 59, 60, 61, 119] {
            assert_eq!(p.add(event("/a", s), 0).kept, Kept::Exact);
        }
        p.add(event("/b", 30), 0);
        let ok = Event::new(
            Method::Get,
            Path::new("/b").unwrap(),
            Some(Subject::new("acme").unwrap()),
            Some(Status::http(200).unwrap()),
            31,
        );
        p.add(ok, 0);
        p.add(ok, 0);
        assert_eq!(
            rows(&mut p),
            [
                ("GET /a".into(), 0, 2),
                ("GET /a".into(), 60, 3),
                ("GET /b".into(), 0, 1),
                ("GET /b subject=acme status=200".into(), 0, 2),
            ]
        );
        assert!(p.is_empty());
    }

    #[test]
    fn endpoints_and_subjects_past_the_caps_overflow_until_the_next_day() {
        let mut p = Pending::new(BucketWidth::MINUTE, 2, 1, 100);
        p.set_today(0);
        assert!(!p.add(event("/1", 0), 0).overflowed);
        assert!(!p.add(event("/2", 0), 0).overflowed);
        assert!(p.add(event("/3", 0), 0).overflowed);
        assert!(p.add(event("/4", 0), 0).overflowed);
        // Known endpoints stay counted as themselves in new buckets too.
        assert!(!p.add(event("/1", 600), 0).overflowed);
        let with = |s| {
            Event::new(
                Method::Get,
                Path::new("/1").unwrap(),
                Some(Subject::new(s).unwrap()),
                None,
                0,
            )
        };
        assert!(!p.add(with("a"), 0).overflowed_subject);
        assert!(p.add(with("b"), 0).overflowed_subject);
        assert_eq!(
            rows(&mut p),
            [
                ("GET (overflow)".into(), 0, 2),
                ("GET /1".into(), 0, 1),
                ("GET /1".into(), 600, 1),
                ("GET /1 subject=(overflow)".into(), 0, 1),
                ("GET /1 subject=a".into(), 0, 1),
                ("GET /2".into(), 0, 1),
            ]
        );
        // A new day: the caps start afresh.
        p.set_today(1);
        assert!(!p.add(event("/3", 86_400), 0).overflowed);
        assert!(!p.add(with("b"), 0).overflowed_subject);
    }

    #[test]
    fn past_the_bound_counts_keep_their_day_then_are_lost_and_said_so() {
        let mut p = Pending::new(BucketWidth::MINUTE, 100, 100, 2);
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
                ("GET /a".into(), 0, 2),
                ("GET /a".into(), 60, 1),
                ("GET /a".into(), 120, 1),
                ("GET /a".into(), day2, 1)
            ]
        );
    }

    #[test]
    fn chunks_are_bounded_and_huge_rows_split() {
        let mut p = Pending::new(BucketWidth::MINUTE, 100, 100, 1000);
        for i in 0..25 {
            p.add(event(&format!("/chunk/{i}"), 0), 0);
        }
        let sizes: Vec<usize> = p.take_chunks(10).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
        let e = event("/huge", 0);
        p.add(e, 0);
        *p.rows.values_mut().next().unwrap() = 2 * Batch::MAX_COUNT + 3;
        let parts: Vec<u64> = p.take_chunks(10).concat().iter().map(|c| c.n).collect();
        assert_eq!(parts.iter().sum::<u64>(), 2 * Batch::MAX_COUNT + 3);
        assert!(parts.iter().all(|&n| n <= Batch::MAX_COUNT), "{parts:?}");
    }
}
