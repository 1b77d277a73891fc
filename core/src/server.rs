//! The server: owns its async runtime, the HTTP/WebSocket listener, the media port and its event
//! loop, and the registry of streams.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::{AuthRequest, ServerConfig};
use crate::event::ViewerId;
use crate::event::{Event, Events, EVENT_QUEUE};
use crate::metrics::{Metrics, ServerStats};
use crate::net::driver::{
    Control, Driver, Inbound, Input, LoopLoad, Router, CONTROL_QUEUE, HOST_QUEUE, INBOUND_QUEUE,
};
use crate::net::frames::{FrameSender, STREAM_FRAME_QUEUE};
use crate::net::udp::MediaPort;
use crate::plane::{loop_of_viewer, MediaPlane, PlaneConfig};
use crate::session::peer::PeerTemplate;
use crate::stream::{Stream, StreamOptions, StreamShared};
use crate::{Error, Result};

/// Longest stream name accepted.
const MAX_STREAM_NAME: usize = 128;

/// What the HTTP handlers and the streams share with the server.
pub(crate) struct ServerShared {
    pub config: ServerConfig,
    streams: Mutex<BTreeMap<String, Arc<StreamShared>>>,
    /// Per media loop: signalling's commands, the host's (open/close stream, census, stop: a
    /// flood of viewers cannot delay or refuse them), and frames.
    control_tx: Vec<mpsc::Sender<Control>>,
    host_tx: Vec<mpsc::Sender<Control>>,
    media_tx: Vec<FrameSender>,
    /// Round-robin choice of the loop a new viewer lives on.
    next_loop: std::sync::atomic::AtomicUsize,
    /// Each media loop's viewer sessions, for placing new viewers.
    loop_load: Vec<Arc<LoopLoad>>,
    pub events: broadcast::Sender<Event>,
    pub metrics: Arc<Metrics>,
    next_stream: AtomicU64,
    stopped: tokio::sync::watch::Sender<bool>,
    /// WHEP sessions by id.
    pub(crate) whep: crate::signal::whep::WhepSessions,
}

impl ServerShared {
    pub(crate) fn find_stream(&self, name: &str) -> Option<Arc<StreamShared>> {
        self.lock_streams().get(name).cloned()
    }

    /// Every stream's counters, for `/metrics`.
    pub(crate) fn stream_snapshots(&self) -> Vec<crate::metrics::StreamSnapshot> {
        self.lock_streams()
            .values()
            .map(|s| crate::metrics::StreamSnapshot {
                stats: s.stats(),
                counters: s.counters.clone(),
            })
            .collect()
    }

    pub(crate) fn stream_names(&self) -> Vec<String> {
        self.lock_streams().keys().cloned().collect()
    }

    /// The error text for an unknown stream, the same on every protocol:
    /// "stream 'x' not found; streams: demo, cam" (or "(none)").
    pub(crate) fn stream_not_found(&self, name: &str) -> String {
        let names = self.stream_names();
        let list = if names.is_empty() {
            "(none)".to_owned()
        } else {
            names.join(", ")
        };
        format!("stream '{name}' not found; streams: {list}")
    }

    /// Asks the host's hook, on the runtime's blocking pool: the hook may wait (on a database, or
    /// on a binding's interpreter lock) without stalling the runtime threads that also carry the
    /// media loop.
    pub(crate) async fn authorize(&self, req: AuthRequest) -> bool {
        let Some(hook) = self.config.authorize.clone() else {
            return true;
        };
        let stream = req.stream.clone();
        let asked = tokio::task::spawn_blocking(move || {
            // A panicking hook refuses rather than taking the connection task down.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&req))).unwrap_or(false)
        });
        match tokio::time::timeout(crate::config::AUTHORIZE_TIMEOUT, asked).await {
            Ok(answer) => answer.unwrap_or(false),
            Err(_) => {
                // The hook's thread is left to finish on its own; the viewer does not wait.
                tracing::warn!(
                    stream,
                    "the authorization hook did not answer within {:?}: viewer refused",
                    crate::config::AUTHORIZE_TIMEOUT
                );
                false
            }
        }
    }

