//! `rtcast.Server`: starts the core server from keyword arguments, hands out streams and URLs,
//! and stops it on `close()`, `with` exit, garbage collection or interpreter exit.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use pyo3::PyTraverseError;

use crate::error::{raise, to_py, Kind};
use crate::event::{EventThread, Listeners};
use crate::stats::{ServerStats, StreamStats, ViewerStats};
use crate::stream::{RenditionArg, Stream};

/// What a Python `Server` owns; shared with the exit hook through a weak reference.
struct Core {
    server: Mutex<rtcast::Server>,
    listeners: Arc<Listeners>,
    events: Mutex<Option<EventThread>>,
}

/// Servers not yet garbage collected, closed by the `atexit` hook before the interpreter
/// finalizes (the event thread must not call into a finalizing interpreter).
static LIVE: Mutex<Vec<Weak<Core>>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Core {
    /// Stops the server and waits for the last events to be delivered. Idempotent. Call it with
    /// the GIL released: the event thread needs it to finish.
    fn close(&self) {
        lock(&self.server).stop();
        let thread = lock(&self.events).take();
        if let Some(thread) = thread {
            // From a callback (on the event thread itself) this returns at once and the thread
            // ends on its own after the callback returns.
            thread.join();
        }
    }
}

/// Closes every live server; registered with `atexit`.
#[pyfunction]
pub fn _close_all(py: Python<'_>) {
    let cores: Vec<Arc<Core>> = lock(&LIVE).drain(..).filter_map(|w| w.upgrade()).collect();
    py.detach(|| cores.iter().for_each(|c| c.close()));
}

/// What the `authorize` callable is asked: may this viewer watch?
#[pyclass(module = "rtcast", name = "AuthRequest", frozen, get_all)]
#[derive(Clone, Debug)]
pub struct AuthRequest {
    /// Stream name.
    pub stream: String,
    /// `?token=` of the URL or the WHEP `Authorization: Bearer` value.
    pub token: Option<String>,
    /// "ip:port" of the viewer's signalling connection.
    pub remote: String,
    /// "websocket" or "whep".
    pub protocol: &'static str,
}

#[pymethods]
impl AuthRequest {
    fn __repr__(&self) -> String {
        format!(
            "AuthRequest(stream={:?}, token={:?}, remote={:?}, protocol={:?})",
            self.stream, self.token, self.remote, self.protocol
        )
    }
}

fn ice_server(item: &Bound<'_, PyAny>) -> PyResult<rtcast::IceServer> {
    if let Ok(url) = item.cast::<PyString>() {
        return Ok(rtcast::IceServer {
            urls: vec![url.to_string()],
            ..Default::default()
        });
    }
    let dict = item.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(
            "an ICE server is a URL string or a dict {'urls': [...], 'username': ..., 'credential': ...}",
        )
    })?;
    let urls = match dict.get_item("urls")? {
        Some(u) if u.is_instance_of::<PyString>() => vec![u.extract::<String>()?],
        Some(u) => u.extract::<Vec<String>>()?,
        None => return Err(raise(Kind::Config, "an ICE server dict needs 'urls'")),
    };
    let text = |key: &str| -> PyResult<Option<String>> {
        dict.get_item(key)?.map(|v| v.extract()).transpose()
    };
    Ok(rtcast::IceServer {
        urls,
        username: text("username")?,
        credential: text("credential")?,
    })
}

fn turn_secret(item: &Bound<'_, PyAny>) -> PyResult<rtcast::TurnSecret> {
    let dict = item.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err(
            "turn_secret is a dict {'urls': [...], 'secret': ..., 'ttl': seconds (optional)}",
        )
    })?;
    let urls = match dict.get_item("urls")? {
        Some(u) if u.is_instance_of::<PyString>() => vec![u.extract::<String>()?],
        Some(u) => u.extract::<Vec<String>>()?,
        None => return Err(raise(Kind::Config, "turn_secret needs 'urls'")),
    };
    let Some(secret) = dict.get_item("secret")? else {
        return Err(raise(Kind::Config, "turn_secret needs 'secret'"));
    };
    let mut turn = rtcast::TurnSecret::new(urls, secret.extract::<String>()?);
    let ttl = dict.get_item("ttl")?.map(|t| t.extract()).transpose()?;
    if let Some(ttl) = seconds(ttl, "turn_secret's ttl")? {
        turn.ttl = ttl;
    }
    Ok(turn)
}

