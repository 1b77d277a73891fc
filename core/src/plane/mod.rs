//! The media plane, sans-IO: one state machine that takes input with the time passed in — a
//! datagram with its source and local address, a frame of a stream, a command from signalling, a
//! timeout — and gives back datagrams to send ([`MediaPlane::poll_transmit`]), outputs for the
//! host and the signalling tasks ([`MediaPlane::poll_output`]) and its next deadline
//! ([`MediaPlane::poll_timeout`]). It never reads a clock and never touches a socket: the tokio
//! driver (`net::driver`) does, and the unit tests drive it with fake time.
//!
//! Per viewer it runs ICE-lite (answers checks, never sends any: `ice`), DTLS (`dtls`) and SRTP
//! (`srtp`); webrtc-rs builds the session descriptions (`session::peer`) and is dropped once they
//! are exchanged. A frame is packetized once by its stream; per viewer only the RTP header
//! (sequence number, payload type) and the encryption differ. NACKs are answered from one buffer
//! per stream (`history`); keyframe requests are coalesced per stream (`keyframe`).

pub(crate) mod abr;
pub(crate) mod admission;
pub(crate) mod bwe;
pub(crate) mod dtls;
pub(crate) mod history;
pub(crate) mod ice;
pub(crate) mod keyframe;
pub(crate) mod srtp;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use rtc::crypto::RTCCryptoProvider;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;

use crate::config::{Limits, Protocol};
use crate::event::{Event, LeaveReason, ViewerId};
use crate::media::gop::GopCache;
use crate::media::packetizer::{MediaFrame, TrackKind, OPUS_CLOCK_RATE, VIDEO_CLOCK_RATE};
use crate::metrics::Metrics;
use crate::session::bitrate::BitrateHint;
use crate::session::peer::{PeerTemplate, TrackSpec};
use crate::{Error, Result};

use self::abr::{Chooser, Mode};
use self::bwe::Bwe;
use self::dtls::{DtlsConfig, DtlsEvent, DtlsRole, DtlsSession};
use self::history::{PacketHistory, SentPacket, SeqMap};
use self::ice::IceCredentials;
use self::keyframe::KeyframePolicy;
use self::srtp::{Protection, SrtpKeys};

/// Characters that tag a ufrag with its media loop (ICE ufrags are `[A-Za-z0-9+/]`).
const LOOP_TAGS: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Most media loops of a server.
pub(crate) const MAX_LOOPS: usize = LOOP_TAGS.len();

/// The first character of the ufrags of loop `index` (< [`MAX_LOOPS`]).
pub(crate) fn loop_tag(index: usize) -> char {
    #[allow(clippy::indexing_slicing)] // `% MAX_LOOPS` (= LOOP_TAGS.len()) keeps it in range
    let tag = LOOP_TAGS[index % MAX_LOOPS];
    char::from(tag)
}

/// The media loop a local ufrag belongs to.
pub(crate) fn loop_of_ufrag(ufrag: &str) -> Option<usize> {
    let first = *ufrag.as_bytes().first()?;
    LOOP_TAGS.iter().position(|&t| t == first)
}

/// The media loop a viewer id belongs to: loop `i` of `n` numbers its viewers `i+1`, `i+1+n`, …
pub(crate) fn loop_of_viewer(id: ViewerId, loops: usize) -> usize {
    (id.saturating_sub(1) % loops.max(1) as u64) as usize
}

/// Remote addresses remembered per viewer (a browser checks a few candidate pairs).
const MAX_ADDRS_PER_VIEWER: usize = 8;
/// Remote candidates a viewer may trickle. ICE-lite never uses them (it sends no checks), so they
/// are only counted; past this the viewer is refused as misbehaving.
pub(crate) const MAX_REMOTE_CANDIDATES: usize = 64;
/// Catch-up frames remembered per viewer for NACKs (a GOP cache holds at most 300).
const MAX_REPLAYED_FRAMES: usize = 300;
/// Pacing of a viewer's backlog (catch-up replay): bytes per tick, and the tick.
const BACKLOG_BYTES_PER_TICK: usize = 64 * 1024;
const BACKLOG_TICK: Duration = Duration::from_millis(10);
/// Most frames (video and audio) a viewer's backlog holds: a whole replayed GOP and seconds of
/// live frames behind it. A loop too busy to drain it at the stream's rate would otherwise let
/// it grow without end; past this the backlog is dropped and the viewer waits for a keyframe.
const MAX_BACKLOG_FRAMES: usize = 2 * MAX_REPLAYED_FRAMES;
/// Least time between two keyframe requests caused by one viewer's failed sends; meanwhile it
/// waits for the stream's next keyframe like everyone else.
const DROP_KEYFRAME_INTERVAL: Duration = Duration::from_secs(3);
/// Share of a viewer's bandwidth estimate that retransmissions may take (adaptive streams).
const RESEND_SHARE: f64 = 0.3;
/// Interval of RTCP sender reports.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The transport a viewer's packets travel on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Proto {
    /// Datagrams on the media UDP port.
    Udp,
    /// ICE-TCP (RFC 6544): a TCP connection the viewer opened to our passive candidate, each
    /// packet framed with its 2-byte length (RFC 4571). The driver does the framing.
    Tcp,
}

impl Proto {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Proto::Udp => "UDP",
            Proto::Tcp => "TCP",
        }
    }
}

/// Where a viewer's packets go: the transport, our local address and the viewer's. Over TCP it
/// names one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Path {
    pub proto: Proto,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// A packet to send.
#[derive(Debug)]
pub(crate) struct Transmit {
    /// The viewer it belongs to (for accounting drops).
    pub viewer: ViewerId,
    /// The transport it goes on.
    pub proto: Proto,
    /// The local address it must leave from.
    pub from: SocketAddr,
    /// Its destination.
    pub to: SocketAddr,
    pub data: BytesMut,
}

impl Transmit {
    /// `data` for `viewer`, out on `path` (from its local end to its remote one).
    fn on(viewer: ViewerId, path: Path, data: BytesMut) -> Self {
        Self {
            viewer,
            proto: path.proto,
            from: path.local,
            to: path.remote,
            data,
        }
    }
}

/// What the plane tells a viewer's signalling task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    /// Media is connected.
    Connected,
    /// Media did not connect in time; says what was tried and how far it got (sent just before
    /// `Closed(Timeout)`).
    NotConnected(String),
    /// The session is over; the signalling connection should close.
    Closed(LeaveReason),
}

/// Output for the world outside the plane.
#[derive(Debug)]
pub(crate) enum Output {
    /// An event for the host.
    Event(Event),
    /// A notice for a viewer's signalling task.
    Notice(ViewerId, Notice),
    /// A viewer of the stream needs a keyframe of this rendition (already coalesced by the
    /// keyframe policy).
    KeyframeWanted(u64, usize),
    /// The slowest viewer of a stream can receive this many bits per second (the stream's
    /// bitrate hint, already limited in rate): for the host's event and the built-in encoder.
    BitrateHint { stream: u64, bps: u64 },
    /// The number of viewers of a stream changed: `connected` ones, and `sessions` (connected
    /// or connecting).
    Viewers {
        stream: u64,
        connected: usize,
        sessions: usize,
    },
    /// No viewer uses this path any more: its TCP connection is to be closed.
    ClosePath(Path),
}

/// What the plane knows of a stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamInfo {
    pub id: u64,
    pub spec: TrackSpec,
    /// The bitrates of its renditions, best first (one for a stream of one rendition).
    pub ladder: Vec<u32>,
    /// The stream's counters for `/metrics`, shared by every loop.
    pub counters: Arc<crate::metrics::StreamCounters>,
}

/// The description made for a new viewer.
pub(crate) struct ViewerOffer {
    pub id: ViewerId,
    /// Our offer (WebSocket) or our answer (WHEP).
    pub sdp: String,
    pub candidates: Vec<RTCIceCandidateInit>,
}

/// A new viewer asked for by signalling.
pub(crate) struct NewViewer {
    pub stream: u64,
    pub protocol: Protocol,
    pub remote: SocketAddr,
    pub started: Instant,
    /// The viewer's offer (WHEP); `None` when the server offers (WebSocket).
    pub offer_sdp: Option<String>,
    /// The rendition it asked for (Flussonic's `start_track`); `None`: chosen automatically.
    pub rendition: Option<usize>,
}

