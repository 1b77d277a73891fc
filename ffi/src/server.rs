//! `rtcast_server`: start, streams, URLs, events, stats, stop.

use std::ffi::{c_char, c_void};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

use rtcast_core::{Server, ServerStats};

use crate::config::rtcast_config;
use crate::error::{guard, guard_void, rtcast_result, str_arg, write_str, Failure, FfiResult};
use crate::event::{rtcast_event_callback, EventThread};
use crate::handle::{self, borrow, out, Handle};
use crate::stream::rtcast_stream;
use crate::stream_options::rtcast_stream_options;

/// A running server (opaque). Made by `rtcast_server_start`, freed by `rtcast_server_free`
/// exactly once (which stops it first if needed).
///
/// Every call on a server may be made from any thread, concurrently with the others, except
/// `rtcast_server_free`, which must be the last call on the handle and must not race with any
/// other call on it.
pub struct rtcast_server {
    magic: u64,
    /// `None` once stopped.
    server: RwLock<Option<Server>>,
    /// The thread that calls the event callback, if one is set. Never held while joining it.
    events: Mutex<Option<EventThread>>,
    /// Serializes `rtcast_server_set_event_callback`.
    setter: Mutex<()>,
}

impl Handle for rtcast_server {
    const NAME: &'static str = "server";
    const MAGIC: u64 = 0x7274_6361_7374_7376; // "rtcastsv"
    fn magic(&self) -> u64 {
        self.magic
    }
    fn clear_magic(&mut self) {
        self.magic = 0;
    }
}

impl rtcast_server {
    /// The running server, or `RTCAST_ERR_STOPPED`.
    fn running(&self) -> FfiResult<RwLockReadGuard<'_, Option<Server>>> {
        let guard = self.server.read().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            return Err(rtcast_core::Error::ServerStopped.into());
        }
        Ok(guard)
    }

    fn with<T>(&self, f: impl FnOnce(&Server) -> FfiResult<T>) -> FfiResult<T> {
        let guard = self.running()?;
        f(guard.as_ref().expect("checked by running()"))
    }

    fn lock_events(&self) -> MutexGuard<'_, Option<EventThread>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the server, then the event thread after it delivered what the stop produced.
    fn stop(&self) {
        let server = self
            .server
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut server) = server {
            server.stop();
        }
        // The server is stopped: its event thread delivers the last events, then ends.
        let thread = self.lock_events().take();
        if let Some(thread) = thread {
            thread.wait();
        }
    }
}

/// Server-wide counters, filled by `rtcast_server_stats`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct rtcast_server_stats {
    /// Viewers connected now.
    pub viewers: u64,
    /// Viewers that ever connected.
    pub viewers_total: u64,
    /// Streams that exist now.
    pub streams: u64,
    /// UDP datagrams sent (RTP, RTCP, DTLS, STUN).
    pub packets_sent: u64,
    /// Bytes of those datagrams.
    pub bytes_sent: u64,
    /// Datagrams dropped because the socket buffer was full.
    pub send_drops: u64,
    /// NACK feedback packets received.
    pub nacks: u64,
    /// PLI/FIR received.
    pub plis: u64,
    /// Keyframes asked of the host or of the encoder.
    pub keyframe_requests: u64,
    /// Frames dropped before reaching the viewers (media queue full).
    pub frames_dropped: u64,
    /// Median time from a viewer's signalling start to its first video packet, in ms
    /// (histogram estimate; 0 without data).
    pub ttff_p50_ms: f64,
    /// Events a subscriber lost because it read too slowly (for C: the event callback took so
    /// long that more than 1024 events queued up behind it).
    pub events_dropped: u64,
}

impl From<ServerStats> for rtcast_server_stats {
    fn from(s: ServerStats) -> Self {
        Self {
            viewers: s.viewers,
            viewers_total: s.viewers_total,
            streams: s.streams,
            packets_sent: s.packets_sent,
            bytes_sent: s.bytes_sent,
            send_drops: s.send_drops,
            nacks: s.nacks,
            plis: s.plis,
            keyframe_requests: s.keyframe_requests,
            frames_dropped: s.frames_dropped,
            ttff_p50_ms: s.ttff_p50_ms,
            events_dropped: s.events_dropped,
        }
    }
}

