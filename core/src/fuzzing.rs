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

use crate::config::{CandidatePolicy, Limits, Protocol};
use crate::media::pixel::{to_i420, I420Buffer, PixelFormat, RawFrame};
use crate::metrics::Metrics;
use crate::plane::{MediaPlane, NewViewer, Path, PlaneConfig, Proto, StreamInfo};
use crate::session::peer::{PeerTemplate, TrackSpec};
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
            spec: TrackSpec {
                stream: "fuzz".into(),
                video_codec: crate::media::VideoCodec::H264,
                video_ssrc: 0x1234_5678,
                audio_ssrc: Some(0x8765_4321),
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
