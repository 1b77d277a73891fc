//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`; not part of the API).
//! Each takes the bytes a peer or a host controls and runs rtcast's own code on them the way the
//! server does, so that a crash here is a crash a peer could cause.
//!
//! One `pub fn TARGET(data: &[u8])` per target of `fuzz/fuzz_targets`: the fuzz target and the
//! replay of its corpus (`core/tests/fuzz_corpus.rs`) both call it, so they decode an input the
//! same way. A target that needs a server or a media plane keeps one for the whole process (a
//! fuzzer runs millions of inputs), in a static of its own.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use tower::ServiceExt;

use crate::config::{CandidatePolicy, Limits, Protocol};
use crate::http::Remote;
use crate::media::pixel::{to_i420, I420Buffer, PixelFormat, RawFrame};
use crate::metrics::Metrics;
use crate::plane::{MediaPlane, NewViewer, Path, PlaneConfig, Proto, StreamInfo};
use crate::server::ServerShared;
use crate::session::peer::{PeerTemplate, TrackSpec};
use crate::signal::whep::TrickleFragment;
use crate::{Server, ServerConfig, Stream, StreamOptions, VideoCodec};

/// Runs `run` on the value in `cell`, made by `new` on first use. A panic (a crash the fuzzer
/// reports) may poison the lock; the replay test then goes on with the same value.
fn with<T>(cell: &Mutex<Option<T>>, new: impl FnOnce() -> T, run: impl FnOnce(&mut T)) {
    let mut held = cell.lock().unwrap_or_else(|e| e.into_inner());
    run(held.get_or_insert_with(new));
}

/// `ws_message`: a WebSocket text message from a viewer (`signal::message`).
pub fn ws_message(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::signal::message::parse_client_message(&text);
}

/// `rtcp`: RTCP from a viewer, decrypted (what `MediaPlane` reads NACKs, PLIs and REMB from).
pub fn rtcp(data: &[u8]) {
    if let Ok(f) = crate::plane::read_feedback(data, 0x1234_5678) {
        assert!(f.nacked.len() <= crate::plane::history::HISTORY_PACKETS);
    }
}

/// `tcp_frames`: a byte stream on an ICE-TCP connection (its RFC 4571 frames), and the STUN
/// USERNAME the first media loop routes a connection's first frame by.
pub fn tcp_frames(data: &[u8]) {
    crate::net::tcp::read_all_frames(data);
    let _ = crate::net::stun::local_ufrag(data);
}

/// `datagram`: one datagram (or ICE-TCP frame) reaching a [`PlaneTarget`]; the first byte picks
/// the path, the rest is the packet.
pub fn datagram(data: &[u8]) {
    static PLANE: Mutex<Option<PlaneTarget>> = Mutex::new(None);
    with(&PLANE, PlaneTarget::new, |t| t.datagram(data));
}

/// `sdp`: SDP from a viewer, as a WHEP offer and as a WebSocket answer ([`SdpTarget`]).
pub fn sdp(data: &[u8]) {
    static PLANE: Mutex<Option<SdpTarget>> = Mutex::new(None);
    with(&PLANE, SdpTarget::new, |t| t.run(data));
}

/// A server started on loopback with one stream, for the targets that push into a stream.
// Setup from constants: a failure here is a broken harness, not an input to survive.
#[allow(clippy::expect_used)]
fn stream_server(options: StreamOptions) -> (Server, Stream) {
    let server = Server::start(ServerConfig::loopback()).expect("a server");
    let stream = server.stream_with("fuzz", options).expect("a stream");
    (server, stream)
}

/// `h264`: H.264 Annex B pushed by a host: the parser, the access-unit splitter, and
/// `push_h264` with everything it validates and packetizes.
pub fn h264(data: &[u8]) {
    static HOST: Mutex<Option<(Server, Stream)>> = Mutex::new(None);
    let _ = crate::media::h264::split_annex_b(data);
    let _ = crate::media::h264::access_units(data);
    with(
        &HOST,
        || stream_server(StreamOptions::default()),
        |(_, stream)| {
            let _ = stream.push_h264(data, None);
        },
    );
}