/// Starts a server with `config` (read, not consumed: free it when you like). Binds the HTTP
/// port and the media UDP port and returns once both listen; the server runs on its own
/// threads. On success `*out_server` owns the new server: stop it with `rtcast_server_stop`
/// and free it with `rtcast_server_free`.
///
/// Errors: `RTCAST_ERR_BIND` (port in use...), `RTCAST_ERR_TLS`, `RTCAST_ERR_INVALID_ARGUMENT`
/// (a limit of 0...).
///
/// # Safety
/// `config` must be NULL or a live config; `out_server` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rtcast_server_start(
    config: *const rtcast_config,
    out_server: *mut *mut rtcast_server,
) -> rtcast_result {
    guard("rtcast_server_start", || {
        let config = borrow(config)?;
        let slot = out(out_server, "out_server")?;
        let server = Server::start(config.inner.clone())?;
        *slot = handle::into_raw(rtcast_server {
            magic: rtcast_server::MAGIC,
            server: RwLock::new(Some(server)),
            events: Mutex::new(None),
            setter: Mutex::new(()),
        });
        Ok(())
    })
}

/// Stops the server: viewers are disconnected, the ports released, every stream closed (pushes
/// into them fail with `RTCAST_ERR_CLOSED`). Events the stop produces (viewers leaving) are
/// delivered, then the event thread is joined: once this returns, no callback runs any more
/// (unless called from the callback itself: then the thread ends when the callback returns).
/// Waits a few seconds at most. Stopping a stopped server is a no-op (`RTCAST_OK`). Any thread.
///
/// # Safety
/// `server` must be NULL or a live server.
#[no_mangle]
pub unsafe extern "C" fn rtcast_server_stop(server: *mut rtcast_server) -> rtcast_result {
    guard("rtcast_server_stop", || {
        borrow(server.cast_const())?.stop();
        Ok(())
    })
}

/// Stops the server (see `rtcast_server_stop`) and frees the handle. NULL is a no-op. Stream
/// handles got from it stay valid (pushes fail with `RTCAST_ERR_CLOSED`) until each is freed.
///
/// # Safety
/// `server` must be NULL or a live server, with no other call on it running or to come.
#[no_mangle]
pub unsafe extern "C" fn rtcast_server_free(server: *mut rtcast_server) {
    guard_void("rtcast_server_free", || {
        if let Ok(s) = borrow(server.cast_const()) {
            s.stop();
            let _ = handle::free(server);
        }
    })
}

/// Gets the stream called `name`, creating it (video, plus an Opus audio track) if it does not
/// exist yet. Names are 1-128 characters of `A-Z a-z 0-9 _ - .`. On success `*out_stream` owns a
/// new handle to the stream: free it with `rtcast_stream_free` (which frees the handle only; the
/// stream lives on in the server until `rtcast_server_remove_stream` or the server stops).
/// Several handles to one stream may exist. After stop: `RTCAST_ERR_STOPPED`. Any thread.
///
/// # Safety
/// `server` must be NULL or a live server; `name` NULL or NUL-terminated; `out_stream` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn rtcast_server_stream(
    server: *const rtcast_server,
    name: *const c_char,
    out_stream: *mut *mut rtcast_stream,
) -> rtcast_result {
    guard("rtcast_server_stream", || {
        let server = borrow(server)?;
        let name = str_arg(name, "name")?;
        let slot = out(out_stream, "out_stream")?;
        let stream = server.with(|s| Ok(s.stream(name)?))?;
        *slot = rtcast_stream::new_raw(stream);
        Ok(())
    })
}

