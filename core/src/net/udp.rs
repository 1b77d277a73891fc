//! The media port: one UDP port for every viewer. Bound to a single address it is one socket;
//! bound to all interfaces it is one socket per interface address, all on the same port, because
//! ICE must know which local address a datagram came in on and a wildcard socket does not say.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::plane::Transmit;
use crate::{Error, Result};

/// Socket buffer size asked of the kernel: a keyframe to 200 viewers is ~20k datagrams in a burst.
const SOCKET_BUFFER: usize = 8 << 20;

/// A media loop's sockets, bound but not yet registered with an async runtime: each loop runs on
/// its own thread and runtime, and registers them there ([`BoundPort::attach`]).
pub(crate) struct BoundPort {
    sockets: Vec<(std::net::UdpSocket, SocketAddr)>,
    gso: bool,
}

impl BoundPort {
    /// The addresses announced as host candidates.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(_, a)| *a).collect()
    }

    /// Registers the sockets with the runtime this is called in (the loop's), for reading only.
    ///
    /// Not as `tokio::net::UdpSocket`, which registers for writability too: its edge-triggered
    /// registration then wakes the loop each time the kernel frees send-buffer space, once after
    /// nearly every batch sent (measured: a second wake-up per frame, ~30 a second at 10
    /// viewers, and a wake-up per batch on a loop that only sends). Sends never wait for
    /// writability here: a full buffer drops the datagrams ([`MediaPort::send_batch`]).
    pub fn attach(self) -> io::Result<MediaPort> {
        let sockets = self
            .sockets
            .into_iter()
            .map(|(s, a)| {
                // SAFETY: the std socket owns its descriptor and moves into the AsyncFd, which
                // keeps it (open, the same description) until the AsyncFd is dropped.
                let fd = unsafe { AsyncFd::register_with_interest(s, Interest::READABLE) }
                    .map_err(io::Error::from)?;
                Ok((fd, a))
            })
            .collect::<io::Result<_>>()?;
        Ok(MediaPort {
            sockets,
            gso: std::sync::atomic::AtomicBool::new(self.gso),
        })
    }
}

/// The sockets of the media port and the addresses announced for them.
pub(crate) struct MediaPort {
    sockets: Vec<(AsyncFd<std::net::UdpSocket>, SocketAddr)>,
    /// Whether UDP GSO (`UDP_SEGMENT`) is used: the kernel has it, and no send refused it.
    gso: std::sync::atomic::AtomicBool,
}

impl MediaPort {
    /// Binds the media port for `loops` media loops.
    ///
    /// With one loop it is one socket per interface address. With more, each loop gets its own
    /// sockets on the same addresses and port (`SO_REUSEPORT`), to send from without sharing;
    /// a classic BPF program makes the kernel deliver every datagram to the first loop's socket,
    /// which routes it to the loop of its viewer (`net::driver`). The returned ports are in loop
    /// order; only the first one is read.
    pub fn bind_loops(bind: IpAddr, port: u16, loops: usize) -> Result<Vec<BoundPort>> {
        let ips = interface_ips(bind)?;
        let mut per_loop: Vec<Vec<(std::net::UdpSocket, SocketAddr)>> =
            (0..loops).map(|_| Vec::with_capacity(ips.len())).collect();
        let mut port = port;
        for ip in ips {
            let mut first = None;
            for sockets in per_loop.iter_mut() {
                let addr = SocketAddr::new(ip, port);
                let sock = socket2::Socket::new(
                    socket2::Domain::for_address(addr),
                    socket2::Type::DGRAM,
                    Some(socket2::Protocol::UDP),
                )?;
                if loops > 1 {
                    sock.set_reuse_port(true)?;
                }
                sock.bind(&addr.into()).map_err(|source| Error::Bind {
                    what: "media UDP",
                    addr,
                    source,
                })?;
                sock.set_nonblocking(true)?;
                let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
                let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
                let socket: std::net::UdpSocket = sock.into();
                let local = socket.local_addr()?;
                port = local.port(); // every interface and loop on the same port
                if first.is_none() {
                    use std::os::fd::AsRawFd;
                    first = Some(socket.as_raw_fd());
                }
                sockets.push((socket, local));
            }
            if loops > 1 {
                if let Some(fd) = first {
                    steer_to_first_socket(fd)?;
                }
            }
        }
        let gso = per_loop.iter().flatten().all(|(s, _)| supports_gso(s));
        tracing::debug!(gso, loops, "media port bound");
        Ok(per_loop
            .into_iter()
            .map(|sockets| BoundPort { sockets, gso })
            .collect())
    }

