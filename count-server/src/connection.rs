//! Serving connections with hyper (HTTP/1.1 and HTTP/2 on one port, TLS or not),
//! each in a task of its own, and stopping them: told to finish (HTTP/2 GOAWAY,
//! HTTP/1.1 closes after the answer in progress) at the stop signal, cut when the
//! grace period is over.
//!
//! The loop is ours rather than tonic's `Server`, for what that one cannot do:
//!
//! - **A first request in time.** A connection must send its first request (TLS
//!   handshake, HTTP/2 preface and a request's headers, or an HTTP/1.1 head) within
//!   `--header-read-timeout`, else it is closed; on HTTP/1.1 every later head must
//!   come within it too (hyper's header read timeout, idle time between requests
//!   included). A client that opens connections and sends nothing holds none for
//!   long.
//! - **Errors seen.** A connection that ends in error (a GOAWAY sent or received, a
//!   protocol error) is counted, and logged at warn at most once every
//!   [`WARN_EVERY`](crate::incoming::WARN_EVERY) (else at debug: anyone who reaches the port can make such
//!   errors); a client that simply went away is not an error.
//! - **A grace period that always ends.** The timer runs in the server's own task,
//!   not in a future that a library may drop.
//!
//! # HTTP/2 windows
//!
//! h2 (0.4.18 and later) closes a connection with GOAWAY ENHANCE_YOUR_CALM
//! ("too_many_data_frames") when the DATA frames it holds unread cost more than a
//! budget: each frame under 256 bytes costs 256 minus its length, and the budget is
//! half the connection's receive window (25,600 at least). Every gRPC message is
//! usually a DATA frame of its own, and an `AddRequest` is a few dozen bytes, so a
//! client streaming `Add` faster than the server reads would trip it with the
//! defaults, cutting every stream of the connection. So the windows are sized for the
//! worst case:
//!
//! - each stream's window is [`STREAM_WINDOW`] (65,535, HTTP/2's default): at most
//!   that many bytes wait unread per stream, so buffering stays bounded by
//!   `streams × 64 KiB` (8 MiB with the default 128 streams per connection);
//! - filled with the smallest gRPC frames (5 bytes: an empty message's prefix), a
//!   stream holds at most 65,535 / 5 = 13,107 frames costing 251 each, plus one frame
//!   cut short at the window's edge (255): 3,290,112 per stream;
//! - the connection window is twice `streams ×` that, so its half, the budget, covers
//!   every stream full: 842,268,672 bytes for 128 streams. It only lets the client
//!   use all its streams' windows at once; it does not let more wait than they hold;
//! - a window is at most 2^31 - 1, so at most [`MAX_STREAMS_PER_CONNECTION`] (326)
//!   streams per connection can be covered; more is refused at start.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::ServerConfig;
use crate::incoming::{Accepted, RateLimit};

/// Each HTTP/2 stream's receive window, in bytes (HTTP/2's default).
pub(crate) const STREAM_WINDOW: u32 = 65_535;

/// The smallest DATA frame a gRPC message makes: its 5-byte prefix alone.
const SMALLEST_MESSAGE_FRAME: u64 = 5;

/// h2 charges a DATA frame shorter than this (this minus its length).
const SMALL_FRAME: u64 = 256;

/// The largest HTTP/2 window.
const MAX_WINDOW: u64 = (1 << 31) - 1;

/// What one stream's window, full of the smallest frames, costs of h2's budget.
const STREAM_CHARGE: u64 = (STREAM_WINDOW as u64 / SMALLEST_MESSAGE_FRAME)
    * (SMALL_FRAME - SMALLEST_MESSAGE_FRAME)
    + (SMALL_FRAME - 1);

/// The most concurrent streams per HTTP/2 connection whose full windows the
/// small-frame budget can cover (see the module's docs): 326.
pub(crate) const MAX_STREAMS_PER_CONNECTION: u32 = (MAX_WINDOW / (2 * STREAM_CHARGE)) as u32;

/// After a connection sent nothing in time and was asked to close, how long it gets
/// to do so before it is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// After cutting the connections, how long to wait for their tasks to end.
const CUT_WAIT: Duration = Duration::from_secs(2);

/// The connection window that covers `streams` full stream windows.
fn connection_window(streams: u32) -> u32 {
    let window = 2 * u64::from(streams) * STREAM_CHARGE;
    // The configuration is checked against MAX_STREAMS_PER_CONNECTION.
    u32::try_from(window.min(MAX_WINDOW)).unwrap_or(u32::MAX >> 1)
}