/// Settings of a plane.
pub(crate) struct PlaneConfig {
    /// The viewer limits, shared with the other loops.
    pub admission: Arc<admission::Admission>,
    /// Which of `loops` media loops this plane is (it numbers its viewers accordingly).
    pub index: usize,
    pub loops: usize,
    pub limits: Limits,
    pub template: PeerTemplate,
    pub dtls: DtlsConfig,
    pub metrics: Arc<Metrics>,
    /// One reading of both clocks, to turn the instants passed in into wall-clock (NTP) times of
    /// sender reports without reading a clock.
    pub epoch: (Instant, SystemTime),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Offer sent, no answer yet.
    Offered,
    /// Descriptions exchanged; ICE and DTLS under way.
    Answered,
    /// Media flows.
    Connected,
}

/// One outgoing track of a viewer.
#[derive(Debug)]
struct TrackOut {
    ssrc: u32,
    pt: u8,
    clock_rate: u32,
    seq: u16,
    packets: u32,
    octets: u32,
    /// RTP timestamp of the last packet and when it was sent (for sender reports).
    last: Option<(u32, Instant)>,
}

impl TrackOut {
    fn new(ssrc: u32, pt: u8, clock_rate: u32) -> Self {
        Self {
            ssrc,
            pt,
            clock_rate,
            seq: rand::random(),
            packets: 0,
            octets: 0,
            last: None,
        }
    }
}

/// What the viewer's description says about its transport.
#[derive(Debug, Default)]
struct RemoteTransport {
    ufrag: Option<String>,
    fingerprint: Option<String>,
    setup: Option<String>,
    /// The id of its transport-wide-cc header extension.
    twcc: Option<u8>,
}

impl RemoteTransport {
    fn parse(sdp: &str) -> Self {
        let mut r = Self {
            twcc: bwe::twcc_extmap(sdp),
            ..Self::default()
        };
        for line in sdp.lines() {
            let line = line.trim();
            if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
                r.ufrag.get_or_insert_with(|| v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("a=fingerprint:") {
                if let Some((alg, value)) = v.split_once(' ') {
                    if alg.eq_ignore_ascii_case("sha-256") {
                        r.fingerprint
                            .get_or_insert_with(|| value.trim().to_ascii_lowercase());
                    }
                }
            } else if let Some(v) = line.strip_prefix("a=setup:") {
                r.setup.get_or_insert_with(|| v.trim().to_ascii_lowercase());
            }
        }
        r
    }
}

struct Viewer {
    stream: u64,
    protocol: Protocol,
    remote: SocketAddr,
    started: Instant,
    phase: Phase,
    ice: IceCredentials,
    remote_ufrag: Option<String>,
    remote_fingerprint: Option<String>,
    /// The description builder of the server-offer flow, until the answer is applied. Boxed:
    /// inline it would be 8.5 KB of the viewer's size for its whole life, though it is `None`
    /// once the viewer answered.
    sdp: Option<Box<RTCPeerConnection>>,
    /// The path media goes on: the pair the viewer nominated (or its first working check until
    /// it nominates).
    pair: Option<Path>,
    nominated: bool,
    /// The paths of its valid checks (for routing its other packets by transport and remote
    /// address).
    addrs: Vec<Path>,
    /// Valid checks received, per transport (UDP, TCP): what the viewer tried, for the error
    /// when it never connects.
    checks: [u32; 2],
    last_consent: Instant,
    remote_candidates: usize,
    dtls: DtlsSession,
    /// The handshake finished before the viewer's description said which certificate to expect.
    handshake: Option<(SrtpKeys, String)>,
    srtp: Option<Protection>,
    video: TrackOut,
    audio: Option<TrackOut>,
    /// The rendition its video comes from.
    rendition: usize,
    /// The rendition it moves to at that rendition's next keyframe.
    switch_to: Option<usize>,
    chooser: Chooser,
    /// Transport-wide congestion control, where the stream adapts and the viewer negotiated it.
    bwe: Option<Box<Bwe>>,
    /// Its last REMB.
    remb_bps: Option<u64>,
    /// The first video sequence number of its current rendition: NACKs of packets before it
    /// (the rendition it left) are not answered, its decoder starts again at that keyframe.
    rendition_from_seq: Option<u16>,
    /// Bytes of retransmissions it may still be sent (adaptive streams: at most
    /// [`RESEND_SHARE`] of its estimate, so that on a congested link resent packets do not crowd
    /// out the new ones), and when the bucket was last filled.
    resend_budget: (f64, Instant),
    /// Maps its video sequence numbers to [`packet_key`]s of the stream's renditions.
    seq_map: SeqMap,
    /// The catch-up frames sent to this viewer with their first sequence number and rewritten
    /// timestamp, for NACKs (until the next live keyframe).
    replayed: Vec<(u16, Arc<MediaFrame>, u32)>,
    /// Frames waiting to be sent to this viewer at a paced rate (catch-up replay first).
    backlog: VecDeque<Backlogged>,
    /// When the backlog may send more.
    backlog_next: Option<Instant>,
    /// Until a keyframe reaches it, sending a viewer delta frames is wasted: it cannot decode them.
    waiting_keyframe: bool,
    /// When its failed sends last asked for a keyframe (a viewer whose TCP connection stays full
    /// must not make the stream's source send keyframes to everyone at the rate it drops).
    drop_keyframe_at: Option<Instant>,
    first_video_sent: bool,
    next_report: Instant,
    /// Its bandwidth estimate: TWCC where it sends feedback, else REMB lowered by its loss.
    estimate_bps: Option<u64>,
    /// What it was sent and what it reported, published to the server's board.
    figures: Figures,
    /// Its entry in the timer set.
    deadline: Option<Instant>,
}

/// A viewer's figures (see [`crate::metrics::ViewerStats`]).
#[derive(Default)]
struct Figures {
    connected_at: Option<Instant>,
    packets: u64,
    bytes: u64,
    nacks: u64,
    plis: u64,
    /// Bytes and time of the last publication, for the bitrate.
    published: Option<(u64, Instant)>,
    bitrate_bps: u64,
    rtt: Option<Duration>,
    fraction_lost: f64,
    packets_lost: i64,
    jitter_ms: f64,
}

impl Figures {
    fn sent(&mut self, packets: u64, bytes: u64) {
        self.packets += packets;
        self.bytes += bytes;
    }
}

/// A frame in a viewer's backlog, with the timestamp and stream index it is sent with.
struct Backlogged {
    frame: Arc<MediaFrame>,
    timestamp: u32,
    index: Option<u64>,
}

/// What a stream keeps per rendition.
#[derive(Default)]
struct RenditionState {
    gop: GopCache,
    history: PacketHistory,
    keyframes: KeyframePolicy,
    /// When its newest video frame came.
    newest_at: Option<Instant>,
}

impl RenditionState {
    /// Whether a viewer starting now should get the cached GOP replayed (see
    /// [`keyframe::replay_worthy`]).
    fn replay_worthy(&self, now: Instant, raw_source: bool) -> bool {
        let age = self
            .newest_at
            .map_or(Duration::MAX, |t| now.saturating_duration_since(t));
        keyframe::replay_worthy(self.gop.frames().len(), raw_source, age)
    }
}

struct StreamState {
    info: StreamInfo,
    viewers: Vec<ViewerId>,
    connected: usize,
    renditions: Vec<RenditionState>,
    bitrate: BitrateHint,
    /// The last video frame came from the built-in encoder (which makes keyframes on demand)
    /// rather than from a host pushing encoded video.
    raw_source: bool,
}

/// A frame on its way to a stream's viewers, one viewer per step of
/// [`MediaPlane::poll_transmit`], so that a keyframe to many viewers never sits whole in memory.
struct FanOut {
    stream: u64,
    frame: Arc<MediaFrame>,
    /// [`packet_key`] of the frame's first packet (video).
    first_index: u64,
    viewers: Vec<ViewerId>,
    next: usize,
}

/// The sans-IO media plane. See the module documentation.
pub(crate) struct MediaPlane {
    limits: Limits,
    admission: Arc<admission::Admission>,
    template: PeerTemplate,
    dtls: DtlsConfig,
    crypto: Arc<dyn RTCCryptoProvider>,
    metrics: Arc<Metrics>,
    epoch: (Instant, SystemTime),
    streams: HashMap<u64, StreamState>,
    /// Boxed: a `Viewer` is ~10 KB, and a map never gives back its capacity, so unboxed every
    /// slot of the most sessions ever held at once stayed allocated for the life of the server
    /// (~5 MB per loop at 448 sessions); a box leaves 16 bytes a slot once its viewer is gone.
    viewers: HashMap<ViewerId, Box<Viewer>>,
    by_ufrag: HashMap<String, ViewerId>,
    by_addr: HashMap<(Proto, SocketAddr), ViewerId>,
    timers: BTreeSet<(Instant, ViewerId)>,
    next_viewer: ViewerId,
    /// Viewer ids advance by the number of loops (ids are unique across loops).
    id_step: u64,
    transmits: VecDeque<Transmit>,
    outputs: VecDeque<Output>,
    fanouts: VecDeque<FanOut>,
    /// Where RTP packets are written and sealed (see [`SLAB`]).
    slab: BytesMut,
}

impl MediaPlane {
    pub fn new(config: PlaneConfig) -> Self {
        Self {
            limits: config.limits,
            admission: config.admission,
            template: config.template.for_loop(config.index),
            crypto: config.dtls.crypto.clone(),
            dtls: config.dtls,
            metrics: config.metrics,
            epoch: config.epoch,
            streams: HashMap::new(),
            viewers: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            timers: BTreeSet::new(),
            next_viewer: config.index as u64 + 1,
            id_step: config.loops.max(1) as u64,
            transmits: VecDeque::new(),
            outputs: VecDeque::new(),
            fanouts: VecDeque::new(),
            slab: BytesMut::new(),
        }
    }

