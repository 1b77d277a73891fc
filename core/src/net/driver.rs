//! The tokio driver of the media plane: it owns the UDP sockets of the media port, the clock and
//! the channels, and does nothing but move bytes and time into and out of the sans-IO
//! [`MediaPlane`]. Every decision about media is the plane's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::peer_connection::transport::RTCIceCandidateInit;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::Protocol;
use crate::event::{Event, LeaveReason, ViewerId};
use crate::media::packetizer::MediaFrame;
use crate::metrics::Metrics;
use crate::net::frames::FrameReceiver;
use crate::net::tcp::{Accepted, TcpConnection, TcpInput};
use crate::net::udp::{BoundPort, MediaPort};
use crate::plane::{
    loop_of_ufrag, MediaPlane, NewViewer, Notice, Output, Path, Proto, StreamInfo, Transmit,
    ViewerOffer,
};
use crate::session::peer::TrackSpec;
use crate::stream::StreamShared;
use crate::Result;

/// Control commands waiting for the loop (signalling tasks wait for room).
pub(crate) const CONTROL_QUEUE: usize = 256;
/// The host's commands waiting for the loop (stream created or removed, census, stop), apart
/// from signalling's so that no number of connecting viewers can refuse or delay them.
pub(crate) const HOST_QUEUE: usize = 1024;
/// Notices to one viewer's signalling task; there are at most two in a viewer's life.
pub(crate) const NOTICE_QUEUE: usize = 4;
/// Datagrams handled in a row before the loop looks at its other inputs again.
const RECV_BATCH: usize = 64;
/// Datagrams handed to the kernel per `sendmmsg` call.
const SEND_BATCH: usize = 64;
/// Datagrams waiting to be routed from the first loop to another (viewers send few: STUN
/// checks, RTCP). Past this they are dropped, as a full socket buffer would.
pub(crate) const INBOUND_QUEUE: usize = 1024;
/// How often the first loop forgets addresses it has not routed a check from for long.
const ROUTE_SWEEP: Duration = Duration::from_secs(5);

/// A datagram received by the first loop for a viewer of another.
pub(crate) struct Inbound {
    local: SocketAddr,
    from: SocketAddr,
    data: Vec<u8>,
}

/// Kept by the first media loop when there are several: the kernel delivers every datagram of
/// the port to it, and it hands each to the loop of its viewer — by the loop tag of the ufrag of
/// a STUN check, and for the rest by the source address a check came from.
pub(crate) struct Router {
    /// Loop `i`'s queue (`None` for the first loop itself).
    loops: Vec<Option<mpsc::Sender<Inbound>>>,
    by_addr: HashMap<SocketAddr, (usize, Instant)>,
    /// An address not seen in a check for this long is forgotten (its viewer is gone: consent
    /// checks come every few seconds).
    expiry: Duration,
    next_sweep: Instant,
}

impl Router {
    pub(crate) fn new(loops: Vec<Option<mpsc::Sender<Inbound>>>, expiry: Duration) -> Self {
        Self {
            loops,
            by_addr: HashMap::new(),
            expiry,
            next_sweep: Instant::now() + ROUTE_SWEEP,
        }
    }

    /// The loop a datagram from `from` belongs to (the first loop when unknown: it drops it).
    fn route(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> usize {
        if now >= self.next_sweep {
            let expiry = self.expiry;
            self.by_addr
                .retain(|_, (_, seen)| now.duration_since(*seen) < expiry);
            self.next_sweep = now + ROUTE_SWEEP;
        }
        if let Some(i) = crate::net::stun::local_ufrag(data).and_then(loop_of_ufrag) {
            if i < self.loops.len() {
                self.by_addr.insert(from, (i, now));
                return i;
            }
        }
        self.by_addr.get(&from).map_or(0, |(i, _)| *i)
    }
}

/// Viewers a media loop takes before the next one gets any. With few viewers one loop wakes per
/// frame rather than every loop (a loop without viewers of a stream is hardly woken by it, see
/// `net::frames`); with many, the loops share them evenly.
pub(crate) const LOOP_FILL: usize = 32;

/// How many viewer sessions a media loop holds, for placing new ones.
#[derive(Debug, Default)]
pub(crate) struct LoopLoad {
    /// Sessions in the loop's plane (published by the loop after each turn).
    sessions: std::sync::atomic::AtomicUsize,
    /// New viewers sent to the loop that it has not taken yet.
    pending: std::sync::atomic::AtomicUsize,
}

impl LoopLoad {
    fn load(&self) -> usize {
        use std::sync::atomic::Ordering::Relaxed;
        self.sessions.load(Relaxed) + self.pending.load(Relaxed)
    }

