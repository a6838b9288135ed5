//! What is counted, and the values that cross the [`Counter`](crate::Counter)
//! contract.
//!
//! A count's [`CountKey`] is an [`Endpoint`] ([`Method`] + [`Path`]), an optional
//! [`Subject`] and an optional [`Status`]; it falls in a time bucket
//! ([`BucketWidth`]) of a UTC [`Day`]. Writes carry [`Batch`]es of [`BucketCount`]s;
//! reports answer with [`DailyTotal`]s, [`PeriodTotal`]s and [`GroupedTotal`]s.

mod batch;
mod bucket;
pub(crate) mod calendar;
mod endpoint;
mod intern;
mod key;
mod method;
mod path;
mod status;
mod subject;
mod text;
mod totals;
mod zone;

pub use batch::{Batch, BatchDigest, BatchId, BucketCount};
pub use bucket::BucketWidth;
pub use calendar::{
    DateRange, Day, MAX_TIMESTAMP, MIN_TIMESTAMP, Period, check_timestamp, floor_second,
};
pub use endpoint::Endpoint;
pub use intern::InternerUse;
pub use key::CountKey;
pub use method::Method;
pub use path::{Path, PathKind};
pub use status::{Status, StatusClass, StatusFilter};
pub use subject::{Subject, SubjectKind};
pub use text::{Text, TextKind};
pub use totals::{
    DailyTotal, Dimension, GroupedTotal, Kept, PeriodTotal, Source, Sums, TotalsQuery,
    add_saturating, sum_by_endpoint,
};
pub use zone::{Hour, QUARTER_SECONDS, Zone, tzdb_version};