    /// A viewer's local ICE credentials (ufrag, password), for the fuzz targets' valid checks.
    #[cfg(feature = "fuzzing")]
    pub fn fuzz_credentials(&self, id: ViewerId) -> Option<(String, String)> {
        self.viewers
            .get(&id)
            .map(|v| (v.ice.ufrag.clone(), v.ice.pwd.clone()))
    }

    /// Viewer sessions (any state) and streams held.
    pub fn census(&self) -> (usize, usize) {
        (self.viewers.len(), self.streams.len())
    }

    pub fn open_stream(&mut self, info: StreamInfo) {
        let renditions = (0..info.ladder.len().max(1))
            .map(|_| RenditionState::default())
            .collect();
        self.streams.insert(
            info.id,
            StreamState {
                info,
                viewers: Vec::new(),
                connected: 0,
                renditions,
                bitrate: BitrateHint::default(),
                raw_source: false,
            },
        );
    }

    /// Disconnects the stream's viewers and forgets it.
    pub fn close_stream(&mut self, now: Instant, id: u64) {
        if let Some(st) = self.streams.get(&id) {
            for v in st.viewers.clone() {
                self.close_viewer(now, v, LeaveReason::Shutdown);
            }
        }
        self.streams.remove(&id);
        self.fanouts.retain(|f| f.stream != id);
    }

    /// Closes every viewer (their close_notify is queued) and every stream.
    pub fn shutdown(&mut self, now: Instant) {
        let ids: Vec<ViewerId> = self.viewers.keys().copied().collect();
        for id in ids {
            self.close_viewer(now, id, LeaveReason::Shutdown);
        }
        self.streams.clear();
        self.fanouts.clear();
    }

    /// Creates a viewer and its description: our offer, or (WHEP) our answer to its offer.
    pub fn new_viewer(&mut self, now: Instant, req: NewViewer) -> Result<ViewerOffer> {
        let st = self
            .streams
            .get(&req.stream)
            .ok_or_else(|| Error::StreamClosed(format!("#{}", req.stream)))?;
        let spec = st.info.spec.clone();
        let last = st.renditions.len().saturating_sub(1);
        let rendition = req.rendition.map_or(0, |r| r.min(last));
        let start_bps = st.info.ladder.get(rendition).copied().unwrap_or(0);
        self.admission
            .admit(req.stream, &spec.stream, req.remote.ip())?;
        let answering = req.offer_sdp.is_some();
        let built = match req.offer_sdp {
            None => self
                .template
                .new_peer(now, &spec)
                .map(|p| (p, RemoteTransport::default())),
            Some(offer) => {
                let remote = RemoteTransport::parse(&offer);
                self.template
                    .new_answering_peer(now, &spec, offer)
                    .map(|p| (p, remote))
            }
        };
        let (peer, remote) = match built {
            Ok(b) => b,
            Err(e) => {
                self.admission.release(req.stream, req.remote.ip(), true);
                return Err(e);
            }
        };
        let role = if answering {
            // Our answer says which side we are (`passive` unless the offer was `passive`).
            match RemoteTransport::parse(&peer.local_sdp).setup.as_deref() {
                Some("active") => DtlsRole::Client,
                _ => DtlsRole::Server,
            }
        } else {
            // Browsers answer our `actpass` with `active`; corrected if the answer says otherwise.
            DtlsRole::Server
        };
        let id = self.next_viewer;
        self.next_viewer += self.id_step;
        let offer = ViewerOffer {
            id,
            sdp: peer.local_sdp.clone(),
            candidates: self.template.candidates.clone(),
        };
        self.by_ufrag.insert(peer.ice.ufrag.clone(), id);
        // Transport-wide congestion control where the stream adapts and both descriptions carry
        // the extension (ours now; the viewer's answer, when it comes, must keep it).
        let bwe = peer
            .twcc_ext
            .filter(|_| spec.adaptive)
            .map(|ext| Box::new(Bwe::new(ext, u64::from(start_bps) * 3 / 2)));
        let viewer = Viewer {
            stream: req.stream,
            protocol: req.protocol,
            remote: req.remote,
            started: req.started,
            phase: if answering {
                Phase::Answered
            } else {
                Phase::Offered
            },
            ice: peer.ice,
            remote_ufrag: remote.ufrag,
            remote_fingerprint: remote.fingerprint,
            sdp: (!answering).then(|| Box::new(peer.pc)),
            pair: None,
            nominated: false,
            addrs: Vec::new(),
            checks: [0; 2],
            last_consent: now,
            remote_candidates: 0,
            dtls: DtlsSession::new(&self.dtls, role),
            handshake: None,
            srtp: None,
            video: TrackOut::new(spec.video_ssrc, peer.video_pt, VIDEO_CLOCK_RATE),
            audio: match (spec.audio_ssrc, peer.audio_pt) {
                (Some(ssrc), Some(pt)) => Some(TrackOut::new(ssrc, pt, OPUS_CLOCK_RATE)),
                _ => None,
            },
            rendition,
            switch_to: None,
            chooser: Chooser::new(req.rendition.map_or(Mode::Auto, Mode::Fixed)),
            bwe,
            remb_bps: None,
            rendition_from_seq: None,
            resend_budget: (0.0, now),
            seq_map: SeqMap::default(),
            replayed: Vec::new(),
            backlog: VecDeque::new(),
            backlog_next: None,
            waiting_keyframe: true,
            drop_keyframe_at: None,
            first_video_sent: false,
            next_report: now,
            estimate_bps: None,
            figures: Figures::default(),
            deadline: None,
        };
        self.viewers.insert(id, Box::new(viewer));
        Metrics::add(&self.metrics.sessions, 1);
        if let Some(st) = self.streams.get_mut(&req.stream) {
            st.viewers.push(id);
            // Its loop takes the stream's frames as they come from now on (see `net::frames`).
            self.outputs.push_back(Output::Viewers {
                stream: req.stream,
                connected: st.connected,
                sessions: st.viewers.len(),
            });
            // Ask for the keyframe now rather than once connected: it is ready (in the GOP cache)
            // by the time ICE and DTLS are done, ~100 ms sooner for the built-in encoder.
            if let Some(r) = st.renditions.get_mut(rendition) {
                if !r.replay_worthy(now, st.raw_source) && r.keyframes.request(now, st.raw_source) {
                    self.outputs
                        .push_back(Output::KeyframeWanted(req.stream, rendition));
                }
            }
        }
        self.rearm(now, id);
        Ok(offer)
    }

    /// Applies a WebSocket viewer's answer. `InvalidData` when it is not a usable answer.
    pub fn apply_answer(&mut self, now: Instant, id: ViewerId, sdp: String) -> Result<()> {
        let v = self
            .viewers
            .get_mut(&id)
            .ok_or_else(|| Error::WebRtc("the session is already closed".into()))?;
        let Some(mut pc) = v.sdp.take().filter(|_| v.phase == Phase::Offered) else {
            return Err(Error::InvalidData("an answer was already received".into()));
        };
        let remote = RemoteTransport::parse(&sdp);
        let answer = RTCSessionDescription::answer(sdp)
            .map_err(|e| Error::InvalidData(format!("the answer is not valid SDP: {e}")))?;
        if let Err(e) = pc.set_remote_description(now, answer) {
            // Keep the builder: a later valid answer may still come (the viewer is refused and
            // closed by its signalling task anyway).
            v.sdp = Some(pc);
            return Err(Error::InvalidData(format!("the answer was refused: {e}")));
        }
        // The descriptions are exchanged: webrtc-rs's connection has done its part.
        drop(pc);
        if remote.fingerprint.is_none() {
            return Err(Error::InvalidData(
                "the answer has no a=fingerprint:sha-256 line".into(),
            ));
        }
        tracing::debug!(
            viewer = id,
            after_ms = now.duration_since(v.started).as_millis() as u64,
            "answer applied"
        );
        v.remote_ufrag = remote.ufrag;
        v.remote_fingerprint = remote.fingerprint;
        v.phase = Phase::Answered;
        // Congestion control only if the answer kept the extension we offered.
        if v.bwe.as_ref().is_some_and(|b| remote.twcc != Some(b.ext)) {
            v.bwe = None;
        }
        if remote.setup.as_deref() == Some("passive") && v.dtls.role() == DtlsRole::Server {
            v.dtls = DtlsSession::new(&self.dtls, DtlsRole::Client);
        }
        self.start_dtls_client(now, id);
        // A handshake that finished before the answer arrived can be checked now.
        if let Some((keys, fingerprint)) =
            self.viewers.get_mut(&id).and_then(|v| v.handshake.take())
        {
            self.on_handshake(now, id, keys, fingerprint);
        }
        self.rearm(now, id);
        Ok(())
    }

