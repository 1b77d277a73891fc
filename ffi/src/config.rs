//! `rtcast_config`: the settings a server is started with.

use std::ffi::{c_char, c_void, CString};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rtcast_core::{
    AuthRequest, AuthorizeHook, CandidatePolicy, IceServer, Protocol, ServerConfig, TlsConfig,
    TurnSecret,
};

use crate::event::rtcast_protocol;

use crate::error::{guard, guard_void, rtcast_result, str_arg, Failure, FfiResult};
use crate::handle::{self, borrow, out, Handle};

/// Settings of a server (opaque). Made by `rtcast_config_new`, changed by the
/// `rtcast_config_set_*`/`_add_*` calls, read (not consumed) by `rtcast_server_start`, freed by
/// `rtcast_config_free` exactly once.
///
/// A config is not synchronized: do not change it from two threads at once, nor while
/// `rtcast_server_start` reads it.
pub struct rtcast_config {
    magic: u64,
    pub(crate) inner: ServerConfig,
    /// `rtcast_config_add_cors_origin` was called: the default `"*"` is gone.
    cors_set: bool,
}

impl Handle for rtcast_config {
    const NAME: &'static str = "config";
    const MAGIC: u64 = 0x7274_6361_7374_6366; // "rtcastcf"
    fn magic(&self) -> u64 {
        self.magic
    }
    fn clear_magic(&mut self) {
        self.magic = 0;
    }
}

/// Changes the config behind `config` with `f`.
///
/// # Safety
/// `config` must be NULL or a live config, not used by another thread during the call.
unsafe fn with_config(
    config: *mut rtcast_config,
    f: impl FnOnce(&mut ServerConfig) -> FfiResult,
) -> FfiResult {
    borrow(config.cast_const())?;
    f(&mut (*config).inner)
}

/// Parses an IP address argument.
unsafe fn ip_arg(s: *const c_char, what: &str) -> FfiResult<IpAddr> {
    let s = str_arg(s, what)?;
    s.parse().map_err(|_| {
        Failure::invalid(format!(
            "{what} {s:?} is not an IP address (e.g. \"0.0.0.0\", \"127.0.0.1\", \"::\")"
        ))
    })
}

/// A path argument: bytes as given on Unix, UTF-8 elsewhere.
unsafe fn path_arg(s: *const c_char, what: &str) -> FfiResult<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        if s.is_null() {
            return Err(Failure::null(what));
        }
        let bytes = std::ffi::CStr::from_ptr(s).to_bytes();
        if bytes.is_empty() {
            return Err(Failure::invalid(format!("{what} is empty")));
        }
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        let s = str_arg(s, what)?;
        if s.is_empty() {
            return Err(Failure::invalid(format!("{what} is empty")));
        }
        Ok(PathBuf::from(s))
    }
}

/// Creates a config with the defaults: every interface (`0.0.0.0`), HTTP port 8080, media UDP
/// port the same number as the HTTP port, no TLS, 1000 viewers per stream, 5000 per server,
/// 15 s connect timeout. On success `*out_config` owns a new config: free it with
/// `rtcast_config_free`.
///
/// # Safety
/// `out_config` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_new(out_config: *mut *mut rtcast_config) -> rtcast_result {
    guard("rtcast_config_new", || {
        let slot = out(out_config, "out_config")?;
        *slot = handle::into_raw(rtcast_config {
            magic: rtcast_config::MAGIC,
            inner: ServerConfig::default(),
            cors_set: false,
        });
        Ok(())
    })
}

/// Frees a config. NULL is a no-op. Free each config exactly once; servers started from it are
/// not affected.
///
/// # Safety
/// `config` must be NULL or a live config not used by any other thread.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_free(config: *mut rtcast_config) {
    guard_void("rtcast_config_free", || {
        let _ = handle::free(config);
    })
}