/// `vp8_opus`: VP8 frames and Opus packets pushed by a host (the first byte picks which: even
/// VP8, odd Opus).
pub fn vp8_opus(data: &[u8]) {
    static HOST: Mutex<Option<(Server, Stream)>> = Mutex::new(None);
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    let options = || StreamOptions {
        video: VideoCodec::Vp8,
        ..StreamOptions::default()
    };
    with(
        &HOST,
        || stream_server(options()),
        |(_, stream)| {
            if which & 1 == 0 {
                let _ = crate::media::vp8::parse_frame(data);
                let _ = stream.push_vp8(data, None);
            } else {
                let _ = stream.push_opus(data, None);
            }
        },
    );
}

/// `raw_frame`: raw frame geometry from a host: format, width, height, strides and plane lengths
/// that need not agree; what validates is converted to I420 as the encoder thread would, the
/// rest refused. The first 16 bytes are the geometry, the rest the pixels.
pub fn raw_frame(data: &[u8]) {
    const FORMATS: [&str; 6] = ["i420", "nv12", "rgb24", "bgr24", "rgba", "bgra"];
    let Some((head, pixels)) = data.split_first_chunk::<16>() else {
        return;
    };
    let [f, w, h, s0, s0h, s1, s1h, s2, s2h, c0, c1, _, mode, _, _, _] = *head;
    let Some(format) = FORMATS
        .get(usize::from(f) % FORMATS.len())
        .and_then(|name| PixelFormat::from_name(name))
    else {
        return;
    };
    // Sizes up to 255x255 keep each run small; the checks are the same at any size.
    let (width, height) = (u32::from(w), u32::from(h));
    let stride = |lo, hi| usize::from(u16::from_le_bytes([lo, hi]));
    let strides = [stride(s0, s0h), stride(s1, s1h), stride(s2, s2h)];
    // Where the pixels are cut into three planes: at c0/256 and c1/256 of their length.
    let cut = |c: u8| usize::from(c) * pixels.len() / 256;
    let Some((a, rest)) = pixels.split_at_checked(cut(c0).min(pixels.len())) else {
        return;
    };
    let Some((b, c)) = rest.split_at_checked(cut(c1).min(rest.len())) else {
        return;
    };
    let frame = if mode & 1 == 0 {
        RawFrame::packed(format, width, height, pixels)
    } else {
        RawFrame::with_planes(format, width, height, [a, b, c], strides)
    };
    if let Ok(frame) = frame {
        let mut out = I420Buffer::new(frame.width, frame.height);
        assert_eq!(to_i420(&frame, &mut out).is_ok(), frame.validate().is_ok());
    }
}

/// The media plane of the `datagram` target: one stream and three viewers — one waiting for its
/// WebSocket answer, one answered (WHEP) whose address is known from a valid check, one over
/// TCP — fed datagrams.
struct PlaneTarget {
    plane: MediaPlane,
    now: Instant,
    paths: [Path; 3],
}

const SERVER: &str = "127.0.0.1:5000";

