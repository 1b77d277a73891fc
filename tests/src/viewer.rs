//! A native WebRTC viewer for tests and benchmarks: speaks Flussonic's WebSocket protocol exactly
//! as the documented browser client does, answers with webrtc-rs (`rtc`, sans-IO) over its own
//! UDP socket, and depacketizes what it receives without decoding it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use serde_json::{json, Value};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

use crate::depacketize::FrameAssembler;

/// The payload type the viewer expects VP8 at (the server's offer decides; rtcast offers 96).
const VP8_PT: u8 = 96;

/// How a viewer behaves.
#[derive(Debug, Clone)]
pub struct ViewerOptions {
    /// `ws://HOST:PORT/STREAM/webrtc` (Flussonic's protocol: the server offers), or any WHEP
    /// endpoint `http://HOST:PORT/PATH` (the viewer offers; any WHEP server, not only rtcast).
    pub url: String,
    /// Keep every received video frame (H.264 access units in Annex B form, or VP8 frames) in
    /// the report.
    pub record: bool,
    /// Stop after this long in any case.
    pub max_duration: Duration,
    /// Stop once this many complete video frames arrived.
    pub stop_after_frames: Option<u64>,
    /// How to leave.
    pub leave: Leave,
    /// Bumped at every complete video frame, for watching a viewer while it runs.
    pub progress: Option<Arc<AtomicU64>>,
    /// Bumped at every RTP packet received (may be shared by many viewers).
    pub packets: Option<Arc<AtomicU64>>,
    /// For `wss://`: the only certificate authority to trust (DER), e.g. a test's self-signed one.
    pub tls_ca_der: Option<Vec<u8>>,
    /// Once connected, throw away every Nth datagram received (simulated loss, answered by NACKs).
    pub drop_every: Option<u64>,
    /// Host candidates to announce besides the viewer's own socket (addresses it does not
    /// listen on: the server must never send anything to them).
    pub extra_candidates: Vec<SocketAddr>,
    /// Carry the media over ICE-TCP (RFC 6544/4571) to the server's passive TCP candidate and
    /// ignore its UDP ones. webrtc-rs has no ICE-TCP of its own: its agent is shown the TCP
    /// candidate as if it were UDP, and its datagrams to that address are framed onto the
    /// connection (what the server sees is real ICE-TCP).
    pub ice_tcp: bool,
    /// With `ice_tcp`: stop reading the TCP connection after this many frames, keeping it open
    /// and still sending (consent checks go on): a paused or overwhelmed viewer.
    pub stall_after_frames: Option<u64>,
    /// Vanish (as `Leave::Vanish`) at the moment the DTLS handshake would start: ICE done,
    /// DTLS never finished.
    pub vanish_before_dtls: bool,
    /// After the first frame, stop reading the UDP socket (the kernel drops what overflows its
    /// buffer) but keep the peer connection's timers, so its consent checks still go out until
    /// its ICE agent gives up (~30 s without an answer): a viewer that costs its machine next to
    /// nothing, for measuring how much a server can send. Its failure is not an error.
    pub deaf_after_first_frame: bool,
    /// Leave (as at `max_duration`) once this turns true: a run that ends when its caller says.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

impl ViewerOptions {
    /// Watch `url` for at most `max_duration`, leaving by closing the socket.
    pub fn new(url: impl Into<String>, max_duration: Duration) -> Self {
        Self {
            url: url.into(),
            record: false,
            max_duration,
            stop_after_frames: None,
            leave: Leave::Close,
            progress: None,
            packets: None,
            tls_ca_der: None,
            drop_every: None,
            extra_candidates: Vec::new(),
            ice_tcp: false,
            stall_after_frames: None,
            vanish_before_dtls: false,
            deaf_after_first_frame: false,
            stop: None,
        }
    }
}

/// The viewer's ICE-TCP connection to the server: frames written here, and read by a task into
/// `rx` (a read cannot be cancelled halfway through a frame in a `select!`).
struct TcpCarrier {
    server: SocketAddr,
    /// Set: the reader stops reading (the connection stays open).
    stalled: Arc<std::sync::atomic::AtomicBool>,
    write: tokio::net::tcp::OwnedWriteHalf,
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    reader: tokio::task::JoinHandle<()>,
}

impl TcpCarrier {
    /// `small_window`: a receive buffer of a few KB, so that a viewer that stops reading holds
    /// little in the kernel and the server's own bound is what fills.
    async fn connect(server: SocketAddr, small_window: bool) -> Result<Self, String> {
        use tokio::io::AsyncReadExt;
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        if small_window {
            socket
                .set_recv_buffer_size(4096)
                .map_err(|e| e.to_string())?;
        }
        let stream = socket
            .connect(server)
            .await
            .map_err(|e| format!("ICE-TCP connect to {server}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (mut read, write) = stream.into_split();
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = stalled.clone();
        let reader = tokio::spawn(async move {
            loop {
                if stop.load(Ordering::Relaxed) {
                    std::future::pending::<()>().await;
                }
                let mut len = [0u8; 2];
                if read.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut frame = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if read.read_exact(&mut frame).await.is_err() || tx.send(frame).await.is_err() {
                    return;
                }
            }
        });
        Ok(Self {
            server,
            stalled,
            write,
            rx,
            reader,
        })
    }

    async fn send(&mut self, data: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let mut framed = Vec::with_capacity(data.len() + 2);
        framed.extend_from_slice(&(data.len() as u16).to_be_bytes());
        framed.extend_from_slice(data);
        let _ = self.write.write_all(&framed).await;
    }
}

impl Drop for TcpCarrier {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A server's passive TCP candidate rewritten as a UDP host candidate for webrtc-rs's agent, with
/// its address. `None` for any other candidate.
pub(crate) fn tcp_as_udp(candidate: &str) -> Option<(String, SocketAddr)> {
    let f: Vec<&str> = candidate.split_whitespace().collect();
    if f.len() < 8 || !f[2].eq_ignore_ascii_case("tcp") || !candidate.contains("tcptype passive") {
        return None;
    }
    let addr: SocketAddr = format!("{}:{}", f[4], f[5]).parse().ok()?;
    let line = format!("{} {} udp {} {} {} typ host", f[0], f[1], f[3], f[4], f[5]);
    Some((line, addr))
}

/// The next frame from the ICE-TCP connection; never without one.
async fn tcp_recv(tcp: &mut Option<TcpCarrier>) -> Option<Vec<u8>> {
    match tcp {
        Some(t) => t.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// How a viewer ends its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// Close the WebSocket (and the peer connection) cleanly.
    Close,
    /// Vanish: stop answering anything and drop both sockets without a word.
    Vanish,
}

/// What a viewer saw.
#[derive(Debug, Default, Clone)]
pub struct ViewerReport {
    /// ICE and DTLS connected.
    pub connected: bool,
    /// From opening the WebSocket to the first complete keyframe.
    pub time_to_first_frame: Option<Duration>,
    /// Complete video frames (marker bit seen).
    pub video_frames: u64,
    /// Video RTP packets.
    pub video_packets: u64,
    /// Audio RTP packets.
    pub audio_packets: u64,
    /// Video packets missing by sequence number and never retransmitted.
    pub video_packets_lost: u64,
    /// Video packets that arrived after a later one, i.e. retransmitted after a NACK.
    pub video_packets_recovered: u64,
    /// Datagrams thrown away by `drop_every`.
    pub datagrams_dropped: u64,
    /// Packets received over ICE-TCP (all of them, with `ice_tcp`).
    pub tcp_packets: u64,
    /// Access units in order, when recorded; the first is a keyframe.
    pub access_units: Vec<Bytes>,
    /// `{"type":"error"}` messages received.
    pub errors: Vec<Value>,
    /// The WebSocket close code and reason, if the server closed it.
    pub close: Option<(u16, String)>,
}

/// A codec for a client's media engine (no RTCP feedback of its own: the interceptors add it).
pub(crate) fn codec(
    mime: &str,
    rate: u32,
    channels: u16,
    fmtp: &str,
    pt: u8,
) -> RTCRtpCodecParameters {
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

fn new_peer(local: SocketAddr) -> Result<RTCPeerConnection, String> {
    let e = |e: rtc::shared::error::Error| e.to_string();
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
        .map_err(e)?;
    media
        .register_codec(
            codec(MIME_TYPE_VP8, 90_000, 0, "", VP8_PT),
            RtpCodecKind::Video,
        )
        .map_err(e)?;
    media
        .register_codec(
            codec(MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1", 111),
            RtpCodecKind::Audio,
        )
        .map_err(e)?;
    let settings = SettingEngineBuilder::new()
        // Browsers answer `a=setup:active`.
        .with_answering_dtls_role(RTCDtlsRole::Client)
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        // A check every 50 ms as a browser paces them (webrtc-rs's default is 200 ms, and it
        // nominates and starts DTLS on those ticks: ~400 ms to the first frame on loopback),
        // for as long in all as its default (7 x 200 ms).
        .with_ice_connection_attempts(Some(Duration::from_millis(50)), Some(28))
        .build();
    // NACK generator and receiver reports, as a browser has.
    let registry = register_default_interceptors(Registry::new(), &mut media).map_err(e)?;
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(settings)
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .build(Instant::now())
        .map_err(e)?;
    pc.add_local_candidate(host_candidate(local)?).map_err(e)?;
    Ok(pc)
}

/// The client's one host candidate: its UDP socket's address.
pub(crate) fn host_candidate(local: SocketAddr) -> Result<RTCIceCandidateInit, String> {
    let e = |e: rtc::shared::error::Error| e.to_string();
    let host = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: local.ip().to_string(),
            port: local.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()
    .map_err(e)?;
    RTCIceCandidate::from(&host).to_json().map_err(e)
}

/// Runs one viewer to its end and reports what it received.
pub async fn run_viewer(opts: ViewerOptions) -> Result<ViewerReport, String> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started + opts.max_duration);
    let mut stop = opts.stop.clone();
    let connector = match &opts.tls_ca_der {
        None => None,
        Some(der) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(der.clone().into())
                .map_err(|e| format!("bad CA certificate: {e}"))?;
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Some(tokio_tungstenite::Connector::Rustls(Arc::new(config)))
        }
    };
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut report = ViewerReport::default();
    let mut pc: Option<RTCPeerConnection> = None;
    let mut pending_candidates: Vec<RTCIceCandidateInit> = Vec::new();
    let whep = opts.url.starts_with("http://");
    let mut tcp: Option<TcpCarrier> = None;
    let (mut ws, mut frames, audio_pt, whep_session) = if whep {
        let (p, session, tcp_server) = whep_connect(&opts.url, local, opts.ice_tcp).await?;
        if let Some(server) = tcp_server {
            tcp = Some(TcpCarrier::connect(server, opts.stall_after_frames.is_some()).await?);
        }
        pc = Some(p);
        (
            None,
            FrameAssembler::default(),
            crate::whep::CLIENT_OPUS_PT,
            Some(session),
        )
    } else {
        let (ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(&opts.url, None, false, connector)
                .await
                .map_err(|e| format!("WebSocket {}: {e}", opts.url))?;
        (Some(ws), FrameAssembler::new(&[VP8_PT]), 111, None)
    };
    let mut last_video_seq: Option<u16> = None;
    let mut missing: std::collections::HashSet<u16> = std::collections::HashSet::new();
    let mut datagrams: u64 = 0;
    let mut buf = vec![0u8; 2048];

    let result: Result<(), String> = async {
        loop {
            if let Some(pc) = pc.as_mut() {
                while let Some(out) = pc.poll_write() {
                    // RFC 7983: 20..=63 is DTLS.
                    if opts.vanish_before_dtls && matches!(out.message.first(), Some(20..=63)) {
                        return Ok(());
                    }
                    match tcp.as_mut() {
                        Some(t) if out.transport.peer_addr == t.server => t.send(&out.message).await,
                        _ => {
                            let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
                        }
                    }
                }
                while let Some(ev) = pc.poll_event() {
                    if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
                        match s {
                            RTCPeerConnectionState::Connected => report.connected = true,
                            RTCPeerConnectionState::Failed if opts.deaf_after_first_frame && report.video_frames > 0 => {}
                            RTCPeerConnectionState::Failed => return Err("peer connection failed".into()),
                            _ => {}
                        }
                    }
                }
                while let Some(msg) = pc.poll_read() {
                    let RTCMessage::RtpPacket(_, packet) = msg.message else { continue };
                    if let Some(p) = &opts.packets {
                        p.fetch_add(1, Ordering::Relaxed);
                    }
                    if packet.header.payload_type == audio_pt {
                        report.audio_packets += 1;
                        continue;
                    }
                    report.video_packets += 1;
                    let seq = packet.header.sequence_number;
                    if missing.remove(&seq) {
                        // A retransmission: it does not belong to the frame being assembled.
                        report.video_packets_recovered += 1;
                        continue;
                    }
                    if let Some(last) = last_video_seq {
                        let gap = seq.wrapping_sub(last);
                        if gap > 1 && gap < 0x8000 {
                            missing.extend((1..gap).map(|k| last.wrapping_add(k)));
                        }
                    }
                    last_video_seq = Some(seq);
                    if let Some(frame) = frames.push(
                        packet.header.payload_type,
                        &packet.payload,
                        packet.header.marker,
                    ) {
                        if report.video_frames == 0 {
                            report.time_to_first_frame = Some(started.elapsed());
                        }
                        report.video_frames += 1;
                        if opts.stall_after_frames.is_some_and(|n| report.video_frames >= n) {
                            if let Some(t) = &tcp {
                                t.stalled.store(true, Ordering::Relaxed);
                            }
                        }
                        if let Some(p) = &opts.progress {
                            p.fetch_add(1, Ordering::Relaxed);
                        }
                        if opts.record {
                            report.access_units.push(frame);
                        }
                        if opts.stop_after_frames.is_some_and(|n| report.video_frames >= n) {
                            return Ok(());
                        }
                    }
                }
            }
            let timeout = pc
                .as_mut()
                .and_then(|pc| pc.poll_timeout())
                .map(tokio::time::Instant::from_std)
                .unwrap_or(deadline)
                .min(deadline);
            tokio::select! {
                msg = next_message(&mut ws) => {
                    let msg = match msg {
                        None => return Ok(()),
                        Some(Err(e)) => return Err(format!("WebSocket: {e}")),
                        Some(Ok(m)) => m,
                    };
                    match msg {
                        Message::Text(t) => {
                            let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
                            match v["type"].as_str() {
                                Some("offer") => {
                                    let mut p = new_peer(local)?;
                                    let offer = RTCSessionDescription::offer(v["sdp"].as_str().unwrap_or("").to_owned())
                                        .map_err(|e| e.to_string())?;
                                    p.set_remote_description(Instant::now(), offer).map_err(|e| e.to_string())?;
                                    let answer = p.create_answer(None).map_err(|e| e.to_string())?;
                                    p.set_local_description(Instant::now(), answer.clone()).map_err(|e| e.to_string())?;
                                    for c in pending_candidates.drain(..) {
                                        let _ = p.add_remote_candidate(c);
                                    }
                                    let ws = ws.as_mut().ok_or("no WebSocket")?;
                                    ws.send(Message::Text(json!({"type":"answer","sdp":answer.sdp}).to_string().into()))
                                        .await.map_err(|e| e.to_string())?;
                                    // Our candidates, in the shape of Flussonic's documented client.
                                    for (i, addr) in std::iter::once(local).chain(opts.extra_candidates.iter().copied()).enumerate() {
                                        let c = format!("candidate:{} 1 udp {} {} {} typ host", i + 1, 2130706431 - i, addr.ip(), addr.port());
                                        ws.send(Message::Text(json!({
                                            "type":"candidate","stream_id":"local1","label":0,"id":"0",
                                            "candidate":{"candidate":c,"sdpMid":"0","sdpMLineIndex":0}
                                        }).to_string().into())).await.map_err(|e| e.to_string())?;
                                    }
                                    pc = Some(p);
                                }
                                Some("candidate") => {
                                    let c = &v["candidate"];
                                    let cand = c["candidate"].as_str().unwrap_or("");
                                    // Loopback only, as the tests promise.
                                    if !cand.contains(" 127.0.0.1 ") {
                                        continue;
                                    }
                                    let cand = if opts.ice_tcp {
                                        let Some((line, server)) = tcp_as_udp(cand) else { continue };
                                        if tcp.is_none() {
                                            tcp = Some(TcpCarrier::connect(server, opts.stall_after_frames.is_some()).await?);
                                        }
                                        line
                                    } else if cand.contains("tcptype") {
                                        continue;
                                    } else {
                                        cand.to_owned()
                                    };
                                    let init = RTCIceCandidateInit {
                                        candidate: cand,
                                        sdp_mid: c["sdpMid"].as_str().map(str::to_owned),
                                        sdp_mline_index: c["sdpMLineIndex"].as_u64().map(|x| x as u16),
                                        ..Default::default()
                                    };
                                    match pc.as_mut() {
                                        Some(p) => { let _ = p.add_remote_candidate(init); }
                                        None => pending_candidates.push(init),
                                    }
                                }
                                Some("error") => report.errors.push(v),
                                _ => {}
                            }
                        }
                        Message::Close(frame) => {
                            report.close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                            return Ok(());
                        }
                        _ => {}
                    }
                }
                res = socket.recv_from(&mut buf), if !(opts.deaf_after_first_frame && report.video_frames > 0) => {
                    let (n, from) = res.map_err(|e| e.to_string())?;
                    if report.connected {
                        datagrams += 1;
                        if opts.drop_every.is_some_and(|k| datagrams % k == 0) {
                            report.datagrams_dropped += 1;
                            continue;
                        }
                    }
                    if let Some(p) = pc.as_mut() {
                        let _ = p.handle_read(TaggedBytesMut {
                            now: Instant::now(),
                            transport: TransportContext { local_addr: local, peer_addr: from, ecn: None, transport_protocol: TransportProtocol::UDP },
                            message: BytesMut::from(&buf[..n]),
                        });
                    }
                }
                Some(frame) = tcp_recv(&mut tcp) => {
                    report.tcp_packets += 1;
                    if let (Some(p), Some(t)) = (pc.as_mut(), tcp.as_ref()) {
                        let _ = p.handle_read(TaggedBytesMut {
                            now: Instant::now(),
                            transport: TransportContext { local_addr: local, peer_addr: t.server, ecn: None, transport_protocol: TransportProtocol::UDP },
                            message: BytesMut::from(&frame[..]),
                        });
                    }
                }
                () = stopped(&mut stop) => return Ok(()),
                _ = tokio::time::sleep_until(timeout) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(());
                    }
                    if let Some(p) = pc.as_mut() {
                        let _ = p.handle_timeout(Instant::now());
                    }
                }
            }
        }
    }
    .await;
    match opts.leave {
        Leave::Close => {
            if let Some((addr, location)) = &whep_session {
                let _ = crate::whep::http(*addr, "DELETE", location, &[], "").await;
            }
            if let Some(mut p) = pc.take() {
                let _ = p.close();
                while let Some(out) = p.poll_write() {
                    match tcp.as_mut() {
                        Some(t) if out.transport.peer_addr == t.server => {
                            t.send(&out.message).await
                        }
                        _ => {
                            let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
                        }
                    }
                }
            }
            if let Some(ws) = ws.as_mut() {
                let _ = ws.close(None).await;
            }
        }
        Leave::Vanish if ws.is_none() => {
            drop(pc.take());
            drop(socket);
            drop(tcp.take());
        }
        Leave::Vanish => {
            let ws = ws.as_mut().expect("a WebSocket viewer");
            // Dropping the TCP stream without a close handshake still tells the server through
            // TCP; to vanish for real, keep the WebSocket open and silent until the server gives
            // up on the media (ICE consent) and closes it.
            drop(pc.take());
            drop(socket);
            // Closing a TCP connection is a word to the server; vanishing keeps it open.
            let _held = tcp.take();
            let wait = tokio::time::sleep(Duration::from_secs(60));
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    msg = ws.next() => match msg {
                        None | Some(Err(_)) => break,
                        Some(Ok(Message::Close(frame))) => {
                            report.close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                            break;
                        }
                        Some(Ok(_)) => {}
                    },
                    _ = &mut wait => break,
                }
            }
        }
    }
    report.video_packets_lost = missing.len() as u64;
    result.map(|()| report)
}

