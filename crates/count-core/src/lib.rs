#![doc = include_str!("../../../README.md")]
#![warn(missing_docs)]

mod backoff;
mod bucket;
mod calendar;
mod counter;
mod error;
#[cfg(feature = "tower")]
pub mod layer;
mod model;
mod queue;
mod rollup;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use backoff::Backoff;
pub use bucket::BucketWidth;
pub use calendar::{DateRange, Day, MAX_TIMESTAMP, MIN_TIMESTAMP, Period, check_timestamp};
pub use counter::{
    Batch, BatchId, BucketCount, Counter, CounterExt, DailyTotal, PeriodTotal, sum_by_endpoint,
};
pub use error::{Error, Result, ShownValue, SourceError};
pub use model::{Endpoint, Method, Path};
pub use queue::{CountQueue, CountQueueBuilder, OVERFLOW_PATH, Recorded, Stats};
pub use rollup::{RollupScheduler, RollupTask};

/// Re-exported so a user names timestamps and dates without adding `jiff`.
pub use jiff;
/// Re-exported so a user names writer ids without adding `uuid`.
pub use uuid;
