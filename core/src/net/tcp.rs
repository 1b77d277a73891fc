//! ICE-TCP, passive (RFC 6544): viewers whose network blocks UDP open a TCP connection to our
//! `tcptype passive` candidate and send STUN, DTLS and SRTP on it, each packet prefixed with its
//! 2-byte length (RFC 4571). This module owns the connections and the framing; the media plane
//! sees a connection as one more [`Path`] and never knows more about TCP.
//!
//! A connection is accepted (on a port of its own, or handed over by the HTTP listener when ICE
//! shares its port), its first frame must be a STUN binding request within
//! [`FIRST_FRAME_TIMEOUT`], and the loop tag of that request's ufrag says which media loop gets
//! the connection. That loop's driver then reads it (a task per connection feeding the loop's
//! one bounded queue) and writes it (a task per connection with its own bounded queue: a viewer
//! that stops reading fills only its own queue, loses its own packets and waits for a keyframe).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};

use crate::net::driver::Control;
use crate::plane::{loop_of_ufrag, Path, Proto};

/// Largest frame accepted from a viewer. STUN, DTLS records and RTCP from browsers are far
/// smaller; a larger length means the peer does not speak RFC 4571 and is disconnected.
pub(crate) const MAX_FRAME: usize = 4096;
/// Time an accepted connection has to send its first STUN binding request.
pub(crate) const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections accepted whose first binding request has not arrived yet; more are closed at
/// once (a flood of idle connections costs a task each, no more).
pub(crate) const MAX_PENDING: usize = 256;
/// Packets queued to one connection's writer. A viewer that stops reading loses what does not
/// fit and waits for the next keyframe; nobody else notices.
pub(crate) const SEND_QUEUE: usize = 512;
/// Frames from every connection of a loop waiting for the loop (readers wait for room).
pub(crate) const INBOUND_QUEUE: usize = 1024;
/// The kernel send buffer of a connection (`SO_SNDBUF`; Linux doubles it for its bookkeeping):
/// room for ~1 s of an 8 Mbit/s stream beyond the queue, and a bound on what a viewer that
/// stops reading holds in the kernel (autotuning would let it reach `tcp_wmem`'s 4 MB).
pub(crate) const SEND_BUFFER: usize = 256 * 1024;
/// Packets written per `write_all`, framed into one buffer of at most ~16 KB (media packets are
/// at most ~1.2 KB): the buffer is per connection, so its size is per-viewer memory.
const WRITE_BATCH: usize = 12;

/// A connection on its way to its media loop, with the first frame it sent.
pub(crate) struct Accepted {
    pub stream: TcpStream,
    pub path: Path,
    pub first: Vec<u8>,
}

/// What a connection's reader hands to its loop.
pub(crate) enum TcpInput {
    /// One frame, without its length.
    Frame(Path, Vec<u8>),
    /// The connection ended (closed by the viewer, reset, idle, or not RFC 4571).
    Closed(Path),
}

/// Takes accepted TCP connections and hands each to the media loop of its viewer.
#[derive(Clone)]
pub(crate) struct TcpAcceptor {
    loops: Arc<Vec<mpsc::Sender<Control>>>,
    pending: Arc<Semaphore>,
}

impl TcpAcceptor {
    pub(crate) fn new(loops: Vec<mpsc::Sender<Control>>) -> Self {
        Self {
            loops: Arc::new(loops),
            pending: Arc::new(Semaphore::new(MAX_PENDING)),
        }
    }

    /// Serves a listener of its own until the server stops (the listener is dropped with the
    /// task).
    pub(crate) async fn serve(self, listener: tokio::net::TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, remote)) => self.accept(stream, remote),
                Err(e) => {
                    // Out of descriptors and the like: wait rather than spin.
                    tracing::warn!("ICE-TCP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// A connection that may be ICE-TCP: read its first frame, then give it to its loop.
    pub(crate) fn accept(&self, stream: TcpStream, remote: SocketAddr) {
        let Ok(permit) = self.pending.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "ICE-TCP: too many connections waiting for their first check");
            return;
        };
        let loops = self.loops.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let Ok(local) = stream.local_addr() else {
                return;
            };
            let mut stream = stream;
            let first =
                match tokio::time::timeout(FIRST_FRAME_TIMEOUT, read_frame(&mut stream)).await {
                    Ok(Ok(Some(f))) => f,
                    _ => return,
                };
            let Some(index) = crate::net::stun::local_ufrag(&first).and_then(loop_of_ufrag) else {
                tracing::debug!(%remote, "ICE-TCP: the first frame is not a check of ours");
                return;
            };
            let Some(tx) = loops.get(index) else {
                return;
            };
            let path = Path {
                proto: Proto::Tcp,
                local,
                remote,
            };
            let _ = tx
                .send(Control::TcpConnection(Accepted {
                    stream,
                    path,
                    first,
                }))
                .await;
        });
    }
}

