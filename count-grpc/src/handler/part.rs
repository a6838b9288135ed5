//! A part of an `Add` stream (the whole of a stream with a deadline, or what a feed
//! received since its last write): its counts aggregated per key and time bucket,
//! keyed by text. Texts are interned only when the part becomes a batch, right
//! before it is written, so a stream that is refused leaves nothing in the
//! process-wide interners.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use count_core::jiff::Timestamp;
use count_core::{Batch, BatchId, BucketCount, BucketWidth, Error, Method, Status};

use super::budget::{Budget, Reservation};
use crate::convert::{self, WireKey};
use crate::proto::count::v1 as pb;

/// Why a message was not taken into a part.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// A field breaks a rule (`InvalidInput`).
    Invalid(Error),
    /// The part holds `max_rows` rows and the message needs a new one.
    Full,
    /// The handler-wide budget cannot hold the new row (`LimitReached`).
    OverBudget(Error),
}

/// One row's key, its texts shared with the part's other rows.
#[derive(Debug, PartialEq, Eq, Hash)]
struct RowKey {
    method: Method,
    path: Arc<str>,
    subject: Option<Arc<str>>,
    status: Option<Status>,
    /// The bucket's start, in Unix seconds.
    bucket: i64,
}

/// The rows of one part so far.
#[derive(Debug)]
pub(crate) struct Part {
    width: BucketWidth,
    max_rows: usize,
    /// Each distinct text once.
    texts: HashSet<Arc<str>>,
    rows: HashMap<RowKey, u64>,
    messages: u64,
    /// The part's rows and text bytes in the handler-wide budget.
    reservation: Reservation,
}

/// A part made into a batch, holding its share of the budget until it is written.
#[derive(Debug)]
pub(crate) struct PartBatch {
    pub(crate) batch: Arc<Batch>,
    _reservation: Reservation,
}

impl Part {
    pub(crate) fn new(width: BucketWidth, max_rows: usize, budget: Arc<Budget>) -> Part {
        Part {
            width,
            max_rows,
            texts: HashSet::new(),
            rows: HashMap::new(),
            messages: 0,
            reservation: Reservation::new(budget),
        }
    }

    /// Checks one message and counts it into its row.
    ///
    /// # Errors
    ///
    /// A [`Refusal`]; the part is then as it was.
    pub(crate) fn add(&mut self, message: &pb::AddRequest) -> Result<(), Refusal> {
        let key = convert::wire_key(
            message.method,
            &message.path,
            message.subject.as_deref(),
            message.status,
        )
        .map_err(Refusal::Invalid)?;
        let at = convert::timestamp("request_timestamp", message.request_timestamp)
            .map_err(Refusal::Invalid)?;
        let bucket = self.width.bucket_of(at);
        if let Some(n) = self.known_row(&key, bucket) {
            *n += 1;
            self.messages += 1;
            return Ok(());
        }
        if self.rows.len() >= self.max_rows {
            return Err(Refusal::Full);
        }
        let new_path = !self.texts.contains(key.path);
        // A subject spelled as the path shares the path's text.
        let new_subject = key
            .subject
            .is_some_and(|s| s != key.path && !self.texts.contains(s));
        let mut text_bytes = 0;
        if new_path {
            text_bytes += key.path.len() as u64;
        }
        if new_subject {
            text_bytes += key.subject.map_or(0, str::len) as u64;
        }
        self.reservation
            .grow(1, text_bytes)
            .map_err(Refusal::OverBudget)?;
        let row = RowKey {
            method: key.method,
            path: self.shared_text(key.path),
            subject: key.subject.map(|s| self.shared_text(s)),
            status: key.status,
            bucket,
        };
        self.rows.insert(row, 1);
        self.messages += 1;
        Ok(())
    }

    /// The count of the row `key` and `bucket` name, if the part has that row.
    fn known_row(&mut self, key: &WireKey<'_>, bucket: i64) -> Option<&mut u64> {
        let path = self.texts.get(key.path)?.clone();
        let subject = match key.subject {
            Some(text) => Some(self.texts.get(text)?.clone()),
            None => None,
        };
        let row = RowKey {
            method: key.method,
            path,
            subject,
            status: key.status,
            bucket,
        };
        self.rows.get_mut(&row)
    }

