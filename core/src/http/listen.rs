//! The accept side of the HTTP port: connections are accepted here, TLS is terminated here, and
//! when ICE-TCP shares the port its connections are told apart by their first byte and handed to
//! the media plane's TCP acceptor. axum serves what is left through [`Incoming`].
//!
//! The first byte tells the three apart (the client always speaks first): an RFC 4571 frame
//! starts with the high byte of its length, 0-3 for the STUN checks that open ICE-TCP; a TLS
//! ClientHello with 0x16; an HTTP request with the letter of its method.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::net::tcp::TcpAcceptor;

/// Time a new connection has to send its first byte and finish its TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections in their first bytes or TLS handshake at once; more are closed at accept.
pub(crate) const MAX_HANDSHAKES: usize = 1024;
/// Connections ready for HTTP that axum has not taken yet.
const READY_QUEUE: usize = 64;

/// A connection of the HTTP port, plain or TLS.
pub(crate) enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The remote address of an HTTP connection, for handlers (`ConnectInfo<Remote>`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Remote(pub SocketAddr);

/// The HTTP connections of the port, as axum takes them.
pub(crate) struct Incoming {
    ready: mpsc::Receiver<(Io, SocketAddr)>,
    local: SocketAddr,
    accept_task: tokio::task::AbortHandle,
}

impl Incoming {
    /// Starts accepting on `listener`: TLS with `tls`, ICE-TCP handed to `ice` when given.
    pub(crate) fn new(
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        ice: Option<TcpAcceptor>,
    ) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let accept_task = tokio::spawn(accept_loop(listener, tls, ice, tx)).abort_handle();
        Ok(Self {
            ready,
            local,
            accept_task,
        })
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // The accept loop owns the listener: ending it frees the port.
        self.accept_task.abort();
    }
}

impl Listener for Incoming {
    type Io = Io;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Io, SocketAddr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop is gone (it only ends when aborted): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, Incoming>> for Remote {
    fn connect_info(stream: IncomingStream<'_, Incoming>) -> Self {
        Remote(*stream.remote_addr())
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ice: Option<TcpAcceptor>,
    ready: mpsc::Sender<(Io, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin.
                tracing::warn!("HTTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "too many connections in their handshake; closed");
            continue;
        };
        let (tls, ice, ready) = (tls.clone(), ice.clone(), ready.clone());
        tokio::spawn(async move {
            let io = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                if let Some(ice) = &ice {
                    let mut first = [0u8; 1];
                    match stream.peek(&mut first).await {
                        Ok(1) if first[0] < 4 => {
                            ice.accept(stream, remote);
                            return None;
                        }
                        Ok(1) => {}
                        _ => return None,
                    }
                }
                match &tls {
                    None => Some(Io::Plain(stream)),
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(s) => Some(Io::Tls(Box::new(s))),
                        Err(e) => {
                            tracing::debug!(%remote, "TLS handshake failed: {e}");
                            None
                        }
                    },
                }
            })
            .await;
            drop(permit);
            if let Ok(Some(io)) = io {
                let _ = ready.send((io, remote)).await;
            }
        });
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}