    /// A candidate trickled by a viewer. ICE-lite sends no checks, so the address is never used:
    /// it is only counted. `LimitReached` past [`MAX_REMOTE_CANDIDATES`].
    pub fn remote_candidate(&mut self, id: ViewerId) -> Result<()> {
        let Some(v) = self.viewers.get_mut(&id) else {
            return Ok(());
        };
        v.remote_candidates += 1;
        if v.remote_candidates > MAX_REMOTE_CANDIDATES {
            return Err(Error::LimitReached(format!(
                "more than {MAX_REMOTE_CANDIDATES} candidates from one viewer"
            )));
        }
        Ok(())
    }

    /// A packet arrived on `path` (over TCP: one RFC 4571 frame, without its length).
    pub fn handle_datagram(&mut self, now: Instant, path: Path, data: &[u8]) {
        let key = (path.proto, path.remote);
        match data.first() {
            // RFC 7983 demultiplexing.
            Some(0..=3) => self.on_stun(now, path, data),
            Some(20..=63) => {
                if let Some(&id) = self.by_addr.get(&key) {
                    self.on_dtls(now, id, path.remote, data);
                }
            }
            Some(128..=191) => {
                if let Some(&id) = self.by_addr.get(&key) {
                    self.on_rtcp(now, id, data);
                }
            }
            _ => {}
        }
    }

    /// A path closed under a viewer (its ICE-TCP connection ended): a viewer whose media went
    /// on it has lost it (it is closed now rather than at the consent deadline).
    pub fn handle_path_closed(&mut self, now: Instant, path: Path) {
        let key = (path.proto, path.remote);
        let Some(id) = self.by_addr.remove(&key) else {
            return;
        };
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        v.addrs.retain(|a| (a.proto, a.remote) != key);
        if v.pair == Some(path) {
            if v.phase == Phase::Connected {
                tracing::debug!(viewer = id, remote = %path.remote, "its TCP connection closed");
                self.close_viewer(now, id, LeaveReason::ConnectionLost);
            } else {
                v.pair = None;
                v.nominated = false;
            }
        }
    }

    fn on_stun(&mut self, now: Instant, path: Path, data: &[u8]) {
        let from = path.remote;
        let Some(id) = crate::net::stun::local_ufrag(data).and_then(|u| self.by_ufrag.get(u))
        else {
            return; // not ours: a stray, or a viewer already gone
        };
        let id = *id;
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let answered = match ice::answer_check(
            data,
            from,
            &v.ice,
            v.remote_ufrag.as_deref(),
            self.crypto.crypto(),
        ) {
            Ok(a) => a,
            Err(why) => {
                tracing::trace!(viewer = id, ?why, "connectivity check not answered");
                return;
            }
        };
        v.last_consent = now;
        let [udp_checks, tcp_checks] = &mut v.checks;
        let checks = match path.proto {
            Proto::Udp => udp_checks,
            Proto::Tcp => tcp_checks,
        };
        *checks = checks.saturating_add(1);
        if !v.addrs.contains(&path) && v.addrs.len() < MAX_ADDRS_PER_VIEWER {
            v.addrs.push(path);
            self.by_addr.insert((path.proto, from), id);
        }
        if v.pair.is_none() || (answered.nominated && (!v.nominated || v.pair != Some(path))) {
            tracing::debug!(
                viewer = id,
                %from,
                proto = path.proto.name(),
                nominated = answered.nominated,
                after_ms = now.duration_since(v.started).as_millis() as u64,
                "ICE pair"
            );
            v.pair = Some(path);
            v.nominated |= answered.nominated;
        }
        self.transmits.push_back(Transmit::on(
            id,
            path,
            BytesMut::from(&answered.response[..]),
        ));
        self.start_dtls_client(now, id);
        self.rearm(now, id);
    }

    /// As the DTLS client, starts the handshake once the answer and a pair are there.
    fn start_dtls_client(&mut self, now: Instant, id: ViewerId) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        if v.dtls.role() != DtlsRole::Client || v.phase == Phase::Offered {
            return;
        }
        let Some(path) = v.pair else {
            return;
        };
        if let Err(e) = v.dtls.start(now, path.remote) {
            tracing::debug!(viewer = id, "{e}");
        }
        self.flush_dtls(id);
    }

