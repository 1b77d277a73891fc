//! `Server`: started with `await Server.start(options)`, stopped with `await server.close()`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::{AsyncTask, Either, Function, Promise};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status, Task};
use napi_derive::napi;
use rtcast_core::{
    IceServer as CoreIceServer, ServerConfig, StreamOptions as CoreStreamOptions,
    TurnSecret as CoreTurnSecret,
};

use crate::error::{BResult, Failure, OrThrow};
use crate::events::{self, Kind, Listener, Listeners};
use crate::stream::{Stream, StreamOptions, ViewerStats};

/// How a server is started; every field is optional. Read from JS only (it holds a function).
#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct ServerOptions {
    /// Address to bind: `'0.0.0.0'` (every interface, the default), `'127.0.0.1'`, `'::'`...
    pub bind: Option<String>,
    /// TCP port of HTTP, WebSocket and (with `cert`/`key`) HTTPS/WSS; default 8080, 0 picks a
    /// free port.
    pub port: Option<u32>,
    /// UDP port carrying the media of every viewer; default the same number as `port` (a free
    /// port when that is 0); 0 picks a free port.
    pub udp_port: Option<u32>,
    /// Public addresses announced to viewers for 1:1 NAT (a cloud VM's public IP).
    pub public_ips: Option<Vec<String>>,
    /// STUN/TURN servers handed to viewers.
    pub ice_servers: Option<Vec<IceServer>>,
    /// A TURN server sharing a secret with rtcast (coturn's `use-auth-secret`): each viewer is
    /// handed it with short-lived credentials of its own.
    pub turn_secret: Option<TurnSecret>,
    /// Path of a PEM certificate chain: serve HTTPS/WSS (with `key`).
    pub cert: Option<String>,
    /// Path of the PEM private key of `cert`.
    pub key: Option<String>,
    /// Most viewers of one stream (default 1000).
    pub max_viewers_per_stream: Option<u32>,
    /// Most viewers signalling from one IP address whose media has not connected yet
    /// (default 64).
    pub max_connecting_per_address: Option<u32>,
    /// Most viewers of the whole server whose media has not connected yet (default 1000).
    pub max_connecting: Option<u32>,
    /// Most viewers of the whole server (default 5000).
    pub max_viewers: Option<u32>,
    /// Largest WebSocket message or WHEP body accepted from a viewer, bytes (default 65536).
    pub max_message_bytes: Option<u32>,
    /// Time from signalling start to connected media before a viewer is dropped, ms (default 15000).
    pub connect_timeout_ms: Option<u32>,
    /// Time without ICE consent before a connected viewer is reaped, ms (default 10000).
    pub consent_timeout_ms: Option<u32>,
    /// Origins allowed to call WHEP from another page (CORS); default `['*']`.
    pub cors_origins: Option<Vec<String>>,
    /// Media loops (threads sharing the viewers, all on the one UDP port); default 0: one per
    /// core, at most 62.
    pub media_loops: Option<u32>,
    /// TCP port of ICE-TCP, for viewers whose network blocks UDP; default the same number as
    /// the UDP port (on the HTTP listener when that is `port`); 0 picks a free port.
    pub tcp_port: Option<u32>,
    /// Which candidates viewers are offered: `udp`, `tcp`, `local`, `public` separated by
    /// commas; default `"udp,tcp,local,public"` (UDP first, TCP as the fallback).
    pub candidates: Option<String>,
    /// Decides whether a viewer may watch: called on the JS thread with `{ stream, token,
    /// remote, protocol }` for every connecting viewer, before anything is sent to it; returns
    /// `true` to admit it, `false` to refuse it (WebSocket 4403, WHEP 403/401), or a Promise of
    /// that. A listener that throws, rejects or returns something else refuses; one that has not
    /// answered within 10 s refuses too. Default: everyone may watch.
    #[napi(ts_type = "(request: AuthRequest) => boolean | Promise<boolean>")]
    pub authorize: Option<AuthorizeFn>,
}

/// What `authorize` is asked: may this viewer watch?
#[napi(object)]
pub struct AuthRequest {
    /// Stream name.
    pub stream: String,
    /// `?token=` of the WebSocket URL or the WHEP `Authorization: Bearer` value, if given.
    pub token: Option<String>,
    /// Address of the viewer's signalling connection, `ip:port`.
    pub remote: String,
    /// Signalling protocol it came through.
    #[napi(ts_type = "'websocket' | 'whep'")]
    pub protocol: String,
}

