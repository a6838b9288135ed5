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
//! | none | a SQLite file: `--db-path` / `COUNT_DB_PATH`, by default [`backend::default_db_path`] (`$XDG_DATA_HOME/count/count.db`, else `~/.local/share/count/count.db`, else `./count.db` in the working directory when neither variable is set); the startup log says which file |
//! | `sqlite:path/to/count.db`, `sqlite:///abs/count.db` | that SQLite file (created with its directories) |
//! | `postgresql://user:password@host:port/db?sslmode=...` (or `postgres://`) | PostgreSQL, or CockroachDB when its `version()` says so (`--backend` forces either) |
//! | `memory:` (or `--backend memory`) | memory, with a warning: every count is lost when the server stops |
//!
//! A URL and a file are never both given: the server refuses to start, and the
//! operator commands to run (exit 2), when both `DB_URL` (`--db-url`) and
//! `COUNT_DB_PATH` (`--db-path`) are set, rather than guess which was meant (an
//! environment holding both would otherwise have the server count into one database
//! and `count-server totals` read another). Both follow the one rule of
//! [`backend::Location::choose`]. An empty `DB_URL` counts as unset.
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
//! | `--token` | `COUNT_TOKEN` | none | require `authorization: Bearer <token>` (gRPC, `/api/*`, `/metrics`, `/readyz`); the scheme's case does not matter; an empty token is refused at start |
//! | `--no-rollup` | `COUNT_NO_ROLLUP` | off | do not roll up finished days in the background (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`) |
//! | `--max-message-bytes` | `COUNT_MAX_MESSAGE_BYTES` | 4194304 | largest gRPC request message accepted (and health/reflection answer) |
//! | `--max-response-bytes` | `COUNT_MAX_RESPONSE_BYTES` | 67108864 | largest count.v1 answer sent: a report of a day of 50,000 endpoints is over 4 MiB (clients must accept as much: `GrpcCounter` does) |
//! | `--max-streams-per-connection` | `COUNT_MAX_STREAMS` | 128 | concurrent HTTP/2 streams per connection, at most [`MAX_STREAMS_PER_CONNECTION`] (326) |
//! | `--max-concurrent-calls` | `COUNT_MAX_CALLS` | 1024 | count.v1 calls other than `Add`, and `/api/*` requests, in progress over all connections; more wait |
//! | `--max-add-streams` | `COUNT_MAX_ADD_STREAMS` | 1024 | `Add` streams open at once over all connections; one more is refused RESOURCE_EXHAUSTED |
//! | `--max-connections` | `COUNT_MAX_CONNECTIONS` | 4096 | connections open at once; more wait in the listen backlog |
//! | `--header-read-timeout` | `COUNT_HEADER_READ_TIMEOUT` | 10 | seconds a new connection may take to send its first request (TLS handshake included), and an HTTP/1.1 connection each request head; closed after |
//! | `--unready-after-failing-writes` | `COUNT_UNREADY_AFTER_FAILING_WRITES` | 10 | seconds every write may fail, none succeeding, before `/readyz` answers 503 (with the reason) and gRPC health NOT_SERVING; ready again at the next write that succeeds, or once none has failed for as long |
//! | `--request-read-timeout` | `COUNT_REQUEST_READ_TIMEOUT` | 10 | seconds a call other than `Add` may go without sending any of its request body (before the first part, between parts); its body is read whole before it takes a `--max-concurrent-calls` slot, and it is ended (`DEADLINE_EXCEEDED`, HTTP 408) when the body stops coming. A gRPC call's `grpc-timeout` is its deadline |
//! | `--tls-cert`, `--tls-key` | `COUNT_TLS_CERT`, `COUNT_TLS_KEY` | none | serve TLS (ALPN `h2` and `http/1.1`) with these PEM files |
//! | `--shutdown-grace` | `COUNT_SHUTDOWN_GRACE` | 20 | seconds calls in progress may take after SIGTERM/SIGINT |
//! | `--add-timeout` | `COUNT_ADD_TIMEOUT` | 30 | seconds an `Add` call may take when its client sets no deadline |
//! | `--log-format` | `COUNT_LOG_FORMAT` | `text` | `text` (coloured only on a terminal; `NO_COLOR` turns colours off) or `json` |
//!
//! Without a token the server warns at start when it listens on an address other
//! machines may reach (anything but loopback, `0.0.0.0` included): anyone who can
//! connect can then write counts and read every report.
//!
//! # Limits
//!
//! No kind of request can starve another:
//!
//! | requests | limit | past it |
//! |---|---|---|
//! | count.v1 calls other than `Add`; `/api/*` | `--max-concurrent-calls` | wait for a slot |
//! | `Add` streams | `--max-add-streams` | RESOURCE_EXHAUSTED at once |
//! | `/healthz`, `/readyz`, `/metrics`, the page, gRPC health and reflection | none | — |
//! | connections | `--max-connections` | wait in the listen backlog |
//!
//! An `Add` stream holds its slot until it is answered, for a client that keeps one
//! open for its whole life (the Go project's client does) that whole life, so a
//! stream past the cap is refused rather than left to wait, maybe for ever. The
//! probes and `/metrics` answer while everything else is busy. A connection that
//! sends nothing useful (nothing, half a request head, only the HTTP/2 preface) is
//! closed after `--header-read-timeout`, as is an HTTP/1.1 connection idle that long
//! between requests; accepting backs off (up to a second between tries, a warning at
//! most every ten seconds) when the process is out of file descriptors. Each HTTP/2
//! stream may have 64 KiB waiting unread, and the connection's window is sized so
//! that h2's allowance for small DATA frames covers every stream full of the
//! smallest gRPC messages: many small-message `Add` streams on one connection (what
//! gRPC clients do) never get the connection closed with GOAWAY
//! ENHANCE_YOUR_CALM. A connection that ends in an error (a GOAWAY sent or received,
//! a protocol error) is logged at warn and counted.
//!
//! `RUST_LOG` sets the log level (default `info`). Logs go to stderr.
//!
//! # HTTP
//!
//! | route | token | answers |
//! |---|---|---|
//! | `GET /` | no | the dashboard (one page, no network needed; it asks for the token itself) |
//! | `GET /healthz` | no | 200 while the process serves; no backend call |
//! | `GET /readyz` | yes | 200 when the backend answers `Counter::health` in time; 503 with the kind of failure |
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
//! Paths and subjects come from any client, so a CSV field that a spreadsheet would
//! take for a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return)
//! is written with a single quote `'` in front, as OWASP advises against CSV
//! injection: the path `=1+1` is the field `'=1+1` (the JSON holds the texts as they
//! are; `count-server totals --format csv` writes the same bytes).
//! Errors are JSON `{"error": "..."}`: 400 with `"parameter"` naming the refused one
//! (unknown names too), 401 without the right token, 405 for a method other than
//! GET or HEAD, 503 `{"error": "the backend is unavailable", "kind": "..."}` when the
//! backend fails (`kind`: `unavailable`, `timeout`, `outcome_unknown`,
//! `limit_reached`, `backend_error`, ...; the backend's own message, which may name
//! the database's user, host and port, goes to the log only).
//! The range has no maximum: an answer's size is bounded by what was counted, not by
//! the days asked for.
//!
//! Every HTTP answer carries `Content-Security-Policy` (nothing loads but the page's
//! own script, allowed by its hash, inline styles, a `data:` icon and requests to
//! this origin; no framing), `X-Content-Type-Options: nosniff`, `X-Frame-Options:
//! DENY` and `Referrer-Policy: no-referrer`.
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
//! | `count_add_streams_total{outcome}` | counter | `Add` streams answered, by outcome: `ok`, `invalid`, `too_large`, `unavailable`, `outcome_unknown`, `failed`, `refused` (at `--max-add-streams`) |
//! | `count_add_counts_calls_total` | counter | `AddCounts` calls received |
//! | `count_add_counts_conflicts_total` | counter | `AddCounts` refused: batch id reused with other counts |
//! | `count_requests_written_total` | counter | requests durably written (an `AddCounts` batch resent after it was applied counts again: the backend answers both alike) |
//! | `count_batches_written_total` | counter | batches durably written |
//! | `count_write_failures_total` | counter | write attempts that failed |
//! | `count_last_write_timestamp_seconds` | gauge | last successful write, Unix seconds (0: none since start) |
//! | `count_rollup_days_total` | counter | days rolled up (absent with `--no-rollup`, as are the next four) |
//! | `count_rollup_failures_total` | counter | rollups of a day that failed (retried later) |
//! | `count_rollup_last_timestamp_seconds` | gauge | last successful rollup, Unix seconds (0: none since start) |
//! | `count_rollup_unrolled_days` | gauge | finished days still holding counts not rolled up |
//! | `count_rollup_failing_days` | gauge | days whose last rollup failed |
//! | `count_backend_retries_total{kind}` | counter | CockroachDB only: transactions retried, `restart` or `ambiguous` |
//! | `count_backend_retries_exhausted_total` | counter | CockroachDB only: operations failed after the last retry |
//! | `count_interner_entries{kind}` | gauge | distinct paths / subjects held in memory |
//! | `count_interner_bytes{kind}` | gauge | the memory of those counted, as the cap counts it |
//! | `count_interner_stored_bytes{kind}` | gauge | the memory of those first read back from storage (outside the cap) |
//! | `count_interner_limit_bytes{kind}` | gauge | the cap |
//! | `count_interner_refused_total{kind}` | counter | new texts refused at the cap |
//! | `count_open_connections` | gauge | connections open now |
//! | `count_connections_timed_out_total` | counter | connections closed for sending no request (head) within `--header-read-timeout` |
//! | `count_writes_failing_seconds` | gauge | how long every write has failed with none succeeding since (0 while writes succeed) |
//! | `count_calls_timed_out_total` | counter | calls other than `Add` ended because their request body stopped coming (`--request-read-timeout`), or their `grpc-timeout` passed |
//! | `count_connection_errors_total` | counter | connections that ended in an error (logged at warn once every 10 s at most); clients going away are not counted |
//! | `count_backend_up` | gauge | 1 when the last health check passed, else 0 |
//! | `count_backend_health_checks_failed_total` | counter | health checks failed or timed out |
//! | `count_server_info{version,backend}` | gauge | always 1 |
//!
//! # Shutting down
//!
//! On SIGTERM or SIGINT the server stops accepting, marks its gRPC health
//! NOT_SERVING, tells every connection to finish (HTTP/2 GOAWAY; HTTP/1.1 closes
//! after the answer in progress), lets calls in progress finish for at most
//! `--shutdown-grace` seconds from the signal (a stream held open longer is cut,
//! every time), waits for the `Add` feeds whose connections were cut to write what
//! they had received (at most `--add-timeout`), stops the rollups and exits 0.

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

pub use config::ServerConfig;
pub use connection::MAX_STREAMS_PER_CONNECTION;
pub use count_grpc::SERVICE_NAME;
pub use server::{serve, serve_backend, serve_counter, termination};
pub use tls::TlsFiles;
