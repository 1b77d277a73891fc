//! WHEP from the client side: a tiny HTTP/1.1 client (one request per connection, enough for
//! status codes and headers) and a native WHEP viewer built with webrtc-rs (`rtc`, sans-IO) as
//! the offerer, with payload types of its own choosing (not the server's 102/111), receiving
//! over its own UDP socket and depacketizing without decoding.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::depacketize::FrameAssembler;
use crate::viewer::{codec, host_candidate};
use bytes::{Bytes, BytesMut};
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// An HTTP response, read whole.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

impl HttpResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (any case).
    pub fn headers(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) and reads the whole response.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpResponse, String> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw))
        .await
        .map_err(|_| format!("{method} {path}: no response within 20 s"))?
        .map_err(|e| e.to_string())?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{method} {path}: incomplete response {raw:?}"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        rest.to_owned()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// What a native WHEP viewer saw.
#[derive(Debug, Default, Clone)]
pub struct WhepReport {
    /// The POST's status (201 when it worked).
    pub status: u16,
    /// The `Location` of the session.
    pub location: Option<String>,
    /// The answer SDP.
    pub answer: String,
    /// ICE and DTLS connected.
    pub connected: bool,
    /// Complete video frames.
    pub video_frames: u64,
    /// Audio packets.
    pub audio_packets: u64,
    /// Payload types seen on video / audio packets.
    pub video_pts: Vec<u8>,
    pub audio_pts: Vec<u8>,
    /// Access units in order (when recorded).
    pub access_units: Vec<Bytes>,
}

/// The payload types the native WHEP viewer offers: deliberately not the server's own 102/111.
pub const CLIENT_H264_PT: u8 = 96;
/// See [`CLIENT_H264_PT`].
pub const CLIENT_OPUS_PT: u8 = 109;

/// A recvonly (video + audio) offerer with a loopback host candidate, as a WHEP player makes.
pub(crate) fn offerer(local: SocketAddr) -> Result<RTCPeerConnection, String> {
    let e = |e: rtc::shared::error::Error| e.to_string();
    let mut media = MediaEngine::default();
    // A profile we cannot send as first, the one we prefer second (as Chrome lists them).
    for (pt, fmtp) in [
        (
            CLIENT_H264_PT + 2,
            "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
        ),
        (
            CLIENT_H264_PT,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
    ] {
        media
            .register_codec(
                codec(MIME_TYPE_H264, 90_000, 0, fmtp, pt),
                RtpCodecKind::Video,
            )
            .map_err(e)?;
    }
    media
        .register_codec(
            codec(
                MIME_TYPE_OPUS,
                48_000,
                2,
                "minptime=10;useinbandfec=1",
                CLIENT_OPUS_PT,
            ),
            RtpCodecKind::Audio,
        )
        .map_err(e)?;
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(settings)
        .with_media_engine(media)
        .build(Instant::now())
        .map_err(e)?;
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .map_err(e)?;
    }
    pc.add_local_candidate(host_candidate(local)?).map_err(e)?;
    Ok(pc)
}

/// An offer as the native viewer makes it (recvonly video and audio, a loopback candidate), for
/// tests that only look at HTTP.
pub fn client_offer() -> Result<String, String> {
    let mut pc = offerer("127.0.0.1:9".parse().expect("address"))?;
    let offer = pc.create_offer(None).map_err(|e| e.to_string())?;
    pc.set_local_description(Instant::now(), offer)
        .map_err(|e| e.to_string())?;
    Ok(pc.local_description().ok_or("no local description")?.sdp)
}

/// How a native WHEP viewer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhepLeave {
    /// DELETE the session, then close.
    Delete,
    /// Close the peer connection only (as Flussonic's player does).
    CloseOnly,
}

/// POSTs an offer to `http://addr/path` (`/STREAM/whep`), applies the answer (its candidates
/// inside, nothing trickled) and receives until `frames` complete video frames or `max`.
pub async fn run_whep_viewer(
    addr: SocketAddr,
    path: &str,
    frames: u64,
    max: Duration,
    record: bool,
    leave: WhepLeave,
) -> Result<WhepReport, String> {
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut pc = offerer(local)?;
    let offer = pc.create_offer(None).map_err(|e| e.to_string())?;
    pc.set_local_description(Instant::now(), offer)
        .map_err(|e| e.to_string())?;
    let offer_sdp = pc.local_description().ok_or("no local description")?.sdp;
    let res = http(
        addr,
        "POST",
        path,
        &[("Content-Type", "application/sdp")],
        &offer_sdp,
    )
    .await?;
    let mut report = WhepReport {
        status: res.status,
        location: res.header("location").map(str::to_owned),
        answer: res.body.clone(),
        ..Default::default()
    };
    if res.status != 201 {
        return Ok(report);
    }
    let answer = RTCSessionDescription::answer(res.body).map_err(|e| e.to_string())?;
    pc.set_remote_description(Instant::now(), answer)
        .map_err(|e| format!("answer refused: {e}"))?;

    let deadline = tokio::time::Instant::now() + max;
    let mut assembler = FrameAssembler::default();
    let mut buf = vec![0u8; 2048];
    loop {
        while let Some(out) = pc.poll_write() {
            let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
        }
        while let Some(ev) = pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = ev {
                match s {
                    RTCPeerConnectionState::Connected => report.connected = true,
                    RTCPeerConnectionState::Failed => return Err("peer connection failed".into()),
                    _ => {}
                }
            }
        }
        let mut done = false;
        while let Some(msg) = pc.poll_read() {
            let RTCMessage::RtpPacket(_, packet) = msg.message else {
                continue;
            };
            let pt = packet.header.payload_type;
            if pt == CLIENT_OPUS_PT {
                report.audio_packets += 1;
                if !report.audio_pts.contains(&pt) {
                    report.audio_pts.push(pt);
                }
                continue;
            }
            if !report.video_pts.contains(&pt) {
                report.video_pts.push(pt);
            }
            if let Some(frame) = assembler.push(pt, &packet.payload, packet.header.marker) {
                report.video_frames += 1;
                if record {
                    report.access_units.push(frame);
                }
                if report.video_frames >= frames {
                    done = true;
                }
            }
        }
        if done || tokio::time::Instant::now() >= deadline {
            break;
        }
        let timeout = pc
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or(deadline)
            .min(deadline);
        tokio::select! {
            res = socket.recv_from(&mut buf) => {
                let (n, from) = res.map_err(|e| e.to_string())?;
                let _ = pc.handle_read(TaggedBytesMut {
                    now: Instant::now(),
                    transport: TransportContext { local_addr: local, peer_addr: from, ecn: None, transport_protocol: TransportProtocol::UDP },
                    message: BytesMut::from(&buf[..n]),
                });
            }
            _ = tokio::time::sleep_until(timeout) => {
                let _ = pc.handle_timeout(Instant::now());
            }
        }
    }
    if leave == WhepLeave::Delete {
        if let Some(loc) = &report.location {
            let r = http(addr, "DELETE", loc, &[], "").await?;
            if r.status != 200 {
                return Err(format!("DELETE {loc}: {} {}", r.status, r.body));
            }
        }
    }
    let _ = pc.close();
    while let Some(out) = pc.poll_write() {
        let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
    }
    Ok(report)
}