/// The `authorize` function, callable from the server's threads. Weak: it never keeps the
/// process alive by itself.
pub type AuthorizeFn =
    ThreadsafeFunction<AuthRequest, Either<bool, Promise<bool>>, AuthRequest, Status, false, true>;

/// The core's hook calling `f` on the JS thread and waiting (on the server's pool thread that
/// asks; the core gives up after its authorization timeout) for its answer.
fn authorize_hook(f: AuthorizeFn) -> rtcast_core::AuthorizeHook {
    Arc::new(move |req: &rtcast_core::AuthRequest| {
        let request = AuthRequest {
            stream: req.stream.clone(),
            token: req.token.clone(),
            remote: req.remote.to_string(),
            protocol: req.protocol.name().to_owned(),
        };
        // call_async_catch: a throwing listener is an error here, not a fatal exception.
        futures_executor::block_on(async {
            match f.call_async_catch(request).await? {
                Either::A(allowed) => Ok(allowed),
                Either::B(promise) => promise.await,
            }
        })
        .unwrap_or(false)
    })
}

/// A STUN or TURN server handed to viewers (the W3C `RTCIceServer` shape).
#[napi(object)]
pub struct IceServer {
    /// `stun:host:port` / `turn:host:port?transport=udp` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    pub username: Option<String>,
    /// TURN password.
    pub credential: Option<String>,
}

