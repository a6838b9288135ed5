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

pub use config::{ServerConfig, defaults};
pub use connection::MAX_STREAMS_PER_CONNECTION;
pub use count_grpc::SERVICE_NAME;
pub use server::{serve, serve_backend, serve_counter, termination};
pub use tls::TlsFiles;