/// Like `rtcast_server_stream`, but a stream that does not exist yet is created with `options`
/// (video codec, audio track, encoder settings). An existing stream is returned if its video
/// codec and audio track match `options`; otherwise `RTCAST_ERR_INVALID_ARGUMENT` says what
/// differs. `options` is only read: free it when convenient. Any thread.
///
/// # Safety
/// `server` must be NULL or a live server; `name` NULL or NUL-terminated; `options` NULL or live
/// stream options; `out_stream` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rtcast_server_stream_with(
    server: *const rtcast_server,
    name: *const c_char,
    options: *const rtcast_stream_options,
    out_stream: *mut *mut rtcast_stream,
) -> rtcast_result {
    guard("rtcast_server_stream_with", || {
        let server = borrow(server)?;
        let name = str_arg(name, "name")?;
        let options = rtcast_stream_options::get(options)?.clone();
        let slot = out(out_stream, "out_stream")?;
        let stream = server.with(|s| Ok(s.stream_with(name, options)?))?;
        *slot = rtcast_stream::new_raw(stream);
        Ok(())
    })
}

/// Removes the stream called `name`: its viewers are disconnected and pushes through any handle
/// to it fail with `RTCAST_ERR_CLOSED` from now on (the handles stay valid until freed).
/// `*out_removed` (optional, may be NULL) tells whether it existed. After stop:
/// `RTCAST_ERR_STOPPED`. Any thread.
///
/// # Safety
/// `server` must be NULL or a live server; `name` NULL or NUL-terminated; `out_removed` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn rtcast_server_remove_stream(
    server: *const rtcast_server,
    name: *const c_char,
    out_removed: *mut bool,
) -> rtcast_result {
    guard("rtcast_server_remove_stream", || {
        let server = borrow(server)?;
        let name = str_arg(name, "name")?;
        let removed = server.with(|s| Ok(s.remove_stream(name)))?;
        if let Some(out) = out_removed.as_mut() {
            *out = removed;
        }
        Ok(())
    })
}

/// Writes `url(server, name)` into the caller's buffer, as the three URL calls do.
///
/// # Safety
/// As `rtcast_server_url`.
unsafe fn write_url(
    server: *const rtcast_server,
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
    url: fn(&Server, &str) -> String,
) -> FfiResult {
    let server = borrow(server)?;
    let name = str_arg(name, "name")?;
    let url = server.with(|s| Ok(url(s, name)))?;
    write_str(&url, buf, len, out_len)
}

/// Writes the player page URL of stream `name` (`http://127.0.0.1:8080/NAME/embed.html`),
/// NUL-terminated, into `buf` of `len` bytes and its length without the NUL into `*out_len`.
/// Too small a buffer: `RTCAST_ERR_BUFFER_TOO_SMALL`, `buf` untouched, `*out_len` = length
/// needed without the NUL (pass `buf` NULL and `len` 0 to ask). After stop:
/// `RTCAST_ERR_STOPPED`. Any thread.
///
/// # Safety
/// `server` must be NULL or a live server; `name` NULL or NUL-terminated; `buf` NULL or
/// writable for `len` bytes; `out_len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rtcast_server_url(
    server: *const rtcast_server,
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> rtcast_result {
    guard("rtcast_server_url", || {
        write_url(server, name, buf, len, out_len, Server::url)
    })
}

