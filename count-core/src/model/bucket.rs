//! `BucketWidth`: how finely raw counts are kept in time before the daily rollup.

use std::time::Duration;

use jiff::Timestamp;

use crate::model::calendar::floor_second;
use crate::{Error, QUARTER_SECONDS, Result};

/// The width of a raw count bucket: whole seconds that divide a quarter hour, so a
/// bucket never straddles a quarter ([`QUARTER_SECONDS`], the grain kept after the
/// rollup) and so belongs to exactly one hour and one day in every time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BucketWidth(u32);

impl BucketWidth {
    /// One minute, the default.
    pub const MINUTE: BucketWidth = BucketWidth(60);

    /// `width`, which must be whole seconds from 1 s to 15 min that divide 15 min.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] (field `bucket width`) for any other width.
    pub fn new(width: Duration) -> Result<BucketWidth> {
        let seconds = width.as_secs();
        let whole = width.subsec_nanos() == 0;
        if !whole || seconds == 0 || !(QUARTER_SECONDS as u64).is_multiple_of(seconds) {
            return Err(Error::invalid(
                "bucket width",
                width,
                "must be whole seconds from 1 s to 15 min that divide 15 min evenly (1 s, 60 s, 300 s, 900 s, ...)",
            ));
        }
        Ok(BucketWidth(seconds as u32))
    }

    /// The width in seconds.
    pub fn seconds(self) -> u32 {
        self.0
    }

    /// The first second of the bucket holding the Unix second `second`.
    #[inline]
    pub fn start_of(self, second: i64) -> i64 {
        second - second.rem_euclid(i64::from(self.0))
    }

    /// The first second of the bucket holding `at` (its second rounded down, by
    /// [`floor_second`], then the bucket's start).
    #[inline]
    pub fn bucket_of(self, at: Timestamp) -> i64 {
        self.start_of(floor_second(at))
    }
}

impl Default for BucketWidth {
    fn default() -> Self {
        BucketWidth::MINUTE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_divisors_of_a_quarter_hour() {
        for s in [1, 2, 60, 90, 300, 900] {
            assert_eq!(
                BucketWidth::new(Duration::from_secs(s)).unwrap().seconds() as u64,
                s
            );
        }
    }

    #[test]
    fn refuses_widths_that_would_straddle_a_quarter_hour() {
        for bad in [
            Duration::ZERO,
            Duration::from_secs(7),
            Duration::from_secs(3600),
            Duration::from_secs(86_400),
            Duration::from_millis(1500),
        ] {
            let err = BucketWidth::new(bad).unwrap_err().to_string();
            assert!(err.contains("divide 15 min"), "{err}");
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn buckets_start_on_multiples_and_never_cross_a_day() {
        let w = BucketWidth::new(Duration::from_secs(300)).unwrap();
        assert_eq!(w.start_of(0), 0);
        assert_eq!(w.start_of(299), 0);
        assert_eq!(w.start_of(300), 300);
        assert_eq!(w.start_of(-1), -300);
        assert_eq!(w.start_of(86_399), 86_100);
    }
}
