//! The media plane driven with fake time and no sockets: viewers are webrtc-rs peer connections
//! (full ICE agents, DTLS clients, SRTP, NACK generator and receiver reports, as browsers have)
//! whose datagrams are carried by hand between them and the plane.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::sansio::Protocol as _;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::*;
use crate::config::{Limits, Protocol};
use crate::media::VideoCodec;
use crate::session::peer::PeerTemplate;

const SERVER: &str = "127.0.0.1:5000";
const STREAM: u64 = 1;
const VIDEO_SSRC: u32 = 1111;
const AUDIO_SSRC: u32 = 2222;

fn server_addr() -> SocketAddr {
    SERVER.parse().unwrap()
}

/// A browser-like viewer.
struct Client {
    id: ViewerId,
    addr: SocketAddr,
    /// The transport its datagrams are carried on (its own ICE agent thinks UDP either way).
    proto: Proto,
    pc: RTCPeerConnection,
    connected: bool,
    /// Video RTP packets received: (sequence number, timestamp, payload).
    video: Vec<(u16, u32, Bytes)>,
    audio: usize,
    /// Stop carrying its datagrams (it vanished).
    silent: bool,
    /// Drop the server's next datagram of video to it.
    drop_next_video: bool,
    /// Drop the server's video datagram to it after this many more.
    drop_video_after: Option<usize>,
}

struct Harness {
    plane: MediaPlane,
    now: Instant,
    clients: Vec<Client>,
    outputs: Vec<Output>,
    /// Every destination the plane sent a datagram to.
    destinations: Vec<SocketAddr>,
    /// Every datagram a client sent (the fuzz targets' seeds).
    carried: Vec<Vec<u8>>,
    /// The RTCP packet type of every (SRTCP) datagram the plane sent; its first bytes are clear.
    rtcp_types: Vec<u8>,
    metrics: Arc<Metrics>,
}

fn codec(mime: &str, rate: u32, channels: u16, fmtp: &str, pt: u8) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate: rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: pt,
    }
}

fn client_peer(now: Instant, addr: SocketAddr) -> RTCPeerConnection {
    let mut media = MediaEngine::default();
    media
        .register_codec(
            codec(
                MIME_TYPE_H264,
                90_000,
                0,
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
                102,
            ),
            RtpCodecKind::Video,
        )
        .unwrap();
    media
        .register_codec(
            codec(MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1", 111),
            RtpCodecKind::Audio,
        )
        .unwrap();
    let settings = SettingEngineBuilder::new()
        .with_answering_dtls_role(RTCDtlsRole::Client)
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build();
    let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_setting_engine(settings)
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .build(now)
        .unwrap();
    let host = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .unwrap();
    pc.add_local_candidate(RTCIceCandidate::from(&host).to_json().unwrap())
        .unwrap();
    pc
}

fn video_frame(ts: u32, keyframe: bool, packets: usize, tag: u8) -> Arc<MediaFrame> {
    let payloads = (0..packets)
        .map(|i| Bytes::from(vec![tag, i as u8, 0xab, 0xcd]))
        .collect();
    Arc::new(MediaFrame::new(TrackKind::Video, ts, keyframe, payloads))
}

fn audio_frame(ts: u32) -> Arc<MediaFrame> {
    Arc::new(MediaFrame::new(
        TrackKind::Audio,
        ts,
        true,
        vec![Bytes::from_static(&[0xfc, 0xff, 0xfe])],
    ))
}

impl Client {
    /// Takes the connection's events and received packets.
    fn poll(&mut self) {
        while let Some(ev) = self.pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                RTCPeerConnectionState::Connected,
            ) = ev
            {
                self.connected = true;
            }
        }
        while let Some(msg) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, p) = msg.message {
                if p.header.ssrc == VIDEO_SSRC {
                    self.video
                        .push((p.header.sequence_number, p.header.timestamp, p.payload));
                } else {
                    self.audio += 1;
                }
            }
        }
    }
}

impl Harness {
    fn new(limits: Limits) -> Self {
        Self::with_ladder(limits, vec![2_000_000])
    }

    /// A plane whose stream has renditions of these bitrates (an adaptive stream if several).
    fn with_ladder(limits: Limits, ladder: Vec<u32>) -> Self {
        let now = Instant::now();
        let adaptive = ladder.len() > 1;
        let template = PeerTemplate::new(
            &[server_addr()],
            &[],
            &[],
            crate::config::CandidatePolicy::default(),
        )
        .unwrap();
        let metrics = Arc::new(Metrics::default());
        let mut plane = MediaPlane::new(PlaneConfig {
            index: 0,
            loops: 1,
            admission: Arc::new(admission::Admission::new(&limits)),
            limits,
            dtls: template.dtls_config().unwrap(),
            template,
            metrics: metrics.clone(),
            epoch: (now, SystemTime::now()),
        });
        plane.open_stream(StreamInfo {
            id: STREAM,
            counters: Default::default(),
            ladder,
            spec: TrackSpec {
                stream: "s".into(),
                video_codec: VideoCodec::H264,
                video_ssrc: VIDEO_SSRC,
                audio_ssrc: Some(AUDIO_SSRC),
                adaptive,
            },
        });
        Self {
            plane,
            now,
            clients: Vec::new(),
            outputs: Vec::new(),
            destinations: Vec::new(),
            carried: Vec::new(),
            rtcp_types: Vec::new(),
            metrics,
        }
    }

    /// A viewer signals (WebSocket flow: our offer, its answer) and connects; returns its index.
    fn join(&mut self) -> usize {
        let i = self.signal();
        self.connect(i);
        i
    }

    /// As `join`, with the viewer's datagrams carried as ICE-TCP frames.
    fn join_tcp(&mut self) -> usize {
        let i = self.signal();
        self.clients[i].proto = Proto::Tcp;
        self.connect(i);
        i
    }

    /// A viewer signals (our offer, its answer) but nothing is carried yet; returns its index.
    fn signal(&mut self) -> usize {
        let addr: SocketAddr = format!("127.0.0.1:{}", 6000 + self.clients.len())
            .parse()
            .unwrap();
        let offer = self
            .plane
            .new_viewer(
                self.now,
                NewViewer {
                    stream: STREAM,
                    protocol: Protocol::WebSocket,
                    remote: addr,
                    started: self.now,
                    offer_sdp: None,
                    rendition: None,
                },
            )
            .unwrap();
        assert!(offer.sdp.contains("a=ice-lite"), "{}", offer.sdp);
        let mut pc = client_peer(self.now, addr);
        pc.set_remote_description(self.now, RTCSessionDescription::offer(offer.sdp).unwrap())
            .unwrap();
        for c in offer.candidates {
            pc.add_remote_candidate(c).unwrap();
        }
        let answer = pc.create_answer(None).unwrap();
        pc.set_local_description(self.now, answer.clone()).unwrap();
        self.plane
            .apply_answer(self.now, offer.id, answer.sdp)
            .unwrap();
        self.clients.push(Client {
            id: offer.id,
            addr,
            proto: Proto::Udp,
            pc,
            connected: false,
            video: Vec::new(),
            audio: 0,
            silent: false,
            drop_next_video: false,
            drop_video_after: None,
        });
        while let Some(o) = self.plane.poll_output() {
            self.outputs.push(o);
        }
        self.clients.len() - 1
    }

    /// Runs time until viewer `i` is connected.
    fn connect(&mut self, i: usize) {
        for _ in 0..200 {
            if self.clients[i].connected && self.connected(self.clients[i].id) {
                return;
            }
            self.advance(Duration::from_millis(10));
        }
        panic!("viewer did not connect");
    }

