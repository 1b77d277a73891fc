//! The accept side of the HTTP port: connections are accepted here, TLS is terminated here, when
//! ICE-TCP shares the port its connections are told apart by their first byte and handed to the
//! media plane's TCP acceptor, and what is left is served as HTTP/1.1 (hyper) by the router.
//!
//! The first byte tells the three apart (the client always speaks first): an RFC 4571 frame
//! starts with the high byte of its length, 0-3 for the STUN checks that open ICE-TCP; a TLS
//! ClientHello with 0x16; an HTTP request with the letter of its method.
//!
//! A connection is *half-open* from its accept until its first request head has arrived: those
//! are what a client holding connections without using them (slowloris) piles up, so they are
//! bounded in total and per remote address ([`MAX_HALF_OPEN`], [`MAX_HALF_OPEN_PER_ADDRESS`]) and
//! in time ([`HANDSHAKE_TIMEOUT`], [`HEADER_TIMEOUT`]). A connection past its first request is a
//! page, a WHEP exchange or a viewer's WebSocket, bounded by the viewer limits.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming as Body;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::net::tcp::TcpAcceptor;

/// Time a new connection has to send its first byte and finish its TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a connection has to send a whole request head, counted from when the server starts
/// waiting for it: for the first request and between requests of a kept-alive connection (an
/// idle connection is closed after this long).
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Half-open connections (accepted, no request head yet) of the whole port; more are closed at
/// accept.
pub(crate) const MAX_HALF_OPEN: usize = 1024;
/// Half-open connections from one IP address; more are closed at accept. A browser opens a few
/// at once; a whole office behind one NAT address loading the page at once stays under it.
pub(crate) const MAX_HALF_OPEN_PER_ADDRESS: usize = 64;

/// A connection of the HTTP port, plain or TLS.
pub(crate) enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The remote address of an HTTP connection, for handlers (`ConnectInfo<Remote>`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Remote(pub SocketAddr);

/// Accepts on `listener` and serves each connection with `app` until `closing` turns true; then
/// every connection is asked to finish (its request in flight completes, then it closes). TLS
/// with `tls`; ICE-TCP handed to `ice` when given. Returns only if accepting is abandoned.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ice: Option<TcpAcceptor>,
    app: Router,
    closing: watch::Receiver<bool>,
) {
    let half_open = HalfOpen::new(MAX_HALF_OPEN, MAX_HALF_OPEN_PER_ADDRESS);
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
        let guard = match half_open.enter(remote.ip()) {
            Ok(g) => g,
            Err(why) => {
                tracing::debug!(%remote, "{why}; connection closed");
                continue;
            }
        };
        let (tls, ice, app, closing) = (tls.clone(), ice.clone(), app.clone(), closing.clone());
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
            if let Ok(Some(io)) = io {
                serve_connection(io, remote, app, guard, closing).await;
            }
        });
    }
}

/// Serves HTTP/1.1 on one connection (WebSocket upgrades included) until it closes or the
/// server closes. `guard` is given back when the first request head has arrived.
async fn serve_connection(
    io: Io,
    remote: SocketAddr,
    app: Router,
    guard: HalfOpenGuard,
    mut closing: watch::Receiver<bool>,
) {
    let guard = Mutex::new(Some(guard));
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Body>| {
        drop(lock(&guard).take());
        req.extensions_mut().insert(ConnectInfo(Remote(remote)));
        app.clone().oneshot(req)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let mut asked_to_close = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::trace!(%remote, "HTTP connection ended: {e}");
                }
                return;
            }
            changed = closing.changed(), if !asked_to_close => {
                // The server is closing (or is gone): finish the request in flight, then close.
                asked_to_close = true;
                if changed.is_err() || *closing.borrow() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Half-open connections, counted in total and per remote IP address.
#[derive(Debug)]
pub(crate) struct HalfOpen {
    max_total: usize,
    max_per_address: usize,
    counts: Mutex<HalfOpenCounts>,
}

#[derive(Debug, Default)]
struct HalfOpenCounts {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// One half-open connection's place; given back when dropped.
#[derive(Debug)]
pub(crate) struct HalfOpenGuard {
    table: Arc<HalfOpen>,
    ip: IpAddr,
}

impl HalfOpen {
    pub(crate) fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            counts: Mutex::new(HalfOpenCounts::default()),
        })
    }

    /// Takes a place for a connection from `ip`, or says which bound is reached.
    pub(crate) fn enter(self: &Arc<Self>, ip: IpAddr) -> Result<HalfOpenGuard, String> {
        let mut c = lock(&self.counts);
        if c.total >= self.max_total {
            return Err(format!(
                "{} connections are waiting for their first request",
                self.max_total
            ));
        }
        let n = c.per_address.entry(ip).or_default();
        if *n >= self.max_per_address {
            return Err(format!(
                "{} connections from {ip} are waiting for their first request",
                self.max_per_address
            ));
        }
        *n += 1;
        c.total += 1;
        Ok(HalfOpenGuard {
            table: self.clone(),
            ip,
        })
    }

    /// Half-open connections now (total, distinct addresses).
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let c = lock(&self.counts);
        (c.total, c.per_address.len())
    }
}

impl Drop for HalfOpenGuard {
    fn drop(&mut self) {
        let mut c = lock(&self.table.counts);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_address.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_address.remove(&self.ip);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn half_open_connections_are_bounded_per_address_and_in_total() {
        let t = HalfOpen::new(3, 2);
        let a1 = t.enter(A).unwrap();
        let _a2 = t.enter(A).unwrap();
        let e = t.enter(A).unwrap_err();
        assert!(e.contains("2 connections from 192.0.2.1"), "{e}");
        let b1 = t.enter(B).unwrap();
        let e = t.enter(B).unwrap_err();
        assert!(e.contains("3 connections are waiting"), "{e}");
        drop(a1);
        let _a3 = t.enter(A).unwrap();
        drop(b1);
        assert_eq!(
            t.counts(),
            (2, 1),
            "B's place is given back and its entry gone"
        );
    }
}