    /// Picks the loop for a new viewer and counts it there: the first loop under
    /// [`LOOP_FILL`], else the least loaded.
    pub(crate) fn place(loops: &[Arc<LoopLoad>]) -> usize {
        let i = loops
            .iter()
            .position(|l| l.load() < LOOP_FILL)
            .or_else(|| {
                (0..loops.len()).min_by_key(|&i| loops.get(i).map_or(usize::MAX, |l| l.load()))
            })
            .unwrap_or(0);
        if let Some(l) = loops.get(i) {
            l.pending.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        i
    }

    /// The guard of a viewer just placed here (see [`Placed`]).
    pub(crate) fn placed(&self) -> Placed<'_> {
        Placed(Some(self))
    }

    /// A placed viewer reached the loop (or never will): it is no longer pending.
    fn take_pending(&self) {
        let _ = self.pending.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |n| n.checked_sub(1),
        );
    }
}

/// A new viewer counted on a loop by [`LoopLoad::place`] and on its way there: dropped before
/// [`Placed::delivered`], the count is taken back.
pub(crate) struct Placed<'a>(Option<&'a LoopLoad>);

impl Placed<'_> {
    /// The command reached the loop, which takes the count over.
    pub(crate) fn delivered(mut self) {
        self.0 = None;
    }
}

impl Drop for Placed<'_> {
    fn drop(&mut self) {
        if let Some(l) = self.0 {
            l.take_pending();
        }
    }
}

/// A frame pushed by a host.
#[derive(Debug)]
pub(crate) struct MediaInput {
    pub stream: u64,
    pub frame: Arc<MediaFrame>,
    /// Frames were dropped just before this one.
    pub after_gap: bool,
    /// It comes from the built-in encoder (which makes keyframes on demand).
    pub raw_source: bool,
}

/// Requests from signalling tasks and the server.
pub(crate) enum Control {
    OpenStream(Arc<StreamShared>),
    CloseStream(u64),
    NewViewer {
        stream: u64,
        protocol: Protocol,
        remote: SocketAddr,
        started: Instant,
        /// The viewer's offer (WHEP); `None` when the server offers (WebSocket).
        offer_sdp: Option<String>,
        /// The rendition it asked to start on; `None`: automatic.
        rendition: Option<usize>,
        notices: mpsc::Sender<Notice>,
        reply: oneshot::Sender<Result<ViewerOffer>>,
    },
    Answer {
        viewer: ViewerId,
        sdp: String,
        reply: oneshot::Sender<Result<()>>,
    },
    RemoteCandidate {
        viewer: ViewerId,
        candidate: RTCIceCandidateInit,
    },
    CloseViewer {
        viewer: ViewerId,
        reason: LeaveReason,
    },
    /// A viewer asks for a rendition (`Some`), or for automatic choice (`None`).
    RequestRendition {
        viewer: ViewerId,
        rendition: Option<usize>,
    },
    /// An ICE-TCP connection whose first check names a viewer of this loop.
    TcpConnection(Accepted),
    /// Reply with the number of viewer sessions and streams held (for leak checks).
    Census(std::sync::mpsc::Sender<(usize, usize)>),
    /// Close every viewer and end the loop.
    Shutdown,
}

/// What a media loop reads besides its commands and frames.
pub(crate) enum Input {
    /// The first loop: it reads the port and routes to the others (`None`: it is the only one).
    Port(Option<Router>),
    /// Another loop: the datagrams the first routes to it.
    Routed(mpsc::Receiver<Inbound>),
    /// Another loop whose first loop is gone (the server is stopping): nothing more comes.
    Done,
}