/// The connections being served, and what they share.
pub(crate) struct Connections {
    http: auto::Builder<TokioExecutor>,
    app: axum::Router,
    tls: Option<TlsAcceptor>,
    first_request_timeout: Duration,
    /// Cancelled at the stop signal: finish what is in progress, take nothing new.
    drain: CancellationToken,
    /// Cancelled when the grace period is over: close now.
    cut: CancellationToken,
    tasks: TaskTracker,
    figures: Arc<ConnectionFigures>,
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connections")
            .field("tls", &self.tls.is_some())
            .field("first_request_timeout", &self.first_request_timeout)
            .field("open", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

/// What happened to connections, for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct ConnectionFigures {
    open: AtomicU64,
    timed_out: AtomicU64,
    failed: AtomicU64,
    /// Failed connections are logged at warn once per [`WARN_EVERY`](crate::incoming::WARN_EVERY).
    warnings: Mutex<RateLimit>,
}

impl ConnectionFigures {
    /// Connections open now.
    pub(crate) fn open(&self) -> u64 {
        self.open.load(Relaxed)
    }

    /// Connections closed because they sent no request (or request head) in time.
    pub(crate) fn timed_out(&self) -> u64 {
        self.timed_out.load(Relaxed)
    }

    /// Connections that ended in an error.
    pub(crate) fn failed(&self) -> u64 {
        self.failed.load(Relaxed)
    }

    /// Whether a failed connection may be logged at warn now (one line per
    /// [`WARN_EVERY`](crate::incoming::WARN_EVERY)).
    fn may_warn(&self) -> bool {
        let mut warnings = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        warnings.allow(Instant::now()).is_some()
    }
}

/// Counts a connection open while it lives.
struct OpenConnection(Arc<ConnectionFigures>);

impl OpenConnection {
    fn new(figures: &Arc<ConnectionFigures>) -> OpenConnection {
        figures.open.fetch_add(1, Relaxed);
        OpenConnection(figures.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Relaxed);
    }
}

impl Connections {
    pub(crate) fn new(
        config: &ServerConfig,
        app: axum::Router,
        tls: Option<TlsAcceptor>,
        figures: Arc<ConnectionFigures>,
    ) -> Connections {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout);
        http.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(config.max_streams_per_connection)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(connection_window(config.max_streams_per_connection))
            .adaptive_window(false)
            .keep_alive_interval(Duration::from_secs(30));
        Connections {
            http,
            app,
            tls,
            first_request_timeout: config.header_read_timeout,
            drain: CancellationToken::new(),
            cut: CancellationToken::new(),
            tasks: TaskTracker::new(),
            figures,
        }
    }

    /// Serves `accepted` in a task of its own.
    pub(crate) fn serve(self: &Arc<Self>, accepted: Accepted) {
        let this = self.clone();
        self.tasks
            .spawn(async move { this.serve_one(accepted).await });
    }

    /// Tells every connection to finish (no new calls), waits for them until
    /// `deadline`, then cuts those still open.
    pub(crate) async fn stop(&self, deadline: Instant) {
        self.tasks.close();
        self.drain.cancel();
        if tokio::time::timeout_at(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                connections = self.tasks.len(),
                "count-server: the grace period is over: cutting the connections still open"
            );
            self.cut.cancel();
            let _ = tokio::time::timeout(CUT_WAIT, self.tasks.wait()).await;
        }
    }

    async fn serve_one(&self, accepted: Accepted) {
        let Accepted { tcp, info, slot } = accepted;
        let _slot = slot;
        let _open = OpenConnection::new(&self.figures);
        let peer = info.remote_addr;
        let first_request_by = Instant::now() + self.first_request_timeout;
        let io = match &self.tls {
            None => Either::Left(tcp),
            Some(acceptor) => {
                let handshake = tokio::time::timeout_at(first_request_by, acceptor.accept(tcp));
                tokio::select! {
                    done = handshake => match done {
                        Ok(Ok(tls)) => Either::Right(Box::new(tls)),
                        Ok(Err(error)) => {
                            tracing::debug!(?peer, %error, "count-server: a TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            self.figures.timed_out.fetch_add(1, Relaxed);
                            tracing::debug!(?peer, "count-server: a TLS handshake timed out");
                            return;
                        }
                    },
                    () = self.drain.cancelled() => return,
                }
            }
        };

        let requested = Arc::new(AtomicBool::new(false));
        let service = {
            let requested = requested.clone();
            let app = self.app.clone();
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                requested.store(true, Relaxed);
                // As tonic's server does, for `tonic::Request::remote_addr`.
                request.extensions_mut().insert(info.clone());
                app.clone().oneshot(request.map(axum::body::Body::new))
            })
        };
        let connection = self.http.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        let timer = tokio::time::sleep_until(first_request_by);
        tokio::pin!(timer);
        let (mut timer_armed, mut closing_idle, mut draining) = (true, false, false);
        loop {
            // A guard is read once, when the select starts, so whether a request came
            // is asked when the timer fires, not here.
            tokio::select! {
                ended = connection.as_mut() => {
                    self.report(ended, peer);
                    return;
                }
                () = &mut timer, if timer_armed => {
                    if closing_idle {
                        return;
                    }
                    if requested.load(Relaxed) {
                        // The first request came in time: from here on, hyper's own
                        // rules (HTTP/1.1's header read timeout, HTTP/2's keep-alive).
                        timer_armed = false;
                        continue;
                    }
                    closing_idle = true;
                    self.figures.timed_out.fetch_add(1, Relaxed);
                    tracing::debug!(?peer, "count-server: no request in time: closing the connection");
                    connection.as_mut().graceful_shutdown();
                    timer.as_mut().reset(Instant::now() + CLOSE_WAIT);
                }
                () = self.drain.cancelled(), if !draining => {
                    draining = true;
                    connection.as_mut().graceful_shutdown();
                }
                () = self.cut.cancelled() => return,
            }
        }
    }

    /// Logs how a connection ended, when that is worth a line.
    fn report(
        &self,
        ended: Result<(), Box<dyn StdError + Send + Sync>>,
        peer: Option<std::net::SocketAddr>,
    ) {
        let Err(error) = ended else {
            return;
        };
        let error: &(dyn StdError + 'static) = &*error;
        match Ending::of(error) {
            Ending::ClientGone | Ending::Closed => {
                tracing::debug!(?peer, error = %Chain(error), "count-server: a connection ended");
            }
            Ending::TimedOut => {
                self.figures.timed_out.fetch_add(1, Relaxed);
                tracing::debug!(
                    ?peer,
                    "count-server: a request head did not come in time: closed"
                );
            }
            Ending::Failed => {
                let failed = self.figures.failed.fetch_add(1, Relaxed) + 1;
                if self.figures.may_warn() {
                    tracing::warn!(
                        ?peer,
                        error = %Chain(error),
                        failed_so_far = failed,
                        "count-server: a connection failed (one such line every 10 s at \
                         most; count_connection_errors_total counts them all)"
                    );
                } else {
                    tracing::debug!(?peer, error = %Chain(error), "count-server: a connection failed");
                }
            }
        }
    }
}

