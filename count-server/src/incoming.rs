//! The connections the server serves: accepted from the listener (and TLS-handshaken,
//! each handshake in its own task so a slow or silent client never holds up the
//! others), until the server stops accepting; and cut, all at once, when the grace
//! period after the stop signal is over.
//!
//! Cutting is done in the connection itself: once cut, every read and write fails,
//! which ends hyper's connection task (and the calls on it) wherever it waits. Merely
//! dropping the server's future would leave those tasks running.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One accepted connection, plaintext or TLS, that fails once cut.
pub(crate) struct Connection {
    stream: Stream,
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
    info: TcpConnectInfo,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The connections of `listener` (through `tls` when given), until
/// `stop_accepting` is cancelled; each fails once `cut` is cancelled.
pub(crate) fn incoming(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    stop_accepting: CancellationToken,
    cut: CancellationToken,
) -> ReceiverStream<io::Result<Connection>> {
    let (ready, incoming) = tokio::sync::mpsc::channel(128);
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                () = stop_accepting.cancelled() => break,
                () = ready.closed() => break,
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _peer)) => tcp,
                    Err(error) => {
                        // Out of file descriptors and the like: wait, keep listening.
                        tracing::warn!(%error, "count-server: accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let info = tcp.connect_info();
            let cut = Box::pin(cut.clone().cancelled_owned());
            match &tls {
                None => {
                    let connection = Connection {
                        stream: Stream::Plain(tcp),
                        cut,
                        info,
                    };
                    if ready.send(Ok(connection)).await.is_err() {
                        break;
                    }
                }
                Some(acceptor) => {
                    let ready = ready.clone();
                    let handshake = acceptor.accept(tcp);
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                            Ok(Ok(tls)) => {
                                let connection = Connection {
                                    stream: Stream::Tls(Box::new(tls)),
                                    cut,
                                    info,
                                };
                                let _ = ready.send(Ok(connection)).await;
                            }
                            Ok(Err(error)) => {
                                tracing::debug!(%error, "count-server: a TLS handshake failed");
                            }
                            Err(_) => tracing::debug!("count-server: a TLS handshake timed out"),
                        }
                    });
                }
            }
        }
        // The listener closes here: new connections are refused from now on.
    });
    ReceiverStream::new(incoming)
}

impl Connection {
    /// `Err` once the connection is cut (and registers for the cut otherwise).
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.cut.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "cut: the grace period after the stop signal is over",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check(cx)?;
        match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check(cx)?;
        match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