fn seconds(value: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    value
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                raise(
                    Kind::Config,
                    format!("{what} must be a number of seconds >= 0, got {s}"),
                )
            })
        })
        .transpose()
}

fn authorize_hook(callback: Py<PyAny>) -> rtcast::AuthorizeHook {
    Arc::new(move |req: &rtcast::AuthRequest| {
        Python::attach(|py| {
            let request = AuthRequest {
                stream: req.stream.clone(),
                token: req.token.clone(),
                remote: req.remote.to_string(),
                protocol: req.protocol.name(),
            };
            match callback.call1(py, (request,)).and_then(|r| r.is_truthy(py)) {
                Ok(allowed) => allowed,
                Err(err) => {
                    // A failing hook refuses, and the error is reported, not lost.
                    err.write_unraisable(py, Some(callback.bind(py)));
                    false
                }
            }
        })
    })
}

/// A running rtcast server: HTTP/WebSocket/WHEP on `port`, media on one UDP port.
///
/// Stopped by `close()`, by leaving a `with` block, when garbage collected, or at interpreter
/// exit; after that no rtcast thread is left.
#[pyclass(module = "rtcast", name = "Server", weakref, frozen)]
pub struct Server {
    core: Arc<Core>,
}

impl Server {
    /// Runs `f` on the core server with the GIL released (the server lock may be held by a
    /// `close()` that waits for threads needing the GIL).
    fn with<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&rtcast::Server) -> R + Send) -> R {
        py.detach(|| f(&lock(&self.core.server)))
    }
}