    fn on_dtls(&mut self, now: Instant, id: ViewerId, from: SocketAddr, data: &[u8]) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let event = v.dtls.handle_datagram(now, from, data, &self.crypto);
        self.flush_dtls(id);
        match event {
            Ok(Some(DtlsEvent::Connected { keys, fingerprint })) => {
                self.on_handshake(now, id, keys, fingerprint)
            }
            // close_notify: the viewer hung up on purpose.
            Ok(Some(DtlsEvent::Closed)) => self.close_viewer(now, id, LeaveReason::Closed),
            Ok(None) => {}
            Err(e) => tracing::debug!(viewer = id, "{e}"),
        }
        self.rearm(now, id);
    }

    /// The DTLS handshake is done: the viewer is connected once its certificate is the one its
    /// description announced.
    fn on_handshake(&mut self, now: Instant, id: ViewerId, keys: SrtpKeys, fingerprint: String) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let Some(expected) = &v.remote_fingerprint else {
            v.handshake = Some((keys, fingerprint));
            return;
        };
        if *expected != fingerprint {
            tracing::debug!(
                viewer = id,
                "DTLS certificate does not match the description"
            );
            self.close_viewer(now, id, LeaveReason::ConnectionLost);
            return;
        }
        match Protection::new(&keys, self.crypto.crypto()) {
            Ok(p) => v.srtp = Some(p),
            Err(e) => {
                tracing::warn!(viewer = id, "{e}");
                self.close_viewer(now, id, LeaveReason::ConnectionLost);
                return;
            }
        }
        tracing::debug!(
            viewer = id,
            after_ms = now.duration_since(v.started).as_millis() as u64,
            "DTLS connected"
        );
        v.phase = Phase::Connected;
        v.figures.connected_at = Some(now);
        v.last_consent = now;
        v.next_report = report_slot(self.epoch.0, now);
        self.admission.connected(v.remote.ip());
        let (stream, protocol, remote) = (v.stream, v.protocol, v.remote);
        self.outputs
            .push_back(Output::Notice(id, Notice::Connected));
        Metrics::add(&self.metrics.viewers, 1);
        Metrics::add(&self.metrics.viewers_total, 1);
        if let Some(st) = self.streams.get_mut(&stream) {
            st.connected += 1;
            self.outputs.push_back(Output::Viewers {
                stream,
                connected: st.connected,
                sessions: st.viewers.len(),
            });
            self.outputs.push_back(Output::Event(Event::ViewerJoined {
                stream: st.info.spec.stream.clone(),
                viewer: id,
                protocol,
                remote,
            }));
        }
        self.start_media(now, id);
    }

    /// A viewer's media just connected: give it a picture as soon as possible.
    fn start_media(&mut self, now: Instant, id: ViewerId) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let Some(st) = self.streams.get_mut(&v.stream) else {
            return;
        };
        v.waiting_keyframe = true;
        let rendition = v.rendition;
        let Some(r) = st.renditions.get_mut(rendition) else {
            return;
        };
        if !r.replay_worthy(now, st.raw_source) {
            if r.keyframes.request(now, st.raw_source) {
                self.outputs
                    .push_back(Output::KeyframeWanted(st.info.id, rendition));
            }
            return;
        }
        let gop = r.gop.frames();
        // Replay the frames since the last keyframe so the decoder reaches the current picture
        // now. Their timestamps are squeezed to one tick apart just below the newest one, so the
        // browser's jitter buffer treats them as already late and shows the result at once.
        // They are paced (see `drain_backlog`): a long GOP sent at once overflows receive
        // buffers and is lost.
        let Some(newest) = gop.last().map(|f| f.rtp_timestamp) else {
            return;
        };
        let n = gop.len() as u32;
        for (i, frame) in gop.iter().enumerate() {
            let ts = newest.wrapping_sub(n - 1 - i as u32);
            v.backlog.push_back(Backlogged {
                frame: frame.clone(),
                timestamp: ts,
                index: None,
            });
        }
        self.drain_backlog(now, id);
    }

    /// Sends a viewer's backlog (a catch-up replay, and the live frames that came meanwhile) at
    /// most [`BACKLOG_BYTES_PER_TICK`] per [`BACKLOG_TICK`] (~50 Mbit/s: many times a stream's
    /// rate, so it catches up within a fraction of a second), at least one frame a tick.
    fn drain_backlog(&mut self, now: Instant, id: ViewerId) {
        let mut budget = BACKLOG_BYTES_PER_TICK;
        let mut first = true;
        loop {
            let Some(v) = self.viewers.get_mut(&id) else {
                return;
            };
            let fits = v
                .backlog
                .front()
                .is_some_and(|b| first || b.frame.bytes <= budget);
            if !fits {
                v.backlog_next = (!v.backlog.is_empty()).then_some(now + BACKLOG_TICK);
                return;
            }
            let Some(b) = v.backlog.pop_front() else {
                return;
            };
            budget = budget.saturating_sub(b.frame.bytes);
            first = false;
            self.send_frame(now, id, &b.frame, b.timestamp, b.index);
        }
    }

    fn on_rtcp(&mut self, now: Instant, id: ViewerId, data: &[u8]) {
        // RTCP packet types 192..=223 (RFC 5761); viewers send no RTP.
        let [_, packet_type, ..] = *data else {
            return;
        };
        if !(192..=223).contains(&packet_type) {
            return;
        }
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let Some(srtp) = v.srtp.as_mut() else {
            return;
        };
        let plain = match srtp.unprotect_rtcp(data) {
            Ok(p) => p,
            Err(e) => {
                tracing::trace!(viewer = id, "{e}");
                return;
            }
        };
        let (stream, video_ssrc, rendition) = (v.stream, v.video.ssrc, v.rendition);
        let feedback = match read_feedback(&plain, video_ssrc) {
            Ok(f) => f,
            Err(e) => {
                tracing::trace!(viewer = id, "bad RTCP: {e}");
                return;
            }
        };
        Metrics::add(&self.metrics.nacks, feedback.nacks);
        Metrics::add(&self.metrics.plis, feedback.plis);
        if let Some(v) = self.viewers.get_mut(&id) {
            let f = &mut v.figures;
            f.nacks += feedback.nacks;
            f.plis += feedback.plis;
            if let Some(bwe) = v.bwe.as_mut() {
                for twcc in &feedback.twcc {
                    bwe.on_feedback(now, twcc);
                }
            }
            if let Some(rr) = &feedback.report {
                f.fraction_lost = f64::from(rr.fraction_lost) / 256.0;
                // 24-bit signed (RFC 3550 §6.4.1).
                f.packets_lost = i64::from(((rr.total_lost << 8) as i32) >> 8);
                f.jitter_ms = f64::from(rr.jitter) * 1000.0 / f64::from(v.video.clock_rate);
                if let Some(rtt) = round_trip(ntp_time(self.epoch, now), rr) {
                    f.rtt = Some(rtt);
                }
            }
            if let Some(st) = self.streams.get(&stream) {
                Metrics::add(&st.info.counters.nacks, feedback.nacks);
                Metrics::add(&st.info.counters.plis, feedback.plis);
            }
        }
        for seq in feedback.nacked {
            self.retransmit(now, id, seq);
        }
        if feedback.plis > 0 {
            self.want_keyframe(now, stream, rendition);
        }
        if let Some(v) = self.viewers.get_mut(&id) {
            if feedback.estimate.is_some() {
                v.remb_bps = feedback.estimate;
            }
        }
        if !feedback.twcc.is_empty() || feedback.estimate.is_some() {
            self.adapt(now, id);
        }
    }

    /// A viewer's estimate may have changed: update it, move it to another rendition if it
    /// should, and the stream's bitrate hint.
    fn adapt(&mut self, now: Instant, id: ViewerId) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let Some(st) = self.streams.get(&v.stream) else {
            return;
        };
        let estimate = match v.bwe.as_ref().and_then(|b| b.estimate(now)) {
            Some(e) => Some(e),
            // REMB says what arrives, not what is lost: a viewer losing much of what it is sent
            // gets no more than what reaches it.
            None => v.remb_bps.map(|remb| {
                let loss = v.figures.fraction_lost;
                if loss > 0.1 && v.figures.bitrate_bps > 0 {
                    let arriving = v.figures.bitrate_bps as f64 * (1.0 - loss);
                    remb.min(arriving as u64)
                } else {
                    remb
                }
            }),
        };
        v.estimate_bps = estimate;
        let stream = v.stream;
        if let (Some(e), true) = (estimate, st.info.ladder.len() > 1) {
            let target = v.chooser.update(now, e, v.rendition, &st.info.ladder);
            if let Some(to) = target.filter(|&to| v.switch_to != Some(to) && to != v.rendition) {
                let parts = v.bwe.as_ref().map(|b| b.parts(now));
                tracing::debug!(
                    viewer = id,
                    from = v.rendition,
                    to,
                    estimate = e,
                    ?parts,
                    "switching rendition"
                );
                v.switch_to = Some(to);
                self.want_keyframe(now, stream, to);
            }
        }
        self.update_bitrate_hint(now, stream);
    }

    /// The viewer asked for a rendition (`Some`) or for automatic choice (`None`): Flussonic's
    /// `request_tracks`. It moves at that rendition's next keyframe (asked for now).
    pub fn request_rendition(&mut self, now: Instant, id: ViewerId, rendition: Option<usize>) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let Some(st) = self.streams.get(&v.stream) else {
            return;
        };
        let last = st.renditions.len().saturating_sub(1);
        let mode = rendition.map_or(Mode::Auto, |r| Mode::Fixed(r.min(last)));
        v.chooser.set_mode(mode);
        let stream = v.stream;
        match mode {
            Mode::Fixed(to) if to != v.rendition => {
                v.switch_to = Some(to);
                self.want_keyframe(now, stream, to);
            }
            Mode::Fixed(_) => v.switch_to = None,
            Mode::Auto => self.adapt(now, id),
        }
    }

    fn want_keyframe(&mut self, now: Instant, stream: u64, rendition: usize) {
        if let Some(st) = self.streams.get_mut(&stream) {
            if let Some(r) = st.renditions.get_mut(rendition) {
                if r.keyframes.request(now, st.raw_source) {
                    self.outputs
                        .push_back(Output::KeyframeWanted(stream, rendition));
                }
            }
        }
    }

    /// Resends a video packet the viewer reported lost, from the stream's history.
    fn retransmit(&mut self, now: Instant, id: ViewerId, seq: u16) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let Some(st) = self.streams.get(&v.stream) else {
            return;
        };
        // A live packet from the stream's history, or one of the viewer's catch-up replay (sent
        // with its rewritten timestamp).
        let packet = v
            .seq_map
            .index_of(seq)
            .and_then(|key| {
                let (rendition, index) = unpack_key(key);
                st.renditions.get(rendition)?.history.get(index)
            })
            .map(|p| (p.payload.clone(), p.timestamp, p.marker))
            .or_else(|| {
                v.replayed.iter().find_map(|(first, frame, ts)| {
                    let d = usize::from(seq.wrapping_sub(*first));
                    let payload = frame.payloads.get(d)?;
                    Some((payload.clone(), *ts, d + 1 == frame.payloads.len()))
                })
            });
        let Some((payload, timestamp, marker)) = packet else {
            return;
        };
        if v.rendition_from_seq
            .is_some_and(|from| (from.wrapping_sub(seq) as i16) > 0)
        {
            return; // of the rendition it left
        }
        if let (Some(estimate), true) =
            (v.estimate_bps, st.info.ladder.len() > 1 || v.bwe.is_some())
        {
            let rate = estimate as f64 / 8.0 * RESEND_SHARE;
            let (tokens, at) = &mut v.resend_budget;
            *tokens = (*tokens + rate * now.saturating_duration_since(*at).as_secs_f64()).min(rate);
            *at = now;
            let cost = (payload.len() + RTP_OVERHEAD) as f64;
            if *tokens < cost {
                tracing::trace!(viewer = id, seq, "retransmission over budget");
                return;
            }
            *tokens -= cost;
        }
        let (Some(path), Some(srtp)) = (v.pair, v.srtp.as_mut()) else {
            return;
        };
        let twcc = v.bwe.as_mut().map(|b| {
            let size = payload.len() + RTP_OVERHEAD;
            (b.ext, b.on_sent(now, v.video.ssrc, seq, size))
        });
        let head = rtp_header(&v.video, seq, timestamp, marker);
        if let Some(data) = protect(&mut self.slab, srtp, head, twcc, &payload) {
            Metrics::add(&self.metrics.retransmissions, 1);
            v.figures.sent(1, data.len() as u64);
            st.info.counters.sent(1, data.len() as u64);
            self.transmits.push_back(Transmit::on(id, path, data));
        }
    }

    /// A viewer reported a new bandwidth estimate: the stream's hint follows its slowest viewer.
    fn update_bitrate_hint(&mut self, now: Instant, stream: u64) {
        let Some(st) = self.streams.get_mut(&stream) else {
            return;
        };
        let slowest = st
            .viewers
            .iter()
            .filter_map(|v| self.viewers.get(v).and_then(|v| v.estimate_bps))
            .min();
        if let Some(bps) = slowest.and_then(|bps| st.bitrate.update(bps, now)) {
            self.outputs.push_back(Output::BitrateHint { stream, bps });
            self.outputs.push_back(Output::Event(Event::BitrateHint {
                stream: st.info.spec.stream.clone(),
                bps,
            }));
        }
    }

    /// A frame pushed into a stream. `after_gap`: frames of the stream were dropped before this
    /// one. `raw_source`: it comes from the built-in encoder.
    pub fn handle_frame(
        &mut self,
        now: Instant,
        stream: u64,
        frame: Arc<MediaFrame>,
        after_gap: bool,
        raw_source: bool,
    ) {
        let Some(st) = self.streams.get_mut(&stream) else {
            return;
        };
        let mut first_index = 0;
        if frame.kind == TrackKind::Video {
            st.raw_source = raw_source;
            let rendition = frame.rendition;
            let Some(r) = st.renditions.get_mut(rendition) else {
                return;
            };
            if after_gap {
                // Frames were lost before reaching us: nobody on this rendition can decode past
                // the gap.
                r.gop.clear();
                for id in &st.viewers {
                    if let Some(v) = self
                        .viewers
                        .get_mut(id)
                        .filter(|v| v.rendition == rendition)
                    {
                        v.waiting_keyframe = true;
                    }
                }
                if !frame.keyframe && r.keyframes.request(now, raw_source) {
                    self.outputs
                        .push_back(Output::KeyframeWanted(stream, rendition));
                }
            }
            if frame.keyframe {
                r.keyframes.arrived();
            }
            r.newest_at = Some(now);
            r.gop.push(&frame);
            first_index = packet_key(rendition, r.history.next_index());
            let last = frame.payloads.len().saturating_sub(1);
            for (i, payload) in frame.payloads.iter().enumerate() {
                r.history.push(SentPacket {
                    payload: payload.clone(),
                    timestamp: frame.rtp_timestamp,
                    marker: i == last,
                });
            }
        }
        if st.connected == 0 {
            return;
        }
        self.fanouts.push_back(FanOut {
            stream,
            frame,
            first_index,
            viewers: st.viewers.clone(),
            next: 0,
        });
    }

    /// Queues a frame's packets for one viewer. `index`: the stream index of its first packet
    /// (live video), `None` for a catch-up frame whose timestamp was rewritten.
    fn send_frame(
        &mut self,
        now: Instant,
        id: ViewerId,
        frame: &Arc<MediaFrame>,
        mut timestamp: u32,
        mut index: Option<u64>,
    ) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        if v.phase != Phase::Connected {
            return;
        }
        let (Some(path), Some(srtp)) = (v.pair, v.srtp.as_mut()) else {
            return;
        };
        let video = frame.kind == TrackKind::Video;
        if video && frame.rendition != v.rendition {
            // Another rendition: the one it moves to, from that rendition's keyframe on.
            if v.switch_to != Some(frame.rendition) || !frame.keyframe {
                return;
            }
            let from = std::mem::replace(&mut v.rendition, frame.rendition);
            v.switch_to = None;
            v.waiting_keyframe = false;
            v.replayed.clear();
            v.seq_map.break_run();
            v.rendition_from_seq = Some(v.video.seq);
            // The old rendition's frame of this instant may have gone out already: one tick
            // later, or the browser would take both for one frame (its frames are told apart by
            // timestamp). NACKs of it are then answered like a catch-up frame's.
            if v.video.last.is_some_and(|(ts, _)| ts == timestamp) {
                timestamp = timestamp.wrapping_add(1);
                index = None;
            }
            if let Some(st) = self.streams.get(&v.stream) {
                self.outputs
                    .push_back(Output::Event(Event::RenditionSwitched {
                        stream: st.info.spec.stream.clone(),
                        viewer: id,
                        from: crate::stream::Rendition::track_name(from),
                        to: crate::stream::Rendition::track_name(frame.rendition),
                        estimate_bps: v.estimate_bps.unwrap_or(0),
                    }));
            }
        }
        let track = if video {
            if v.waiting_keyframe {
                if !frame.keyframe {
                    return;
                }
                v.waiting_keyframe = false;
            }
            &mut v.video
        } else {
            match v.audio.as_mut() {
                Some(t) => t,
                None => return,
            }
        };
        if video {
            match index {
                // A live keyframe: what was replayed before it no longer matters to the decoder.
                Some(_) if frame.keyframe => v.replayed.clear(),
                Some(_) => {}
                None => {
                    if v.replayed.len() == MAX_REPLAYED_FRAMES {
                        v.replayed.remove(0);
                    }
                    v.replayed.push((track.seq, frame.clone(), timestamp));
                }
            }
        }
        let last = frame.payloads.len().saturating_sub(1);
        let (mut packets, mut bytes) = (0u64, 0u64);
        for (i, payload) in frame.payloads.iter().enumerate() {
            // Video: the marker ends a frame. Audio: each Opus packet stands alone.
            let twcc = match v.bwe.as_mut() {
                Some(b) if video => Some((
                    b.ext,
                    b.on_sent(now, track.ssrc, track.seq, payload.len() + RTP_OVERHEAD),
                )),
                _ => None,
            };
            let head = rtp_header(track, track.seq, timestamp, video && i == last);
            if video {
                match index {
                    Some(first) => v.seq_map.record(track.seq, first + i as u64),
                    None if i == 0 => v.seq_map.break_run(),
                    None => {}
                }
            }
            track.seq = track.seq.wrapping_add(1);
            let Some(data) = protect(&mut self.slab, srtp, head, twcc, payload) else {
                continue;
            };
            track.packets = track.packets.wrapping_add(1);
            track.octets = track.octets.wrapping_add(payload.len() as u32);
            track.last = Some((timestamp, now));
            packets += 1;
            bytes += data.len() as u64;
            self.transmits.push_back(Transmit::on(id, path, data));
        }
        v.figures.sent(packets, bytes);
        let counters = self.streams.get(&v.stream).map(|st| &st.info.counters);
        if let Some(c) = counters {
            c.sent(packets, bytes);
        }
        if video && !v.first_video_sent {
            tracing::debug!(
                viewer = id,
                after_ms = now.duration_since(v.started).as_millis() as u64,
                keyframe = frame.keyframe,
                "first video frame sent"
            );
            v.first_video_sent = true;
            let ttff = now.duration_since(v.started);
            self.metrics.observe_ttff(ttff);
            if let Some(c) = counters {
                c.observe_ttff(ttff);
            }
        }
    }

    /// A datagram to `viewer` could not be sent (socket buffer full): its decoding is broken
    /// until the next keyframe.
    pub fn handle_send_failed(&mut self, now: Instant, viewer: ViewerId) {
        let Some(v) = self.viewers.get_mut(&viewer) else {
            return;
        };
        Metrics::add(&self.metrics.send_drops, 1);
        if !v.waiting_keyframe {
            v.waiting_keyframe = true;
            let due = v
                .drop_keyframe_at
                .is_none_or(|t| now.saturating_duration_since(t) >= DROP_KEYFRAME_INTERVAL);
            if due {
                v.drop_keyframe_at = Some(now);
                let (stream, rendition) = (v.stream, v.rendition);
                self.want_keyframe(now, stream, rendition);
            }
        }
    }

    /// The next datagram to send, if any. Frames are fanned out one viewer per call as the
    /// driver asks, so a frame to many viewers never sits encrypted in memory whole.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        loop {
            if let Some(t) = self.transmits.pop_front() {
                return Some(t);
            }
            let fan = self.fanouts.front_mut()?;
            let Some(&id) = fan.viewers.get(fan.next) else {
                self.fanouts.pop_front();
                continue;
            };
            fan.next += 1;
            let frame = fan.frame.clone();
            let index = (frame.kind == TrackKind::Video).then_some(fan.first_index);
            if !self.streams.contains_key(&fan.stream) {
                continue;
            }
            match self.viewers.get_mut(&id) {
                // Video of a rendition it neither has nor moves to.
                Some(v)
                    if frame.kind == TrackKind::Video
                        && frame.rendition != v.rendition
                        && v.switch_to != Some(frame.rendition) => {}
                // Behind a backlog too long to catch up with: drop it, start again from a
                // keyframe.
                Some(v) if v.backlog.len() >= MAX_BACKLOG_FRAMES => {
                    tracing::debug!(viewer = id, "backlog full: dropped, waiting for a keyframe");
                    v.backlog = VecDeque::new();
                    v.backlog_next = None;
                    self.handle_send_failed(now, id);
                    self.send_frame(now, id, &frame, frame.rtp_timestamp, index);
                }
                // Behind its backlog: in order, after it.
                Some(v) if !v.backlog.is_empty() => v.backlog.push_back(Backlogged {
                    timestamp: frame.rtp_timestamp,
                    frame,
                    index,
                }),
                Some(_) => self.send_frame(now, id, &frame, frame.rtp_timestamp, index),
                None => {}
            }
        }
    }

    /// The next output for the host or a signalling task.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`MediaPlane::handle_timeout`] must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Runs every timer due at `now`: DTLS retransmissions, sender reports, connect and consent
    /// deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(t, id)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let Some(v) = self.viewers.get_mut(&id) else {
                continue;
            };
            v.deadline = None;
            if v.phase != Phase::Connected {
                // checked_add: a timeout too long for an Instant (Duration::MAX) never expires.
                if after(v.started, self.limits.connect_timeout).is_some_and(|t| now >= t) {
                    let why = self.why_not_connected(id);
                    tracing::info!(viewer = id, "{why}");
                    self.outputs
                        .push_back(Output::Notice(id, Notice::NotConnected(why)));
                    self.close_viewer(now, id, LeaveReason::Timeout);
                    continue;
                }
            } else if after(v.last_consent, self.limits.consent_timeout).is_some_and(|t| now >= t) {
                tracing::debug!(viewer = id, "consent lost");
                self.close_viewer(now, id, LeaveReason::ConnectionLost);
                continue;
            }
            if v.dtls.poll_timeout().is_some_and(|t| t <= now) {
                if let Err(e) = v.dtls.handle_timeout(now) {
                    tracing::debug!(viewer = id, "{e}");
                    self.close_viewer(now, id, LeaveReason::ConnectionLost);
                    continue;
                }
                self.flush_dtls(id);
            }
            let backlog_due = self
                .viewers
                .get_mut(&id)
                .and_then(|v| v.backlog_next.take_if(|t| *t <= now))
                .is_some();
            if backlog_due {
                self.drain_backlog(now, id);
            }
            self.send_reports(now, id);
            self.rearm(now, id);
        }
    }

    /// Why a viewer is not connected at its connect deadline, naming what was tried.
    fn why_not_connected(&self, id: ViewerId) -> String {
        let Some(v) = self.viewers.get(&id) else {
            return String::new();
        };
        let within = format!(
            "media did not connect within {:?}",
            self.limits.connect_timeout
        );
        if v.phase == Phase::Offered {
            return format!("{within}: no SDP answer arrived");
        }
        let Some(path) = v.pair else {
            return format!(
                "{within}: no ICE connectivity check reached the server at any of its \
                 candidates ({}); a viewer whose network blocks them needs a TURN server \
                 (ice_servers or turn_secret of the server's configuration)",
                self.template.candidate_summary()
            );
        };
        let [udp_checks, tcp_checks] = v.checks;
        format!(
            "{within}: ICE connected over {} from {} ({udp_checks} UDP and {tcp_checks} TCP \
             checks), but the DTLS handshake did not finish",
            path.proto.name(),
            path.remote,
        )
    }

    /// Sender reports of a connected viewer's tracks, when due.
    fn send_reports(&mut self, now: Instant, id: ViewerId) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        if v.phase != Phase::Connected || now < v.next_report {
            return;
        }
        v.next_report = report_slot(self.epoch.0, now);
        self.publish(now, id);
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let (Some(path), Some(srtp)) = (v.pair, v.srtp.as_mut()) else {
            return;
        };
        let ntp = ntp_time(self.epoch, now);
        let mut reports: Vec<Box<dyn rtc::rtcp::packet::Packet>> = Vec::with_capacity(2);
        for track in std::iter::once(&v.video).chain(v.audio.as_ref()) {
            let Some((ts, at)) = track.last else { continue };
            let elapsed = now.saturating_duration_since(at);
            let ticks = elapsed.as_nanos() * u128::from(track.clock_rate) / 1_000_000_000;
            reports.push(Box::new(SenderReport {
                ssrc: track.ssrc,
                ntp_time: ntp,
                rtp_time: ts.wrapping_add(ticks as u32),
                packet_count: track.packets,
                octet_count: track.octets,
                ..Default::default()
            }));
        }
        if reports.is_empty() {
            return;
        }
        let Ok(plain) = rtc::rtcp::packet::marshal(&reports) else {
            return;
        };
        match srtp.protect_rtcp(&plain) {
            Ok(data) => {
                v.figures.sent(1, data.len() as u64);
                self.transmits.push_back(Transmit::on(id, path, data))
            }
            Err(e) => tracing::debug!(viewer = id, "{e}"),
        }
    }

    /// Publishes a connected viewer's figures to the server's board (about once a second, with
    /// its sender reports).
    fn publish(&mut self, now: Instant, id: ViewerId) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let (Some(pair), Some(connected_at)) = (v.pair, v.figures.connected_at) else {
            return;
        };
        let Some(st) = self.streams.get(&v.stream) else {
            return;
        };
        let f = &mut v.figures;
        // Since the last publication, or since it connected for the first one.
        let (bytes, at) = f.published.unwrap_or((0, connected_at));
        let secs = now.saturating_duration_since(at).as_secs_f64();
        if secs > 0.0 {
            f.bitrate_bps = ((f.bytes.saturating_sub(bytes)) as f64 * 8.0 / secs) as u64;
        }
        f.published = Some((f.bytes, now));
        let stats = crate::metrics::ViewerStats {
            id,
            stream: st.info.spec.stream.clone(),
            protocol: v.protocol,
            transport: match pair.proto {
                Proto::Udp => crate::metrics::Transport::Udp,
                Proto::Tcp => crate::metrics::Transport::Tcp,
            },
            remote: pair.remote,
            connected_ms: now.saturating_duration_since(connected_at).as_millis() as u64,
            packets_sent: f.packets,
            bytes_sent: f.bytes,
            bitrate_bps: f.bitrate_bps,
            rtt_ms: f.rtt.map(|d| d.as_secs_f64() * 1000.0),
            fraction_lost: f.fraction_lost,
            packets_lost: f.packets_lost,
            jitter_ms: f.jitter_ms,
            nacks: f.nacks,
            plis: f.plis,
            rendition: crate::stream::Rendition::track_name(v.rendition),
            estimate_bps: v.estimate_bps,
        };
        if let Some(bwe) = v.bwe.as_mut() {
            bwe.prune(now);
        }
        crate::metrics::lock(&self.metrics.board).insert(id, stats);
    }

    fn flush_dtls(&mut self, id: ViewerId) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        while let Some(data) = v.dtls.poll_transmit() {
            // DTLS goes where the viewer's checks come from.
            let Some(path) = v.pair else { continue };
            self.transmits.push_back(Transmit::on(id, path, data));
        }
    }

    fn rearm(&mut self, now: Instant, id: ViewerId) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let mut next = v.dtls.poll_timeout();
        let mut at = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        if v.phase == Phase::Connected {
            if let Some(t) = after(v.last_consent, self.limits.consent_timeout) {
                at(t);
            }
            at(v.next_report);
            if let Some(t) = v.backlog_next {
                at(t);
            }
        } else {
            if let Some(t) = after(v.started, self.limits.connect_timeout) {
                at(t);
            }
        }
        // Never in the past: a timer that cannot make progress must not spin the loop.
        let next = next.map(|t| t.max(now));
        if next != v.deadline {
            if let Some(old) = v.deadline.take() {
                self.timers.remove(&(old, id));
            }
            if let Some(t) = next {
                self.timers.insert((t, id));
            }
            v.deadline = next;
        }
    }

    /// Ends a viewer's session: its close_notify is queued, everything it held is freed.
    pub fn close_viewer(&mut self, now: Instant, id: ViewerId, reason: LeaveReason) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        // Let the close reach the viewer so it does not wait for a timeout.
        v.dtls.close(now);
        self.flush_dtls(id);
        let Some(v) = self.viewers.remove(&id) else {
            return;
        };
        crate::metrics::lock(&self.metrics.board).remove(&id);
        self.metrics
            .sessions
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = v.deadline {
            self.timers.remove(&(t, id));
        }
        self.by_ufrag.remove(&v.ice.ufrag);
        for a in &v.addrs {
            let key = (a.proto, a.remote);
            if self.by_addr.get(&key) == Some(&id) {
                self.by_addr.remove(&key);
            }
            // Its TCP connections close with it (after the close_notify queued above).
            if a.proto == Proto::Tcp {
                self.outputs.push_back(Output::ClosePath(*a));
            }
        }
        self.admission
            .release(v.stream, v.remote.ip(), v.phase != Phase::Connected);
        if let Some(st) = self.streams.get_mut(&v.stream) {
            st.viewers.retain(|x| *x != id);
            if v.phase == Phase::Connected {
                st.connected -= 1;
                self.metrics
                    .viewers
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
            self.outputs.push_back(Output::Viewers {
                stream: v.stream,
                connected: st.connected,
                sessions: st.viewers.len(),
            });
            if v.phase == Phase::Connected {
                self.outputs.push_back(Output::Event(Event::ViewerLeft {
                    stream: st.info.spec.stream.clone(),
                    viewer: id,
                    reason,
                }));
            }
        }
        self.outputs
            .push_back(Output::Notice(id, Notice::Closed(reason)));
        tracing::debug!(viewer = id, reason = reason.name(), "viewer closed");
    }
}