/// Reads one RFC 4571 frame. `Ok(None)`: the connection ended cleanly between frames.
async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = usize::from(u16::from_be_bytes(len));
    if len == 0 || len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("an RFC 4571 frame of {len} bytes"),
        ));
    }
    let mut frame = vec![0u8; len];
    r.read_exact(&mut frame).await?;
    Ok(Some(frame))
}

/// Reads every RFC 4571 frame of `data` as a connection's reader would (for the fuzz targets:
/// reading a slice never waits).
#[cfg(feature = "fuzzing")]
pub(crate) fn read_all_frames(mut data: &[u8]) {
    use std::future::Future;
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        let frame = std::pin::pin!(read_frame(&mut data)).poll(&mut cx);
        match frame {
            std::task::Poll::Ready(Ok(Some(f))) => assert!(!f.is_empty() && f.len() <= MAX_FRAME),
            _ => return,
        }
    }
}

/// One ICE-TCP connection owned by a media loop: the queue to its writer, and its reader (aborted
/// when the connection is dropped).
pub(crate) struct TcpConnection {
    tx: mpsc::Sender<BytesMut>,
    reader: tokio::task::AbortHandle,
}

impl TcpConnection {
    /// Starts the reader and the writer of an accepted connection. Frames go to `inbound`; the
    /// reader gives up after `idle` without a frame (a connected viewer sends consent checks and
    /// RTCP every few seconds).
    pub(crate) fn start(
        stream: TcpStream,
        path: Path,
        inbound: mpsc::Sender<TcpInput>,
        idle: Duration,
    ) -> Self {
        if let Err(e) = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER) {
            tracing::debug!(remote = %path.remote, "ICE-TCP: SO_SNDBUF not set: {e}");
        }
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::channel(SEND_QUEUE);
        tokio::spawn(write_loop(write, rx));
        let reader = tokio::spawn(read_loop(read, path, inbound, idle)).abort_handle();
        Self { tx, reader }
    }

    /// Queues a packet; `false` when the viewer's queue is full or the connection is gone.
    pub(crate) fn send(&self, data: BytesMut) -> bool {
        self.tx.try_send(data).is_ok()
    }
}

impl Drop for TcpConnection {
    fn drop(&mut self) {
        // The writer ends when its queue closes (dropping `tx`), which closes the socket.
        self.reader.abort();
    }
}

async fn read_loop(
    mut read: OwnedReadHalf,
    path: Path,
    inbound: mpsc::Sender<TcpInput>,
    idle: Duration,
) {
    // Ends at a clean close, an error, a frame that is not RFC 4571, or `idle` without a frame.
    while let Ok(Ok(Some(frame))) = tokio::time::timeout(idle, read_frame(&mut read)).await {
        if inbound.send(TcpInput::Frame(path, frame)).await.is_err() {
            return;
        }
    }
    let _ = inbound.send(TcpInput::Closed(path)).await;
}

async fn write_loop(mut write: OwnedWriteHalf, mut rx: mpsc::Receiver<BytesMut>) {
    let mut packets = Vec::with_capacity(WRITE_BATCH);
    let mut buf = Vec::with_capacity(16 * 1024);
    while rx.recv_many(&mut packets, WRITE_BATCH).await > 0 {
        buf.clear();
        for p in packets.drain(..) {
            // Packets come from the plane: SRTP, DTLS records and STUN, all far below 64 KiB.
            let Ok(len) = u16::try_from(p.len()) else {
                continue;
            };
            buf.extend_from_slice(&len.to_be_bytes());
            buf.extend_from_slice(&p);
        }
        if write.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = write.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_are_read_with_their_length_and_bad_lengths_are_refused() {
        let mut data: &[u8] = &[0, 3, 1, 2, 3, 0, 1, 9];
        assert_eq!(read_frame(&mut data).await.unwrap(), Some(vec![1, 2, 3]));
        assert_eq!(read_frame(&mut data).await.unwrap(), Some(vec![9]));
        assert_eq!(read_frame(&mut data).await.unwrap(), None);
        let mut zero: &[u8] = &[0, 0];
        assert!(read_frame(&mut zero).await.is_err());
        let too_big = ((MAX_FRAME + 1) as u16).to_be_bytes();
        let mut big: &[u8] = &too_big;
        assert!(read_frame(&mut big).await.is_err());
        // Cut inside a frame: an error, not a clean end.
        let mut cut: &[u8] = &[0, 4, 1, 2];
        assert!(read_frame(&mut cut).await.is_err());
    }
}