/// Sets the address to listen on: `"0.0.0.0"` (all IPv4 interfaces, the default),
/// `"127.0.0.1"` (this machine only), `"::"`, or one interface's address.
///
/// # Safety
/// `config` must be NULL or a live config; `address` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_bind(
    config: *mut rtcast_config,
    address: *const c_char,
) -> rtcast_result {
    guard("rtcast_config_set_bind", || {
        borrow(config.cast_const())?;
        let ip = ip_arg(address, "address")?;
        with_config(config, |c| {
            c.bind = ip;
            Ok(())
        })
    })
}

/// Sets the TCP port of HTTP, WebSocket and HTTPS/WSS (default 8080; 0 picks a free port, see
/// `rtcast_server_port`).
///
/// # Safety
/// `config` must be NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_port(
    config: *mut rtcast_config,
    port: u16,
) -> rtcast_result {
    guard("rtcast_config_set_port", || {
        with_config(config, |c| {
            c.port = port;
            Ok(())
        })
    })
}

/// Sets the UDP port that carries the media of every viewer (default: the same number as the
/// HTTP port; 0 picks a free port).
///
/// # Safety
/// `config` must be NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_udp_port(
    config: *mut rtcast_config,
    port: u16,
) -> rtcast_result {
    guard("rtcast_config_set_udp_port", || {
        with_config(config, |c| {
            c.udp_port = Some(port);
            Ok(())
        })
    })
}

/// Sets the TCP port of ICE-TCP, for viewers whose network blocks UDP (default: the same number
/// as the UDP media port, served on the HTTP listener when that is the HTTP port; 0 picks a free
/// port).
///
/// # Safety
/// `config` must be NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_tcp_port(
    config: *mut rtcast_config,
    port: u16,
) -> rtcast_result {
    guard("rtcast_config_set_tcp_port", || {
        with_config(config, |c| {
            c.tcp_port = Some(port);
            Ok(())
        })
    })
}

/// Sets which ICE candidates viewers are offered: a list of `udp`, `tcp`, `local`, `public`
/// separated by commas or spaces (transports named without addresses get every address, and
/// the other way round). Default `"udp,tcp,local,public"`: UDP first, TCP as the fallback. An
/// unknown word is `RTCAST_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` must be NULL or a live config; `policy` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_candidates(
    config: *mut rtcast_config,
    policy: *const c_char,
) -> rtcast_result {
    guard("rtcast_config_set_candidates", || {
        borrow(config.cast_const())?;
        let policy: CandidatePolicy = str_arg(policy, "policy")?.parse()?;
        with_config(config, |c| {
            c.candidates = policy;
            Ok(())
        })
    })
}

/// Adds a public address to announce to viewers for 1:1 NAT (a cloud VM's public IP), in
/// addition to the addresses the UDP socket listens on.
///
/// # Safety
/// `config` must be NULL or a live config; `address` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_add_public_ip(
    config: *mut rtcast_config,
    address: *const c_char,
) -> rtcast_result {
    guard("rtcast_config_add_public_ip", || {
        borrow(config.cast_const())?;
        let ip = ip_arg(address, "address")?;
        with_config(config, |c| {
            c.public_ips.push(ip);
            Ok(())
        })
    })
}

/// Adds a STUN or TURN server handed to viewers. `url` is `stun:host:port` or
/// `turn:host:port?transport=udp`; `username` and `credential` may be NULL (STUN).
///
/// # Safety
/// `config` must be NULL or a live config; the strings NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_add_ice_server(
    config: *mut rtcast_config,
    url: *const c_char,
    username: *const c_char,
    credential: *const c_char,
) -> rtcast_result {
    guard("rtcast_config_add_ice_server", || {
        borrow(config.cast_const())?;
        let url = str_arg(url, "url")?;
        let optional = |s: *const c_char, what| -> FfiResult<Option<String>> {
            if s.is_null() {
                Ok(None)
            } else {
                str_arg(s, what).map(|s| Some(s.to_owned()))
            }
        };
        let server = IceServer {
            urls: vec![url.to_owned()],
            username: optional(username, "username")?,
            credential: optional(credential, "credential")?,
        };
        with_config(config, |c| {
            c.ice_servers.push(server);
            Ok(())
        })
    })
}