/// Most video packets one RTCP packet may ask again for: the stream's history holds no more, and
/// without a bound one 1.5 KB datagram naming the same packets thousands of times would make
/// the server send megabytes (an amplification).
const MAX_NACKED: usize = history::HISTORY_PACKETS;

/// What a viewer's RTCP says.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Feedback {
    /// Video sequence numbers to send again: distinct, in the order first asked, at most
    /// [`MAX_NACKED`].
    pub nacked: Vec<u16>,
    /// NACK messages (any SSRC).
    pub nacks: u64,
    /// PLI and FIR messages.
    pub plis: u64,
    /// The last REMB estimate, bits per second.
    pub estimate: Option<u64>,
    /// The last reception report about our video (in a receiver or sender report).
    pub report: Option<ReceptionReport>,
    /// Transport-wide congestion control feedback.
    pub twcc: Vec<TransportLayerCc>,
}

/// Reads a viewer's decrypted RTCP compound packet; `video_ssrc` is the SSRC its NACKs must name.
pub(crate) fn read_feedback(
    plain: &[u8],
    video_ssrc: u32,
) -> std::result::Result<Feedback, String> {
    let packets = rtc::rtcp::packet::unmarshal(&mut &plain[..]).map_err(|e| e.to_string())?;
    let mut f = Feedback::default();
    let mut seen = std::collections::HashSet::new();
    for p in &packets {
        let any = p.as_any();
        if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
            f.nacks += 1;
            if nack.media_ssrc != video_ssrc {
                continue;
            }
            for seq in nack.nacks.iter().flat_map(|pair| pair.packet_list()) {
                if f.nacked.len() < MAX_NACKED && seen.insert(seq) {
                    f.nacked.push(seq);
                }
            }
        } else if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
            f.plis += 1;
        } else if let Some(cc) = any.downcast_ref::<TransportLayerCc>() {
            f.twcc.push(cc.clone());
        } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
            f.estimate = Some(remb.bitrate.max(0.0) as u64);
        } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            if let Some(r) = rr.reports.iter().find(|r| r.ssrc == video_ssrc) {
                f.report = Some(r.clone());
            }
        } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
            if let Some(r) = sr.reports.iter().find(|r| r.ssrc == video_ssrc) {
                f.report = Some(r.clone());
            }
        }
    }
    Ok(f)
}

