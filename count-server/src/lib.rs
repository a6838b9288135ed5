//! `count-server`: counts API requests per endpoint, subject and status, durably, and
//! shows them. One port serves:
//!
//! - **gRPC**: `count.v1.CountService` (wire-compatible with the Go server's clients,
//!   plus `PATCH`, `AddCounts` and `ListUnrolledDays`), `grpc.health.v1.Health`
//!   (following the backend's health) and server reflection;
//! - **HTTP** (HTTP/1.1 and HTTP/2, plaintext or TLS): the dashboard, the totals API,
//!   `/metrics`, `/healthz` and `/readyz`.
//!
//! The binary only reads its flags and calls [`serve`]; tests call it in-process.
//!
//! # Where counts go
//!
//! | `DB_URL` | backend |
//! |---|---|
//! | none | a SQLite file: `--db-path` / `COUNT_DB_PATH`, by default [`backend::default_db_path`] (`$XDG_DATA_HOME/count/count.db`, else `~/.local/share/count/count.db`); the startup log says which file |
//! | `sqlite:path/to/count.db`, `sqlite:///abs/count.db` | that SQLite file (created with its directories) |
//! | `postgresql://user:password@host:port/db?sslmode=...` (or `postgres://`) | PostgreSQL, or CockroachDB when its `version()` says so (`--backend` forces either) |
//! | `memory:` (or `--backend memory`) | memory, with a warning: every count is lost when the server stops |
//!
//! # Flags and environment
//!
//! Every flag can be given by its environment variable instead.
//!
//! | flag | env | default | meaning |
//! |---|---|---|---|
//! | `--listen` | `COUNT_LISTEN` | `0.0.0.0:7777` | address of the one port |
//! | `--db-url` | `DB_URL` | none | database URL (above) |
//! | `--db-path` | `COUNT_DB_PATH` | see above | the SQLite file used when no URL is given |
//! | `--backend` | `COUNT_BACKEND` | `auto` | `auto`, `sqlite`, `postgres`, `cockroach`, `memory` |
//! | `--token` | `COUNT_TOKEN` | none | require `authorization: Bearer <token>` (gRPC, `/api/*`, `/metrics`, `/readyz`) |
//! | `--no-rollup` | `COUNT_NO_ROLLUP` | off | do not roll up finished days in the background |
//! | `--max-message-bytes` | `COUNT_MAX_MESSAGE_BYTES` | 4194304 | largest gRPC message accepted or sent |
//! | `--max-streams-per-connection` | `COUNT_MAX_STREAMS` | 128 | concurrent HTTP/2 streams per connection |
//! | `--max-concurrent-calls` | `COUNT_MAX_CALLS` | 1024 | calls and requests in progress over all connections; more wait |
//! | `--tls-cert`, `--tls-key` | `COUNT_TLS_CERT`, `COUNT_TLS_KEY` | none | serve TLS (ALPN `h2` and `http/1.1`) with these PEM files |
//! | `--shutdown-grace` | `COUNT_SHUTDOWN_GRACE` | 20 | seconds calls in progress may take after SIGTERM/SIGINT |
//! | `--add-timeout` | `COUNT_ADD_TIMEOUT` | 30 | seconds an `Add` call may take when its client sets no deadline |
//! | `--log-format` | `COUNT_LOG_FORMAT` | `text` | `text` (coloured only on a terminal; `NO_COLOR` turns colours off) or `json` |
//!
//! `RUST_LOG` sets the log level (default `info`). Logs go to stderr.
//!
//! # HTTP
//!
//! | route | token | answers |
//! |---|---|---|
//! | `GET /` | no | the dashboard (one page, no network needed; it asks for the token itself) |
//! | `GET /healthz` | no | 200 while the process serves; no backend call |
//! | `GET /readyz` | yes | 200 when the backend answers `Counter::health` in time; 503 with the error |
//! | `GET /metrics` | yes | the figures below, Prometheus text format 0.0.4 |
//! | `GET /api/v1/totals` | yes | totals, JSON or CSV |
//!
//! `/api/v1/totals` takes `from=YYYY-MM-DD&to=YYYY-MM-DD` (both included) or
//! `period=YYYY|YYYY-MM|YYYY-MM-DD`; `group=` a comma-separated list of `endpoint`
//! (the default), `day`, `subject`, `status`; the filters `subject=`, `status=` (a
//! code, or a class such as `5xx`) and `endpoint=<METHOD> <path>`; and
//! `format=json|csv` (or `Accept: text/csv`). It answers a top-level JSON array of
//! rows holding only the grouped fields and `total` (`[]` when nothing was counted):
//!
//! ```text
//! GET /api/v1/totals?period=2026-11&group=day,subject&status=5xx
//! [{"day":"2026-11-27","subject":"acme","total":12},{"day":"2026-11-27","subject":null,"total":3}]
//! ```
//!
//! `subject: null` is the group of counts made without a subject, `status: null` of
//! counts whose status was not recorded. CSV has a header row and the columns
//! `day,method,path,subject,status,total` that are grouped (empty field for null).
//! Errors are JSON `{"error": "..."}`: 400 with `"parameter"` naming the refused one
//! (unknown names too), 401 without the right token, 503 when the backend fails.
//! The range has no maximum: an answer's size is bounded by what was counted, not by
//! the days asked for.
//!
//! # Metrics
//!
//! Read from the server's parts at each scrape (`prometheus-client`). The server
//! writes each `Add` stream as its own batch, so it has no queue: there are no
//! queue figures (dropped, pending, ...) here; a library user's `CountQueue`
//! publishes those through count-core's `metrics` feature.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `count_add_streams_total{outcome}` | counter | `Add` streams answered, by outcome: `ok`, `invalid`, `too_large`, `unavailable`, `outcome_unknown`, `failed` |
//! | `count_add_counts_calls_total` | counter | `AddCounts` calls received |
//! | `count_add_counts_conflicts_total` | counter | `AddCounts` refused: batch id reused with other counts |
//! | `count_requests_written_total` | counter | requests durably written |
//! | `count_batches_written_total` | counter | batches durably written |
//! | `count_write_failures_total` | counter | write attempts that failed |
//! | `count_last_write_timestamp_seconds` | gauge | last successful write, Unix seconds (0: none since start) |
//! | `count_rollup_days_total` | counter | days rolled up (absent with `--no-rollup`, as are the next four) |
//! | `count_rollup_failures_total` | counter | rollups of a day that failed (retried later) |
//! | `count_last_rollup_timestamp_seconds` | gauge | last successful rollup, Unix seconds (0: none since start) |
//! | `count_unrolled_days` | gauge | finished days still holding counts not rolled up |
//! | `count_rollup_failing_days` | gauge | days whose last rollup failed |
//! | `count_backend_retries_total{kind}` | counter | CockroachDB only: transactions retried, `restart` or `ambiguous` |
//! | `count_backend_retries_exhausted_total` | counter | CockroachDB only: operations failed after the last retry |
//! | `count_interned_entries{kind}` | gauge | distinct paths / subjects held in memory |
//! | `count_interned_bytes{kind}` | gauge | their memory, as the cap counts it |
//! | `count_interned_limit_bytes{kind}` | gauge | the cap |
//! | `count_interned_refused_total{kind}` | counter | new texts refused at the cap |
//! | `count_backend_up` | gauge | 1 when the last health check passed, else 0 |
//! | `count_backend_health_checks_failed_total` | counter | health checks failed or timed out |
//! | `count_server_info{version,backend}` | gauge | always 1 |
//!
//! # Shutting down
//!
//! On SIGTERM or SIGINT the server stops accepting, marks its gRPC health
//! NOT_SERVING, lets calls in progress finish for at most `--shutdown-grace`
//! seconds (a stream held open longer is cut), stops the rollups and exits 0. Each
//! `Add` stream is written as one batch before it is answered, so nothing waits in
//! memory to be flushed.
#![warn(missing_docs)]

mod auth;
pub mod backend;
pub mod cli;
mod config;
mod health;
pub mod http;
mod incoming;
pub mod logging;
mod metrics;
mod server;
mod sqlite_check;
mod tls;

pub use config::ServerConfig;
pub use count_grpc::SERVICE_NAME;
pub use server::{serve, serve_backend, serve_counter, termination};
pub use tls::TlsFiles;