    /// Sends a signalling command to the media loop it concerns: a new viewer to the loop
    /// [`LoopLoad::place`] picks, the rest to the loop of their viewer.
    pub(crate) async fn control(&self, cmd: Control) -> Result<()> {
        let loops = self.control_tx.len();
        let (i, placed) = match &cmd {
            Control::Answer { viewer, .. }
            | Control::RemoteCandidate { viewer, .. }
            | Control::CloseViewer { viewer, .. }
            | Control::RequestRendition { viewer, .. } => (loop_of_viewer(*viewer, loops), None),
            Control::NewViewer { .. } => {
                let i = LoopLoad::place(&self.loop_load);
                (i, self.loop_load.get(i).map(|l| l.placed()))
            }
            _ => (self.next_loop.fetch_add(1, Relaxed) % loops.max(1), None),
        };
        let tx = self.control_tx.get(i).ok_or(Error::ServerStopped)?;
        tx.send(cmd).await.map_err(|_| Error::ServerStopped)?;
        // Sent: the loop counts it from now on (a send that failed, or a signalling task
        // dropped while it waited for room, takes its count back when `placed` drops).
        if let Some(placed) = placed {
            placed.delivered();
        }
        Ok(())
    }

    /// The command queue of the loop `viewer` lives on.
    pub(crate) fn control_sender(&self, viewer: ViewerId) -> mpsc::Sender<Control> {
        // One sender per loop, at least one loop (ServerConfig::loops); `%` keeps it in range.
        #[allow(clippy::indexing_slicing)]
        self.control_tx[loop_of_viewer(viewer, self.control_tx.len())].clone()
    }

    /// Sends a host command to every media loop without waiting; `false` if a queue is full.
    fn to_every_loop(&self, cmd: impl Fn() -> Control) -> bool {
        self.host_tx.iter().all(|tx| tx.try_send(cmd()).is_ok())
    }