    /// Receives one datagram from whichever socket has one: (announced local address of that
    /// socket, length, sender).
    pub fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(SocketAddr, usize, SocketAddr)>> {
        for (sock, local) in &self.sockets {
            loop {
                let mut ready = match sock.poll_read_ready(cx) {
                    Poll::Ready(Ok(ready)) => ready,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                };
                match ready.try_io(|s| s.get_ref().recv_from(buf)) {
                    Ok(Ok((n, from))) => return Poll::Ready(Ok((*local, n, from))),
                    // An earlier send's ICMP error, not this socket's: read on.
                    Ok(Err(e)) if is_transient(&e) => continue,
                    Ok(Err(e)) => return Poll::Ready(Err(e)),
                    // Nothing left: readiness cleared, poll again so the waker is registered.
                    Err(_would_block) => continue,
                }
            }
        }
        Poll::Pending
    }

    /// A datagram if one is already waiting (draining after a wake-up without re-polling).
    pub fn try_recv(&self, buf: &mut [u8]) -> Option<(SocketAddr, usize, SocketAddr)> {
        for (sock, local) in &self.sockets {
            if let Ok((n, from)) = sock.get_ref().recv_from(buf) {
                return Some((*local, n, from));
            }
        }
        None
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
        let mut rest = batch;
        while let Some(first) = rest.first() {
            let sock = self.socket_for(first.from, first.to);
            // The run: `first` and the datagrams after it that leave from the same socket.
            let len = 1 + rest
                .iter()
                .take(SEND_BATCH)
                .skip(1)
                .take_while(|t| self.socket_for(t.from, t.to) == sock)
                .count();
            let (run, tail) = rest.split_at(len.min(rest.len()));
            self.send_run(sock, run, |i| dropped(start + i));
            start += run.len();
            rest = tail;
        }
    }