    fn connected(&self, id: ViewerId) -> bool {
        self.plane
            .viewers
            .get(&id)
            .is_some_and(|v| v.phase == Phase::Connected)
    }

    /// Carries datagrams both ways until nothing moves.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for c in &mut self.clients {
                while let Some(out) = c.pc.poll_write() {
                    if c.silent {
                        continue;
                    }
                    assert_eq!(out.transport.peer_addr, server_addr());
                    self.carried.push(out.message.to_vec());
                    let path = Path {
                        proto: c.proto,
                        local: server_addr(),
                        remote: c.addr,
                    };
                    self.plane.handle_datagram(self.now, path, &out.message);
                    moved = true;
                }
            }
            while let Some(t) = self.plane.poll_transmit(self.now) {
                moved = true;
                self.destinations.push(t.to);
                if t.data.len() > 8 && t.data[0] >> 6 == 2 && (192..=223).contains(&t.data[1]) {
                    self.rtcp_types.push(t.data[1]);
                }
                assert_eq!(t.from, server_addr());
                let Some(c) = self
                    .clients
                    .iter_mut()
                    .find(|c| c.addr == t.to && c.proto == t.proto)
                else {
                    continue;
                };
                let is_video = t.data.len() > 1 && t.data[1] & 0x7f == 102;
                if is_video {
                    if let Some(n) = c.drop_video_after.as_mut() {
                        if *n == 0 {
                            c.drop_video_after = None;
                            c.drop_next_video = true;
                        } else {
                            *n -= 1;
                        }
                    }
                }
                if c.silent || (is_video && std::mem::take(&mut c.drop_next_video)) {
                    continue;
                }
                let _ = c.pc.handle_read(TaggedBytesMut {
                    now: self.now,
                    transport: TransportContext {
                        local_addr: c.addr,
                        peer_addr: server_addr(),
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    },
                    message: t.data,
                });
                // As a client's loop does after each datagram.
                c.poll();
            }
            while let Some(o) = self.plane.poll_output() {
                self.outputs.push(o);
            }
            for c in &mut self.clients {
                c.poll();
            }
            if !moved {
                return;
            }
        }
        panic!("datagrams never stop moving");
    }

    /// Moves fake time forward, firing every timer on both sides.
    fn advance(&mut self, by: Duration) {
        self.now += by;
        if self.plane.poll_timeout().is_some_and(|t| t <= self.now) {
            self.plane.handle_timeout(self.now);
        }
        for c in &mut self.clients {
            if !c.silent {
                let _ = c.pc.handle_timeout(self.now);
            }
        }
        self.pump();
    }

    fn frame(&mut self, frame: Arc<MediaFrame>) {
        self.plane
            .handle_frame(self.now, STREAM, frame, false, false);
        self.pump();
    }

    /// A frame from the built-in encoder.
    fn raw_frame(&mut self, frame: Arc<MediaFrame>) {
        self.plane
            .handle_frame(self.now, STREAM, frame, false, true);
        self.pump();
    }

    fn keyframe_requests(&self) -> usize {
        self.outputs
            .iter()
            .filter(|o| matches!(o, Output::KeyframeWanted(STREAM, 0)))
            .count()
    }

    fn left(&self, id: ViewerId) -> Option<LeaveReason> {
        self.outputs.iter().find_map(|o| match o {
            Output::Event(Event::ViewerLeft { viewer, reason, .. }) if *viewer == id => {
                Some(*reason)
            }
            _ => None,
        })
    }
}

#[test]
fn a_viewer_connects_over_ice_lite_and_its_first_video_is_a_keyframe() {
    let mut h = Harness::new(Limits::default());
    let c = h.join();
    let id = h.clients[c].id;
    assert!(h
        .outputs
        .iter()
        .any(|o| matches!(o, Output::Notice(v, Notice::Connected) if *v == id)));
    assert!(h
        .outputs
        .iter()
        .any(|o| matches!(o, Output::Event(Event::ViewerJoined { viewer, .. }) if *viewer == id)));
    // Nothing to replay yet: the source was asked for a keyframe (as soon as the viewer came).
    assert!(h.keyframe_requests() >= 1);

    h.frame(video_frame(100, false, 2, 1)); // a delta frame: useless to a new viewer
    h.frame(audio_frame(7));
    h.frame(video_frame(200, true, 3, 2));
    h.frame(video_frame(300, false, 1, 3));
    let video = &h.clients[c].video;
    assert_eq!(video.len(), 4, "{video:?}");
    assert_eq!(video[0].2[0], 2, "starts on the keyframe");
    assert_eq!(video[3].2[0], 3);
    // Its own sequence numbers, consecutive.
    for w in video.windows(2) {
        assert_eq!(w[1].0, w[0].0.wrapping_add(1));
    }
    assert_eq!(h.clients[c].audio, 1);
    // Every datagram went to the viewer's own address.
    assert!(h.destinations.iter().all(|d| *d == h.clients[c].addr));
}

#[test]
fn datagrams_are_routed_by_ufrag_then_by_address_and_strays_are_ignored() {
    let mut h = Harness::new(Limits::default());
    let a = h.join();
    let b = h.join();
    let (ida, idb) = (h.clients[a].id, h.clients[b].id);
    let key = |c: &Client| (Proto::Udp, c.addr);
    assert_eq!(h.plane.by_addr.get(&key(&h.clients[a])), Some(&ida));
    assert_eq!(h.plane.by_addr.get(&key(&h.clients[b])), Some(&idb));
    assert_eq!(h.plane.by_ufrag.len(), 2);
    // A stray datagram from an unknown address, and a check for an unknown ufrag: no answer.
    h.destinations.clear();
    let stranger: SocketAddr = "127.0.0.9:9".parse().unwrap();
    let path = udp(stranger);
    h.plane
        .handle_datagram(h.now, path, &[0x80, 200, 0, 1, 0, 0, 0, 0]);
    h.plane
        .handle_datagram(h.now, path, &[22, 0xfe, 0xfd, 0, 0]);
    let provider = rtc::crypto::default_provider().unwrap();
    let check = ice::tests::check("nobody:x", "p", true, provider.crypto());
    h.plane.handle_datagram(h.now, path, &check);
    // RTCP from a viewer's address but over TCP is not that viewer's.
    let addr_a = h.clients[a].addr;
    h.plane.handle_datagram(
        h.now,
        Path {
            proto: Proto::Tcp,
            ..udp(addr_a)
        },
        &[0x80, 200, 0, 1, 0, 0, 0, 0],
    );
    h.pump();
    assert!(h.destinations.is_empty(), "{:?}", h.destinations);
    // Media still reaches both.
    h.frame(video_frame(1, true, 1, 9));
    assert_eq!(h.clients[a].video.len(), 1);
    assert_eq!(h.clients[b].video.len(), 1);
}

#[test]
fn remote_candidates_are_never_sent_to() {
    let mut h = Harness::new(Limits::default());
    let c = h.join();
    let id = h.clients[c].id;
    for _ in 0..10 {
        h.plane.remote_candidate(id).unwrap();
    }
    h.frame(video_frame(1, true, 2, 1));
    h.advance(Duration::from_secs(3));
    assert!(h.destinations.iter().all(|d| *d == h.clients[c].addr));
    // Past the cap the viewer is refused.
    for _ in 10..MAX_REMOTE_CANDIDATES {
        h.plane.remote_candidate(id).unwrap();
    }
    assert!(matches!(
        h.plane.remote_candidate(id),
        Err(Error::LimitReached(_))
    ));
}