    fn lock_streams(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<StreamShared>>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a server holds (see [`Server::census`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Census {
    /// Viewer sessions in the event loop, in any state (connecting or connected).
    pub sessions: usize,
    /// Streams in the event loop.
    pub streams: usize,
    /// Tasks alive in the server's runtime (the event loop, the HTTP listener, one per open
    /// signalling connection).
    pub tasks: usize,
}

/// A running rtcast server. Stopped by [`Server::stop`] or when dropped.
pub struct Server {
    shared: Arc<ServerShared>,
    runtime: Option<tokio::runtime::Runtime>,
    http_addr: SocketAddr,
    udp_addrs: Vec<SocketAddr>,
    tcp_addrs: Vec<SocketAddr>,
    /// The ICE-TCP listener of its own port (none when ICE-TCP shares the HTTP port or is off).
    tcp_task: Option<tokio::task::AbortHandle>,
    http_stop: Option<oneshot::Sender<()>>,
    done: Vec<std::sync::mpsc::Receiver<()>>,
    /// The media loops' threads (each runs its own runtime).
    loop_threads: Vec<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("http_addr", &self.http_addr)
            .field("udp_addrs", &self.udp_addrs)
            .field("tcp_addrs", &self.tcp_addrs)
            .finish()
    }
}

impl Server {
    /// Starts a server: binds the HTTP port and the media UDP port and returns once both listen.
    /// The server runs on its own threads; this call does not need (and does not touch) an async
    /// runtime of the caller's.
    pub fn start(config: ServerConfig) -> Result<Server> {
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.loops().max(2))
            .thread_name("rtcast")
            .enable_all()
            .build()?;
        match Self::launch(config, &runtime) {
            Ok(mut server) => {
                server.runtime = Some(runtime);
                Ok(server)
            }
            Err(e) => {
                // Dropping a runtime waits for its threads, which tokio refuses (panics) inside
                // the caller's own async context; nothing was spawned on it yet.
                runtime.shutdown_background();
                Err(e)
            }
        }
    }

    /// Binds the ports and spawns the event loop and the HTTP server on `runtime`; the returned
    /// server has no runtime yet (`start` gives it).
    fn launch(config: ServerConfig, runtime: &tokio::runtime::Runtime) -> Result<Server> {
        let _enter = runtime.enter();

        let listener = crate::http::bind(&config)?;
        let http_addr = listener.local_addr()?;
        let udp_port = config.udp_port.unwrap_or(config.port);
        let loops = config.loops();
        let ports = MediaPort::bind_loops(config.bind, udp_port, loops)?;
        let udp_addrs = ports
            .first()
            .ok_or_else(|| Error::InvalidConfig("no media loop to run".into()))?
            .local_addrs();
        let ice_tcp = IceTcp::bind(&config, udp_port == 0, &udp_addrs, http_addr)?;
        let tcp_addrs = ice_tcp.addrs(&udp_addrs, http_addr);
        let metrics = Arc::new(Metrics::default());
        let template = PeerTemplate::new(
            &udp_addrs,
            &tcp_addrs,
            &config.public_ips,
            config.candidates,
        )?;
        let dtls_epoch = (std::time::Instant::now(), std::time::SystemTime::now());
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let mut control_tx = Vec::with_capacity(loops);
        let mut host_tx = Vec::with_capacity(loops);
        let mut media_tx = Vec::with_capacity(loops);
        let mut routed_tx = vec![None];
        let mut drivers = Vec::with_capacity(loops);
        let mut loop_load = Vec::with_capacity(loops);
        let mut routed_rx: Vec<Option<mpsc::Receiver<Inbound>>> = vec![None];
        for _ in 1..loops {
            let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
            routed_tx.push(Some(tx));
            routed_rx.push(Some(rx));
        }
        let mut routed_tx = Some(routed_tx);
        let admission = Arc::new(crate::plane::admission::Admission::new(&config.limits));
        for (index, (port, routed)) in ports.into_iter().zip(routed_rx).enumerate() {
            let plane = MediaPlane::new(PlaneConfig {
                index,
                loops,
                admission: admission.clone(),
                limits: config.limits.clone(),
                dtls: template.dtls_config()?,
                template: template.clone(),
                metrics: metrics.clone(),
                epoch: dtls_epoch,
            });
            let input = match routed {
                Some(rx) => Input::Routed(rx),
                None => Input::Port(routed_tx.take().filter(|_| loops > 1).map(|tx| {
                    Router::new(
                        tx,
                        config
                            .limits
                            .connect_timeout
                            .saturating_add(config.limits.consent_timeout),
                    )
                })),
            };
            let (c_tx, c_rx) = mpsc::channel(CONTROL_QUEUE);
            let (h_tx, h_rx) = mpsc::channel(HOST_QUEUE);
            let (m_tx, m_rx) = crate::net::frames::channel(STREAM_FRAME_QUEUE);
            control_tx.push(c_tx);
            host_tx.push(h_tx);
            media_tx.push(m_tx);
            let (metrics, events) = (metrics.clone(), events.clone());
            let tcp_idle = config
                .limits
                .connect_timeout
                .max(config.limits.consent_timeout);
            let signal = runtime.handle().clone();
            let load = Arc::new(LoopLoad::default());
            loop_load.push(load.clone());
            drivers.push((port, move |port| {
                Driver::new(
                    index, plane, port, input, metrics, events, c_rx, h_rx, m_rx, tcp_idle, signal,
                    load,
                )
            }));
        }
        let tcp_acceptor = crate::net::tcp::TcpAcceptor::new(control_tx.clone());
        let shared = Arc::new(ServerShared {
            config: config.clone(),
            streams: Mutex::new(BTreeMap::new()),
            control_tx,
            host_tx,
            media_tx,
            next_loop: std::sync::atomic::AtomicUsize::new(0),
            loop_load,
            events: events.clone(),
            metrics: metrics.clone(),
            next_stream: AtomicU64::new(1),
            stopped: tokio::sync::watch::Sender::new(false),
            whep: Default::default(),
        });

        let tls = config
            .tls
            .as_ref()
            .map(crate::http::tls_config)
            .transpose()?;

        let mut done = Vec::with_capacity(loops + 1);
        let mut loop_threads = Vec::with_capacity(loops);
        for (index, (port, driver)) in drivers.into_iter().enumerate() {
            let started = crate::net::driver::start_loop(index, port, driver)?;
            done.push(started.done);
            loop_threads.push(started.thread);
        }

        let (http_stop, http_stop_rx) = oneshot::channel();
        let (http_done_tx, http_done) = std::sync::mpsc::channel();
        let app = crate::http::router(shared.clone());
        let (shared_ice, tcp_task) = match ice_tcp {
            IceTcp::Off => (None, None),
            IceTcp::OnHttpPort => (Some(tcp_acceptor), None),
            IceTcp::Own(l) => {
                let l = tokio::net::TcpListener::from_std(l)?;
                (
                    None,
                    Some(runtime.spawn(tcp_acceptor.serve(l)).abort_handle()),
                )
            }
        };
        runtime.spawn(async move {
            if let Err(e) = crate::http::serve(listener, app, tls, shared_ice, http_stop_rx).await {
                tracing::error!("HTTP server failed: {e}");
            }
            let _ = http_done_tx.send(());
        });
        tracing::info!(%http_addr, ?udp_addrs, ?tcp_addrs, loops, "rtcast server started");

        drop(_enter);
        Ok(Server {
            shared,
            runtime: None,
            http_addr,
            udp_addrs,
            tcp_addrs,
            tcp_task,
            http_stop: Some(http_stop),
            done: {
                done.insert(0, http_done);
                done
            },
            loop_threads,
        })
    }

    /// The stream called `name`, created (with default options) if it does not exist yet.
    /// Names are 1-128 characters of `A-Z a-z 0-9 _ - .`.
    pub fn stream(&self, name: &str) -> Result<Stream> {
        self.get_or_create(name, None)
    }

    /// The stream called `name`, created with `options` if it does not exist yet. An existing
    /// stream is returned if its video codec, audio and renditions match `options` (encoder
    /// settings are those it was created with); otherwise `InvalidConfig` says what differs.
    pub fn stream_with(&self, name: &str, options: StreamOptions) -> Result<Stream> {
        self.get_or_create(name, Some(options))
    }

    fn get_or_create(&self, name: &str, options: Option<StreamOptions>) -> Result<Stream> {
        if self.runtime.is_none() {
            return Err(Error::ServerStopped);
        }
        validate_stream_name(name)?;
        if let Some(o) = &options {
            o.validate()?;
        }
        let mut streams = self.shared.lock_streams();
        if let Some(s) = streams.get(name) {
            if let Some(o) = &options {
                if o.video != s.video_codec || o.audio != s.audio_ssrc.is_some() {
                    return Err(Error::InvalidConfig(format!(
                        "stream '{name}' exists with {} video and {}; asked for {} video and {} \
                         (remove it first to change its tracks)",
                        s.video_codec,
                        if s.audio_ssrc.is_some() {
                            "audio"
                        } else {
                            "no audio"
                        },
                        o.video,
                        if o.audio { "audio" } else { "no audio" },
                    )));
                }
            }
            if let Some(o) = options.as_ref().filter(|o| o.renditions != s.renditions) {
                return Err(Error::InvalidConfig(format!(
                    "stream '{name}' exists with {} rendition(s); asked for {} different ones \
                     (remove it first to change its ladder)",
                    s.rendition_count(),
                    o.renditions.len()
                )));
            }
            return Ok(Stream { shared: s.clone() });
        }
        let options = options.unwrap_or_default();
        let stream = Arc::new(StreamShared::new(
            name.to_owned(),
            self.shared.next_stream.fetch_add(1, Relaxed),
            &options,
            self.shared.media_tx.clone(),
            self.shared.events.clone(),
            self.shared.metrics.clone(),
        ));
        if !self
            .shared
            .to_every_loop(|| Control::OpenStream(stream.clone()))
        {
            // A loop that got it closes it again (CloseStream follows on the same queue).
            self.shared
                .to_every_loop(|| Control::CloseStream(stream.id));
            return Err(Error::LimitReached(
                "the server's host command queue is full (streams created faster than the \
                 media loops take them); retry"
                    .into(),
            ));
        }
        streams.insert(name.to_owned(), stream.clone());
        Ok(Stream { shared: stream })
    }

    /// Removes a stream: its viewers are disconnected and pushing into it fails from now on.
    /// Returns whether it existed.
    pub fn remove_stream(&self, name: &str) -> bool {
        let Some(stream) = self.shared.lock_streams().remove(name) else {
            return false;
        };
        stream.close();
        let senders = self.shared.host_tx.clone();
        if let Some(rt) = &self.runtime {
            rt.spawn(async move {
                for tx in senders {
                    let _ = tx.send(Control::CloseStream(stream.id)).await;
                }
            });
        }
        true
    }

    /// What the HTTP handlers share with the server, for the fuzz targets that call the router
    /// without a socket.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn fuzz_shared(&self) -> Arc<ServerShared> {
        self.shared.clone()
    }

    /// Names of the streams, sorted.
    pub fn streams(&self) -> Vec<String> {
        self.shared.stream_names()
    }

    /// The address HTTP/WebSocket listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The addresses of the media UDP port (one per interface when bound to all).
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The addresses of ICE-TCP (one per interface when bound to all; empty when the candidate
    /// policy leaves TCP out). Their port is the HTTP port when ICE-TCP shares it.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }

    /// The player page of a stream, e.g. `http://127.0.0.1:8080/demo/embed.html`.
    pub fn url(&self, stream: &str) -> String {
        format!("{}/{stream}/embed.html", self.base_url("http"))
    }

    /// The WHEP endpoint of a stream, e.g. `http://127.0.0.1:8080/demo/whep`.
    pub fn whep_url(&self, stream: &str) -> String {
        format!("{}/{stream}/whep", self.base_url("http"))
    }

    /// The Flussonic WebSocket URL of a stream, e.g. `ws://127.0.0.1:8080/demo/webrtc`.
    pub fn ws_url(&self, stream: &str) -> String {
        format!("{}/{stream}/webrtc", self.base_url("ws"))
    }

    fn base_url(&self, scheme: &str) -> String {
        let secure = if self.shared.config.tls.is_some() {
            "s"
        } else {
            ""
        };
        let host = if self.http_addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            match self.http_addr {
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
                SocketAddr::V4(a) => a.ip().to_string(),
            }
        };
        format!("{scheme}{secure}://{host}:{}", self.http_addr.port())
    }

    /// Counts `n` events a consumer of a subscription dropped after taking them (a bounded
    /// queue of its own was full, as the Python and Node bindings' are): they show in
    /// `stats().events_dropped`.
    pub fn note_events_dropped(&self, n: u64) {
        crate::metrics::Metrics::add(&self.shared.metrics.events_dropped, n);
    }

    /// Subscribes to server events. Each subscriber has its own bounded queue.
    pub fn subscribe(&self) -> Events {
        Events::new(
            self.shared.events.subscribe(),
            self.shared.stopped.subscribe(),
            self.shared.metrics.clone(),
        )
    }

    /// Counters of the whole server.
    pub fn stats(&self) -> ServerStats {
        self.shared
            .metrics
            .snapshot(self.shared.lock_streams().len() as u64)
    }

    /// Every connected viewer's figures (sent, round-trip time, loss, jitter, bitrate), as its
    /// media loop last published them (about once a second), by viewer id.
    pub fn viewer_stats(&self) -> Vec<crate::metrics::ViewerStats> {
        self.shared.metrics.viewer_stats(None)
    }

    /// Counters of every stream.
    pub fn stream_stats(&self) -> Vec<crate::stream::StreamStats> {
        self.shared
            .lock_streams()
            .values()
            .map(|s| s.stats())
            .collect()
    }

    /// What the server holds right now, for leak checks: after every viewer left, `sessions` is 0
    /// and `tasks` is back to its idle value.
    pub fn census(&self) -> Result<Census> {
        let rt = self.runtime.as_ref().ok_or(Error::ServerStopped)?;
        // A std channel: answered by the loop without a task of ours in the count.
        let (tx, rx) = std::sync::mpsc::channel();
        if !self.shared.to_every_loop(|| Control::Census(tx.clone())) {
            return Err(Error::ServerStopped);
        }
        let (mut sessions, mut streams) = (0, 0);
        for _ in 0..self.shared.host_tx.len() {
            let (v, s) = rx
                .recv_timeout(Duration::from_secs(5))
                .map_err(|_| Error::ServerStopped)?;
            sessions += v;
            // Every loop holds every stream.
            streams = s;
        }
        Ok(Census {
            sessions,
            streams,
            tasks: rt.metrics().num_alive_tasks(),
        })
    }

    /// Stops the server: every viewer is disconnected, the ports are released, every stream is
    /// closed. Idempotent; also done on drop. Waits at most a few seconds.
    pub fn stop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        // Taken out first: closing joins encoder threads, and the lock should not be held
        // meanwhile.
        let streams = std::mem::take(&mut *self.shared.lock_streams());
        for stream in streams.into_values() {
            stream.close();
        }
        if let Some(tx) = self.http_stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.tcp_task.take() {
            task.abort();
        }
        let senders = self.shared.host_tx.clone();
        runtime.spawn(async move {
            for tx in senders {
                let _ = tx.send(Control::Shutdown).await;
            }
        });
        for done in self.done.drain(..) {
            let _ = done.recv_timeout(Duration::from_secs(5));
        }
        for thread in self.loop_threads.drain(..) {
            // A loop that said it is done only has its runtime to drop; one that did not end in
            // time is left to finish on its own rather than hang the host.
            let deadline = std::time::Instant::now() + Duration::from_secs(1);
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        // The loop told every signalling task its viewer is gone; give them a moment to send
        // their close frames (1001 going away) instead of cutting the connections.
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while runtime.metrics().num_alive_tasks() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            // Inside an async context a runtime may not block on its threads.
            runtime.shutdown_background();
        } else {
            // Wait for the worker threads to exit, so that a host checking for leftover threads
            // (or unloading the library) finds none once stop() returned.
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
        self.shared.stopped.send_replace(true);
        tracing::info!("rtcast server stopped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where ICE-TCP listens.
enum IceTcp {
    /// The candidate policy leaves TCP out.
    Off,
    /// On the HTTP listener (same port number): told apart by the first byte.
    OnHttpPort,
    /// On a listener of its own.
    Own(std::net::TcpListener),
}

impl IceTcp {
    /// Binds ICE-TCP's port: `tcp_port`, or the UDP port's number (`udp_free`: that number was
    /// picked free, so when it is taken for TCP another free port is fine).
    fn bind(
        config: &ServerConfig,
        udp_free: bool,
        udp_addrs: &[SocketAddr],
        http_addr: SocketAddr,
    ) -> Result<Self> {
        if !config.candidates.tcp {
            return Ok(IceTcp::Off);
        }
        let port = match config.tcp_port {
            Some(p) => p,
            None => udp_addrs.first().map_or(0, |a| a.port()),
        };
        if port != 0 && port == http_addr.port() {
            return Ok(IceTcp::OnHttpPort);
        }
        let addr = SocketAddr::new(config.bind, port);
        let listener = match std::net::TcpListener::bind(addr) {
            Ok(l) => l,
            Err(_) if config.tcp_port.is_none() && udp_free => {
                let any = SocketAddr::new(config.bind, 0);
                std::net::TcpListener::bind(any).map_err(|source| Error::Bind {
                    what: "ICE-TCP",
                    addr: any,
                    source,
                })?
            }
            Err(source) => {
                return Err(Error::Bind {
                    what: "ICE-TCP",
                    addr,
                    source,
                })
            }
        };
        listener.set_nonblocking(true)?;
        Ok(IceTcp::Own(listener))
    }

    /// The addresses to announce: the UDP port's addresses (one per interface when bound to
    /// all) with ICE-TCP's port.
    fn addrs(&self, udp_addrs: &[SocketAddr], http_addr: SocketAddr) -> Vec<SocketAddr> {
        let port = match self {
            IceTcp::Off => return Vec::new(),
            IceTcp::OnHttpPort => http_addr.port(),
            IceTcp::Own(l) => l.local_addr().map_or(0, |a| a.port()),
        };
        udp_addrs
            .iter()
            .map(|a| SocketAddr::new(a.ip(), port))
            .collect()
    }
}

fn validate_stream_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_STREAM_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "stream name {name:?} is not valid: use 1-{MAX_STREAM_NAME} characters of A-Z a-z 0-9 _ - ."
        )))
    }
}
