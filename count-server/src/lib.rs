//! `count-server`, as a library: the binary only reads its configuration and calls
//! [`server::serve`]; tests call it in-process.
#![warn(missing_docs)]

mod auth;
pub mod cli;
pub mod server;

pub use server::{SERVICE_NAME, ServerConfig};