/// Resolves once the caller says stop or drops its sender; never without a stop signal.
async fn stopped(stop: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    match stop {
        Some(rx) => {
            let _ = rx.wait_for(|s| *s).await;
        }
        None => std::future::pending().await,
    }
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next WebSocket message; never, for a WHEP viewer.
async fn next_message(
    ws: &mut Option<WsStream>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match ws {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}

/// WHEP signalling: POSTs a recvonly offer to `url` and applies the answer (its candidates
/// inside). Returns the connection, (server address, session `Location`), and with `ice_tcp`
/// the server's ICE-TCP address (the answer's UDP candidates are then left out).
async fn whep_connect(
    url: &str,
    local: SocketAddr,
    ice_tcp: bool,
) -> Result<(RTCPeerConnection, (SocketAddr, String), Option<SocketAddr>), String> {
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr: SocketAddr = host
        .parse()
        .map_err(|_| format!("{url}: the host must be an IP:PORT"))?;
    let path = format!("/{path}");
    let mut pc = crate::whep::offerer(local)?;
    let offer = pc.create_offer(None).map_err(|e| e.to_string())?;
    pc.set_local_description(Instant::now(), offer)
        .map_err(|e| e.to_string())?;
    let sdp = pc.local_description().ok_or("no local description")?.sdp;
    let res = crate::whep::http(
        addr,
        "POST",
        &path,
        &[("Content-Type", "application/sdp")],
        &sdp,
    )
    .await?;
    if res.status != 201 {
        return Err(format!("POST {url}: {} {}", res.status, res.body.trim()));
    }
    let location = res.header("location").unwrap_or(&path).to_owned();
    // Keep the candidates of the transport asked for (TCP ones shown to rtc as UDP).
    let mut tcp_server = None;
    let mut body = String::with_capacity(res.body.len());
    for line in res.body.split_inclusive('\n') {
        let Some(cand) = line.trim_end().strip_prefix("a=") else {
            body.push_str(line);
            continue;
        };
        if !cand.starts_with("candidate:") {
            body.push_str(line);
        } else if ice_tcp {
            if let Some((udp, server)) = tcp_as_udp(cand) {
                tcp_server.get_or_insert(server);
                body.push_str(&format!("a={udp}\r\n"));
            }
        } else if !cand.contains("tcptype") {
            body.push_str(line);
        }
    }
    if ice_tcp && tcp_server.is_none() {
        return Err("the WHEP answer has no passive TCP candidate".into());
    }
    let answer = RTCSessionDescription::answer(body).map_err(|e| e.to_string())?;
    pc.set_remote_description(Instant::now(), answer)
        .map_err(|e| format!("answer refused: {e}"))?;
    Ok((pc, (addr, location), tcp_server))
}