impl PlaneTarget {
    // Setup from constants: a failure here is a broken harness, not an input to survive.
    #[allow(clippy::expect_used)]
    fn new() -> Self {
        let server: SocketAddr = SERVER.parse().expect("an address");
        let template = PeerTemplate::new(&[server], &[server], &[], CandidatePolicy::default())
            .expect("a template");
        let limits = Limits::default();
        let mut plane = MediaPlane::new(PlaneConfig {
            admission: Arc::new(crate::plane::admission::Admission::new(&limits)),
            index: 0,
            loops: 1,
            limits,
            dtls: template.dtls_config().expect("a DTLS config"),
            template,
            metrics: Arc::new(Metrics::default()),
            epoch: (Instant::now(), SystemTime::now()),
        });
        plane.open_stream(StreamInfo {
            id: 1,
            counters: Default::default(),
            // Two renditions: its viewers' RTCP reaches the congestion controller and the
            // rendition choice too.
            ladder: vec![2_000_000, 600_000],
            spec: TrackSpec {
                stream: "fuzz".into(),
                video_codec: crate::media::VideoCodec::H264,
                video_ssrc: 0x1234_5678,
                audio_ssrc: Some(0x8765_4321),
                adaptive: true,
            },
        });
        let now = Instant::now();
        let path = |proto, port| Path {
            proto,
            local: server,
            remote: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let paths = [
            path(Proto::Udp, 6000),
            path(Proto::Udp, 6001),
            path(Proto::Tcp, 6002),
        ];
        let mut target = Self { plane, now, paths };
        for (path, offer) in
            paths
                .into_iter()
                .zip([None, Some(crate::session::peer::fuzz_offer()), None])
        {
            let created = target.plane.new_viewer(
                now,
                NewViewer {
                    stream: 1,
                    protocol: if offer.is_some() {
                        Protocol::Whep
                    } else {
                        Protocol::WebSocket
                    },
                    remote: path.remote,
                    started: now,
                    offer_sdp: offer,
                    rendition: None,
                },
            );
            let Ok(created) = created else { continue };
            // A valid check makes the viewer's address known: DTLS and RTCP from it reach its
            // session.
            if let Some((ufrag, pwd)) = target.plane.fuzz_credentials(created.id) {
                let check = crate::plane::ice::build_check(&format!("{ufrag}:remote"), &pwd);
                target.plane.handle_datagram(now, path, &check);
            }
        }
        target.drain();
        target
    }

    /// One datagram (or ICE-TCP frame): the first byte picks the path, the rest is the packet.
    fn datagram(&mut self, data: &[u8]) {
        let Some((&which, packet)) = data.split_first() else {
            return;
        };
        let Some(&path) = self.paths.get(usize::from(which) % self.paths.len()) else {
            return;
        };
        self.now += Duration::from_millis(1);
        self.plane.handle_datagram(self.now, path, packet);
        if which & 0x80 != 0 {
            self.plane.handle_timeout(self.now);
        }
        self.drain();
    }

    fn drain(&mut self) {
        while self.plane.poll_transmit(self.now).is_some() {}
        while self.plane.poll_output().is_some() {}
    }
}

/// The media plane of the `sdp` target: one stream, fed SDP: as a WHEP viewer's offer, and as a WebSocket viewer's
/// answer to our offer — what rtcast reads of each (the transport attributes, the payload types,
/// webrtc-rs's parser behind them).
struct SdpTarget {
    plane: PlaneTarget,
}

impl SdpTarget {
    fn new() -> Self {
        Self {
            plane: PlaneTarget::new(),
        }
    }