    fn shared_text(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.texts.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        self.texts.insert(shared.clone());
        shared
    }

    /// Messages counted so far: the position of the next one, from 0.
    pub(crate) fn messages(&self) -> u64 {
        self.messages
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Whether a message needing a new row would be refused as [`Refusal::Full`].
    pub(crate) fn is_full(&self) -> bool {
        self.rows.len() >= self.max_rows
    }

    /// The bound on rows, for messages.
    pub(crate) fn max_rows(&self) -> usize {
        self.max_rows
    }

    pub(crate) fn bucket_seconds(&self) -> u32 {
        self.width.seconds()
    }

    /// The part as the batch `id`, its texts interned now.
    ///
    /// # Errors
    ///
    /// [`Error::LimitReached`] when a new path or subject cannot be interned (the
    /// interner is full); nothing is written then.
    pub(crate) fn into_batch(self, id: BatchId) -> Result<PartBatch, Error> {
        let counts = self
            .rows
            .into_iter()
            .map(|(row, n)| {
                let key = WireKey {
                    method: row.method,
                    path: &row.path,
                    subject: row.subject.as_deref(),
                    status: row.status,
                };
                // A bucket's start is a whole second of a checked timestamp's day.
                let bucket = Timestamp::from_second(row.bucket).expect("a checked bucket start");
                Ok(BucketCount::new(key.interned()?, bucket, n))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(PartBatch {
            batch: Arc::new(Batch::new(id, counts)?),
            _reservation: self.reservation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(path: &str, subject: Option<&str>, second: i64) -> pb::AddRequest {
        pb::AddRequest {
            method: pb::Method::Get as i32,
            path: path.to_owned(),
            request_timestamp: Some(prost_types::Timestamp {
                seconds: second,
                nanos: 0,
            }),
            subject: subject.map(str::to_owned),
            status: None,
        }
    }

    #[test]
    fn rows_are_counted_per_key_and_bucket_and_texts_charged_once() {
        let budget = Arc::new(Budget::new(100, 1000));
        let mut part = Part::new(BucketWidth::MINUTE, 3, budget.clone());
        let noon = 1_710_072_000;
        part.add(&message("/a", Some("/a"), noon)).unwrap();
        part.add(&message("/a", Some("/a"), noon + 59)).unwrap();
        part.add(&message("/a", None, noon + 60)).unwrap();
        part.add(&message("/b", Some("t"), noon)).unwrap();
        // Three rows; "/a" (path and subject alike), "/b" and "t" charged once each.
        assert_eq!((budget.usage().rows, budget.usage().text_bytes), (3, 5));
        assert!(part.is_full());
        assert!(matches!(
            part.add(&message("/c", None, noon)),
            Err(Refusal::Full)
        ));
        // A message for a row the part has is still taken when full.
        part.add(&message("/b", Some("t"), noon + 1)).unwrap();
        assert!(matches!(
            part.add(&message("", None, noon)),
            Err(Refusal::Invalid(_))
        ));
        assert_eq!(part.messages(), 5);
        let writer = count_core::uuid::Uuid::from_u128(7);
        let written = part.into_batch(BatchId { writer, seq: 0 }).unwrap();
        assert_eq!(written.batch.total(), 5);
        assert_eq!(written.batch.counts().len(), 3);
        assert_eq!(budget.usage().rows, 3, "held until written");
        drop(written);
        assert_eq!((budget.usage().rows, budget.usage().text_bytes), (0, 0));
    }

    #[test]
    fn a_row_past_the_budget_is_refused_and_leaves_the_part_as_it_was() {
        let budget = Arc::new(Budget::new(1, 1000));
        let mut part = Part::new(BucketWidth::MINUTE, 10, budget.clone());
        part.add(&message("/a", None, 0)).unwrap();
        assert!(matches!(
            part.add(&message("/b", None, 0)),
            Err(Refusal::OverBudget(Error::LimitReached(_)))
        ));
        assert_eq!((part.messages(), budget.usage().text_bytes), (1, 2));
        drop(part);
        assert_eq!(budget.usage().rows, 0);
    }
}
