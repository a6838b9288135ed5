//! The values a write carries: [`Batch`], its [`BatchId`], and its [`BucketCount`]s.

use std::fmt;

use jiff::Timestamp;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::model::calendar::{Day, check_timestamp};
use crate::{CountKey, Error, Result, Status};

/// Identifies a batch for exactly-once writes: `writer` is one writer's random id
/// (a [`CountQueue`]'s, a gRPC stream's server), `seq` its batch number. A backend
/// records applied ids and ignores a repeat.
///
/// [`CountQueue`]: crate::CountQueue
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId {
    /// The writer that made the batch; never the nil UUID.
    pub writer: Uuid,
    /// The batch's number in that writer's sequence, at most `i64::MAX`.
    pub seq: u64,
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.writer, self.seq)
    }
}

/// `n` requests with one [`CountKey`] in the time bucket that starts at `bucket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct BucketCount {
    /// What was requested, for whom, and how it ended.
    pub key: CountKey,
    /// The bucket's first instant (UTC); its day is the count's day.
    pub bucket: Timestamp,
    /// How many requests, 1 to [`Batch::MAX_COUNT`].
    pub n: u64,
}

impl BucketCount {
    /// `n` requests with `key` in the bucket starting at `bucket` (checked by
    /// [`Batch::new`]). A fraction of a second is rounded down (by
    /// [`floor_second`](crate::backend::floor_second)), so the bucket's second, which backends
    /// store, and its day agree before 1970 too.
    pub fn new(key: impl Into<CountKey>, bucket: Timestamp, n: u64) -> BucketCount {
        let bucket = Timestamp::from_second(crate::backend::floor_second(bucket)).unwrap_or(bucket);
        BucketCount {
            key: key.into(),
            bucket,
            n,
        }
    }

    /// The UTC day the count belongs to.
    pub fn day(&self) -> Day {
        Day::of(self.bucket).expect("checked when the batch was made")
    }
}

/// A batch's fingerprint: what a backend stores beside its id, so that an id reused
/// for other counts is refused ([`Error::BatchConflict`]) instead of silently ignored.
///
/// The first 16 bytes of the SHA-256 of the batch's counts in their canonical order
/// and a fixed encoding: the same counts give the same digest in every process and
/// version.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchDigest(pub [u8; 16]);

impl fmt::Display for BatchDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for BatchDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BatchDigest({self})")
    }
}

/// Aggregated counts written at once, exactly once: see
/// [`Counter::write`](crate::Counter::write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    id: BatchId,
    counts: Vec<BucketCount>,
    digest: BatchDigest,
}

impl Batch {
    /// The largest count of one key in one bucket: 2^40, about 1.1 trillion (a
    /// million requests a second to one endpoint for twelve days). Every backend sums
    /// counts into 64-bit totals; with this bound no sum of a real day's counts comes
    /// near overflowing, and totals that would pass `i64::MAX` stop there
    /// (saturate) instead of failing a report or a rollup.
    pub const MAX_COUNT: u64 = 1 << 40;

    /// A batch of `counts` under `id`, each count checked: `n` from 1 to
    /// [`Batch::MAX_COUNT`], a bucket in years 1 to 9999. The counts are put in their
    /// canonical order (by key, then bucket). One bad count refuses the whole batch
    /// here, before it can reach a backend.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the count and the rule: a nil writer id, a
    /// `seq` over `i64::MAX`, a count of 0 or over [`Batch::MAX_COUNT`], a bucket out
    /// of range, a status of the wrong kind for its method (a gRPC code on an HTTP
    /// method, or the reverse).
    pub fn new(id: BatchId, mut counts: Vec<BucketCount>) -> Result<Batch> {
        if id.writer.is_nil() {
            return Err(Error::invalid(
                "batch id",
                id.to_string(),
                "the writer id may not be the nil UUID",
            ));
        }
        if id.seq > i64::MAX as u64 {
            return Err(Error::invalid(
                "batch id",
                id.to_string(),
                format!("the sequence number must be at most {}", i64::MAX),
            ));
        }
        for count in &counts {
            if count.n == 0 || count.n > Batch::MAX_COUNT {
                return Err(Error::invalid(
                    "count",
                    count.n,
                    format!(
                        "the count for {} must be 1 to {} (2^40)",
                        count.key,
                        Batch::MAX_COUNT
                    ),
                ));
            }
            check_timestamp(count.bucket)?;
            if !count.key.status_fits_method() {
                return Err(Error::invalid(
                    "status",
                    count.key.status.map(Status::code),
                    format!(
                        "the status of {} is of the wrong kind: a GRPC count takes a gRPC \
                         code (0 to 16), an HTTP method an HTTP code (100 to 599)",
                        count.key
                    ),
                ));
            }
        }
        if !counts.is_sorted() {
            counts.sort_unstable();
        }
        let digest = digest(&counts);
        Ok(Batch { id, counts, digest })
    }

    /// The batch id.
    pub fn id(&self) -> BatchId {
        self.id
    }

    /// The counts, ordered by key, then bucket.
    pub fn counts(&self) -> &[BucketCount] {
        &self.counts
    }

    /// The sum of the counts: how many requests the batch carries.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.n).sum()
    }

    /// The fingerprint of the counts (not of the id).
    pub fn digest(&self) -> BatchDigest {
        self.digest
    }
}