/// How a connection that ended in error ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client closed or reset it.
    ClientGone,
    /// This server closed it before it sent anything (stopping, or no request in time).
    Closed,
    /// An HTTP/1.1 head did not come within the header read timeout.
    TimedOut,
    /// Anything else: a GOAWAY with an error, sent or received; a protocol error.
    Failed,
}

impl Ending {
    fn of(error: &(dyn StdError + 'static)) -> Ending {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(hyper) = error.downcast_ref::<hyper::Error>() {
                if hyper.is_timeout() {
                    return Ending::TimedOut;
                }
                if hyper.is_incomplete_message() || hyper.is_canceled() || hyper.is_closed() {
                    return Ending::ClientGone;
                }
            }
            if let Some(h2) = error.downcast_ref::<h2::Error>() {
                return match h2.get_io() {
                    Some(io) => Ending::of_io(io),
                    None => Ending::Failed,
                };
            }
            if let Some(io) = error.downcast_ref::<io::Error>() {
                return Ending::of_io(io);
            }
            next = error.source();
        }
        Ending::Failed
    }

    fn of_io(error: &io::Error) -> Ending {
        match error.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => Ending::ClientGone,
            // hyper-util's answer to a shutdown before the protocol was known.
            io::ErrorKind::Interrupted => Ending::Closed,
            _ => Ending::Failed,
        }
    }
}

/// An error and its sources, `: `-separated.
struct Chain<'a>(&'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(error) = next {
            write!(f, ": {error}")?;
            next = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_windows_cover_every_stream_full_of_the_smallest_frames() {
        assert_eq!(STREAM_CHARGE, 3_290_112);
        assert_eq!(MAX_STREAMS_PER_CONNECTION, 326);
        let window = connection_window(128);
        assert_eq!(window, 842_268_672);
        // h2's budget is half the connection window.
        let budget = u64::from(window) / 2;
        let frames_per_stream = u64::from(STREAM_WINDOW) / SMALLEST_MESSAGE_FRAME;
        assert!(budget >= 128 * (frames_per_stream * 251 + 255));
        assert!(u64::from(connection_window(MAX_STREAMS_PER_CONNECTION)) <= MAX_WINDOW);
    }

    #[test]
    fn a_client_going_away_is_no_error_but_a_goaway_is() {
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(Ending::of(&reset), Ending::ClientGone);
        let ours = io::Error::new(io::ErrorKind::Interrupted, "Cancelled");
        assert_eq!(Ending::of(&ours), Ending::Closed);
        let calm = h2::Error::from(h2::Reason::ENHANCE_YOUR_CALM);
        assert_eq!(Ending::of(&calm), Ending::Failed);
        let other = io::Error::other("odd");
        assert_eq!(Ending::of(&other), Ending::Failed);
        let wrapped = Wrapped(io::Error::other("inner"));
        assert_eq!(Chain(&wrapped).to_string(), "outer: inner");
    }

    #[derive(Debug)]
    struct Wrapped(io::Error);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer")
        }
    }

    impl StdError for Wrapped {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }
}
