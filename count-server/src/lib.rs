#![doc = include_str!("../README.md")]

mod auth;
pub mod backend;
pub mod cli;
mod config;
mod connection;
mod health;
pub mod http;
mod incoming;
mod limits;
pub mod logging;
mod metrics;
mod server;
mod tls;
mod usage;

pub use config::{ServerConfig, defaults};
pub use count_grpc::SERVICE_NAME;
pub use server::{serve, termination};
pub use tls::TlsFiles;
