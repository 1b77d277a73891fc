//! The media port: one UDP port for every viewer. Bound to a single address it is one socket;
//! bound to all interfaces it is one socket per interface address, all on the same port, because
//! ICE must know which local address a datagram came in on and a wildcard socket does not say.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};

use tokio::io::ReadBuf;
use tokio::net::UdpSocket;

use crate::plane::Transmit;
use crate::{Error, Result};

/// Socket buffer size asked of the kernel: a keyframe to 200 viewers is ~20k datagrams in a burst.
const SOCKET_BUFFER: usize = 8 << 20;

/// The sockets of the media port and the addresses announced for them.
pub(crate) struct MediaPort {
    sockets: Vec<(UdpSocket, SocketAddr)>,
}

impl MediaPort {
    /// Binds the media port. Must run inside the runtime.
    pub fn bind(bind: IpAddr, port: u16) -> Result<Self> {
        let ips: Vec<IpAddr> = if bind.is_unspecified() {
            let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
                .map_err(Error::Io)?
                .into_iter()
                .map(|i| i.ip())
                .filter(|ip| ip.is_ipv4() == bind.is_ipv4() && !is_link_local(ip))
                .collect();
            ips.sort();
            ips.dedup();
            // Loopback first: a browser on this machine is the most common first viewer.
            ips.sort_by_key(|ip| !ip.is_loopback());
            ips
        } else {
            vec![bind]
        };
        if ips.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "no network interface has an address of the family of {bind}"
            )));
        }
        let mut sockets = Vec::with_capacity(ips.len());
        let mut port = port;
        for ip in ips {
            let addr = SocketAddr::new(ip, port);
            let std_sock = std::net::UdpSocket::bind(addr).map_err(|source| Error::Bind {
                what: "media UDP",
                addr,
                source,
            })?;
            std_sock.set_nonblocking(true)?;
            let sref = socket2::SockRef::from(&std_sock);
            let _ = sref.set_send_buffer_size(SOCKET_BUFFER);
            let _ = sref.set_recv_buffer_size(SOCKET_BUFFER);
            let local = std_sock.local_addr()?;
            port = local.port(); // every interface on the same port
            sockets.push((UdpSocket::from_std(std_sock)?, local));
        }
        Ok(Self { sockets })
    }

    /// The addresses announced as host candidates.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(_, a)| *a).collect()
    }

    /// Receives one datagram from whichever socket has one: (socket index, length, sender).
    pub fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, usize, SocketAddr)>> {
        for (i, (sock, _)) in self.sockets.iter().enumerate() {
            // Re-poll the same socket after a transient error so its waker stays registered.
            loop {
                let mut rb = ReadBuf::new(buf);
                match sock.poll_recv_from(cx, &mut rb) {
                    Poll::Ready(Ok(from)) => return Poll::Ready(Ok((i, rb.filled().len(), from))),
                    Poll::Ready(Err(e)) if is_transient(&e) => continue,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
        }
        Poll::Pending
    }

    /// A datagram if one is already waiting (draining after a wake-up without re-polling).
    pub fn try_recv(&self, buf: &mut [u8]) -> Option<(usize, usize, SocketAddr)> {
        for (i, (sock, _)) in self.sockets.iter().enumerate() {
            if let Ok((n, from)) = sock.try_recv_from(buf) {
                return Some((i, n, from));
            }
        }
        None
    }

    /// The announced local address of socket `i`.
    pub fn local_addr(&self, i: usize) -> SocketAddr {
        self.sockets[i].1
    }

    /// Index of the socket to send from: the one bound to `from`, else one of the right scope.
    fn socket_for(&self, from: SocketAddr, to: SocketAddr) -> usize {
        self.sockets
            .iter()
            .position(|(_, a)| *a == from)
            .or_else(|| {
                self.sockets
                    .iter()
                    .position(|(_, a)| a.ip().is_loopback() == to.ip().is_loopback())
            })
            .unwrap_or(0)
    }

    /// Sends a batch of datagrams without waiting, as few system calls as the kernel allows
    /// (`sendmmsg` on Linux: one call for up to 64 datagrams, to any mix of viewers). Calls
    /// `dropped(i)` for each datagram `batch[i]` that could not be sent.
    pub fn send_batch(&self, batch: &[Transmit], mut dropped: impl FnMut(usize)) {
        let mut start = 0;
        while start < batch.len() {
            let sock = self.socket_for(batch[start].from, batch[start].to);
            let mut end = start + 1;
            while end < batch.len()
                && end - start < SEND_BATCH
                && self.socket_for(batch[end].from, batch[end].to) == sock
            {
                end += 1;
            }
            self.send_run(sock, &batch[start..end], |i| dropped(start + i));
            start = end;
        }
    }

    #[cfg(target_os = "linux")]
    fn send_run(&self, sock: usize, run: &[Transmit], mut dropped: impl FnMut(usize)) {
        use std::os::fd::AsRawFd;

        let fd = self.sockets[sock].0.as_raw_fd();
        let addrs: Vec<socket2::SockAddr> =
            run.iter().map(|o| socket2::SockAddr::from(o.to)).collect();
        let mut iovecs: Vec<libc::iovec> = run
            .iter()
            .map(|o| libc::iovec {
                iov_base: o.data.as_ptr() as *mut libc::c_void,
                iov_len: o.data.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = addrs
            .iter()
            .zip(iovecs.iter_mut())
            .map(|(addr, iov)| {
                // SAFETY: mmsghdr is a plain C struct for which all-zero is a valid value.
                let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
                m.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
                m.msg_hdr.msg_namelen = addr.len();
                m.msg_hdr.msg_iov = iov as *mut libc::iovec;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        let mut sent = 0;
        while sent < msgs.len() {
            // SAFETY: `msgs[sent..]` are initialized headers whose name and iovec pointers point
            // into `addrs`, `iovecs` and the datagrams of `run`, all alive and unmoved until this
            // function returns; the kernel only reads them.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    msgs.as_mut_ptr().add(sent),
                    (msgs.len() - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                sent += n as usize;
                continue;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => {}
                // Socket buffer full: the rest of this run is dropped, nobody waits.
                io::ErrorKind::WouldBlock => {
                    (sent..msgs.len()).for_each(&mut dropped);
                    return;
                }
                // An error about this one datagram (its destination): skip it, send the rest.
                _ => {
                    dropped(sent);
                    sent += 1;
                }
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn send_run(&self, sock: usize, run: &[Transmit], mut dropped: impl FnMut(usize)) {
        for (i, o) in run.iter().enumerate() {
            if self.sockets[sock].0.try_send_to(&o.data, o.to).is_err() {
                dropped(i);
            }
        }
    }
}

/// Datagrams per `sendmmsg` call.
const SEND_BATCH: usize = 64;

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Errors a UDP socket reports for an earlier send (ICMP unreachable) rather than for itself.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}
