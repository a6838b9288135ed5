#![doc = include_str!("../README.md")]

mod counter;
mod retry;
pub mod schema;

pub use counter::{CockroachCounter, CockroachCounterBuilder, PgOrCockroach};
pub use retry::{RetryPolicy, RetryStats};
pub use schema::is_cockroach;
