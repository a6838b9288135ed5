//! One `Add` stream's counts, aggregated per key and time bucket into the rows of its
//! own batch, with a bound on how many distinct rows one stream may hold.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use count_core::jiff::Timestamp;
use count_core::{BucketCount, BucketWidth, CountKey, Error, Path};

use crate::convert;
use crate::proto::count::v1 as pb;

/// The rows of one stream so far.
#[derive(Debug)]
pub(crate) struct StreamRows {
    width: BucketWidth,
    max_rows: usize,
    /// `(key, bucket start second) → n`.
    rows: HashMap<(CountKey, i64), u64>,
    messages: u64,
}

impl StreamRows {
    pub(crate) fn new(width: BucketWidth, max_rows: usize) -> StreamRows {
        StreamRows {
            width,
            max_rows,
            rows: HashMap::new(),
            messages: 0,
        }
    }

    /// Checks one message and counts it into its row.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the message's bad field;
    /// [`Error::LimitReached`] when the message would make one row more than the
    /// bound.
    pub(crate) fn add(&mut self, message: &pb::AddRequest) -> Result<(), Error> {
        let method = convert::method("method", message.method)?;
        let key = CountKey::of(
            method,
            Path::new(&message.path)?,
            convert::subject("subject", message.subject.as_deref())?,
            convert::status("status", method, message.status)?,
        );
        let at = convert::timestamp("request_timestamp", message.request_timestamp)?;
        let bucket = self.width.start_of(at.as_second());
        let rows = self.rows.len();
        match self.rows.entry((key, bucket)) {
            Entry::Occupied(mut row) => *row.get_mut() += 1,
            Entry::Vacant(_) if rows >= self.max_rows => {
                return Err(Error::LimitReached(format!(
                    "an Add stream may hold at most {} distinct rows (endpoint, subject, \
                     status, {} s time bucket); this one has more, so nothing of it was \
                     written: send it as smaller streams",
                    self.max_rows,
                    self.width.seconds()
                )));
            }
            Entry::Vacant(row) => {
                row.insert(1);
            }
        }
        self.messages += 1;
        Ok(())
    }

    /// Messages counted so far: the position of the next one, from 0.
    pub(crate) fn messages(&self) -> u64 {
        self.messages
    }

    /// The batch's counts.
    pub(crate) fn into_counts(self) -> Vec<BucketCount> {
        self.rows
            .into_iter()
            .map(|((key, second), n)| {
                // A bucket's start is a whole second of a checked timestamp's day.
                let bucket = Timestamp::from_second(second).expect("a checked bucket start");
                BucketCount::new(key, bucket, n)
            })
            .collect()
    }
}