#[test]
fn a_late_joiner_of_an_encoded_stream_gets_the_gop_replayed_at_once() {
    let mut h = Harness::new(Limits::default());
    let first = h.join();
    h.frame(video_frame(1000, true, 2, 1));
    h.frame(video_frame(4000, false, 1, 2));
    h.frame(video_frame(7000, false, 1, 3));
    let requests = h.keyframe_requests();
    let late = h.join();
    let video = &h.clients[late].video;
    assert_eq!(video.len(), 4, "keyframe and both deltas replayed");
    assert_eq!(video[0].2[0], 1);
    // Timestamps squeezed just below the newest frame's.
    assert_eq!(video[0].1, 7000 - 2);
    assert_eq!(video[3].1, 7000);
    assert_eq!(h.keyframe_requests(), requests, "no keyframe needed");
    assert_eq!(h.clients[first].video.len(), 4);
}

/// A stream of the built-in encoder with one viewer and a GOP too long to replay (1 + 20 frames).
fn watched_encoder_with_a_long_gop() -> (Harness, usize) {
    let mut h = Harness::new(Limits::default());
    let first = h.join();
    h.raw_frame(video_frame(10, true, 2, 1));
    for i in 0..20 {
        h.raw_frame(video_frame(20 + i, false, 1, 2));
    }
    (h, first)
}

#[test]
fn a_viewer_of_the_encoder_gets_its_keyframe_asked_for_at_signalling_and_starts_on_it() {
    let (mut h, first) = watched_encoder_with_a_long_gop();
    let before = h.keyframe_requests();
    // The cached GOP is too long to replay: the encoder is asked as soon as the viewer comes.
    let late = h.signal();
    assert_eq!(h.keyframe_requests(), before + 1);
    // The IDR comes while ICE and DTLS are under way...
    h.raw_frame(video_frame(100, true, 3, 7));
    h.raw_frame(video_frame(101, false, 1, 8));
    // ...and the viewer starts on it the moment it is connected, without asking again.
    h.connect(late);
    let video = &h.clients[late].video;
    assert_eq!(video.len(), 4, "{video:?}");
    assert_eq!(video[0].2[0], 7);
    assert_eq!(h.keyframe_requests(), before + 1);
    assert_eq!(h.clients[first].video.len(), 2 + 20 + 4);
}

#[test]
fn a_viewer_connected_before_the_encoders_idr_came_waits_for_it_without_asking_again() {
    let (mut h, first) = watched_encoder_with_a_long_gop();
    let before = h.keyframe_requests();
    let late = h.signal();
    assert_eq!(h.keyframe_requests(), before + 1);
    // Connected while the IDR asked for at signalling is still being encoded: asking again
    // would make the encoder send a second IDR right after it, to every viewer.
    h.connect(late);
    assert_eq!(h.keyframe_requests(), before + 1);
    assert!(h.clients[late].video.is_empty());
    h.raw_frame(video_frame(100, true, 3, 7));
    let video = &h.clients[late].video;
    assert_eq!(video.len(), 3, "{video:?}");
    assert_eq!(video[0].2[0], 7);
    // Once it came, a new need (here a joiner, the GOP being long again) asks at once.
    for i in 0..20 {
        h.raw_frame(video_frame(101 + i, false, 1, 8));
    }
    h.advance(Duration::from_millis(10));
    h.signal();
    assert_eq!(h.keyframe_requests(), before + 2);
    assert_eq!(h.clients[first].video.len(), 2 + 20 + 3 + 20);
}

#[test]
fn a_viewer_of_an_encoder_that_stopped_gets_a_new_idr_not_its_last_gop() {
    let mut h = Harness::new(Limits::default());
    let first = h.join();
    h.raw_frame(video_frame(10, true, 2, 1));
    h.raw_frame(video_frame(11, false, 1, 2));
    // The encoder stops (nobody watched for a while, say): a short GOP, but two seconds old.
    h.advance(Duration::from_secs(2));
    let before = h.keyframe_requests();
    let late = h.signal();
    assert_eq!(h.keyframe_requests(), before + 1, "asked at signalling");
    h.connect(late);
    assert!(
        h.clients[late].video.is_empty(),
        "no replay of a picture two seconds old"
    );
    h.raw_frame(video_frame(100, true, 3, 7));
    let video = &h.clients[late].video;
    assert_eq!(video.len(), 3, "{video:?}");
    assert_eq!(video[0].2[0], 7);
    assert_eq!(h.clients[first].video.len(), 3 + 3);
}

/// A frame of `packets` full-size (1200-byte) payloads whose first byte is `tag`.
fn big_frame(ts: u32, keyframe: bool, packets: usize, tag: u8) -> Arc<MediaFrame> {
    let payloads = (0..packets)
        .map(|_| {
            let mut p = vec![0u8; 1200];
            p[0] = tag;
            Bytes::from(p)
        })
        .collect();
    Arc::new(MediaFrame::new(TrackKind::Video, ts, keyframe, payloads))
}

#[test]
fn a_long_replay_is_paced_and_live_frames_queue_behind_it() {
    let mut h = Harness::new(Limits::default());
    h.join();
    // A GOP of 10 frames of 24 KB: 240 KB, more than a receive buffer takes at once.
    h.frame(big_frame(0, true, 20, 0));
    for i in 1..10 {
        h.frame(big_frame(i * 3000, false, 20, i as u8));
    }
    let late = h.signal();
    h.connect(late);
    let got = |h: &Harness| h.clients[late].video.len();
    // The first tick: as many whole frames as fit in 64 KB (two of 24 KB).
    assert_eq!(got(&h), 40, "first burst");
    // A live frame meanwhile waits behind the replay.
    h.frame(big_frame(30_000, false, 20, 10));
    assert_eq!(got(&h), 40);
    let mut ticks = 0;
    while got(&h) < 220 {
        h.advance(Duration::from_millis(10));
        ticks += 1;
        assert!(ticks < 20, "replay stalled at {}", got(&h));
    }
    assert!(ticks >= 4, "not paced: {ticks} ticks");
    let tags: Vec<u8> = h.clients[late]
        .video
        .iter()
        .step_by(20)
        .map(|v| v.2[0])
        .collect();
    assert_eq!(
        tags,
        (0..=10).collect::<Vec<u8>>(),
        "in order, live frame last"
    );
    for w in h.clients[late].video.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0.wrapping_add(1),
            "sequence numbers continuous"
        );
    }
    assert!(h.plane.viewers[&h.clients[late].id].backlog.is_empty());
}

#[test]
fn a_backlog_that_never_drains_is_dropped_at_its_cap_and_the_viewer_restarts_on_a_keyframe() {
    let mut h = Harness::new(Limits::default());
    h.join();
    // A GOP whose replay takes several ticks: a 48 KB keyframe and two 48 KB deltas.
    h.frame(big_frame(0, true, 40, 0));
    h.frame(big_frame(3000, false, 40, 1));
    h.frame(big_frame(6000, false, 40, 2));
    let late = h.signal();
    h.connect(late);
    let id = h.clients[late].id;
    assert!(
        !h.plane.viewers[&id].backlog.is_empty(),
        "the replay is paced"
    );
    let requests = h.keyframe_requests();
    // Past the interval that coalesces keyframe requests, but the loop never gets to the
    // backlog's ticks (no timeout is handled) while live frames keep coming: the backlog stops
    // at its cap instead of growing.
    h.now += Duration::from_secs(1);
    for i in 0..(MAX_BACKLOG_FRAMES as u32 + 10) {
        h.frame(video_frame(9000 + i * 3000, false, 1, 3));
        assert!(h.plane.viewers[&id].backlog.len() <= MAX_BACKLOG_FRAMES);
    }
    assert!(
        h.plane.viewers[&id].backlog.is_empty(),
        "dropped at the cap"
    );
    assert_eq!(
        h.keyframe_requests(),
        requests + 1,
        "a keyframe asked for once"
    );
    let before = h.clients[late].video.len();
    h.frame(video_frame(5_000_000, false, 1, 4));
    assert_eq!(
        h.clients[late].video.len(),
        before,
        "deltas wait for the keyframe"
    );
    h.frame(video_frame(5_003_000, true, 1, 5));
    assert_eq!(h.clients[late].video.len(), before + 1);
    assert_eq!(
        h.clients[late].video[before].2[0], 5,
        "restarts on the keyframe"
    );
}