/// A TURN server whose viewers get credentials computed from a shared secret: user name
/// `'<expiry>:<viewer id>'`, password base64(HMAC-SHA1(secret, user name)).
#[napi(object)]
pub struct TurnSecret {
    /// `turn:host:port?transport=udp` / `turns:host:port` URLs of the TURN server.
    pub urls: Vec<String>,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`).
    pub secret: String,
    /// How long a viewer's credentials stay valid, seconds (default 86400: a day).
    pub ttl_seconds: Option<u32>,
}

/// Counters of the whole server.
#[napi(object)]
pub struct ServerStats {
    /// Viewers connected now.
    pub viewers: i64,
    /// Viewers that ever connected.
    pub viewers_total: i64,
    /// Streams that exist now.
    pub streams: i64,
    /// RTP/RTCP/DTLS/STUN datagrams sent.
    pub packets_sent: i64,
    /// Bytes of those datagrams.
    pub bytes_sent: i64,
    /// Datagrams dropped because the socket buffer was full.
    pub send_drops: i64,
    /// Events dropped because a listener's queue (1024) was full: the JS thread was too busy.
    pub events_dropped: i64,
    /// NACK feedback packets received.
    pub nacks: i64,
    /// PLI/FIR received.
    pub plis: i64,
    /// Keyframes asked of the host or of the encoder.
    pub keyframe_requests: i64,
    /// Frames dropped before reaching the viewers (media queue full).
    pub frames_dropped: i64,
    /// Median time from a viewer's signalling start to its first video packet, ms (0 without data).
    pub ttff_p50_ms: f64,
}

fn port(value: Option<u32>, what: &str) -> BResult<Option<u16>> {
    value
        .map(|p| {
            u16::try_from(p)
                .map_err(|_| Failure::invalid(format!("{what} {p} is not a port (0-65535)")))
        })
        .transpose()
}

fn ip(s: &str, what: &str) -> BResult<IpAddr> {
    s.parse().map_err(|_| {
        Failure::invalid(format!(
            "{what} '{s}' is not an IP address (e.g. '127.0.0.1', '0.0.0.0', '::')"
        ))
    })
}

fn config(options: ServerOptions) -> BResult<ServerConfig> {
    let mut c = ServerConfig::default();
    if let Some(bind) = &options.bind {
        c.bind = ip(bind, "bind")?;
    }
    if let Some(p) = port(options.port, "port")? {
        c.port = p;
    }
    c.udp_port = port(options.udp_port, "udpPort")?;
    for s in options.public_ips.iter().flatten() {
        c.public_ips.push(ip(s, "publicIps entry")?);
    }
    for s in options.ice_servers.into_iter().flatten() {
        c.ice_servers.push(CoreIceServer {
            urls: s.urls,
            username: s.username,
            credential: s.credential,
        });
    }
    if let Some(t) = options.turn_secret {
        let mut turn = CoreTurnSecret::new(t.urls, t.secret);
        if let Some(s) = t.ttl_seconds {
            turn.ttl = Duration::from_secs(s.into());
        }
        c.turn_secret = Some(turn);
    }
    c.tls = match (options.cert, options.key) {
        (Some(cert), Some(key)) => Some(rtcast_core::TlsConfig {
            cert_pem: PathBuf::from(cert),
            key_pem: PathBuf::from(key),
        }),
        (None, None) => None,
        _ => {
            return Err(Failure::invalid(
                "cert and key go together: give both or neither",
            ))
        }
    };
    let l = &mut c.limits;
    if let Some(n) = options.max_viewers_per_stream {
        l.max_viewers_per_stream = n as usize;
    }
    if let Some(n) = options.max_connecting_per_address {
        l.max_connecting_per_address = n as usize;
    }
    if let Some(n) = options.max_connecting {
        l.max_connecting = n as usize;
    }
    if let Some(n) = options.max_viewers {
        l.max_viewers = n as usize;
    }
    if let Some(n) = options.max_message_bytes {
        l.max_ws_message_bytes = n as usize;
    }
    if let Some(ms) = options.connect_timeout_ms {
        l.connect_timeout = Duration::from_millis(ms.into());
    }
    if let Some(ms) = options.consent_timeout_ms {
        l.consent_timeout = Duration::from_millis(ms.into());
    }
    if let Some(origins) = options.cors_origins {
        c.cors_origins = origins;
    }
    if let Some(n) = options.media_loops {
        c.media_loops = n as usize;
    }
    c.tcp_port = port(options.tcp_port, "tcpPort")?;
    if let Some(policy) = &options.candidates {
        c.candidates = policy.parse().map_err(Failure::from)?;
    }
    c.authorize = options.authorize.map(authorize_hook);
    Ok(c)
}

/// What a `Server` object and its streams share. A stream keeps its server alive (a script that
/// only holds on to the stream must not see the server stopped by the garbage collector).
pub(crate) struct Shared {
    server: Mutex<Option<rtcast_core::Server>>,
    listeners: Listeners,
    event_thread: Mutex<Option<rtcast_core::EventDispatcher>>,
    /// A referenced threadsafe function: while it exists, Node's event loop stays alive, as it
    /// does for a listening `net.Server`. Dropped by `close()` and `unref()`.
    keep_alive: Mutex<Option<ThreadsafeFunction<(), (), (), napi::Status, false>>>,
}

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&rtcast_core::Server) -> T) -> BResult<T> {
        let guard = self.server.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(s) => Ok(f(s)),
            None => Err(rtcast_core::Error::ServerStopped.into()),
        }
    }

    /// Stops the server and waits for the event thread to deliver the shutdown's events.
    fn stop(&self) {
        let server = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(server); // Server::drop stops it (waits at most a few seconds).
        let thread = self
            .event_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = thread {
            t.wait();
        }
    }

    fn lock_keep_alive(
        &self,
    ) -> std::sync::MutexGuard<'_, Option<ThreadsafeFunction<(), (), (), napi::Status, false>>>
    {
        self.keep_alive.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn keep_alive(env: &Env) -> napi::Result<ThreadsafeFunction<(), (), (), napi::Status, false>> {
    let noop = env.create_function_from_closure::<(), (), _>("rtcastKeepAlive", |_| Ok(()))?;
    noop.build_threadsafe_function()
        .callee_handled::<false>()
        .build()
}

/// A running rtcast server: HTTP/WebSocket on one TCP port, the media of every viewer on one UDP
/// port. While it runs it keeps Node's event loop alive (like a listening `net.Server`; see
/// `unref()`); `await server.close()` stops it and releases everything it holds in Node.
#[napi]
pub struct Server {
    shared: Arc<Shared>,
    http_port: u16,
    udp_port: u16,
    tcp_port: u16,
}

/// Starts a server off the JS thread.
pub struct StartTask {
    config: Option<BResult<ServerConfig>>,
}

impl Task for StartTask {
    type Output = BResult<rtcast_core::Server>;
    type JsValue = Server;

    fn compute(&mut self) -> napi::Result<Self::Output> {
        // napi runs `compute` once; a second run would report instead of panicking.
        let config = self.config.take().unwrap_or_else(|| {
            Err(Failure {
                code: crate::error::code::INTERNAL,
                message: "the server was already started by this task".into(),
            })
        });
        Ok(config.and_then(|c| rtcast_core::Server::start(c).map_err(Failure::from)))
    }

    fn resolve(&mut self, env: Env, output: Self::Output) -> napi::Result<Server> {
        let server = output.or_throw(&env)?;
        let listeners: Listeners = Default::default();
        let thread = events::spawn(server.subscribe(), listeners.clone())
            .map_err(|e| Failure {
                code: crate::error::code::INTERNAL,
                message: format!("cannot start the event thread: {e}"),
            })
            .or_throw(&env)?;
        let http_port = server.http_addr().port();
        let udp_port = server.udp_addrs().first().map_or(0, |a| a.port());
        let tcp_port = server.tcp_addrs().first().map_or(0, |a| a.port());
        Ok(Server {
            shared: Arc::new(Shared {
                server: Mutex::new(Some(server)),
                listeners,
                event_thread: Mutex::new(Some(thread)),
                keep_alive: Mutex::new(Some(keep_alive(&env)?)),
            }),
            http_port,
            udp_port,
            tcp_port,
        })
    }
}

/// Stops a server off the JS thread.
pub struct CloseTask {
    shared: Arc<Shared>,
}

impl Task for CloseTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> napi::Result<()> {
        self.shared.stop();
        Ok(())
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> napi::Result<()> {
        // Every event is queued by now; releasing the listeners lets Node deliver those and then
        // forget them, and dropping the keep-alive lets the process exit.
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.shared.lock_keep_alive().take();
        Ok(())
    }
}

#[napi]
impl Server {
    /// Starts a server; resolves once the HTTP port and the media UDP port listen. Rejects with
    /// `ERR_RTCAST_INVALID_ARGUMENT` (bad option), `ERR_RTCAST_BIND` (port in use, address not on
    /// this host) or `ERR_RTCAST_TLS` (certificate or key unusable).
    #[napi(ts_return_type = "Promise<Server>")]
    pub fn start(options: Option<ServerOptions>) -> AsyncTask<StartTask> {
        let config = config(options.unwrap_or_default());
        AsyncTask::new(StartTask {
            config: Some(config),
        })
    }

    /// The stream called `name`, created if it does not exist yet (an existing stream keeps the
    /// options it was created with). Names are 1-128 characters of `A-Z a-z 0-9 _ - .`.
    #[napi(catch_unwind)]
    pub fn stream(
        &self,
        env: Env,
        name: String,
        options: Option<StreamOptions>,
    ) -> napi::Result<Stream> {
        let options: CoreStreamOptions = crate::stream::options(options).or_throw(&env)?;
        let stream = self
            .shared
            .with(|s| s.stream_with(&name, options))
            .or_throw(&env)?
            .or_throw(&env)?;
        Ok(Stream::new(stream, self.shared.clone()))
    }

    /// Removes a stream: its viewers are disconnected and pushing into it fails from now on.
    /// Returns whether it existed.
    #[napi]
    pub fn remove_stream(&self, env: Env, name: String) -> napi::Result<bool> {
        self.shared.with(|s| s.remove_stream(&name)).or_throw(&env)
    }

    /// Names of the streams, sorted.
    #[napi]
    pub fn streams(&self, env: Env) -> napi::Result<Vec<String>> {
        self.shared.with(|s| s.streams()).or_throw(&env)
    }

    /// Registers `listener` for an event: `'viewer'`, `'viewerLeft'`, `'keyframeRequest'`,
    /// `'renditionSwitch'` or `'bitrate'`. Listeners run on the JS thread, in the order events
    /// happened; they never keep the process alive by themselves and are released by `close()`.
    /// Returns the server.
    #[napi(
        ts_generic_types = "K extends keyof ServerEvents",
        ts_args_type = "event: K, listener: (event: ServerEvents[K]) => void",
        ts_return_type = "this"
    )]
    pub fn on(
        &self,
        env: Env,
        event: String,
        listener: Function<'_, events::JsEvent, ()>,
    ) -> napi::Result<&Self> {
        let kind = Kind::from_name(&event)
            .ok_or_else(|| {
                Failure::invalid(format!(
                    "unknown event '{event}'; events: {}",
                    Kind::NAMES.join(", ")
                ))
            })
            .or_throw(&env)?;
        self.shared.with(|_| ()).or_throw(&env)?;
        let tsfn: Listener = listener
            .build_threadsafe_function()
            .callee_handled::<false>()
            .weak::<true>()
            .max_queue_size::<{ events::LISTENER_QUEUE }>()
            .build()?;
        self.shared
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((kind, Arc::new(tsfn)));
        Ok(self)
    }

    /// Lets the process exit while the server runs (as `net.Server.unref()`); events are still
    /// delivered while something else keeps Node alive.
    #[napi]
    pub fn unref(&self) -> &Self {
        self.shared.lock_keep_alive().take();
        self
    }

    /// Undoes `unref()`: a running server keeps the process alive again.
    #[napi(js_name = "ref")]
    pub fn reference(&self, env: Env) -> napi::Result<&Self> {
        let running = self.shared.with(|_| ()).is_ok();
        let mut slot = self.shared.lock_keep_alive();
        if running && slot.is_none() {
            *slot = Some(keep_alive(&env)?);
        }
        Ok(self)
    }

    /// Every connected viewer's figures (round-trip time, loss, jitter, bitrate...), by id.
    #[napi]
    pub fn viewer_stats(&self, env: Env) -> napi::Result<Vec<ViewerStats>> {
        let all = self.shared.with(|s| s.viewer_stats()).or_throw(&env)?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Counters of the whole server.
    #[napi]
    pub fn stats(&self, env: Env) -> napi::Result<ServerStats> {
        let s = self.shared.with(|s| s.stats()).or_throw(&env)?;
        let n = |v: u64| v.min(i64::MAX as u64) as i64;
        Ok(ServerStats {
            viewers: n(s.viewers),
            viewers_total: n(s.viewers_total),
            streams: n(s.streams),
            packets_sent: n(s.packets_sent),
            bytes_sent: n(s.bytes_sent),
            send_drops: n(s.send_drops),
            events_dropped: n(s.events_dropped),
            nacks: n(s.nacks),
            plis: n(s.plis),
            keyframe_requests: n(s.keyframe_requests),
            frames_dropped: n(s.frames_dropped),
            ttff_p50_ms: s.ttff_p50_ms,
        })
    }

    /// The player page of a stream, e.g. `http://127.0.0.1:8080/cam/embed.html`.
    #[napi]
    pub fn url(&self, env: Env, stream: String) -> napi::Result<String> {
        self.shared.with(|s| s.url(&stream)).or_throw(&env)
    }

