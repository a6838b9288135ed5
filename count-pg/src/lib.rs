#![doc = include_str!("../README.md")]

mod builder;
mod config;
mod counter;
mod error;
mod flavor;
mod keys;
mod limits;
pub mod schema;
mod sql;
mod tls;
mod zones;

pub use builder::PgCounterBuilder;
pub use config::SslMode;
pub use counter::PgCounter;
#[doc(hidden)]
pub use flavor::{Fills, Flavor};
pub use schema::Migration;
/// The pool and driver, for callers that need their types.
pub use {deadpool_postgres, tokio_postgres};