#[test]
fn a_lost_packet_of_a_catch_up_replay_is_resent_with_its_rewritten_timestamp() {
    let mut h = Harness::new(Limits::default());
    h.join();
    h.frame(video_frame(1000, true, 3, 1));
    h.frame(video_frame(4000, false, 1, 2));
    let late = h.signal();
    // The second packet of the replayed keyframe is lost (a lost first packet is no gap to a
    // receiver: nothing NACKs it).
    h.clients[late].drop_video_after = Some(1);
    h.connect(late);
    assert_eq!(h.clients[late].video.len(), 3);
    for _ in 0..50 {
        h.advance(Duration::from_millis(20));
    }
    let video = &h.clients[late].video;
    assert_eq!(video.len(), 4, "{video:?}");
    let resent = video.last().unwrap();
    assert_eq!(
        (resent.2[0], resent.2[1]),
        (1, 1),
        "the keyframe's second packet"
    );
    assert_eq!(resent.1, 4000 - 1, "sent again with its catch-up timestamp");
}

#[test]
fn after_a_gap_viewers_wait_for_the_next_keyframe_and_one_is_asked_for() {
    let mut h = Harness::new(Limits::default());
    let c = h.join();
    h.frame(video_frame(1, true, 1, 1));
    h.frame(video_frame(2, false, 1, 2));
    let requests = h.keyframe_requests();
    h.now += Duration::from_secs(1); // past the coalescing interval
    h.plane
        .handle_frame(h.now, STREAM, video_frame(4, false, 1, 4), true, false);
    h.pump();
    h.frame(video_frame(5, false, 1, 5));
    assert_eq!(h.keyframe_requests(), requests + 1);
    assert_eq!(
        h.clients[c].video.len(),
        2,
        "deltas after the gap are not sent"
    );
    h.frame(video_frame(6, true, 1, 6));
    assert_eq!(h.clients[c].video.len(), 3);
    assert_eq!(h.clients[c].video[2].2[0], 6);
}

#[test]
fn plis_are_coalesced_into_one_request_per_interval() {
    let mut h = Harness::new(Limits::default());
    let a = h.join();
    let b = h.join();
    h.frame(video_frame(1, true, 1, 1));
    h.now += Duration::from_secs(1);
    let before = h.keyframe_requests();
    for c in [a, b, a] {
        let receivers: Vec<_> = h.clients[c].pc.get_receivers().collect();
        let now = h.now;
        for r in receivers {
            let mut r = h.clients[c].pc.rtp_receiver(r).unwrap();
            let _ = r.write_rtcp(
                now,
                vec![Box::new(PictureLossIndication {
                    sender_ssrc: 1,
                    media_ssrc: VIDEO_SSRC,
                })],
            );
        }
        h.pump();
    }
    assert!(h.metrics.plis.load(std::sync::atomic::Ordering::Relaxed) >= 3);
    assert_eq!(h.keyframe_requests(), before + 1);
}