    fn run(&mut self, data: &[u8]) {
        let text = String::from_utf8_lossy(data).into_owned();
        let t = &mut self.plane;
        let viewer = |offer_sdp| NewViewer {
            stream: 1,
            protocol: Protocol::Whep,
            remote: SocketAddr::from(([127, 0, 0, 1], 7000)),
            started: t.now,
            offer_sdp,
            rendition: None,
        };
        let offered = viewer(Some(text.clone()));
        let bare = viewer(None);
        if let Ok(v) = t.plane.new_viewer(t.now, offered) {
            t.plane
                .close_viewer(t.now, v.id, crate::event::LeaveReason::Closed);
        }
        if let Ok(v) = t.plane.new_viewer(t.now, bare) {
            let _ = t.plane.apply_answer(t.now, v.id, text);
            t.plane
                .close_viewer(t.now, v.id, crate::event::LeaveReason::Closed);
        }
        t.drain();
    }
}

/// `http`: a request to the HTTP port, end to end through the router (every route, the CORS
/// layer, the extractors of paths, queries, headers and bodies) without a socket: served as
/// `http::listen` serves a request hyper has read, with the peer's address in `ConnectInfo`.
///
/// Input: byte 0 picks the method (bits 0-2), whether the path names the live WHEP session
/// (bit 3), an `If-Match` with its ETag (bit 4), the peer's address (bits 5-6) and a
/// `Content-Length` of the body's (bit 7); byte 1 the route ([`ROUTES`], low nibble) and its
/// stream (bits 4-5: `fuzz`, `locked`, the fuzzed segment, an unknown one). Then text lines: the
/// fuzzed segment (a stream name, a session id, a path tail, or the whole path), the query, header
/// lines (`name: value`, or a byte below 0x20 picking a name of [`HEADERS`] then the value) up to
/// an empty line, and the body.
pub fn http(data: &[u8]) {
    static SITE: Mutex<Option<HttpTarget>> = Mutex::new(None);
    with(&SITE, HttpTarget::new, |t| t.http(data));
}

/// `whep_patch`: a WHEP PATCH body (`application/trickle-ice-sdpfrag`, RFC 8840) to a live
/// session, through the router as a client sends it, after the fragment parser alone. The
/// session is POSTed (a valid offer whose ufrag is `fuzzufrag`) when there is none: a session
/// ends after 64 candidates, or at the connect timeout.
///
/// Input: byte 0 picks the Content-Type (bits 0-1: the fragment's, with a parameter, SDP's, none),
/// the `If-Match` (bits 2-3: none, the session's ETag, `*`, a stale one) and whether the path
/// names the session under another stream (bit 4); the rest is the body.
pub fn whep_patch(data: &[u8]) {
    static SITE: Mutex<Option<HttpTarget>> = Mutex::new(None);
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let fragment = String::from_utf8_lossy(body);
    let parsed = TrickleFragment::parse(&fragment);
    assert!(parsed.candidates.len() <= fragment.lines().count());
    assert!(parsed
        .candidates
        .iter()
        .all(|c| c.candidate.starts_with("candidate:")));
    with(&SITE, HttpTarget::new, |t| t.whep_patch(flags, body));
}

/// Routes of the router; `{S}` is the stream, `{ID}` a session id, `{X}` the fuzzed segment.
pub const ROUTES: [&str; 10] = [
    "/",
    "/metrics",
    "/{S}/webrtc",
    "/{S}/embed.html",
    "/{S}/whep",
    "/{S}/whep/{ID}",
    "/{S}/media_info.json",
    "/{S}/sessions/{ID}",
    "/{S}/sessions/{ID}/{X}",
    "/{X}",
];

/// Request headers rtcast (or axum, for the WebSocket upgrade) reads.
pub const HEADERS: [&str; 16] = [
    "content-type",
    "authorization",
    "if-match",
    "origin",
    "access-control-request-method",
    "access-control-request-headers",
    "access-control-request-private-network",
    "content-length",
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "x-sid",
    "accept",
    "host",
    "transfer-encoding",
];

const METHODS: [Method; 8] = [
    Method::GET,
    Method::POST,
    Method::PATCH,
    Method::DELETE,
    Method::PUT,
    Method::OPTIONS,
    Method::HEAD,
    Method::TRACE,
];

/// Peers' addresses: a few, so that the per-address limits are met as well as missed.
const PEERS: [&str; 4] = [
    "127.0.0.1:40000",
    "127.0.0.2:40001",
    "[::1]:40002",
    "192.0.2.7:40003",
];

/// The token the `locked` stream wants (`Authorization: Bearer letmein` or `?token=letmein`).
pub const TOKEN: &str = "letmein";
/// The origin allowed by CORS (a listed one: `*` would echo none).
pub const ORIGIN: &str = "https://player.example";
/// The ICE ufrag of the offer behind the live session (a PATCH with another asks for a restart).
pub const UFRAG: &str = "fuzzufrag";

/// A server with two streams (`fuzz`: H.264 and Opus, open to all; `locked`: VP8 without audio,
/// behind [`TOKEN`]) whose router is called on a runtime of the target's own, and one WHEP
/// session of `fuzz` kept live.
struct HttpTarget {
    runtime: tokio::runtime::Runtime,
    shared: Arc<ServerShared>,
    app: axum::Router,
    /// A recvonly offer (made once: making one takes milliseconds) with [`UFRAG`].
    offer: String,
    _host: (Server, [Stream; 2]),
}

/// A response, read whole.
struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
}