    /// Sends `run` (all from socket `sock`) with `sendmmsg`. Consecutive datagrams to the same
    /// destination of the same size (the packets of one frame to one viewer; the last may be
    /// shorter) go as one message with UDP GSO, which the kernel splits into datagrams after
    /// walking its UDP/IP send path once for them all.
    #[cfg(target_os = "linux")]
    fn send_run(&self, sock: usize, run: &[Transmit], mut dropped: impl FnMut(usize)) {
        use std::os::fd::AsRawFd;

        let Some((socket, _)) = self.sockets.get(sock) else {
            (0..run.len()).for_each(&mut dropped);
            return;
        };
        let fd = socket.as_raw_fd();
        let gso = self.gso.load(std::sync::atomic::Ordering::Relaxed);
        // Messages: the datagrams run[start..end] cut into segments of `seg` bytes.
        let mut groups: Vec<(usize, usize, usize)> = Vec::with_capacity(run.len());
        let mut addrs: Vec<socket2::SockAddr> = Vec::with_capacity(run.len());
        let mut i = 0;
        while let Some(first) = run.get(i) {
            let seg = first.data.len();
            let mut end = i + 1;
            let mut total = seg;
            // Every segment but the last is `seg` bytes: only the last may be shorter.
            let mut last = seg;
            while gso && end - i < MAX_GSO_SEGMENTS {
                let Some(next) = run.get(end) else {
                    break;
                };
                if next.to != first.to
                    || next.from != first.from
                    || last != seg
                    || next.data.len() > seg
                    || total + next.data.len() > MAX_GSO_BYTES
                {
                    break;
                }
                total += next.data.len();
                last = next.data.len();
                end += 1;
            }
            groups.push((i, end, seg));
            addrs.push(socket2::SockAddr::from(first.to));
            i = end;
        }
        let mut iovecs: Vec<libc::iovec> = run
            .iter()
            .map(|o| libc::iovec {
                iov_base: o.data.as_ptr() as *mut libc::c_void,
                iov_len: o.data.len(),
            })
            .collect();
        // One control buffer per message (aligned for cmsghdr), holding its UDP_SEGMENT.
        let mut controls: Vec<[u64; 4]> = vec![[0; 4]; groups.len()];
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) } as usize;
        debug_assert!(space <= std::mem::size_of::<[u64; 4]>());
        let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(groups.len());
        for ((&(start, end, seg), addr), control) in groups.iter().zip(&addrs).zip(&mut controls) {
            // Groups cover run[0..run.len()], so `start` is inside `iovecs` (one per datagram).
            let Some(iov) = iovecs.get_mut(start..) else {
                break;
            };
            // SAFETY: mmsghdr is a plain C struct for which all-zero is a valid value.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = addr.as_ptr() as *mut libc::c_void;
            m.msg_hdr.msg_namelen = addr.len();
            m.msg_hdr.msg_iov = iov.as_mut_ptr();
            m.msg_hdr.msg_iovlen = end - start;
            if end - start > 1 {
                m.msg_hdr.msg_control = control.as_mut_ptr() as *mut libc::c_void;
                m.msg_hdr.msg_controllen = space;
                // SAFETY: msg_control points to `space` zeroed, aligned bytes that this message
                // owns; CMSG_FIRSTHDR returns a header inside them and CMSG_DATA its data, which
                // has room for the u16 (CMSG_SPACE of a u16).
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(&m.msg_hdr);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as usize;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, seg as u16);
                }
            }
            msgs.push(m);
        }
        let mut sent = 0;
        while sent < msgs.len() {
            // SAFETY: `msgs[sent..]` are initialized headers whose name, iovec and control
            // pointers point into `addrs`, `iovecs`, `controls` and the datagrams of `run`, all
            // alive and unmoved until this function returns; the kernel only reads them.
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
            let Some(&(start, end, _)) = groups.get(sent) else {
                return;
            };
            match err.kind() {
                io::ErrorKind::Interrupted => {}
                // Socket buffer full: the rest of this run is dropped, nobody waits.
                io::ErrorKind::WouldBlock => {
                    (start..run.len()).for_each(&mut dropped);
                    return;
                }
                // A device that cannot segment (EIO): no GSO from now on; this message is lost.
                _ if end - start > 1 && err.raw_os_error() == Some(libc::EIO) => {
                    tracing::warn!("UDP GSO refused by the network device ({err}); sending datagrams one by one");
                    self.gso.store(false, std::sync::atomic::Ordering::Relaxed);
                    (start..end).for_each(&mut dropped);
                    sent += 1;
                }
                // An error about this one message (its destination): skip it, send the rest.
                _ => {
                    (start..end).for_each(&mut dropped);
                    sent += 1;
                }
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn send_run(&self, sock: usize, run: &[Transmit], mut dropped: impl FnMut(usize)) {
        let Some((socket, _)) = self.sockets.get(sock) else {
            (0..run.len()).for_each(dropped);
            return;
        };
        for (i, o) in run.iter().enumerate() {
            if socket.get_ref().send_to(&o.data, o.to).is_err() {
                dropped(i);
            }
        }
    }
}

/// Datagrams per `sendmmsg` call.
const SEND_BATCH: usize = 64;
/// Most datagrams in one GSO message (the kernel takes up to 64).
const MAX_GSO_SEGMENTS: usize = 32;
/// Most bytes in one GSO message (a UDP datagram before segmentation is at most 64 KiB).
const MAX_GSO_BYTES: usize = 60_000;
/// `UDP_SEGMENT` (linux/udp.h), not in the libc crate for glibc targets.
#[cfg(target_os = "linux")]
const UDP_SEGMENT: libc::c_int = 103;

/// Whether the kernel does UDP GSO on this socket (Linux 4.18+).
#[cfg(target_os = "linux")]
fn supports_gso(socket: &std::net::UdpSocket) -> bool {
    use std::os::fd::AsRawFd;
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`, which is that big.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            UDP_SEGMENT,
            &mut value as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    r == 0
}

#[cfg(not(target_os = "linux"))]
fn supports_gso(_: &std::net::UdpSocket) -> bool {
    false
}

/// The addresses to bind: `bind` itself, or every interface's address of its family (loopback
/// first: a browser on this machine is the most common first viewer).
fn interface_ips(bind: IpAddr) -> Result<Vec<IpAddr>> {
    let ips: Vec<IpAddr> = if bind.is_unspecified() {
        let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
            .map_err(Error::Io)?
            .into_iter()
            .map(|i| i.ip())
            .filter(|ip| ip.is_ipv4() == bind.is_ipv4() && !is_link_local(ip))
            .collect();
        ips.sort();
        ips.dedup();
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
    Ok(ips)
}

/// `SO_ATTACH_REUSEPORT_CBPF` (asm-generic/socket.h), not in the libc crate for glibc targets.
#[cfg(target_os = "linux")]
const SO_ATTACH_REUSEPORT_CBPF: libc::c_int = 51;

/// Makes the kernel deliver every datagram of the socket's `SO_REUSEPORT` group to the group's
/// first socket (a one-instruction classic BPF program: `ret #0`, the index in the group).
#[cfg(target_os = "linux")]
fn steer_to_first_socket(fd: std::os::fd::RawFd) -> Result<()> {
    let mut code = [libc::sock_filter {
        code: 0x06, // BPF_RET | BPF_K
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: code.as_mut_ptr(),
    };
    // SAFETY: `prog` points to a valid one-instruction program that outlives the call; the
    // kernel copies it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            &prog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(Error::InvalidConfig(format!(
            "more than one media loop needs SO_ATTACH_REUSEPORT_CBPF (Linux 4.5+): {}; set \
             media_loops to 1",
            io::Error::last_os_error()
        )));
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn steer_to_first_socket(_: i32) -> Result<()> {
    Err(Error::InvalidConfig(
        "more than one media loop needs Linux; set media_loops to 1".into(),
    ))
}

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