#[test]
fn a_lost_video_packet_is_resent_from_the_streams_history_on_nack() {
    let mut h = Harness::new(Limits::default());
    let c = h.join();
    h.frame(video_frame(1, true, 1, 1));
    h.clients[c].drop_next_video = true;
    h.frame(video_frame(2, false, 1, 2)); // lost on the way
    h.frame(video_frame(3, false, 1, 3));
    // The viewer's NACK generator reports the gap on its timer; the plane answers it.
    for _ in 0..50 {
        h.advance(Duration::from_millis(20));
    }
    let got: Vec<u8> = h.clients[c].video.iter().map(|v| v.2[0]).collect();
    assert!(got.contains(&2), "{got:?}");
    assert!(h.metrics.nacks.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    let resent = h.clients[c].video.iter().find(|v| v.2[0] == 2).unwrap();
    assert_eq!(resent.1, 2, "the original timestamp");
}

#[test]
fn a_silent_viewer_is_reaped_at_the_consent_deadline_and_nothing_of_it_is_left() {
    let limits = Limits {
        consent_timeout: Duration::from_secs(10),
        ..Limits::default()
    };
    let mut h = Harness::new(limits);
    let c = h.join();
    let witness = h.join();
    let id = h.clients[c].id;
    h.frame(video_frame(1, true, 1, 1));
    // Its last check was answered just now; then it goes silent.
    h.clients[c].silent = true;
    let silent_since = h.now;
    while h.left(id).is_none() {
        assert!(
            h.now < silent_since + Duration::from_secs(12),
            "not reaped in time"
        );
        h.advance(Duration::from_millis(250));
    }
    assert!(
        h.now >= silent_since + Duration::from_secs(9),
        "reaped too early"
    );
    assert_eq!(h.left(id), Some(LeaveReason::ConnectionLost));
    assert!(h.outputs.iter().any(
        |o| matches!(o, Output::Notice(v, Notice::Closed(LeaveReason::ConnectionLost)) if *v == id)
    ));
    // The witness keeps playing (its consent checks keep coming).
    h.frame(video_frame(2, false, 1, 2));
    assert_eq!(h.clients[witness].video.len(), 2);
    assert!(h.left(h.clients[witness].id).is_none());
    // Nothing of the reaped viewer is held.
    assert_eq!(h.plane.census(), (1, 1));
    assert!(!h.plane.viewers.contains_key(&id));
    assert!(h.plane.by_addr.values().all(|v| *v != id));
    assert!(h.plane.by_ufrag.values().all(|v| *v != id));
    assert!(h.plane.timers.iter().all(|(_, v)| *v != id));
    assert!(h.plane.streams[&STREAM].viewers.iter().all(|v| *v != id));
    assert_eq!(h.plane.streams[&STREAM].connected, 1);
}

#[test]
fn timeouts_too_long_for_an_instant_never_expire_instead_of_panicking() {
    // `started + connect_timeout` and `last_consent + consent_timeout` overflowed an Instant
    // ("overflow when adding duration to instant") as soon as a viewer joined.
    let limits = Limits {
        connect_timeout: Duration::MAX,
        consent_timeout: Duration::MAX,
        ..Limits::default()
    };
    let mut h = Harness::new(limits);
    let c = h.join();
    let id = h.clients[c].id;
    h.frame(video_frame(1, true, 1, 1));
    assert_eq!(h.clients[c].video.len(), 1);
    h.clients[c].silent = true;
    h.advance(Duration::from_secs(60));
    assert!(h.left(id).is_none());
}

#[test]
fn a_viewer_that_never_connects_times_out_and_closing_frees_everything() {
    let limits = Limits {
        connect_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let mut h = Harness::new(limits);
    let offer = h
        .plane
        .new_viewer(
            h.now,
            NewViewer {
                stream: STREAM,
                protocol: Protocol::Whep,
                remote: "127.0.0.1:7000".parse().unwrap(),
                started: h.now,
                offer_sdp: None,
                rendition: None,
            },
        )
        .unwrap();
    h.advance(Duration::from_millis(1900));
    assert!(!h.outputs.iter().any(|o| matches!(o, Output::Notice(..))));
    h.advance(Duration::from_millis(200));
    assert!(h.outputs.iter().any(
        |o| matches!(o, Output::Notice(v, Notice::Closed(LeaveReason::Timeout)) if *v == offer.id)
    ));
    // Its signalling learns what was tried.
    let why = h
        .outputs
        .iter()
        .find_map(|o| match o {
            Output::Notice(v, Notice::NotConnected(why)) if *v == offer.id => Some(why.clone()),
            _ => None,
        })
        .expect("a NotConnected notice");
    assert!(why.contains("no SDP answer"), "{why}");
    // One that answered but whose checks never arrive: the error names our candidates.
    let silent = h.signal();
    h.clients[silent].silent = true;
    let silent_id = h.clients[silent].id;
    h.advance(Duration::from_millis(2100));
    let why = h
        .outputs
        .iter()
        .find_map(|o| match o {
            Output::Notice(v, Notice::NotConnected(why)) if *v == silent_id => Some(why.clone()),
            _ => None,
        })
        .expect("a NotConnected notice");
    assert!(
        why.contains("no ICE connectivity check")
            && why.contains(&format!("UDP {}", server_addr()))
            && why.contains("TURN"),
        "{why}"
    );
    assert_eq!(h.plane.census(), (0, 1));
    assert!(h.plane.timers.is_empty() && h.plane.by_ufrag.is_empty());

    let c = h.join();
    let id = h.clients[c].id;
    h.plane.close_viewer(h.now, id, LeaveReason::Closed);
    h.pump();
    assert_eq!(h.left(id), Some(LeaveReason::Closed));
    assert_eq!(h.plane.census(), (0, 1));
    assert!(h.plane.timers.is_empty() && h.plane.by_ufrag.is_empty() && h.plane.by_addr.is_empty());
    assert_eq!(h.plane.streams[&STREAM].connected, 0);
}

#[test]
fn sender_reports_go_out_every_second_to_connected_viewers() {
    let mut h = Harness::new(Limits::default());
    h.join();
    h.frame(video_frame(1, true, 1, 1));
    h.frame(audio_frame(1));
    assert!(h.rtcp_types.is_empty());
    for _ in 0..10 {
        h.advance(Duration::from_millis(110));
    }
    // One compound packet per second, starting with a sender report (200).
    assert_eq!(h.rtcp_types, vec![200]);
    for _ in 0..10 {
        h.advance(Duration::from_millis(100));
    }
    assert_eq!(h.rtcp_types, vec![200, 200]);
}

#[test]
fn every_viewers_reports_fall_on_one_grid_half_a_second_to_a_second_and_a_half_after_connecting() {
    let epoch = Instant::now();
    let ms = |n| epoch + Duration::from_millis(n);
    assert_eq!(report_slot(epoch, ms(0)), ms(1000));
    assert_eq!(report_slot(epoch, ms(499)), ms(1000));
    assert_eq!(report_slot(epoch, ms(500)), ms(2000));
    assert_eq!(
        report_slot(epoch, ms(1000)),
        ms(2000),
        "fired on time: one second on"
    );
    assert_eq!(
        report_slot(epoch, ms(1007)),
        ms(2000),
        "fired late: still on the grid"
    );
}

#[test]
fn a_frame_to_many_viewers_is_produced_one_viewer_at_a_time() {
    let mut h = Harness::new(Limits::default());
    for _ in 0..3 {
        h.join();
    }
    h.plane
        .handle_frame(h.now, STREAM, video_frame(1, true, 10, 1), false, false);
    // The first poll encrypts the packets of one viewer only.
    assert!(h.plane.poll_transmit(h.now).is_some());
    assert_eq!(
        h.plane.transmits.len(),
        9,
        "the rest of that viewer's packets"
    );
    assert_eq!(h.plane.fanouts.len(), 1);
    h.pump();
    assert!(h.plane.fanouts.is_empty());
    // (The packet taken above by hand never reached its viewer.)
    let got: Vec<usize> = h.clients.iter().map(|c| c.video.len()).collect();
    assert_eq!(got.iter().sum::<usize>(), 29, "{got:?}");
}

#[test]
fn ufrags_and_viewer_ids_tell_their_media_loop() {
    for i in [0, 1, 9, 10, 61] {
        assert_eq!(loop_of_ufrag(&format!("{}rest", loop_tag(i))), Some(i));
    }
    assert_eq!(loop_of_ufrag(""), None);
    assert_eq!(loop_of_ufrag("+x"), None);
    let template = PeerTemplate::new(
        &[server_addr()],
        &[],
        &[],
        crate::config::CandidatePolicy::default(),
    )
    .unwrap();
    let mut plane = MediaPlane::new(PlaneConfig {
        index: 2,
        loops: 3,
        admission: Arc::new(admission::Admission::new(&Limits::default())),
        limits: Limits::default(),
        dtls: template.dtls_config().unwrap(),
        template,
        metrics: Arc::new(Metrics::default()),
        epoch: (Instant::now(), SystemTime::now()),
    });
    plane.open_stream(StreamInfo {
        id: STREAM,
        counters: Default::default(),
        ladder: vec![2_000_000],
        spec: TrackSpec {
            stream: "s".into(),
            video_codec: VideoCodec::H264,
            video_ssrc: VIDEO_SSRC,
            audio_ssrc: None,
            adaptive: false,
        },
    });
    let now = Instant::now();
    let ids: Vec<ViewerId> = (0..3)
        .map(|_| {
            plane
                .new_viewer(
                    now,
                    NewViewer {
                        stream: STREAM,
                        protocol: Protocol::WebSocket,
                        remote: "127.0.0.1:1".parse().unwrap(),
                        started: now,
                        offer_sdp: None,
                        rendition: None,
                    },
                )
                .unwrap()
                .id
        })
        .collect();
    assert_eq!(ids, vec![3, 6, 9]);
    assert!(ids.iter().all(|&id| loop_of_viewer(id, 3) == 2));
    assert!(plane.by_ufrag.keys().all(|u| loop_of_ufrag(u) == Some(2)));
}

fn udp(remote: SocketAddr) -> Path {
    Path {
        proto: Proto::Udp,
        local: server_addr(),
        remote,
    }
}

#[test]
fn a_viewer_over_tcp_gets_its_media_on_its_connection_and_is_closed_with_it() {
    let mut h = Harness::new(Limits::default());
    let u = h.join();
    let t = h.join_tcp();
    let (idu, idt) = (h.clients[u].id, h.clients[t].id);
    assert_eq!(
        h.plane.viewers[&idt].pair.map(|p| p.proto),
        Some(Proto::Tcp)
    );
    assert_eq!(
        h.plane.by_addr.get(&(Proto::Tcp, h.clients[t].addr)),
        Some(&idt)
    );
    h.frame(video_frame(1, true, 3, 1));
    assert_eq!(h.clients[u].video.len(), 3);
    assert_eq!(h.clients[t].video.len(), 3);
    // The connection closes under the TCP viewer: it is gone at once, the UDP one plays on.
    let path = Path {
        proto: Proto::Tcp,
        local: server_addr(),
        remote: h.clients[t].addr,
    };
    h.plane.handle_path_closed(h.now, path);
    h.pump();
    assert_eq!(h.left(idt), Some(LeaveReason::ConnectionLost));
    assert!(!h
        .plane
        .by_addr
        .contains_key(&(Proto::Tcp, h.clients[t].addr)));
    h.frame(video_frame(2, false, 1, 2));
    assert_eq!(h.clients[u].video.len(), 4);
    assert!(h.plane.viewers.contains_key(&idu));
}

#[test]
fn closing_a_tcp_viewer_closes_its_connection() {
    let mut h = Harness::new(Limits::default());
    let t = h.join_tcp();
    let id = h.clients[t].id;
    h.plane.close_viewer(h.now, id, LeaveReason::Closed);
    h.pump();
    let closed: Vec<Path> = h
        .outputs
        .iter()
        .filter_map(|o| match o {
            Output::ClosePath(p) => Some(*p),
            _ => None,
        })
        .collect();
    assert_eq!(closed.len(), 1);
    assert_eq!(
        (closed[0].proto, closed[0].remote),
        (Proto::Tcp, h.clients[t].addr)
    );
}

#[test]
fn a_viewer_whose_sends_keep_failing_asks_for_a_keyframe_at_most_every_three_seconds() {
    let mut h = Harness::new(Limits::default());
    let c = h.join();
    let id = h.clients[c].id;
    h.frame(video_frame(1, true, 1, 1));
    h.advance(Duration::from_secs(1));
    let before = h.keyframe_requests();
    // Its queue is full: it waits for a keyframe, and asks for one.
    h.plane.handle_send_failed(h.now, id);
    h.pump();
    assert_eq!(h.keyframe_requests(), before + 1);
    // A keyframe reaches it; its sends fail again a second later: it waits, without asking.
    h.frame(video_frame(2, true, 1, 2));
    h.advance(Duration::from_secs(1));
    h.plane.handle_send_failed(h.now, id);
    h.pump();
    assert_eq!(h.keyframe_requests(), before + 1);
    assert!(h.plane.viewers[&id].waiting_keyframe);
    // Three seconds after its last request, it may ask again.
    h.frame(video_frame(3, true, 1, 3));
    h.advance(Duration::from_secs(2));
    h.plane.handle_send_failed(h.now, id);
    h.pump();
    assert_eq!(h.keyframe_requests(), before + 2);
}

#[test]
fn nacks_are_read_distinct_and_bounded_so_one_datagram_cannot_ask_for_megabytes() {
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;
    // 250 pairs each naming packet 7 and the 16 after it: 17 distinct packets, asked 250 times.
    let same = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: VIDEO_SSRC,
        nacks: vec![
            NackPair {
                packet_id: 7,
                lost_packets: 0xffff,
            };
            250
        ],
    };
    let plain = rtc::rtcp::packet::marshal(&[Box::new(same) as Box<dyn rtc::rtcp::packet::Packet>])
        .unwrap();
    let f = super::read_feedback(&plain, VIDEO_SSRC).unwrap();
    assert_eq!(f.nacks, 1);
    assert_eq!(f.nacked, (7..24).collect::<Vec<u16>>());
    // 40 pairs of 17 distinct packets each (680): cut at the history's size.
    let many = TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: VIDEO_SSRC,
        nacks: (0..40u16)
            .map(|i| NackPair {
                packet_id: i * 17,
                lost_packets: 0xffff,
            })
            .collect(),
    };
    let plain = rtc::rtcp::packet::marshal(&[Box::new(many) as Box<dyn rtc::rtcp::packet::Packet>])
        .unwrap();
    let f = super::read_feedback(&plain, VIDEO_SSRC).unwrap();
    assert_eq!(f.nacked.len(), super::history::HISTORY_PACKETS);
    // Another SSRC's NACK is counted, not answered; garbage is an error.
    let f = super::read_feedback(&plain, VIDEO_SSRC + 1).unwrap();
    assert!(f.nacked.is_empty() && f.nacks == 1);
    assert!(super::read_feedback(&[0x80, 205, 0xff, 0xff], VIDEO_SSRC).is_err());
}