impl HttpTarget {
    // Setup from constants: a failure here is a broken harness, not an input to survive.
    #[allow(clippy::expect_used)]
    fn new() -> Self {
        let mut config = ServerConfig::loopback();
        config.cors_origins = vec![ORIGIN.to_owned()];
        config.authorize = Some(Arc::new(|req: &crate::AuthRequest| {
            req.stream != "locked" || req.token.as_deref() == Some(TOKEN)
        }));
        let server = Server::start(config).expect("a server");
        let open = server.stream("fuzz").expect("a stream");
        let locked = server
            .stream_with(
                "locked",
                StreamOptions {
                    audio: false,
                    video: VideoCodec::Vp8,
                    ..StreamOptions::default()
                },
            )
            .expect("a stream");
        let shared = server.fuzz_shared();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let offer = crate::session::peer::fuzz_offer()
            .lines()
            .map(|l| {
                if l.starts_with("a=ice-ufrag:") {
                    format!("a=ice-ufrag:{UFRAG}\r\n")
                } else {
                    format!("{l}\r\n")
                }
            })
            .collect();
        Self {
            runtime,
            app: crate::http::router(shared.clone()),
            shared,
            offer,
            _host: (server, [open, locked]),
        }
    }

    /// Serves one request and reads its response whole; checks what holds of every response.
    fn serve(&mut self, req: Request<Body>, remote: SocketAddr) -> Reply {
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(ConnectInfo(Remote(remote)));
        let req = Request::from_parts(parts, body);
        let app = self.app.clone();
        let (status, headers, read) = self.runtime.block_on(async move {
            let Ok(res) = app.oneshot(req).await;
            let (parts, body) = res.into_parts();
            let read = axum::body::to_bytes(body, 1 << 20).await;
            // Lets the tasks the request spawned (a WHEP session's reaper) run.
            tokio::task::yield_now().await;
            (parts.status, parts.headers, read)
        });
        let code = status.as_u16();
        assert!((100..600).contains(&code), "status {code}");
        // What a peer sends is refused with a 4xx saying why, or 503 when a limit is reached:
        // a 500 is a fault of the server.
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{read:?}");
        assert!(read.is_ok(), "the body of a {code} response cannot be read");
        Reply { status, headers }
    }

    /// The live WHEP session of `fuzz` (its id and ETag), POSTed if there is none.
    fn live_session(&mut self) -> Option<(String, String)> {
        let live = |t: &Self| {
            let sessions = t.shared.whep.lock().unwrap_or_else(|e| e.into_inner());
            sessions
                .iter()
                .find(|(_, s)| s.stream == "fuzz")
                .map(|(id, s)| (id.clone(), s.etag.clone()))
        };
        if let Some(found) = live(self) {
            return Some(found);
        }
        let post = Request::post("/fuzz/whep")
            .header(header::CONTENT_TYPE, "application/sdp")
            .body(Body::from(self.offer.clone()))
            .ok()?;
        let reply = self.serve(post, SocketAddr::from(([127, 0, 0, 9], 9)));
        if reply.status != StatusCode::CREATED {
            return None;
        }
        assert!(reply.headers.contains_key(header::LOCATION));
        live(self)
    }