    /// The WHEP endpoint of a stream, e.g. `http://127.0.0.1:8080/cam/whep`.
    #[napi]
    pub fn whep_url(&self, env: Env, stream: String) -> napi::Result<String> {
        self.shared.with(|s| s.whep_url(&stream)).or_throw(&env)
    }

    /// The Flussonic WebSocket URL of a stream, e.g. `ws://127.0.0.1:8080/cam/webrtc`.
    #[napi]
    pub fn ws_url(&self, env: Env, stream: String) -> napi::Result<String> {
        self.shared.with(|s| s.ws_url(&stream)).or_throw(&env)
    }

    /// The TCP port HTTP/WebSocket listens on (useful with `port: 0`).
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.http_port.into()
    }

    /// The media UDP port (useful with `udpPort: 0`).
    #[napi(getter)]
    pub fn udp_port(&self) -> u32 {
        self.udp_port.into()
    }

    /// The ICE-TCP port (the HTTP port when they share it; 0 when TCP candidates are off).
    #[napi(getter)]
    pub fn tcp_port(&self) -> u32 {
        self.tcp_port.into()
    }

    /// Whether `close()` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.shared.with(|_| ()).is_err()
    }

    /// Stops the server: every viewer is disconnected, the ports are released, every stream is
    /// closed, pending events are delivered and the listeners released; after it resolves nothing
    /// of the server keeps the process alive. Idempotent.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close(&self) -> AsyncTask<CloseTask> {
        AsyncTask::new(CloseTask {
            shared: self.shared.clone(),
        })
    }
}