/// Bytes an RTP packet adds to its payload on the wire (RTP header with the TWCC extension,
/// SRTP tag), for the congestion controller's packet sizes.
const RTP_OVERHEAD: usize = 12 + 8 + 16;

/// The stream-wide key of packet `index` of rendition `rendition` (what a viewer's sequence
/// numbers map to for NACKs): the rendition in the top byte.
fn packet_key(rendition: usize, index: u64) -> u64 {
    ((rendition as u64) << 56) | (index & ((1 << 56) - 1))
}

fn unpack_key(key: u64) -> (usize, u64) {
    ((key >> 56) as usize, key & ((1 << 56) - 1))
}

/// The fields of an RTP packet's fixed header.
struct RtpHead {
    payload_type: u8,
    marker: bool,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
}

fn rtp_header(track: &TrackOut, seq: u16, timestamp: u32, marker: bool) -> RtpHead {
    RtpHead {
        payload_type: track.pt,
        marker,
        seq,
        timestamp,
        ssrc: track.ssrc,
    }
}

/// Bytes of send buffer allocated at once: packets are written and sealed one after the other
/// in it, each then carved off as its own `BytesMut` (no allocation per packet). A full slab is
/// reused once the last of its packets was sent, freed if it is replaced while some are queued.
const SLAB: usize = 64 * 1024;