#[pymethods]
impl Server {
    /// Starts a server; returns once its ports listen. See the stub for the arguments.
    #[new]
    #[pyo3(signature = (
        port = 8080,
        *,
        udp_port = None,
        bind = "0.0.0.0",
        public_ips = Vec::new(),
        ice_servers = Vec::new(),
        turn_secret = None,
        cert = None,
        key = None,
        max_viewers = None,
        max_viewers_per_stream = None,
        max_connecting_per_address = None,
        max_connecting = None,
        max_message_bytes = None,
        connect_timeout = None,
        consent_timeout = None,
        cors_origins = None,
        authorize = None,
        media_loops = 0,
        tcp_port = None,
        candidates = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        port: u16,
        udp_port: Option<u16>,
        bind: &str,
        public_ips: Vec<String>,
        ice_servers: Vec<Bound<'_, PyAny>>,
        turn_secret: Option<Bound<'_, PyAny>>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        max_viewers: Option<usize>,
        max_viewers_per_stream: Option<usize>,
        max_connecting_per_address: Option<usize>,
        max_connecting: Option<usize>,
        max_message_bytes: Option<usize>,
        connect_timeout: Option<f64>,
        consent_timeout: Option<f64>,
        cors_origins: Option<Vec<String>>,
        authorize: Option<Py<PyAny>>,
        media_loops: usize,
        tcp_port: Option<u16>,
        candidates: Option<&str>,
    ) -> PyResult<Self> {
        let ip = |text: &str, what: &str| {
            text.parse::<IpAddr>().map_err(|_| {
                raise(
                    Kind::Config,
                    format!("{what} {text:?} is not an IP address"),
                )
            })
        };
        let mut config = rtcast::ServerConfig {
            bind: ip(bind, "bind")?,
            port,
            udp_port,
            public_ips: public_ips
                .iter()
                .map(|s| ip(s, "public_ips entry"))
                .collect::<PyResult<_>>()?,
            ice_servers: ice_servers
                .iter()
                .map(ice_server)
                .collect::<PyResult<_>>()?,
            turn_secret: turn_secret.as_ref().map(self::turn_secret).transpose()?,
            media_loops,
            tcp_port,
            ..Default::default()
        };
        if let Some(policy) = candidates {
            config.candidates = policy.parse().map_err(to_py)?;
        }
        config.tls = match (cert, key) {
            (Some(cert_pem), Some(key_pem)) => Some(rtcast::TlsConfig { cert_pem, key_pem }),
            (None, None) => None,
            _ => {
                return Err(raise(
                    Kind::Config,
                    "cert and key go together: pass both or neither",
                ))
            }
        };
        let limits = &mut config.limits;
        if let Some(n) = max_viewers {
            limits.max_viewers = n;
        }
        if let Some(n) = max_viewers_per_stream {
            limits.max_viewers_per_stream = n;
        }
        if let Some(n) = max_connecting_per_address {
            limits.max_connecting_per_address = n;
        }
        if let Some(n) = max_connecting {
            limits.max_connecting = n;
        }
        if let Some(n) = max_message_bytes {
            limits.max_ws_message_bytes = n;
        }
        if let Some(d) = seconds(connect_timeout, "connect_timeout")? {
            limits.connect_timeout = d;
        }
        if let Some(d) = seconds(consent_timeout, "consent_timeout")? {
            limits.consent_timeout = d;
        }
        if let Some(origins) = cors_origins {
            config.cors_origins = origins;
        }
        if let Some(callback) = authorize {
            if !callback.bind(py).is_callable() {
                return Err(PyTypeError::new_err("authorize must be callable"));
            }
            config.authorize = Some(authorize_hook(callback));
        }

        let mut server = py.detach(|| rtcast::Server::start(config)).map_err(to_py)?;
        let listeners = Arc::new(Listeners::default());
        let events = match EventThread::start(server.subscribe(), listeners.clone()) {
            Ok(t) => t,
            Err(e) => {
                py.detach(|| server.stop());
                return Err(raise(
                    Kind::Base,
                    format!("cannot start the event thread: {e}"),
                ));
            }
        };
        let core = Arc::new(Core {
            server: Mutex::new(server),
            listeners,
            events: Mutex::new(Some(events)),
        });
        let mut live = lock(&LIVE);
        live.retain(|w| w.strong_count() > 0);
        live.push(Arc::downgrade(&core));
        Ok(Self { core })
    }

    /// The stream called `name`, created if it does not exist (an existing stream keeps the
    /// options it was created with).
    #[pyo3(signature = (
        name,
        *,
        audio = true,
        video = "h264",
        bitrate = None,
        max_fps = None,
        keyframe_interval = None,
        renditions = Vec::new(),
        follow_viewers_floor_bps = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn stream(
        &self,
        py: Python<'_>,
        name: &str,
        audio: bool,
        video: &str,
        bitrate: Option<u32>,
        max_fps: Option<f32>,
        keyframe_interval: Option<f64>,
        renditions: Vec<RenditionArg>,
        follow_viewers_floor_bps: Option<u32>,
    ) -> PyResult<Stream> {
        let video: rtcast::VideoCodec = video.parse().map_err(to_py)?;
        let mut options = rtcast::StreamOptions {
            audio,
            video,
            renditions: renditions.into_iter().map(Into::into).collect(),
            ..Default::default()
        };
        options.encoder.follow_viewers_floor_bps = follow_viewers_floor_bps;
        if let Some(b) = bitrate {
            options.encoder.bitrate_bps = b;
        }
        if let Some(f) = max_fps {
            options.encoder.max_fps = f;
        }
        if let Some(d) = seconds(keyframe_interval, "keyframe_interval")? {
            options.encoder.keyframe_interval = d;
        }
        let inner = self
            .with(py, |s| s.stream_with(name, options))
            .map_err(to_py)?;
        Ok(Stream { inner })
    }

    /// Removes a stream: its viewers are disconnected and pushing into it raises
    /// StreamClosedError. Returns whether it existed.
    fn remove_stream(&self, py: Python<'_>, name: &str) -> bool {
        self.with(py, |s| s.remove_stream(name))
    }

    /// Names of the streams, sorted.
    fn streams(&self, py: Python<'_>) -> Vec<String> {
        self.with(py, |s| s.streams())
    }

    /// The player page of a stream: http://HOST:PORT/STREAM/embed.html.
    fn url(&self, py: Python<'_>, stream: &str) -> String {
        self.with(py, |s| s.url(stream))
    }

    /// The WHEP endpoint of a stream: http://HOST:PORT/STREAM/whep.
    fn whep_url(&self, py: Python<'_>, stream: &str) -> String {
        self.with(py, |s| s.whep_url(stream))
    }

    /// The Flussonic WebSocket URL of a stream: ws://HOST:PORT/STREAM/webrtc.
    fn ws_url(&self, py: Python<'_>, stream: &str) -> String {
        self.with(py, |s| s.ws_url(stream))
    }

    /// The TCP port of HTTP/WebSocket/WHEP (useful with port=0).
    #[getter]
    fn port(&self, py: Python<'_>) -> u16 {
        self.with(py, |s| s.http_addr().port())
    }

    /// The media UDP port.
    #[getter]
    fn udp_port(&self, py: Python<'_>) -> u16 {
        self.with(py, |s| s.udp_addrs().first().map(|a| a.port()).unwrap_or(0))
    }

    /// The ICE-TCP port (the HTTP port when they share it; 0 when TCP candidates are off).
    #[getter]
    fn tcp_port(&self, py: Python<'_>) -> u16 {
        self.with(py, |s| s.tcp_addrs().first().map(|a| a.port()).unwrap_or(0))
    }

    /// Counters of the whole server.
    fn stats(&self, py: Python<'_>) -> ServerStats {
        self.with(py, |s| s.stats()).into()
    }

    /// Every connected viewer's figures (round-trip time, loss, jitter, bitrate...), by id.
    fn viewer_stats(&self, py: Python<'_>) -> Vec<ViewerStats> {
        self.with(py, |s| s.viewer_stats())
            .into_iter()
            .map(Into::into)
            .collect()
    }

    /// Counters of every stream.
    fn stream_stats(&self, py: Python<'_>) -> Vec<StreamStats> {
        self.with(py, |s| s.stream_stats())
            .into_iter()
            .map(Into::into)
            .collect()
    }

    /// Calls `callback(event)` for every event, on an rtcast thread, one at a time. Returns the
    /// callback, so this works as a decorator.
    fn on_event<'py>(&self, callback: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if !callback.is_callable() {
            return Err(PyTypeError::new_err("on_event takes a callable"));
        }
        self.core.listeners.add(callback.clone().unbind(), false);
        Ok(callback)
    }

    /// Stops calling `callback`; whether it was registered.
    fn off_event(&self, callback: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.core.listeners.remove(callback)
    }

    /// Registers a callable that also gets None after the last event; false if the server
    /// already delivered its last event. For `events()`.
    fn _subscribe(&self, callback: Bound<'_, PyAny>) -> bool {
        self.core.listeners.add(callback.unbind(), true)
    }

    /// An async iterator over the server's events, ending when the server stops. Call it in a
    /// coroutine: events are handed to that event loop with `call_soon_threadsafe`; at most
    /// `max_queue` wait (then the oldest is dropped and counted).
    #[pyo3(signature = (max_queue = 1024))]
    fn events<'py>(slf: &Bound<'py, Self>, max_queue: usize) -> PyResult<Bound<'py, PyAny>> {
        slf.py()
            .import("rtcast._aio")?
            .getattr("EventStream")?
            .call1((slf, max_queue))
    }

    /// Counts events an `events()` iterator dropped (its queue was full).
    fn _note_events_dropped(&self, py: Python<'_>, n: u64) {
        self.with(py, |s| s.note_events_dropped(n));
    }

    /// Stops the server: viewers are disconnected, ports released, streams closed, the event
    /// thread joined (after it delivered the last events). Idempotent.
    fn close(&self, py: Python<'_>) {
        let core = &self.core;
        py.detach(|| core.close());
    }

    /// `close()` on a worker thread, as a coroutine: stopping waits for threads (up to a few
    /// seconds), which must not block the event loop.
    fn close_async<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        crate::stream::off_loop(slf.as_any(), "close", ())
    }

    /// Whether the server was stopped.
    #[getter]
    fn closed(&self) -> bool {
        lock(&self.core.events).is_none()
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    /// `async with rtcast.Server(...) as server:` (the server starts in the constructor, which
    /// only binds ports).
    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py()
            .import("rtcast._aio")?
            .getattr("ready")?
            .call1((slf,))
    }

    #[pyo3(signature = (*_args))]
    fn __aexit__<'py>(
        slf: &Bound<'py, Self>,
        _args: &Bound<'py, pyo3::types::PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Self::close_async(slf)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let (addr, udp) = self.with(py, |s| {
            (
                s.http_addr(),
                s.udp_addrs().first().map(|a| a.port()).unwrap_or(0),
            )
        });
        let state = if self.closed() { "closed" } else { "running" };
        format!("<rtcast.Server http={addr} udp={udp} {state}>")
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.core.listeners.traverse(&visit)
    }

    fn __clear__(&self) {
        self.core.listeners.clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let core = self.core.clone();
        Python::attach(|py| py.detach(|| core.close()));
    }
}