/// Hands viewers a TURN server that shares `secret` with rtcast (coturn's `use-auth-secret` +
/// `static-auth-secret`): each viewer gets a user name `"<expiry>:<viewer id>"` and the
/// password base64(HMAC-SHA1(secret, user name)), valid for `ttl_seconds` (0: 24 hours). Add
/// the server's URLs with `rtcast_config_add_turn_url`; `rtcast_server_start` refuses a secret
/// without URLs (and an empty secret) with `RTCAST_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` must be NULL or a live config; `secret` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_turn_secret(
    config: *mut rtcast_config,
    secret: *const c_char,
    ttl_seconds: u32,
) -> rtcast_result {
    guard("rtcast_config_set_turn_secret", || {
        borrow(config.cast_const())?;
        let secret = str_arg(secret, "secret")?.to_owned();
        let ttl = match ttl_seconds {
            0 => TurnSecret::DEFAULT_TTL,
            s => Duration::from_secs(u64::from(s)),
        };
        with_config(config, |c| {
            let turn = c
                .turn_secret
                .get_or_insert_with(|| TurnSecret::new(Vec::new(), ""));
            turn.secret = secret;
            turn.ttl = ttl;
            Ok(())
        })
    })
}

/// Adds a URL of the TURN server set with `rtcast_config_set_turn_secret`:
/// `turn:host:port?transport=udp`, `turn:host:port?transport=tcp` or `turns:host:port`.
/// `rtcast_server_start` refuses other schemes with `RTCAST_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` must be NULL or a live config; `url` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_add_turn_url(
    config: *mut rtcast_config,
    url: *const c_char,
) -> rtcast_result {
    guard("rtcast_config_add_turn_url", || {
        borrow(config.cast_const())?;
        let url = str_arg(url, "url")?.to_owned();
        with_config(config, |c| {
            c.turn_secret
                .get_or_insert_with(|| TurnSecret::new(Vec::new(), ""))
                .urls
                .push(url);
            Ok(())
        })
    })
}

/// Serves HTTPS/WSS with a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or
/// SEC1). The files are read by `rtcast_server_start`, which fails with `RTCAST_ERR_TLS` if they
/// cannot be used.
///
/// # Safety
/// `config` must be NULL or a live config; the paths NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_tls(
    config: *mut rtcast_config,
    cert_pem_path: *const c_char,
    key_pem_path: *const c_char,
) -> rtcast_result {
    guard("rtcast_config_set_tls", || {
        borrow(config.cast_const())?;
        let tls = TlsConfig {
            cert_pem: path_arg(cert_pem_path, "cert_pem_path")?,
            key_pem: path_arg(key_pem_path, "key_pem_path")?,
        };
        with_config(config, |c| {
            c.tls = Some(tls);
            Ok(())
        })
    })
}

/// Sets the most viewers of one stream (default 1000). Checked by `rtcast_server_start`: 0 is
/// refused there with `RTCAST_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` must be NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_max_viewers_per_stream(
    config: *mut rtcast_config,
    max: usize,
) -> rtcast_result {
    guard("rtcast_config_set_max_viewers_per_stream", || {
        with_config(config, |c| {
            c.limits.max_viewers_per_stream = max;
            Ok(())
        })
    })
}

/// Sets the most viewers of the whole server (default 5000). Checked by `rtcast_server_start`:
/// 0 is refused there with `RTCAST_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` must be NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_max_viewers(
    config: *mut rtcast_config,
    max: usize,
) -> rtcast_result {
    guard("rtcast_config_set_max_viewers", || {
        with_config(config, |c| {
            c.limits.max_viewers = max;
            Ok(())
        })
    })
}