/// Like `rtcast_server_url`, for the Flussonic WebSocket URL of stream `name`
/// (`ws://127.0.0.1:8080/NAME/webrtc`) that players connect to.
///
/// # Safety
/// As `rtcast_server_url`.
#[no_mangle]
pub unsafe extern "C" fn rtcast_server_ws_url(
    server: *const rtcast_server,
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> rtcast_result {
    guard("rtcast_server_ws_url", || {
        write_url(server, name, buf, len, out_len, Server::ws_url)
    })
}

/// Like `rtcast_server_url`, for the WHEP endpoint of stream `name`
/// (`http://127.0.0.1:8080/NAME/whep`) that WHEP players POST their offer to.
///
/// # Safety
/// As `rtcast_server_url`.
#[no_mangle]
pub unsafe extern "C" fn rtcast_server_whep_url(
    server: *const rtcast_server,
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> rtcast_result {
    guard("rtcast_server_whep_url", || {
        write_url(server, name, buf, len, out_len, Server::whep_url)
    })
}

/// Writes the TCP port HTTP/WebSocket listens on into `*out_port` (useful with port 0). After
/// stop: `RTCAST_ERR_STOPPED`. Any thread.
///
/// # Safety
/// `server` must be NULL or a live server; `out_port` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rtcast_server_port(
    server: *const rtcast_server,
    out_port: *mut u16,
) -> rtcast_result {
    guard("rtcast_server_port", || {
        let server = borrow(server)?;
        let slot = out(out_port, "out_port")?;
        *slot = server.with(|s| Ok(s.http_addr().port()))?;
        Ok(())
    })
}

/// Writes the TCP port of ICE-TCP into `*out_port`: the HTTP port when they share it, 0 when the
/// candidate policy leaves TCP out. After stop: `RTCAST_ERR_STOPPED`. Any thread.
///
/// # Safety
/// `server` must be NULL or a live server; `out_port` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rtcast_server_tcp_port(
    server: *const rtcast_server,
    out_port: *mut u16,
) -> rtcast_result {
    guard("rtcast_server_tcp_port", || {
        let server = borrow(server)?;
        let slot = out(out_port, "out_port")?;
        *slot = server.with(|s| Ok(s.tcp_addrs().first().map_or(0, |a| a.port())))?;
        Ok(())
    })
}

/// Sets the function that receives this server's events (`callback` NULL removes it).
///
/// The callback runs on one dedicated rtcast thread, one call at a time, never concurrently
/// with itself, with `userdata` as given (so `userdata` must be usable from that thread). A
/// callback set earlier is replaced: the old one first receives the events already queued, and
/// the new one goes on from there (none is lost). `rtcast_server_stop` and `rtcast_server_free`
/// deliver the events of the shutdown, then join the thread: after they return, no callback
/// runs. Must not be called from inside an event callback (`RTCAST_ERR_INVALID_ARGUMENT`).
/// After stop: `RTCAST_ERR_STOPPED`. Any other thread.
///
/// # Safety
/// `server` must be NULL or a live server; `callback`, if not NULL, must be safe to call with
/// `userdata` from another thread until the server is stopped or the callback replaced.
#[no_mangle]
pub unsafe extern "C" fn rtcast_server_set_event_callback(
    server: *const rtcast_server,
    callback: rtcast_event_callback,
    userdata: *mut c_void,
) -> rtcast_result {
    guard("rtcast_server_set_event_callback", || {
        let server = borrow(server)?;
        if crate::event::on_event_thread() {
            return Err(Failure::invalid(
                "cannot be called from inside an event callback; call it from another thread",
            ));
        }
        // One setter at a time. No other lock is held while the old thread is joined, so its
        // callback may still call rtcast_server_stop without a deadlock.
        let _setter = server.setter.lock().unwrap_or_else(|e| e.into_inner());
        drop(server.running()?);
        let old = server.lock_events().take();
        let events = old.and_then(EventThread::stop);
        let running = server.running()?;
        let s = running.as_ref().expect("checked by running()");
        // Keep the old subscription (and what is queued in it) for the new callback.
        let events = events.unwrap_or_else(|| s.subscribe());
        if let Some(callback) = callback {
            let thread = EventThread::start(events, callback, userdata).map_err(|e| {
                Failure::new(
                    rtcast_result::RTCAST_ERR_INTERNAL,
                    format!("cannot start the event thread: {e}"),
                )
            })?;
            *server.lock_events() = Some(thread);
        }
        Ok(())
    })
}

/// Fills `*out_stats` with the server's counters. After stop: `RTCAST_ERR_STOPPED`. Any thread.
///
/// # Safety
/// `server` must be NULL or a live server; `out_stats` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rtcast_server_stats(
    server: *const rtcast_server,
    out_stats: *mut rtcast_server_stats,
) -> rtcast_result {
    guard("rtcast_server_stats", || {
        let server = borrow(server)?;
        let slot = out(out_stats, "out_stats")?;
        *slot = server.with(|s| Ok(s.stats()))?.into();
        Ok(())
    })
}