/// Writes the seed corpora of the fuzz targets (`fuzz/corpus/*`) from real traffic: a webrtc-rs
/// viewer's datagrams while it connects and plays (STUN, DTLS flights, SRTCP), its SDP, RTCP
/// feedback, Flussonic messages, the encoder's H.264. Run when the targets change:
/// `cargo test -p rtcast --lib write_fuzz_seeds -- --ignored`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    use std::io::Write;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::File::create(dir.join(name))
            .unwrap()
            .write_all(data)
            .unwrap();
    };
    // The viewer's datagrams, with the target's path byte (1: the answered viewer's address).
    let mut h = Harness::new(Limits::default());
    let i = h.join();
    h.frame(video_frame(1, true, 3, 1));
    h.advance(Duration::from_millis(1100));
    let sent = h.carried.clone();
    assert!(sent.len() > 4, "{}", sent.len());
    for (n, d) in sent.iter().take(16).enumerate() {
        let mut seed = vec![1u8];
        seed.extend_from_slice(d);
        write("datagram", &format!("viewer-{n:02}"), &seed);
        let mut framed = (d.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(d);
        write("tcp_frames", &format!("viewer-{n:02}"), &framed);
    }
    // SDP: a WHEP-like offer, and a WebSocket answer.
    write(
        "sdp",
        "offer",
        crate::session::peer::fuzz_offer().as_bytes(),
    );
    let answer = h.clients[i].pc.local_description().unwrap().sdp;
    write("sdp", "answer", answer.as_bytes());
    // Flussonic messages.
    let msg = serde_json::json!({"type": "answer", "sdp": answer}).to_string();
    write("ws_message", "answer", msg.as_bytes());
    write("ws_message", "candidate", br#"{"type":"candidate","stream_id":"local1","label":0,"id":"0","candidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}"#);
    write(
        "ws_message",
        "end",
        br#"{"type":"candidate","candidate":null}"#,
    );
    // RTCP feedback.
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair;
    let packets: Vec<Box<dyn rtc::rtcp::packet::Packet>> = vec![
        Box::new(TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 0x1234_5678,
            nacks: vec![NackPair {
                packet_id: 100,
                lost_packets: 5,
            }],
        }),
        Box::new(PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: 0x1234_5678,
        }),
        Box::new(ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 1,
            bitrate: 1_500_000.0,
            ssrcs: vec![0x1234_5678],
        }),
    ];
    write(
        "rtcp",
        "nack-pli-remb",
        &rtc::rtcp::packet::marshal(&packets).unwrap(),
    );
    // H.264 from the encoder: an IDR with SPS/PPS, and a P frame.
    let mut enc = crate::media::encoder::H264Encoder::new(Default::default());
    let mut pattern = crate::media::pattern::TestPattern::new(64, 48);
    for n in 0..2u64 {
        let frame = pattern
            .render(n, Duration::from_millis(33 * n))
            .as_raw_frame();
        if let Some(out) = enc.encode(&frame, false).unwrap() {
            write("h264", &format!("frame-{n}"), &out.data);
        }
    }
    // VP8 (first byte even) and Opus (odd).
    let ivf = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/halves-320x240.ivf"),
    )
    .unwrap();
    let len = u32::from_le_bytes(ivf[32..36].try_into().unwrap()) as usize;
    let mut vp8 = vec![0u8];
    vp8.extend_from_slice(&ivf[44..44 + len]);
    write("vp8_opus", "vp8-keyframe", &vp8);
    write("vp8_opus", "opus", &[1, 0xf8, 0xff, 0xfe]);
    // Raw frames: a packed 16x16 RGBA, and I420 planes with strides.
    let mut rgba = vec![4u8, 16, 16];
    rgba.extend_from_slice(&[0; 13]);
    rgba.extend(std::iter::repeat_n(200u8, 16 * 16 * 4));
    write("raw_frame", "rgba-16x16", &rgba);
    let mut i420 = vec![0u8, 16, 16, 16, 0, 8, 0, 8, 0, 171, 213, 0, 1, 0, 0, 0];
    i420.extend(std::iter::repeat_n(90u8, 16 * 16 * 3 / 2));
    write("raw_frame", "i420-planes", &i420);
    // HTTP requests (`fuzzing::http`): method and flags, route and stream, then lines: the
    // fuzzed segment, the query, headers, an empty line, the body.
    let offer = crate::session::peer::fuzz_offer();
    let request = |how: u8, route: u8, segment: &str, query: &str, headers: &[&str], body: &str| {
        let mut seed = vec![how, route];
        seed.extend_from_slice(format!("{segment}\n{query}\n").as_bytes());
        for h in headers {
            seed.extend_from_slice(format!("{h}\n").as_bytes());
        }
        seed.extend_from_slice(format!("\n{body}").as_bytes());
        seed
    };
    let (get, post, patch, delete, put, options) = (0, 1, 2, 3, 4, 5);
    let (live_id, live_etag, length) = (0x08, 0x10, 0x80);
    let locked = 0x10;
    let upgrade = [
        "connection: Upgrade",
        "upgrade: websocket",
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version: 13",
    ];
    let sdp = ["content-type: application/sdp"];
    let frag = "a=ice-ufrag:fuzzufrag\r\na=mid:0\r\n\
                a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n";
    for (name, seed) in [
        ("index", request(get, 0, "", "", &[], "")),
        ("metrics", request(get, 1, "", "", &[], "")),
        ("embed", request(get, 3, "", "", &[], "")),
        ("media-info", request(get, 6 | locked, "", "", &[], "")),
        ("ws-upgrade", request(get, 2, "", "token=x", &upgrade, "")),
        ("ws-plain", request(get, 2 | 0x20, "cam", "", &[], "")),
        ("whep-post", request(post | length, 4, "", "", &sdp, &offer)),
        (
            "whep-post-token",
            request(
                post,
                4 | locked,
                "",
                "",
                &[sdp[0], "authorization: Bearer letmein"],
                &offer,
            ),
        ),
        (
            "whep-post-no-token",
            request(post, 4 | locked, "", "", &sdp, &offer),
        ),
        (
            "whep-post-query-token",
            request(post, 4 | locked, "", "token=no", &sdp, &offer),
        ),
        (
            "whep-preflight",
            request(
                options,
                4,
                "",
                "",
                &[
                    "origin: https://player.example",
                    "access-control-request-method: POST",
                    "access-control-request-headers: content-type, authorization",
                    "access-control-request-private-network: true",
                ],
                "",
            ),
        ),
        (
            "whep-patch",
            request(
                patch | live_id | live_etag,
                5,
                "",
                "",
                &["content-type: application/trickle-ice-sdpfrag"],
                frag,
            ),
        ),
        (
            "whep-patch-unknown",
            request(patch, 5, "nosuchid", "", &[], frag),
        ),
        ("whep-delete", request(delete | live_id, 5, "", "", &[], "")),
        (
            "whep-get",
            request(get, 4, "", "", &["origin: https://evil.example"], ""),
        ),
        (
            "session-stats",
            request(put, 8, "tracks", "", &[], "{\"bitrate\":1}"),
        ),
        ("raw-path", request(get, 9, "a/%zz/b", "x=%", &[], "")),
        (
            "too-large",
            request(post, 4, "", "", &["content-length: 99999999"], ""),
        ),
    ] {
        write("http", name, &seed);
    }
    // WHEP PATCH bodies (`fuzzing::whep_patch`): flags (Content-Type, If-Match, path), the body.
    let patch_seed = |flags: u8, body: &str| [&[flags], body.as_bytes()].concat();
    write("whep_patch", "candidate", &patch_seed(0, frag));
    write("whep_patch", "if-match", &patch_seed(0b0100, frag));
    write("whep_patch", "if-match-stale", &patch_seed(0b1100, frag));
    write(
        "whep_patch",
        "restart",
        &patch_seed(
            0,
            "a=ice-ufrag:other\r\na=ice-pwd:0123456789abcdef01234567\r\n",
        ),
    );
    write(
        "whep_patch",
        "end-of-candidates",
        &patch_seed(0b0001, "a=end-of-candidates\r\n"),
    );
}