/// SHA-256 over a fixed encoding of each count: method number, path, subject (a
/// presence byte, then the text), status (0 for none, code + 1), bucket second, n.
/// Texts are length-prefixed, so no two batches encode alike.
fn digest(counts: &[BucketCount]) -> BatchDigest {
    let mut hash = Sha256::new();
    let text = |hash: &mut Sha256, text: &str| {
        hash.update((text.len() as u32).to_le_bytes());
        hash.update(text.as_bytes());
    };
    for count in counts {
        let key = count.key;
        hash.update([key.endpoint.method as u8]);
        text(&mut hash, key.endpoint.path.as_str());
        match key.subject {
            Some(subject) => {
                hash.update([1]);
                text(&mut hash, subject.as_str());
            }
            None => hash.update([0]),
        }
        hash.update(Status::pack(key.status).to_le_bytes());
        hash.update(count.bucket.as_second().to_le_bytes());
        hash.update(count.n.to_le_bytes());
    }
    let full = hash.finalize();
    let mut short = [0; 16];
    short.copy_from_slice(&full[..16]);
    BatchDigest(short)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Endpoint, Method, Path, Subject};

    fn count(n: u64, bucket: Timestamp) -> BucketCount {
        BucketCount::new(
            Endpoint::new(Method::Get, Path::new("/batch").unwrap()),
            bucket,
            n,
        )
    }

    fn id() -> BatchId {
        BatchId {
            writer: Uuid::from_u128(1),
            seq: 7,
        }
    }

    #[test]
    fn a_batch_refuses_zero_and_counts_past_the_bound_naming_them() {
        let at = Timestamp::from_second(0).unwrap();
        for bad in [0, Batch::MAX_COUNT + 1, i64::MAX as u64, u64::MAX] {
            let err = Batch::new(id(), vec![count(1, at), count(bad, at)]).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&bad.to_string()) && text.contains("GET /batch"),
                "{text}"
            );
        }
        let batch = Batch::new(id(), vec![count(2, at), count(Batch::MAX_COUNT, at)]).unwrap();
        assert_eq!(batch.total(), Batch::MAX_COUNT + 2);
        assert_eq!(batch.id().to_string(), format!("{}#7", Uuid::from_u128(1)));
    }

    #[test]
    fn a_batch_refuses_nil_writers_and_huge_sequence_numbers() {
        let nil = BatchId {
            writer: Uuid::nil(),
            seq: 1,
        };
        let err = Batch::new(nil, vec![]).unwrap_err().to_string();
        assert!(err.contains("nil UUID"), "{err}");
        let huge = BatchId {
            writer: Uuid::from_u128(1),
            seq: u64::MAX,
        };
        let err = Batch::new(huge, vec![]).unwrap_err().to_string();
        assert!(err.contains("at most 9223372036854775807"), "{err}");
    }

    #[test]
    fn a_batch_refuses_a_status_of_the_wrong_kind_for_its_method() {
        let at = Timestamp::from_second(0).unwrap();
        let get = Endpoint::new(Method::Get, Path::new("/http/only").unwrap());
        let grpc = Endpoint::new(Method::Grpc, Path::new("/pkg.S/M").unwrap());
        for key in [
            CountKey::new(get).with_status(Status::grpc(5).unwrap()),
            CountKey::new(grpc).with_status(Status::http(404).unwrap()),
        ] {
            let err = Batch::new(id(), vec![BucketCount::new(key, at, 1)])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("wrong kind") && err.contains(&key.to_string()),
                "{err}"
            );
        }
        Batch::new(
            id(),
            vec![
                BucketCount::new(
                    CountKey::new(grpc).with_status(Status::grpc(5).unwrap()),
                    at,
                    1,
                ),
                BucketCount::new(
                    CountKey::new(get).with_status(Status::http(404).unwrap()),
                    at,
                    1,
                ),
            ],
        )
        .unwrap();
    }

    #[test]
    fn a_batch_refuses_buckets_out_of_range() {
        let too_early =
            Timestamp::from_second(crate::backend::MIN_TIMESTAMP.as_second() - 1).unwrap();
        let err = Batch::new(id(), vec![count(1, too_early)]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "timestamp",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn the_digest_is_canonical_and_sees_every_field() {
        let at = Timestamp::from_second(60).unwrap();
        let later = Timestamp::from_second(120).unwrap();
        let a = count(1, at);
        let b = count(2, later);
        let one = Batch::new(id(), vec![a, b]).unwrap();
        let other_order = Batch::new(id(), vec![b, a]).unwrap();
        assert_eq!(one.digest(), other_order.digest());
        assert_eq!(one.counts(), other_order.counts());
        let mut variants = vec![
            vec![count(2, at), b],
            vec![count(1, later), b],
            vec![a],
            vec![
                BucketCount::new(a.key.with_subject(Subject::new("s").unwrap()), at, 1),
                b,
            ],
            vec![
                BucketCount::new(a.key.with_status(Status::http(200).unwrap()), at, 1),
                b,
            ],
            vec![
                BucketCount::new(Endpoint::new(Method::Post, a.key.endpoint.path), at, 1),
                b,
            ],
        ];
        for counts in variants.drain(..) {
            let batch = Batch::new(id(), counts.clone()).unwrap();
            assert_ne!(batch.digest(), one.digest(), "{counts:?}");
        }
        assert_eq!(one.digest().to_string().len(), 32);
    }
}
