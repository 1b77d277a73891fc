//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`; not part of the API).
//! Each takes the bytes a peer or a host controls and runs rtcast's own code on them the way the
//! server does, so that a crash here is a crash a peer could cause.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{CandidatePolicy, Limits, Protocol};
use crate::metrics::Metrics;
use crate::plane::{MediaPlane, NewViewer, Path, PlaneConfig, Proto, StreamInfo};
use crate::session::peer::{PeerTemplate, TrackSpec};

/// A WebSocket text message from a viewer (`signal::message`).
pub fn ws_message(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::signal::message::parse_client_message(&text);
}

/// RTCP from a viewer, decrypted (what `MediaPlane` reads NACKs, PLIs and REMB from).
pub fn rtcp(data: &[u8]) {
    if let Ok(f) = crate::plane::read_feedback(data, 0x1234_5678) {
        assert!(f.nacked.len() <= crate::plane::history::HISTORY_PACKETS);
    }
}

/// A byte stream on an ICE-TCP connection: its RFC 4571 frames.
pub fn tcp_frames(data: &[u8]) {
    crate::net::tcp::read_all_frames(data);
}

/// A STUN message's USERNAME, as the first media loop reads it to route a datagram.
pub fn stun_ufrag(data: &[u8]) {
    let _ = crate::net::stun::local_ufrag(data);
}

/// A media plane with one stream and three viewers — one waiting for its WebSocket answer, one
/// answered (WHEP) whose address is known from a valid check, one over TCP — fed datagrams.
pub struct PlaneTarget {
    plane: MediaPlane,
    now: Instant,
    paths: [Path; 3],
}

const SERVER: &str = "127.0.0.1:5000";

impl PlaneTarget {
    // Setup from constants: a failure here is a broken harness, not an input to survive.
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
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
    pub fn datagram(&mut self, data: &[u8]) {
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

impl Default for PlaneTarget {
    fn default() -> Self {
        Self::new()
    }
}

/// A media plane with one stream, fed SDP: as a WHEP viewer's offer, and as a WebSocket viewer's
/// answer to our offer — what rtcast reads of each (the transport attributes, the payload types,
/// webrtc-rs's parser behind them).
pub struct SdpTarget {
    plane: PlaneTarget,
}

impl SdpTarget {
    pub fn new() -> Self {
        Self {
            plane: PlaneTarget::new(),
        }
    }

    pub fn run(&mut self, data: &[u8]) {
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

impl Default for SdpTarget {
    fn default() -> Self {
        Self::new()
    }
}
