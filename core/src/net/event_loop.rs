//! The one event loop of the media path. It owns the UDP sockets of the media port and every
//! viewer's peer connection: datagrams are routed to viewers (STUN by ufrag, the rest by source
//! address), frames pushed by hosts are fanned out with per-viewer headers, and each viewer's
//! timers are kept in one ordered set. No task and no socket per viewer.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::sansio::Protocol as _;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::{Limits, Protocol};
use crate::event::{Event, LeaveReason, ViewerId};
use crate::media::gop::GopCache;
use crate::media::packetizer::{MediaFrame, TrackKind};
use crate::metrics::Metrics;
use crate::net::stun;
use crate::net::udp::{MediaPort, Outgoing};
use crate::session::bitrate::BitrateHint;
use crate::session::peer::{PeerTemplate, TrackSpec};
use crate::session::viewer::{Notice, Phase, Viewer};
use crate::stream::StreamShared;
use crate::{Error, Result};

/// Frames waiting for the loop. Past this, pushes drop frames instead of waiting.
pub(crate) const MEDIA_QUEUE: usize = 256;
/// Control commands waiting for the loop (signalling tasks wait for room).
pub(crate) const CONTROL_QUEUE: usize = 256;
/// Notices to one viewer's signalling task; there are at most two in a viewer's life.
pub(crate) const NOTICE_QUEUE: usize = 4;
/// Datagrams handled in a row before the loop looks at its other inputs again.
const RECV_BATCH: usize = 64;
/// Datagrams gathered before they are sent (4 `sendmmsg` calls, ~330 KB).
const OUTBOX_LIMIT: usize = 256;
/// Remote addresses remembered per viewer (ICE tries a few candidate pairs).
const MAX_ADDRS_PER_VIEWER: usize = 8;

/// A frame pushed by a host.
pub(crate) struct MediaInput {
    pub stream: u64,
    pub frame: Arc<MediaFrame>,
    /// Frames were dropped just before this one.
    pub after_gap: bool,
}

/// The offer made for a new viewer.
pub(crate) struct ViewerOffer {
    pub id: ViewerId,
    pub sdp: String,
    pub candidates: Vec<RTCIceCandidateInit>,
}

/// Requests from signalling tasks and the server.
pub(crate) enum Control {
    OpenStream(Arc<StreamShared>),
    CloseStream(u64),
    NewViewer {
        stream: u64,
        protocol: Protocol,
        remote: SocketAddr,
        started: Instant,
        notices: mpsc::Sender<Notice>,
        reply: oneshot::Sender<Result<ViewerOffer>>,
    },
    /// A WHEP viewer's offer: the loop answers it.
    NewWhepViewer {
        stream: u64,
        offer_sdp: String,
        remote: SocketAddr,
        started: Instant,
        notices: mpsc::Sender<Notice>,
        reply: oneshot::Sender<Result<ViewerOffer>>,
    },
    Answer {
        viewer: ViewerId,
        sdp: String,
        reply: oneshot::Sender<Result<()>>,
    },
    RemoteCandidate {
        viewer: ViewerId,
        candidate: RTCIceCandidateInit,
    },
    CloseViewer {
        viewer: ViewerId,
        reason: LeaveReason,
    },
    /// Reply with the number of viewer sessions and streams held (for leak checks).
    Census(std::sync::mpsc::Sender<(usize, usize)>),
    /// Close every viewer and end the loop.
    Shutdown,
}

struct StreamState {
    shared: Arc<StreamShared>,
    viewers: Vec<ViewerId>,
    gop: GopCache,
    bitrate: BitrateHint,
}

pub(crate) struct EventLoop {
    port: MediaPort,
    template: PeerTemplate,
    limits: Limits,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<Event>,
    control_rx: mpsc::Receiver<Control>,
    media_rx: mpsc::Receiver<MediaInput>,
    streams: HashMap<u64, StreamState>,
    viewers: HashMap<ViewerId, Viewer>,
    by_ufrag: HashMap<String, ViewerId>,
    by_addr: HashMap<SocketAddr, ViewerId>,
    timers: BTreeSet<(Instant, ViewerId)>,
    next_viewer: ViewerId,
    scratch: Vec<ViewerId>,
    /// Datagrams waiting for the end of the current step, sent in batches.
    outbox: Vec<Outgoing>,
}