/// Writes one RTP packet (header, the transport-wide-cc extension when `twcc` gives its id and
/// number, payload) into `slab`, seals it there with SRTP and carves it off: the datagram to send.
fn protect(
    slab: &mut BytesMut,
    srtp: &mut Protection,
    head: RtpHead,
    twcc: Option<(u8, u16)>,
    payload: &[u8],
) -> Option<BytesMut> {
    let header_len = if twcc.is_some() { 20 } else { 12 };
    let len = header_len + payload.len() + srtp.rtp_overhead();
    // Full: take the slab back whole if every packet carved from it is gone (the driver sends
    // what it polled before it polls again), else start a fresh one.
    if slab.capacity() - slab.len() < len && !slab.try_reclaim(SLAB.max(len)) {
        *slab = BytesMut::with_capacity(SLAB.max(len));
    }
    slab.put_u8(if twcc.is_some() { 0x90 } else { 0x80 });
    slab.put_u8(if head.marker { 0x80 } else { 0 } | head.payload_type);
    slab.put_u16(head.seq);
    slab.put_u32(head.timestamp);
    slab.put_u32(head.ssrc);
    if let Some((id, n)) = twcc {
        // RFC 8285 one-byte header: profile, length in words, then id/length, 2 bytes, padding.
        slab.put_u16(0xBEDE);
        slab.put_u16(1);
        slab.put_u8((id << 4) | 1);
        slab.put_u16(n);
        slab.put_u8(0);
    }
    slab.extend_from_slice(payload);
    match srtp.seal_rtp(slab, header_len, head.ssrc, head.seq) {
        Ok(()) => Some(slab.split()),
        Err(e) => {
            slab.clear();
            tracing::debug!("{e}");
            None
        }
    }
}

/// The next instant of the sender-report grid (every [`REPORT_INTERVAL`] from `epoch`, which all
/// loops share) at least half an interval after `now`: the reports of every viewer go out at one
/// wake-up a second instead of one wake-up per viewer.
fn report_slot(epoch: Instant, now: Instant) -> Instant {
    let period = REPORT_INTERVAL.as_nanos();
    let since = (now + REPORT_INTERVAL / 2)
        .saturating_duration_since(epoch)
        .as_nanos();
    let slot = u64::try_from((since / period + 1) * period).unwrap_or(u64::MAX);
    epoch
        .checked_add(Duration::from_nanos(slot))
        .unwrap_or(now + REPORT_INTERVAL)
}

/// `t + d`, or `None` past the range of `Instant` (a configured timeout of `Duration::MAX`).
fn after(t: Instant, d: Duration) -> Option<Instant> {
    t.checked_add(d)
}

/// The round-trip time a reception report gives (RFC 3550 §6.4.1): the middle 32 bits of the
/// NTP time `now` minus the time of our sender report it answers (LSR) minus the time the
/// viewer held it (DLSR), in 1/65536 s. `None` before the viewer got a sender report, or for a
/// report whose times do not add up.
fn round_trip(now: u64, rr: &ReceptionReport) -> Option<Duration> {
    if rr.last_sender_report == 0 {
        return None;
    }
    let arrival = (now >> 16) as u32;
    let rtt = arrival
        .wrapping_sub(rr.last_sender_report)
        .wrapping_sub(rr.delay);
    // More than a minute: a clock jump or a report that does not fit.
    (rtt < 60 << 16).then(|| Duration::from_secs_f64(f64::from(rtt) / 65536.0))
}

/// The NTP time (RFC 3550 §4: seconds since 1900, 32.32 fixed point) of an instant.
fn ntp_time(epoch: (Instant, SystemTime), now: Instant) -> u64 {
    let wall = epoch.1 + now.saturating_duration_since(epoch.0);
    let since_unix = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_unix.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}