/// Sets the most viewers signalling from one IP address whose media has not connected yet
/// (default 64). Checked by `rtcast_server_start`: 0 is refused there with
/// `RTCAST_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` must be NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_max_connecting_per_address(
    config: *mut rtcast_config,
    max: usize,
) -> rtcast_result {
    guard("rtcast_config_set_max_connecting_per_address", || {
        with_config(config, |c| {
            c.limits.max_connecting_per_address = max;
            Ok(())
        })
    })
}

/// Sets the most viewers of the whole server whose media has not connected yet (default 1000).
/// Checked by `rtcast_server_start`: 0 is refused there with `RTCAST_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` must be NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_max_connecting(
    config: *mut rtcast_config,
    max: usize,
) -> rtcast_result {
    guard("rtcast_config_set_max_connecting", || {
        with_config(config, |c| {
            c.limits.max_connecting = max;
            Ok(())
        })
    })
}

/// Sets the number of media loops: threads that share the viewers, all on the one UDP port
/// (default 0: one per core). Checked by `rtcast_server_start`: more than 62 is refused there
/// with `RTCAST_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` must be NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_media_loops(
    config: *mut rtcast_config,
    loops: usize,
) -> rtcast_result {
    guard("rtcast_config_set_media_loops", || {
        with_config(config, |c| {
            c.media_loops = loops;
            Ok(())
        })
    })
}

/// Sets the time a viewer has from opening its signalling connection to connected media before
/// it is dropped, in milliseconds (default 15000). Checked by `rtcast_server_start`: 0 is
/// refused there with `RTCAST_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` must be NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_connect_timeout_ms(
    config: *mut rtcast_config,
    ms: u32,
) -> rtcast_result {
    guard("rtcast_config_set_connect_timeout_ms", || {
        with_config(config, |c| {
            c.limits.connect_timeout = Duration::from_millis(u64::from(ms));
            Ok(())
        })
    })
}

/// Sets the time a connected viewer may go without ICE consent (its STUN checks) before it is
/// reaped, in milliseconds (default 10000). Checked by `rtcast_server_start`: 0 is refused there
/// with `RTCAST_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` must be NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_consent_timeout_ms(
    config: *mut rtcast_config,
    ms: u32,
) -> rtcast_result {
    guard("rtcast_config_set_consent_timeout_ms", || {
        with_config(config, |c| {
            c.limits.consent_timeout = Duration::from_millis(u64::from(ms));
            Ok(())
        })
    })
}

/// Sets the largest WebSocket message or WHEP request body accepted from a viewer, in bytes
/// (default 65536). Checked by `rtcast_server_start`: under 1024 is refused there with
/// `RTCAST_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `config` must be NULL or a live config.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_max_message_bytes(
    config: *mut rtcast_config,
    max: usize,
) -> rtcast_result {
    guard("rtcast_config_set_max_message_bytes", || {
        with_config(config, |c| {
            c.limits.max_ws_message_bytes = max;
            Ok(())
        })
    })
}

/// Adds an origin allowed to call WHEP and `media_info.json` from another page (CORS), e.g.
/// `"https://example.com"`. The default allows any (`"*"`); the first call replaces that
/// default, later calls add to the list; a listed `Origin` is echoed back.
///
/// # Safety
/// `config` must be NULL or a live config; `origin` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_add_cors_origin(
    config: *mut rtcast_config,
    origin: *const c_char,
) -> rtcast_result {
    guard("rtcast_config_add_cors_origin", || {
        let handle = borrow(config.cast_const())?;
        let origin = str_arg(origin, "origin")?.trim();
        if origin.is_empty() {
            return Err(Failure::invalid("origin is empty"));
        }
        let first = !handle.cors_set;
        let origin = origin.to_owned();
        with_config(config, |c| {
            if first {
                c.cors_origins.clear();
            }
            c.cors_origins.push(origin);
            Ok(())
        })?;
        (*config).cors_set = true;
        Ok(())
    })
}