#[test]
fn a_plane_keeps_next_to_nothing_of_many_viewers_once_they_are_gone() {
    // Hundreds of sessions at once are what a churn of vanishing viewers holds (each waits for
    // its connect timeout). Once they are closed, the plane may keep its tables' capacity, but
    // not a viewer's worth of memory per slot: that stayed, at the high-water mark, for the
    // life of the server.
    const VIEWERS: usize = 300;
    let mut h = Harness::new(Limits {
        max_connecting_per_address: VIEWERS,
        ..Limits::default()
    });
    let open_and_close = |h: &mut Harness, n: usize| {
        let ids: Vec<ViewerId> = (0..n)
            .map(|i| {
                h.plane
                    .new_viewer(
                        h.now,
                        NewViewer {
                            stream: STREAM,
                            protocol: Protocol::WebSocket,
                            remote: SocketAddr::from(([127, 0, 0, 1], 7000 + i as u16)),
                            started: h.now,
                            offer_sdp: None,
                            rendition: None,
                        },
                    )
                    .unwrap()
                    .id
            })
            .collect();
        for id in ids {
            h.plane.close_viewer(h.now, id, LeaveReason::Closed);
        }
        while h.plane.poll_output().is_some() {}
        while h.plane.poll_transmit(h.now).is_some() {}
        assert_eq!(h.plane.census(), (0, 1));
    };
    // What the first viewer makes for good (lazily built statics) is not counted.
    open_and_close(&mut h, 1);
    let before = crate::test_heap::live_bytes();
    open_and_close(&mut h, VIEWERS);
    let kept = crate::test_heap::live_bytes() - before;
    assert!(
        kept < 256 * 1024,
        "{VIEWERS} viewers came and went and the plane kept {kept} bytes"
    );
    // The same again fits in what is kept: nothing more per viewer.
    let before = crate::test_heap::live_bytes();
    open_and_close(&mut h, VIEWERS);
    let more = crate::test_heap::live_bytes() - before;
    assert!(
        more < 1024,
        "{VIEWERS} more viewers came and went and the plane kept {more} bytes more"
    );
}

/// A video frame of rendition `r`, tagged `tag`.
fn rendition_frame(r: usize, ts: u32, keyframe: bool, tag: u8) -> Arc<MediaFrame> {
    let payloads = (0..2)
        .map(|i| Bytes::from(vec![tag, i as u8, 0xab, 0xcd]))
        .collect();
    Arc::new(MediaFrame::new(TrackKind::Video, ts, keyframe, payloads).of_rendition(r))
}

const LADDER: [u32; 3] = [2_000_000, 600_000, 200_000];

impl Harness {
    /// One frame of each rendition at frame time `t` (timestamp 3000 t, tags 10 t + rendition),
    /// keyframes where `keys` says.
    fn ladder_frames(&mut self, t: u32, keys: [bool; 3]) {
        for (r, key) in keys.into_iter().enumerate() {
            let tag = (t * 10) as u8 + r as u8;
            self.frame(rendition_frame(r, t * 3000, key, tag));
        }
    }

