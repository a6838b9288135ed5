#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

// In the order a count flows: what is counted, the queue that records and writes it,
// the contract of the backends it is written to, the rollup of finished days, and the
// tower layer that records for a service.
mod model;

mod queue;

mod counter;
mod error;
pub mod figures;

mod backoff;
mod rollup;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod layer;
pub mod limits;

#[cfg(feature = "metrics")]
mod metrics;

#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;

pub use model::{
    Batch, BatchDigest, BatchId, BucketCount, BucketWidth, CountKey, DailyTotal, DateRange, Day,
    Dimension, Endpoint, GroupedTotal, Hour, InternerUse, Kept, Method, Path, PathKind, Period,
    PeriodTotal, QUARTER_SECONDS, Status, StatusClass, StatusFilter, Subject, SubjectKind, Text,
    TextKind, TotalsQuery, Zone, tzdb_version,
};

pub use queue::{CountQueue, CountQueueBuilder, Recorded, Stats};

pub use counter::{Counter, CounterExt, StoredPolicy};
pub use error::{Error, Result, SourceError};

pub use rollup::{RollupScheduler, RollupStats};

/// What a backend's author needs besides the [`Counter`] contract; an application
/// that counts and reports needs none of it.
pub mod backend {
    pub use crate::backoff::Backoff;
    pub use crate::error::ShownValue;
    pub use crate::model::{
        MAX_TIMESTAMP, MIN_TIMESTAMP, Source, Sums, add_saturating, check_timestamp, floor_second,
        sum_by_endpoint,
    };
    pub use crate::queue::{OVERFLOW_PATH, OVERFLOW_SUBJECT};
    pub use crate::rollup::RollupTask;

    /// How many key ids (or keys by id) a backend keeps in memory at most: past it,
    /// its cache starts again (the ids stay in the database), so an unbounded number
    /// of subjects cannot grow it without bound.
    pub const MAX_CACHED_KEYS: usize = 200_000;
}

/// Re-exported so a user names timestamps and dates without adding `jiff`.
pub use jiff;
/// Re-exported so a user names writer ids without adding `uuid`.
pub use uuid;