    fn http(&mut self, data: &[u8]) {
        let Some((&[how, route], rest)) = data.split_first_chunk::<2>() else {
            return;
        };
        let mut lines = rest.split(|&b| b == b'\n');
        let segment = lines.next().unwrap_or_default();
        let query = lines.next().unwrap_or_default();
        let mut headers = Vec::new();
        for line in lines.by_ref() {
            if line.is_empty() {
                break;
            }
            headers.push(line);
        }
        let body: Vec<u8> = lines.collect::<Vec<_>>().join(&b'\n');

        let live = if how & 0x08 != 0 || how & 0x10 != 0 {
            self.live_session()
        } else {
            None
        };
        let segment_text = percent_encode(segment);
        let stream = match (route >> 4) & 3 {
            0 => "fuzz",
            1 => "locked",
            2 => segment_text.as_str(),
            _ => "gone",
        };
        let id = match (&live, how & 0x08 != 0) {
            (Some((id, _)), true) => id.as_str(),
            _ => segment_text.as_str(),
        };
        let template = ROUTES
            .get(usize::from(route & 0x0f) % ROUTES.len())
            .copied()
            .unwrap_or("/");
        let mut uri = template
            .replace("{S}", stream)
            .replace("{ID}", id)
            .replace("{X}", &segment_text);
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(&percent_encode(query));
        }
        let Ok(uri) = Uri::try_from(uri) else {
            return;
        };
        let method = METHODS
            .get(usize::from(how & 0x07))
            .cloned()
            .unwrap_or(Method::GET);
        let body_len = body.len();
        let mut req = Request::new(Body::from(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        for line in headers {
            let (name, value) = match line.split_first() {
                Some((&pick, value)) if pick < 0x20 => {
                    let name = HEADERS.get(usize::from(pick) % HEADERS.len()).copied();
                    (name.map(HeaderName::from_static), value)
                }
                _ => {
                    let Some(colon) = line.iter().position(|&b| b == b':') else {
                        continue;
                    };
                    let (name, value) = line.split_at(colon);
                    let value = value.get(1..).unwrap_or_default();
                    (HeaderName::from_bytes(name).ok(), value.trim_ascii())
                }
            };
            if let (Some(name), Ok(value)) = (name, HeaderValue::from_bytes(value)) {
                h.append(name, value);
            }
        }
        if let (Some((_, etag)), true) = (&live, how & 0x10 != 0) {
            if let Ok(v) = HeaderValue::from_str(etag) {
                h.insert(header::IF_MATCH, v);
            }
        }
        if how & 0x80 != 0 {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
        }
        let peer = PEERS
            .get(usize::from(how >> 5) & 3)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 1)));
        self.serve(req, peer);
    }

    fn whep_patch(&mut self, flags: u8, body: &[u8]) {
        let Some((id, etag)) = self.live_session() else {
            return;
        };
        let stream = if flags & 0x10 == 0 { "fuzz" } else { "locked" };
        let mut req = Request::patch(format!("/{stream}/whep/{id}"));
        req = match flags & 3 {
            0 => req.header(header::CONTENT_TYPE, "application/trickle-ice-sdpfrag"),
            1 => req.header(
                header::CONTENT_TYPE,
                "Application/Trickle-ICE-SDPfrag; charset=utf-8",
            ),
            2 => req.header(header::CONTENT_TYPE, "application/sdp"),
            _ => req,
        };
        req = match (flags >> 2) & 3 {
            0 => req,
            1 => req.header(header::IF_MATCH, etag),
            2 => req.header(header::IF_MATCH, "*"),
            _ => req.header(header::IF_MATCH, "\"stale\""),
        };
        let Ok(req) = req.body(Body::from(body.to_vec())) else {
            return;
        };
        let reply = self.serve(req, SocketAddr::from(([127, 0, 0, 9], 9)));
        if flags & 0x1f == 0 && std::str::from_utf8(body).is_ok() {
            // The right type, no precondition, the session's own path: only an ICE restart
            // (another ufrag), or a session that ended meanwhile, is refused.
            assert!(
                matches!(
                    reply.status,
                    StatusCode::NO_CONTENT | StatusCode::NOT_IMPLEMENTED | StatusCode::NOT_FOUND
                ),
                "{}",
                reply.status
            );
        }
    }
}

/// `bytes` as a URI's path or query: what a URI cannot hold percent-encoded (`%` itself is kept,
/// so that bad escapes reach the extractors).
fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_graphic() && !b"#?\"<>\\^`{|}".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