impl EventLoop {
    pub(crate) fn new(
        port: MediaPort,
        template: PeerTemplate,
        limits: Limits,
        metrics: Arc<Metrics>,
        events: broadcast::Sender<Event>,
        control_rx: mpsc::Receiver<Control>,
        media_rx: mpsc::Receiver<MediaInput>,
    ) -> Self {
        Self {
            port,
            template,
            limits,
            metrics,
            events,
            control_rx,
            media_rx,
            streams: HashMap::new(),
            viewers: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            timers: BTreeSet::new(),
            next_viewer: 1,
            scratch: Vec::new(),
            outbox: Vec::new(),
        }
    }

    /// Runs until every control sender is gone (the server stopped), then closes every viewer.
    pub(crate) async fn run(mut self) {
        let mut buf = vec![0u8; 2048];
        loop {
            let deadline = self.timers.first().map(|(t, _)| *t);
            let sleep = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                cmd = self.control_rx.recv() => match cmd {
                    Some(Control::Shutdown) | None => break,
                    Some(cmd) => self.on_control(cmd),
                },
                res = std::future::poll_fn(|cx| self.port.poll_recv(cx, &mut buf)) => {
                    match res {
                        Ok((sock, n, from)) => {
                            self.on_datagram(sock, from, &buf[..n]);
                            for _ in 1..RECV_BATCH {
                                let Some((sock, n, from)) = self.port.try_recv(&mut buf) else { break };
                                self.on_datagram(sock, from, &buf[..n]);
                            }
                        }
                        Err(e) => tracing::warn!("media socket receive failed: {e}"),
                    }
                },
                input = self.media_rx.recv() => {
                    if let Some(input) = input {
                        self.on_media(input);
                    }
                },
                () = sleep => self.on_timers(),
            }
            self.send_outbox();
        }
        let ids: Vec<ViewerId> = self.viewers.keys().copied().collect();
        for id in ids {
            self.close_viewer(id, LeaveReason::Shutdown);
        }
        self.send_outbox();
    }

    fn on_control(&mut self, cmd: Control) {
        match cmd {
            Control::OpenStream(shared) => {
                self.streams.insert(
                    shared.id,
                    StreamState {
                        shared,
                        viewers: Vec::new(),
                        gop: GopCache::default(),
                        bitrate: BitrateHint::default(),
                    },
                );
            }
            Control::CloseStream(id) => {
                if let Some(st) = self.streams.get(&id) {
                    for v in st.viewers.clone() {
                        self.close_viewer(v, LeaveReason::Shutdown);
                    }
                }
                self.streams.remove(&id);
            }
            Control::NewViewer {
                stream,
                protocol,
                remote,
                started,
                notices,
                reply,
            } => {
                let res = self.new_viewer(stream, protocol, remote, started, notices, None);
                let _ = reply.send(res);
            }
            Control::NewWhepViewer {
                stream,
                offer_sdp,
                remote,
                started,
                notices,
                reply,
            } => {
                let res = self.new_viewer(
                    stream,
                    Protocol::Whep,
                    remote,
                    started,
                    notices,
                    Some(offer_sdp),
                );
                let _ = reply.send(res);
            }
            Control::Answer { viewer, sdp, reply } => {
                let res = self.apply_answer(viewer, sdp);
                let _ = reply.send(res);
            }
            Control::RemoteCandidate { viewer, candidate } => {
                if !self.reachable(&candidate) {
                    tracing::debug!(viewer, candidate = %candidate.candidate, "unreachable remote candidate dropped");
                    return;
                }
                if let Some(v) = self.viewers.get_mut(&viewer) {
                    if let Err(e) = v.pc.add_remote_candidate(candidate) {
                        tracing::debug!(viewer, "remote candidate ignored: {e}");
                    }
                    self.service(viewer);
                }
            }
            Control::CloseViewer { viewer, reason } => self.close_viewer(viewer, reason),
            Control::Census(reply) => {
                let _ = reply.send((self.viewers.len(), self.streams.len()));
            }
            Control::Shutdown => {} // handled by run()
        }
    }

    /// Whether one of our sockets can send to a remote candidate. Checks toward an address we
    /// cannot reach (a LAN address while we listen on loopback only, an mDNS name with mDNS off)
    /// only fail slowly and delay the pair that works.
    fn reachable(&self, candidate: &RTCIceCandidateInit) -> bool {
        // candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
        let Some(addr) = candidate.candidate.split_whitespace().nth(4) else {
            return false;
        };
        let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
            return false; // mDNS (.local) names: not resolved, mDNS is off
        };
        self.port.local_addrs().iter().any(|local| {
            local.is_ipv4() == ip.is_ipv4() && (ip.is_loopback() == local.ip().is_loopback())
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn new_viewer(
        &mut self,
        stream: u64,
        protocol: Protocol,
        remote: SocketAddr,
        started: Instant,
        notices: mpsc::Sender<Notice>,
        offer_sdp: Option<String>,
    ) -> Result<ViewerOffer> {
        let st = self
            .streams
            .get(&stream)
            .ok_or_else(|| Error::StreamClosed(format!("#{stream}")))?;
        if self.viewers.len() >= self.limits.max_viewers {
            return Err(Error::LimitReached(format!(
                "the server has its maximum of {} viewers",
                self.limits.max_viewers
            )));
        }
        if st.viewers.len() >= self.limits.max_viewers_per_stream {
            return Err(Error::LimitReached(format!(
                "stream '{}' has its maximum of {} viewers",
                st.shared.name, self.limits.max_viewers_per_stream
            )));
        }
        let spec = TrackSpec {
            stream: st.shared.name.clone(),
            video_codec: st.shared.video_codec,
            video_ssrc: st.shared.video_ssrc,
            audio_ssrc: st.shared.audio_ssrc,
        };
        let answering = offer_sdp.is_some();
        let peer = match offer_sdp {
            None => self.template.new_peer(Instant::now(), &spec)?,
            Some(sdp) => self
                .template
                .new_answering_peer(Instant::now(), &spec, sdp)?,
        };
        let id = self.next_viewer;
        self.next_viewer += 1;
        let offer = ViewerOffer {
            id,
            sdp: peer.local_sdp.clone(),
            candidates: self.template.candidates.clone(),
        };
        self.by_ufrag.insert(peer.ufrag.clone(), id);
        let mut viewer = Viewer::new(
            stream,
            protocol,
            remote,
            started,
            peer,
            spec.video_ssrc,
            spec.audio_ssrc,
            notices,
        );
        if answering {
            viewer.phase = Phase::Answered;
        }
        self.viewers.insert(id, viewer);
        if let Some(st) = self.streams.get_mut(&stream) {
            st.viewers.push(id);
        }
        self.service(id);
        Ok(offer)
    }

    fn apply_answer(&mut self, id: ViewerId, sdp: String) -> Result<()> {
        let v = self
            .viewers
            .get_mut(&id)
            .ok_or_else(|| Error::WebRtc("the session is already closed".into()))?;
        if v.phase != Phase::Offered {
            return Err(Error::InvalidData("an answer was already received".into()));
        }
        let answer = RTCSessionDescription::answer(sdp)
            .map_err(|e| Error::InvalidData(format!("the answer is not valid SDP: {e}")))?;
        v.pc.set_remote_description(Instant::now(), answer)
            .map_err(|e| Error::InvalidData(format!("the answer was refused: {e}")))?;
        v.phase = Phase::Answered;
        self.service(id);
        Ok(())
    }

    fn on_datagram(&mut self, sock: usize, from: SocketAddr, data: &[u8]) {
        let by_ufrag = stun::local_ufrag(data).and_then(|u| self.by_ufrag.get(u).copied());
        let id = match by_ufrag {
            Some(id) => {
                let Some(v) = self.viewers.get_mut(&id) else {
                    return;
                };
                if !v.addrs.contains(&from) && v.addrs.len() < MAX_ADDRS_PER_VIEWER {
                    v.addrs.push(from);
                    self.by_addr.insert(from, id);
                }
                id
            }
            None => match self.by_addr.get(&from) {
                Some(id) => *id,
                None => return, // not ours: stray or from a viewer already gone
            },
        };
        let now = Instant::now();
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.port.local_addr(sock),
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        };
        if let Err(e) = v.pc.handle_read(msg) {
            tracing::trace!(viewer = id, "datagram not accepted: {e}");
        }
        self.service(id);
    }

    fn on_media(&mut self, input: MediaInput) {
        let Some(st) = self.streams.get_mut(&input.stream) else {
            return;
        };
        let frame = input.frame;
        let now = Instant::now();
        if frame.kind == TrackKind::Video {
            if input.after_gap {
                // Frames were lost before reaching us: nobody can decode past the gap.
                st.gop.clear();
                for id in &st.viewers {
                    if let Some(v) = self.viewers.get_mut(id) {
                        v.waiting_keyframe = true;
                    }
                }
                if !frame.keyframe {
                    st.shared.want_keyframe();
                }
            }
            if !st.shared.is_raw_source() {
                st.gop.push(&frame);
            }
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&st.viewers);
        let ids = std::mem::take(&mut self.scratch);
        for &id in &ids {
            let Some(v) = self.viewers.get_mut(&id) else {
                continue;
            };
            if v.phase != Phase::Connected {
                continue;
            }
            match v.send_frame(now, &frame, frame.rtp_timestamp) {
                Ok(n) if n > 0 && frame.kind == TrackKind::Video && !v.first_video_sent => {
                    v.first_video_sent = true;
                    self.metrics.observe_ttff(now.duration_since(v.started));
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(viewer = id, "frame not sent: {e}"),
            }
            self.service(id);
        }
        self.scratch = ids;
    }

    /// A viewer's media just connected: give it a picture as soon as possible.
    fn start_media(&mut self, id: ViewerId) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let Some(st) = self.streams.get(&v.stream) else {
            return;
        };
        v.waiting_keyframe = true;
        let gop = st.gop.frames();
        if st.shared.is_raw_source() || gop.is_empty() {
            st.shared.want_keyframe();
            return;
        }
        // Replay the frames since the last keyframe so the decoder reaches the current picture
        // now. Their timestamps are squeezed to one tick apart just below the newest one, so the
        // browser's jitter buffer treats them as already late and shows the result at once.
        let now = Instant::now();
        let newest = gop[gop.len() - 1].rtp_timestamp;
        let n = gop.len() as u32;
        for (i, frame) in gop.iter().enumerate() {
            let ts = newest.wrapping_sub(n - 1 - i as u32);
            if let Err(e) = v.send_frame(now, frame, ts) {
                tracing::debug!(viewer = id, "catch-up frame not sent: {e}");
                break;
            }
        }
        if !v.first_video_sent {
            v.first_video_sent = true;
            self.metrics.observe_ttff(now.duration_since(v.started));
        }
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        while let Some(&(t, id)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let Some(v) = self.viewers.get_mut(&id) else {
                continue;
            };
            v.deadline = None;
            if v.phase != Phase::Connected
                && now.duration_since(v.started) >= self.limits.connect_timeout
            {
                self.close_viewer(id, LeaveReason::Timeout);
                continue;
            }
            if let Err(e) = v.pc.handle_timeout(now) {
                tracing::debug!(viewer = id, "timeout handling failed: {e}");
            }
            self.service(id);
        }
    }

    /// After anything happened to a viewer: handle its events and feedback, send what it has to
    /// send, and re-arm its timer.
    fn service(&mut self, id: ViewerId) {
        let mut connected_now = false;
        let mut lost = false;
        let mut wants_keyframe = false;
        let mut new_estimate = false;
        {
            let Some(v) = self.viewers.get_mut(&id) else {
                return;
            };
            while let Some(ev) = v.pc.poll_event() {
                if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = ev {
                    match state {
                        RTCPeerConnectionState::Connected if v.phase != Phase::Connected => {
                            v.phase = Phase::Connected;
                            connected_now = true;
                        }
                        RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                            lost = true
                        }
                        _ => {}
                    }
                }
            }
            while let Some(msg) = v.pc.poll_read() {
                // Only PLI/FIR and REMB get this far (see session::feedback).
                let RTCMessage::RtcpPacket(_, packets) = msg.message else {
                    continue;
                };
                for p in packets {
                    match p.as_any().downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                        Some(remb) => {
                            v.estimate_bps = Some(remb.bitrate.max(0.0) as u64);
                            new_estimate = true;
                        }
                        None => wants_keyframe = true,
                    }
                }
            }
        }
        if connected_now {
            self.on_connected(id);
        }
        if wants_keyframe {
            if let Some(st) = self
                .viewers
                .get(&id)
                .and_then(|v| self.streams.get(&v.stream))
            {
                st.shared.want_keyframe();
            }
        }
        if new_estimate {
            self.update_bitrate_hint(id);
        }
        self.flush(id);
        if lost {
            self.close_viewer(id, LeaveReason::ConnectionLost);
            return;
        }
        self.rearm(id);
    }

    /// A viewer reported a new bandwidth estimate: the stream's hint follows its slowest viewer.
    fn update_bitrate_hint(&mut self, id: ViewerId) {
        let Some(stream) = self.viewers.get(&id).map(|v| v.stream) else {
            return;
        };
        let Some(st) = self.streams.get_mut(&stream) else {
            return;
        };
        let slowest = st
            .viewers
            .iter()
            .filter_map(|v| self.viewers.get(v).and_then(|v| v.estimate_bps))
            .min();
        if let Some(bps) = slowest.and_then(|bps| st.bitrate.update(bps, Instant::now())) {
            let _ = self.events.send(Event::BitrateHint {
                stream: st.shared.name.clone(),
                bps,
            });
        }
    }

    fn on_connected(&mut self, id: ViewerId) {
        let Some(v) = self.viewers.get(&id) else {
            return;
        };
        let _ = v.notices.try_send(Notice::Connected);
        if let Some(st) = self.streams.get(&v.stream) {
            st.shared.viewers.fetch_add(1, Relaxed);
            Metrics::add(&self.metrics.viewers, 1);
            Metrics::add(&self.metrics.viewers_total, 1);
            let _ = self.events.send(Event::ViewerJoined {
                stream: st.shared.name.clone(),
                viewer: id,
                protocol: v.protocol,
                remote: v.remote,
            });
        }
        self.start_media(id);
    }

    /// Moves everything a viewer's connection has queued to the outbox.
    fn flush(&mut self, id: ViewerId) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        while let Some(out) = v.pc.poll_write() {
            self.outbox.push(Outgoing {
                viewer: id,
                from: out.transport.local_addr,
                to: out.transport.peer_addr,
                data: out.message,
            });
        }
        // A keyframe fanned out to many viewers must not pile up in memory.
        if self.outbox.len() >= OUTBOX_LIMIT {
            self.send_outbox();
        }
    }

    /// Sends the outbox in batches: after a frame is fanned out, one system call carries the
    /// packets of many viewers.
    fn send_outbox(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let mut dropped_viewers = std::mem::take(&mut self.scratch);
        dropped_viewers.clear();
        let mut drops = 0u64;
        let outbox = &self.outbox;
        self.port.send_batch(outbox, |i| {
            drops += 1;
            dropped_viewers.push(outbox[i].viewer);
        });
        let packets = self.outbox.len() as u64 - drops;
        let bytes: u64 = self.outbox.iter().map(|o| o.data.len() as u64).sum();
        Metrics::add(&self.metrics.packets_sent, packets);
        Metrics::add(&self.metrics.bytes_sent, bytes);
        self.outbox.clear();
        if drops > 0 {
            Metrics::add(&self.metrics.send_drops, drops);
            dropped_viewers.dedup();
            for id in &dropped_viewers {
                // Its packets were lost: decoding breaks until the next keyframe anyway.
                if let Some(v) = self.viewers.get_mut(id) {
                    v.waiting_keyframe = true;
                    if let Some(st) = self.streams.get(&v.stream) {
                        st.shared.want_keyframe();
                    }
                }
            }
        }
        self.scratch = dropped_viewers;
    }

    fn rearm(&mut self, id: ViewerId) {
        let Some(v) = self.viewers.get_mut(&id) else {
            return;
        };
        let mut next = v.pc.poll_timeout();
        if v.phase != Phase::Connected {
            let limit = v.started + self.limits.connect_timeout;
            next = Some(next.map_or(limit, |t| t.min(limit)));
        }
        // Guard against a connection that asks to be woken in the past forever.
        let next = next.map(|t| t.max(Instant::now() + Duration::from_micros(100)));
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

    fn close_viewer(&mut self, id: ViewerId, reason: LeaveReason) {
        let Some(mut v) = self.viewers.remove(&id) else {
            return;
        };
        if let Err(e) = v.pc.close() {
            tracing::debug!(viewer = id, "close: {e}");
        }
        // Let the close reach the viewer (DTLS close_notify) so it does not wait for a timeout.
        while let Some(out) = v.pc.poll_write() {
            self.outbox.push(Outgoing {
                viewer: id,
                from: out.transport.local_addr,
                to: out.transport.peer_addr,
                data: out.message,
            });
        }
        if let Some(t) = v.deadline {
            self.timers.remove(&(t, id));
        }
        self.by_ufrag.remove(&v.ufrag);
        for a in &v.addrs {
            if self.by_addr.get(a) == Some(&id) {
                self.by_addr.remove(a);
            }
        }
        if let Some(st) = self.streams.get_mut(&v.stream) {
            st.viewers.retain(|x| *x != id);
            if v.phase == Phase::Connected {
                st.shared.viewers.fetch_sub(1, Relaxed);
                self.metrics.viewers.fetch_sub(1, Relaxed);
                let _ = self.events.send(Event::ViewerLeft {
                    stream: st.shared.name.clone(),
                    viewer: id,
                    reason,
                });
            }
        }
        let _ = v.notices.try_send(Notice::Closed(reason));
        tracing::debug!(viewer = id, reason = reason.name(), "viewer closed");
    }
}