/// One media loop: the plane and the I/O around it.
pub(crate) struct Driver {
    index: usize,
    plane: MediaPlane,
    port: MediaPort,
    input: Input,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<Event>,
    control_rx: mpsc::Receiver<Control>,
    host_rx: mpsc::Receiver<Control>,
    frames: FrameReceiver,
    streams: HashMap<u64, Arc<StreamShared>>,
    notices: HashMap<ViewerId, mpsc::Sender<Notice>>,
    batch: Vec<Transmit>,
    /// ICE-TCP connections of this loop's viewers, and the queue their readers feed.
    tcp: HashMap<Path, TcpConnection>,
    tcp_tx: mpsc::Sender<TcpInput>,
    tcp_rx: mpsc::Receiver<TcpInput>,
    /// A TCP connection silent for this long is closed.
    tcp_idle: Duration,
    /// The server's runtime, which runs the ICE-TCP connections' reader and writer tasks (their
    /// sockets were accepted there).
    signal: tokio::runtime::Handle,
    load: Arc<LoopLoad>,
}

/// A media loop's thread: `run` ends when the loop ended.
pub(crate) struct LoopThread {
    pub thread: std::thread::JoinHandle<()>,
    pub done: std::sync::mpsc::Receiver<()>,
}

/// Starts media loop `index` on a thread of its own, with a current-thread runtime: a loop's
/// wake-ups (a frame, a datagram, a timer) run it on that thread, without waking other threads
/// to steal work as tasks on a shared multi-thread runtime do (that cost ~2 thread wake-ups per
/// loop wake-up, most of a lightly loaded loop's CPU). `driver` builds the loop once its sockets
/// are registered there. Returns once the loop runs, or why it could not start.
pub(crate) fn start_loop(
    index: usize,
    port: BoundPort,
    driver: impl FnOnce(MediaPort) -> Driver + Send + 'static,
) -> Result<LoopThread> {
    let (ready_tx, ready) = std::sync::mpsc::channel::<Result<()>>();
    let (done_tx, done) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("rtcast-media-{index}"))
        .spawn(move || {
            let started = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|rt| {
                    let port = {
                        let _enter = rt.enter();
                        port.attach()?
                    };
                    Ok((rt, port))
                });
            let (rt, port) = match started {
                Ok(v) => v,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            rt.block_on(driver(port).run());
            let _ = done_tx.send(());
        })?;
    match ready.recv() {
        Ok(Ok(())) => Ok(LoopThread { thread, done }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(crate::Error::Io(std::io::Error::other(format!(
            "media loop {index} ended before it started"
        )))),
    }
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        index: usize,
        plane: MediaPlane,
        port: MediaPort,
        input: Input,
        metrics: Arc<Metrics>,
        events: broadcast::Sender<Event>,
        control_rx: mpsc::Receiver<Control>,
        host_rx: mpsc::Receiver<Control>,
        frames: FrameReceiver,
        tcp_idle: Duration,
        signal: tokio::runtime::Handle,
        load: Arc<LoopLoad>,
    ) -> Self {
        let (tcp_tx, tcp_rx) = mpsc::channel(crate::net::tcp::INBOUND_QUEUE);
        Self {
            index,
            plane,
            port,
            input,
            metrics,
            events,
            control_rx,
            host_rx,
            frames,
            streams: HashMap::new(),
            notices: HashMap::new(),
            batch: Vec::with_capacity(SEND_BATCH),
            tcp: HashMap::new(),
            tcp_tx,
            tcp_rx,
            tcp_idle,
            signal,
            load,
        }
    }

    /// Runs until every control sender is gone or `Shutdown` (the server stopped), then closes
    /// every viewer.
    pub(crate) async fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        'run: loop {
            let deadline = self.plane.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            // Unbiased: steady inbound datagrams cannot starve frames, commands or timers.
            tokio::select! {
                cmd = self.host_rx.recv() => match cmd {
                    Some(Control::Shutdown) | None => break 'run,
                    Some(cmd) => self.on_control(cmd),
                },
                Some(cmd) = self.control_rx.recv() => {
                    if self.host_first() {
                        break 'run;
                    }
                    self.on_control(cmd);
                },
                res = std::future::poll_fn(|cx| self.port.poll_recv(cx, &mut buf)),
                    if matches!(self.input, Input::Port(_)) =>
                {
                    match res {
                        Ok((local, n, from)) => {
                            let now = Instant::now();
                            // `n` is what the socket wrote into `buf`: never more than its length.
                            if let Some(data) = buf.get(..n) {
                                self.on_datagram(now, local, from, data);
                            }
                            for _ in 1..RECV_BATCH {
                                let Some((local, n, from)) = self.port.try_recv(&mut buf) else { break };
                                if let Some(data) = buf.get(..n) {
                                    self.on_datagram(now, local, from, data);
                                }
                            }
                        }
                        Err(e) => tracing::warn!("media socket receive failed: {e}"),
                    }
                },
                routed = routed(&mut self.input) => match routed {
                    Some(d) => self.plane.handle_datagram(Instant::now(), udp(d.local, d.from), &d.data),
                    None => self.input = Input::Done,
                },
                Some(input) = self.tcp_rx.recv() => match input {
                    TcpInput::Frame(path, data) => {
                        self.plane.handle_datagram(Instant::now(), path, &data);
                    }
                    TcpInput::Closed(path) => {
                        if self.tcp.remove(&path).is_some() {
                            self.plane.handle_path_closed(Instant::now(), path);
                        }
                    }
                },
                input = self.frames.recv() => {
                    if self.host_first() {
                        break 'run;
                    }
                    self.on_frame(Instant::now(), input);
                },
                () = sleep => self.plane.handle_timeout(Instant::now()),
            }
            self.drain();
        }
        self.plane.shutdown(Instant::now());
        self.drain();
    }

    /// Handles the host's commands already queued, before a frame or a signalling command that
    /// came after them through another queue: a stream is open before its first frame or viewer
    /// (the host pushes, and viewers find it, only once it was created). Returns whether the
    /// server is stopping.
    fn host_first(&mut self) -> bool {
        loop {
            match self.host_rx.try_recv() {
                Ok(Control::Shutdown) | Err(mpsc::error::TryRecvError::Disconnected) => {
                    return true
                }
                Ok(cmd) => self.on_control(cmd),
                Err(mpsc::error::TryRecvError::Empty) => return false,
            }
        }
    }

    fn on_frame(&mut self, now: Instant, input: MediaInput) {
        self.plane.handle_frame(
            now,
            input.stream,
            input.frame,
            input.after_gap,
            input.raw_source,
        );
    }

    /// A datagram from the port: this loop's, or routed to the loop of its viewer.
    fn on_datagram(&mut self, now: Instant, local: SocketAddr, from: SocketAddr, data: &[u8]) {
        if let Input::Port(Some(router)) = &mut self.input {
            let i = router.route(now, from, data);
            if i != self.index {
                if let Some(Some(tx)) = router.loops.get(i) {
                    let _ = tx.try_send(Inbound {
                        local,
                        from,
                        data: data.to_vec(),
                    });
                }
                return;
            }
        }
        self.plane.handle_datagram(now, udp(local, from), data);
    }

    fn on_control(&mut self, cmd: Control) {
        let now = Instant::now();
        match cmd {
            Control::OpenStream(shared) => {
                self.plane.open_stream(StreamInfo {
                    id: shared.id,
                    counters: shared.counters.clone(),
                    ladder: shared.ladder(),
                    spec: TrackSpec {
                        stream: shared.name.clone(),
                        video_codec: shared.video_codec,
                        video_ssrc: shared.video_ssrc,
                        audio_ssrc: shared.audio_ssrc,
                        adaptive: shared.is_adaptive(),
                    },
                });
                self.streams.insert(shared.id, shared);
            }
            Control::CloseStream(id) => {
                self.plane.close_stream(now, id);
                self.streams.remove(&id);
            }
            Control::NewViewer {
                stream,
                protocol,
                remote,
                started,
                offer_sdp,
                rendition,
                notices,
                reply,
            } => {
                // Frames queued without waking this loop (it had no viewer of their stream):
                // the new viewer starts from the newest GOP.
                while let Some(input) = self.frames.try_recv() {
                    self.on_frame(now, input);
                }
                let res = self.plane.new_viewer(
                    now,
                    NewViewer {
                        stream,
                        protocol,
                        remote,
                        started,
                        offer_sdp,
                        rendition,
                    },
                );
                if let Ok(offer) = &res {
                    self.notices.insert(offer.id, notices);
                }
                self.load.take_pending();
                self.publish_load();
                let _ = reply.send(res);
            }
            Control::Answer { viewer, sdp, reply } => {
                let _ = reply.send(self.plane.apply_answer(now, viewer, sdp));
            }
            Control::RemoteCandidate { viewer, candidate } => {
                if let Err(e) = self.plane.remote_candidate(viewer) {
                    tracing::debug!(viewer, candidate = %candidate.candidate, "{e}");
                    self.plane
                        .close_viewer(now, viewer, LeaveReason::ConnectionLost);
                }
            }
            Control::CloseViewer { viewer, reason } => self.plane.close_viewer(now, viewer, reason),
            Control::RequestRendition { viewer, rendition } => {
                self.plane.request_rendition(now, viewer, rendition)
            }
            Control::TcpConnection(Accepted {
                stream,
                path,
                first,
            }) => {
                let conn = {
                    let _signal = self.signal.enter();
                    TcpConnection::start(stream, path, self.tcp_tx.clone(), self.tcp_idle)
                };
                // A second connection from the same address and port cannot exist; replacing
                // drops (closes) a stale entry.
                self.tcp.insert(path, conn);
                self.plane.handle_datagram(now, path, &first);
            }
            Control::Census(reply) => {
                let _ = reply.send(self.plane.census());
            }
            Control::Shutdown => {} // handled by run()
        }
    }

    fn publish_load(&self) {
        self.load
            .sessions
            .store(self.plane.census().0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sends what the plane has to send, in batches, and delivers its outputs.
    fn drain(&mut self) {
        let now = Instant::now();
        while let Some(t) = self.plane.poll_transmit(now) {
            if t.proto == Proto::Tcp {
                self.send_tcp(now, t);
                continue;
            }
            self.batch.push(t);
            if self.batch.len() == SEND_BATCH {
                self.send_batch(now);
            }
        }
        self.send_batch(now);
        while let Some(out) = self.plane.poll_output() {
            match out {
                Output::Event(e) => {
                    let _ = self.events.send(e);
                }
                Output::Notice(id, notice) => {
                    let closed = matches!(notice, Notice::Closed(_));
                    let tx = if closed {
                        self.notices.remove(&id)
                    } else {
                        self.notices.get(&id).cloned()
                    };
                    if let Some(tx) = tx {
                        let _ = tx.try_send(notice);
                    }
                    if closed {
                        self.publish_load();
                    }
                }
                Output::KeyframeWanted(stream, rendition) => {
                    if let Some(s) = self.streams.get(&stream) {
                        s.request_keyframe(rendition);
                    }
                }
                Output::BitrateHint { stream, bps } => {
                    if let Some(s) = self.streams.get(&stream) {
                        s.follow_viewers(self.index, bps);
                    }
                }
                Output::Viewers {
                    stream,
                    connected,
                    sessions,
                } => {
                    if let Some(s) = self.streams.get(&stream) {
                        s.set_viewers(self.index, connected, sessions);
                    }
                }
                Output::ClosePath(path) => {
                    self.tcp.remove(&path);
                }
            }
        }
    }

    /// Queues a packet to its viewer's TCP connection; a full queue counts as a failed send.
    fn send_tcp(&mut self, now: Instant, t: Transmit) {
        let path = Path {
            proto: Proto::Tcp,
            local: t.from,
            remote: t.to,
        };
        let len = t.data.len() as u64;
        if self.tcp.get(&path).is_some_and(|c| c.send(t.data)) {
            Metrics::add(&self.metrics.packets_sent, 1);
            Metrics::add(&self.metrics.bytes_sent, len);
        } else {
            self.plane.handle_send_failed(now, t.viewer);
        }
    }

    fn send_batch(&mut self, now: Instant) {
        if self.batch.is_empty() {
            return;
        }
        let mut failed = Vec::new();
        self.port.send_batch(&self.batch, |i| failed.push(i));
        let bytes: u64 = self.batch.iter().map(|t| t.data.len() as u64).sum();
        Metrics::add(
            &self.metrics.packets_sent,
            (self.batch.len() - failed.len()) as u64,
        );
        Metrics::add(&self.metrics.bytes_sent, bytes);
        let mut last = None;
        for i in failed {
            let Some(viewer) = self.batch.get(i).map(|t| t.viewer) else {
                continue;
            };
            if last != Some(viewer) {
                self.plane.handle_send_failed(now, viewer);
                last = Some(viewer);
            }
        }
        self.batch.clear();
    }
}

fn udp(local: SocketAddr, remote: SocketAddr) -> Path {
    Path {
        proto: Proto::Udp,
        local,
        remote,
    }
}

/// The next datagram routed to this loop; never, for the first loop.
async fn routed(input: &mut Input) -> Option<Inbound> {
    match input {
        Input::Routed(rx) => rx.recv().await,
        Input::Port(_) | Input::Done => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plane::loop_tag;

    /// A STUN binding request whose USERNAME is `username` (enough for routing).
    fn check(username: &str) -> Vec<u8> {
        let mut attrs = vec![0x00, 0x06];
        attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attrs.extend_from_slice(username.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attrs);
        m
    }

    #[test]
    fn viewers_fill_the_first_loop_then_spread_evenly() {
        let loops: Vec<Arc<LoopLoad>> = (0..3).map(|_| Arc::default()).collect();
        let mut placed = [0usize; 3];
        for _ in 0..LOOP_FILL {
            placed[LoopLoad::place(&loops)] += 1;
        }
        assert_eq!(placed, [LOOP_FILL, 0, 0], "a few viewers: one loop");
        for _ in 0..2 * LOOP_FILL + 30 {
            placed[LoopLoad::place(&loops)] += 1;
        }
        assert_eq!(placed, [LOOP_FILL + 10; 3], "many: even");
        // The first loop's viewers left: it takes the next ones.
        loops[0]
            .pending
            .store(0, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(LoopLoad::place(&loops), 0);
    }

    #[test]
    fn a_viewer_that_never_reached_its_loop_is_not_counted_there() {
        let load = LoopLoad::default();
        let loops = [Arc::new(load)];
        assert_eq!(LoopLoad::place(&loops), 0);
        assert_eq!(loops[0].load(), 1);
        // The signalling task was dropped while it waited for room in the loop's queue.
        drop(loops[0].placed());
        assert_eq!(loops[0].load(), 0);
        LoopLoad::place(&loops);
        loops[0].placed().delivered();
        assert_eq!(
            loops[0].load(),
            1,
            "delivered: the loop takes the count over"
        );
    }

    #[test]
    fn the_router_follows_ufrag_tags_then_the_addresses_of_checks_and_forgets_them() {
        let senders = (0..3)
            .map(|i| (i > 0).then(|| mpsc::channel(1).0))
            .collect();
        let mut router = Router::new(senders, Duration::from_secs(20));
        let t0 = Instant::now();
        let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:4001".parse().unwrap();
        let rtcp = [0x80u8, 200, 0, 1, 0, 0, 0, 0];
        // Unknown address, no check yet: the first loop (which drops what is not its own).
        assert_eq!(router.route(t0, a, &rtcp), 0);
        let ufrag = format!("{}abcdef:remote", loop_tag(2));
        assert_eq!(router.route(t0, a, &check(&ufrag)), 2);
        assert_eq!(
            router.route(t0, a, &rtcp),
            2,
            "DTLS/RTCP follow the check's address"
        );
        assert_eq!(router.route(t0, b, &rtcp), 0);
        // A tag beyond the loops that exist is not trusted.
        let ufrag = format!("{}abcdef:remote", loop_tag(5));
        assert_eq!(router.route(t0, b, &check(&ufrag)), 0);
        // An address without checks for longer than the expiry is forgotten.
        let later = t0 + Duration::from_secs(26);
        assert_eq!(router.route(later, a, &rtcp), 0);
    }
}