/// What the authorization callback is asked: may this viewer watch? The strings are valid
/// during the call only.
#[repr(C)]
pub struct rtcast_auth_request {
    /// Stream name.
    pub stream: *const c_char,
    /// `?token=` of the WebSocket URL or the WHEP `Authorization: Bearer` value; NULL when the
    /// viewer gave none.
    pub token: *const c_char,
    /// `ip:port` of the viewer's signalling connection.
    pub remote: *const c_char,
    /// The signalling protocol it came through.
    pub protocol: rtcast_protocol,
}

/// Decides whether a viewer may watch: true admits it, false refuses it (WebSocket close 4403,
/// WHEP 403, or 401 when it gave no token). Called once per connecting viewer, before anything
/// is sent to it, on a thread of the server's pool: calls for different viewers may run at the
/// same time, so it must be thread-safe; a slow callback delays only the viewer it decides
/// about. `userdata` is the pointer given to `rtcast_config_set_authorize`. It must not unwind
/// (C++ exceptions, longjmp) out of itself.
#[allow(non_camel_case_types)]
pub type rtcast_authorize_callback = Option<
    unsafe extern "C" fn(request: *const rtcast_auth_request, userdata: *mut c_void) -> bool,
>;

/// The host's callback and userdata, as the core's hook.
struct Authorize {
    callback: unsafe extern "C" fn(*const rtcast_auth_request, *mut c_void) -> bool,
    userdata: *mut c_void,
}

// SAFETY: by registering the callback the host promises that it and `userdata` may be used from
// any thread, at the same time (documented on rtcast_authorize_callback).
unsafe impl Send for Authorize {}
unsafe impl Sync for Authorize {}

impl Authorize {
    fn ask(&self, req: &AuthRequest) -> bool {
        let stream = c_text(&req.stream);
        let token = req.token.as_deref().map(c_text);
        let remote = c_text(&req.remote.to_string());
        let request = rtcast_auth_request {
            stream: stream.as_ptr(),
            token: token.as_ref().map_or(std::ptr::null(), |t| t.as_ptr()),
            remote: remote.as_ptr(),
            protocol: match req.protocol {
                Protocol::WebSocket => rtcast_protocol::RTCAST_PROTOCOL_WEBSOCKET,
                Protocol::Whep => rtcast_protocol::RTCAST_PROTOCOL_WHEP,
            },
        };
        // SAFETY: the host registered this callback for these calls; `request` and its strings
        // live until it returns.
        unsafe { (self.callback)(&request, self.userdata) }
    }
}

/// A string for C: anything from a NUL on is cut (a token holding one is cut, not refused here;
/// the hook sees what is before it).
fn c_text(s: &str) -> CString {
    CString::new(s.split('\0').next().unwrap_or_default()).unwrap_or_default()
}

/// Sets the authorization callback (see `rtcast_authorize_callback`); NULL lets every viewer in
/// (the default). The config keeps `userdata` for every server started from it: it must stay
/// valid while those servers run.
///
/// # Safety
/// `config` must be NULL or a live config; `callback`, if not NULL, must be safe to call with
/// `userdata` from any thread, concurrently, while a server started from this config runs.
#[no_mangle]
pub unsafe extern "C" fn rtcast_config_set_authorize(
    config: *mut rtcast_config,
    callback: rtcast_authorize_callback,
    userdata: *mut c_void,
) -> rtcast_result {
    guard("rtcast_config_set_authorize", || {
        with_config(config, |c| {
            c.authorize = callback.map(|callback| {
                let hook = Authorize { callback, userdata };
                let hook: AuthorizeHook = Arc::new(move |req: &AuthRequest| hook.ask(req));
                hook
            });
            Ok(())
        })
    })
}