    fn switches(&self) -> Vec<(String, String)> {
        self.outputs
            .iter()
            .filter_map(|o| match o {
                Output::Event(Event::RenditionSwitched { from, to, .. }) => {
                    Some((from.clone(), to.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn rendition_keyframe_requests(&self, rendition: usize) -> usize {
        self.outputs
            .iter()
            .filter(|o| matches!(o, Output::KeyframeWanted(STREAM, r) if *r == rendition))
            .count()
    }

    /// The viewer sends a REMB of `bps` (as browsers without transport-wide feedback do).
    fn remb(&mut self, c: usize, bps: f32) {
        let now = self.now;
        let receivers: Vec<_> = self.clients[c].pc.get_receivers().collect();
        if let Some(r) = receivers.into_iter().next() {
            let mut r = self.clients[c].pc.rtp_receiver(r).unwrap();
            let _ = r.write_rtcp(
                now,
                vec![Box::new(ReceiverEstimatedMaximumBitrate {
                    sender_ssrc: 1,
                    bitrate: bps,
                    ssrcs: vec![VIDEO_SSRC],
                })],
            );
        }
        self.pump();
    }
}

#[test]
fn a_viewer_gets_one_rendition_and_moves_at_the_targets_keyframe_on_one_continuous_track() {
    let mut h = Harness::with_ladder(Limits::default(), LADDER.to_vec());
    let c = h.join();
    let id = h.clients[c].id;
    h.ladder_frames(1, [true; 3]);
    h.ladder_frames(2, [false; 3]);
    let tags = |h: &Harness| -> Vec<u8> { h.clients[c].video.iter().map(|v| v.2[0]).collect() };
    assert_eq!(tags(&h), [10, 10, 20, 20], "only v1, the best, to start");

    // It asks for v2 (Flussonic's request_tracks): v2's source is asked for a keyframe, and until
    // one comes the viewer keeps v1.
    let before = h.rendition_keyframe_requests(1);
    h.plane.request_rendition(h.now, id, Some(1));
    h.pump();
    assert_eq!(h.rendition_keyframe_requests(1), before + 1);
    h.ladder_frames(3, [false; 3]);
    assert_eq!(&tags(&h)[4..], [30, 30]);
    // v2's keyframe: the switch.
    h.ladder_frames(4, [false, true, false]);
    h.ladder_frames(5, [false; 3]);
    assert_eq!(&tags(&h)[6..], [40, 40, 41, 41, 51, 51]);
    assert_eq!(h.switches(), [("v1".to_owned(), "v2".to_owned())]);

    // One track: the same SSRC (the client keeps only VIDEO_SSRC's packets), sequence numbers
    // with no gap or repeat across the switch, the pushed timestamps.
    let video = &h.clients[c].video;
    for pair in video.windows(2) {
        assert_eq!(pair[1].0, pair[0].0.wrapping_add(1), "{video:?}");
    }
    // v2's keyframe at 4 came after v1's frame at 4 was sent: it goes one tick later, or the
    // browser would take both for one frame (a frame is its packets of one timestamp).
    let timestamps: Vec<u32> = video.iter().map(|v| v.1).collect();
    let want = [1, 1, 2, 2, 3, 3, 4, 4].map(|t| t * 3000);
    assert_eq!(timestamps[..8], want);
    assert_eq!(timestamps[8..], [12_001, 12_001, 15_000, 15_000]);
    let stats = h.plane.viewers.get(&id).unwrap();
    assert_eq!(stats.rendition, 1);
}

#[test]
fn a_viewer_whose_estimate_falls_under_its_rendition_moves_down_and_a_fixed_one_stays() {
    let mut h = Harness::with_ladder(Limits::default(), LADDER.to_vec());
    let a = h.join();
    let b = h.join();
    let b_id = h.clients[b].id;
    // As viewers that send REMB and no transport-wide feedback (aiortc, older browsers).
    for c in [a, b] {
        h.plane.viewers.get_mut(&h.clients[c].id).unwrap().bwe = None;
    }
    h.plane.request_rendition(h.now, b_id, Some(0));
    h.ladder_frames(1, [true; 3]);
    // Both report 700 kbit/s for a second and a half: enough for v2, not for v1.
    for _ in 0..16 {
        h.remb(a, 700_000.0);
        h.remb(b, 700_000.0);
        h.advance(Duration::from_millis(100));
    }
    assert_eq!(
        h.plane.viewers[&h.clients[a].id].estimate_bps,
        Some(700_000)
    );
    assert!(h.rendition_keyframe_requests(1) >= 1);
    h.ladder_frames(2, [false, true, false]);
    assert_eq!(h.switches(), [("v1".to_owned(), "v2".to_owned())]);
    let last = |h: &Harness, c: usize| h.clients[c].video.last().unwrap().2[0];
    assert_eq!(last(&h, a), 21, "a moved to v2");
    assert_eq!(last(&h, b), 20, "b asked for v1 and keeps it");
    assert_eq!(
        h.plane.viewers[&h.clients[a].id].estimate_bps,
        Some(700_000)
    );
}

#[test]
fn a_nack_after_a_switch_is_answered_from_the_new_renditions_history() {
    let mut h = Harness::with_ladder(Limits::default(), LADDER.to_vec());
    let c = h.join();
    let id = h.clients[c].id;
    h.ladder_frames(1, [true; 3]);
    h.plane.request_rendition(h.now, id, Some(2));
    h.ladder_frames(2, [false, false, true]);
    h.clients[c].drop_next_video = true;
    h.ladder_frames(3, [false; 3]); // v3's first packet lost on the way
    h.ladder_frames(4, [false; 3]);
    for _ in 0..50 {
        h.advance(Duration::from_millis(20));
    }
    let resent: Vec<_> = h.clients[c].video.iter().filter(|v| v.2[0] == 32).collect();
    assert_eq!(resent.len(), 2, "both packets of v3's frame 3, one resent");
    let tags: Vec<u8> = h.clients[c].video.iter().map(|v| v.2[0]).collect();
    assert_eq!(tags[..4], [10, 10, 20, 20], "{tags:?}");
    assert!(tags[4..].iter().all(|t| t % 10 == 2), "{tags:?}");
    let resent_ts: Vec<u32> = resent.iter().map(|v| v.1).collect();
    assert_eq!(resent_ts, [9000, 9000]);
}

#[test]
fn viewers_of_an_adaptive_stream_get_a_transport_wide_estimate_the_others_none() {
    let mut h = Harness::with_ladder(Limits::default(), LADDER.to_vec());
    let c = h.join();
    h.ladder_frames(1, [true; 3]);
    for ts in 2..40 {
        h.ladder_frames(ts, [false; 3]);
        h.advance(Duration::from_millis(33));
    }
    let v = &h.plane.viewers[&h.clients[c].id];
    let bwe = v
        .bwe
        .as_ref()
        .expect("transport-wide-cc negotiated with a client that has it");
    assert!(bwe.estimate(h.now).is_some());
    assert!(h.switches().is_empty(), "nothing limits this viewer");

    let mut h = Harness::new(Limits::default());
    let c = h.join();
    assert!(
        h.plane.viewers[&h.clients[c].id].bwe.is_none(),
        "one rendition: no cost"
    );
}

#[test]
fn a_gap_in_one_rendition_stops_only_its_viewers() {
    let mut h = Harness::with_ladder(Limits::default(), LADDER.to_vec());
    let a = h.join();
    let b = h.join();
    h.plane.request_rendition(h.now, h.clients[b].id, Some(1));
    h.ladder_frames(1, [true; 3]);
    h.now += Duration::from_secs(1);
    // v2 lost frames before the plane; v1 did not.
    h.plane
        .handle_frame(h.now, STREAM, rendition_frame(1, 2, false, 21), true, false);
    h.frame(rendition_frame(0, 2, false, 20));
    h.pump();
    assert_eq!(h.clients[a].video.last().unwrap().2[0], 20);
    assert_eq!(
        h.clients[b].video.last().unwrap().2[0],
        11,
        "b waits for v2's keyframe"
    );
    assert!(h.rendition_keyframe_requests(1) >= 1);
}
