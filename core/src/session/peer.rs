//! Building one viewer's session description with webrtc-rs `rtc`: the server's codecs, the
//! send-only tracks of the stream with the stream's SSRCs, our ICE-lite credentials and
//! candidates, and the fingerprint of the shared DTLS certificate. The connection object only
//! negotiates: once the descriptions are exchanged the media plane (`crate::plane`) runs ICE,
//! DTLS and SRTP itself and the connection is dropped.

use std::net::SocketAddr;
use std::time::Instant;

use rand::distr::{Alphanumeric, SampleString};
use rtc::crypto::{self, SignatureScheme};
use rtc::ice::tcp_type::TcpType;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, CandidateServerReflexiveConfig, RTCIceCandidate,
    RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection};

use crate::config::CandidatePolicy;
use crate::media::VideoCodec;
use crate::plane::dtls::DtlsConfig;
use crate::plane::ice::IceCredentials;
use crate::{Error, Result};

/// RTP payload type of H.264 in our offers.
pub(crate) const H264_PT: u8 = 102;
/// RTP payload type of VP8 in our offers.
pub(crate) const VP8_PT: u8 = 96;
/// RTP payload type of Opus in our offers.
pub(crate) const OPUS_PT: u8 = 111;

/// The tracks a stream offers, with the SSRCs every viewer shares.
#[derive(Debug, Clone)]
pub(crate) struct TrackSpec {
    pub stream: String,
    pub video_codec: VideoCodec,
    pub video_ssrc: u32,
    pub audio_ssrc: Option<u32>,
    /// The stream adapts to its viewers' bandwidth (several renditions, or an encoder that
    /// follows them): transport-wide congestion control is negotiated.
    pub adaptive: bool,
}

/// A freshly built viewer connection with its local description (offer or answer) set.
pub(crate) struct NewPeer {
    pub pc: RTCPeerConnection,
    pub ice: IceCredentials,
    /// Our offer (server-offer flow) or our answer with our candidates in it (WHEP).
    pub local_sdp: String,
    /// Payload types this viewer's packets carry: ours when we offer, the offer's when we answer.
    pub video_pt: u8,
    pub audio_pt: Option<u8>,
    /// The id of the transport-wide-cc header extension in our description (adaptive streams).
    pub twcc_ext: Option<u8>,
}

/// H.264 profiles we can send as, best first (our encoder makes constrained baseline; a host's
/// main-profile stream decodes under any of them in browsers).
const H264_PROFILES: [&str; 3] = ["42e01f", "42001f", "4d001f"];

/// What every viewer connection of a server shares.
#[derive(Clone)]
pub(crate) struct PeerTemplate {
    certificate: RTCCertificate,
    /// First character of every ICE ufrag made here: which media loop the viewer lives on
    /// (`crate::plane::loop_tag`), so its checks are routed there.
    loop_tag: char,
    /// Our ICE candidates, the same for every viewer (one UDP port).
    pub candidates: Vec<RTCIceCandidateInit>,
}

impl PeerTemplate {
    /// Generates the server's DTLS certificate (once: ~55 µs per viewer saved) and the candidates
    /// `policy` allows: UDP host candidates of `udp_addrs`, passive ICE-TCP host candidates of
    /// `tcp_addrs`, and `public_ips` as server-reflexive candidates of each transport. UDP ones
    /// have the higher priority (RFC 6544's TCP local preference is lower).
    pub fn new(
        udp_addrs: &[SocketAddr],
        tcp_addrs: &[SocketAddr],
        public_ips: &[std::net::IpAddr],
        policy: CandidatePolicy,
    ) -> Result<Self> {
        let provider = crypto::default_provider().map_err(|e| Error::WebRtc(e.to_string()))?;
        let certificate = RTCCertificate::generate(
            provider.crypto(),
            SignatureScheme::EcdsaP256Sha256,
            CertificateParams::new(vec!["rtcast".to_owned()])
                .map_err(|e| Error::WebRtc(e.to_string()))?,
        )?;
        let mut candidates = Vec::new();
        let transports = [
            (policy.udp, "udp", udp_addrs, TcpType::Unspecified),
            (policy.tcp, "tcp", tcp_addrs, TcpType::Passive),
        ];
        for (_, network, addrs, tcp_type) in transports.iter().filter(|t| t.0) {
            let config = |addr: &SocketAddr| CandidateConfig {
                network: (*network).to_owned(),
                address: addr.ip().to_string(),
                port: addr.port(),
                component: 1,
                ..Default::default()
            };
            if policy.local {
                for addr in addrs.iter() {
                    let c = CandidateHostConfig {
                        base_config: config(addr),
                        tcp_type: *tcp_type,
                    }
                    .new_candidate_host()?;
                    candidates.push(candidate_init(&RTCIceCandidate::from(&c))?);
                }
            }
            // A public IP of a 1:1 NAT reaches the same socket as the first local address;
            // announcing it as server-reflexive with that base lets ICE match packets to it
            // (rtc's nat_1to1_ips is declared but unused).
            let Some(base) = addrs.first().filter(|_| policy.public) else {
                continue;
            };
            for ip in public_ips {
                if *tcp_type == TcpType::Passive {
                    // rtc's server-reflexive config has no TCP type: the line is written here,
                    // with RFC 6544's priority (type 100, direction-pref 2 for passive).
                    let priority = (100u32 << 24) | (((1u32 << 13) * 2 + 8191) << 8) | 255;
                    candidates.push(RTCIceCandidateInit {
                        candidate: format!(
                            "candidate:{} 1 tcp {priority} {ip} {} typ srflx raddr {} rport {} \
                             tcptype passive",
                            srflx_tcp_foundation(ip),
                            base.port(),
                            base.ip(),
                            base.port()
                        ),
                        sdp_mid: Some("0".to_owned()),
                        sdp_mline_index: Some(0),
                        ..Default::default()
                    });
                    continue;
                }
                let c = CandidateServerReflexiveConfig {
                    base_config: config(&SocketAddr::new(*ip, base.port())),
                    rel_addr: base.ip().to_string(),
                    rel_port: base.port(),
                    url: None,
                }
                .new_candidate_server_reflexive()?;
                candidates.push(candidate_init(&RTCIceCandidate::from(&c))?);
            }
        }
        Ok(Self {
            certificate,
            loop_tag: crate::plane::loop_tag(0),
            candidates,
        })
    }

    /// Our candidates in a few words ("UDP 127.0.0.1:5000, TCP 127.0.0.1:5000"), for errors.
    pub fn candidate_summary(&self) -> String {
        let words: Vec<String> = self
            .candidates
            .iter()
            .filter_map(|c| {
                let f: Vec<&str> = c.candidate.split_whitespace().collect();
                let (proto, ip, port) = (f.get(2)?, f.get(4)?, f.get(5)?);
                let ip = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    (*ip).to_owned()
                };
                Some(format!("{} {ip}:{port}", proto.to_ascii_uppercase()))
            })
            .collect();
        if words.is_empty() {
            "none".to_owned()
        } else {
            words.join(", ")
        }
    }

    /// The template of media loop `index` (its ufrags carry the loop's tag).
    pub fn for_loop(&self, index: usize) -> Self {
        Self {
            loop_tag: crate::plane::loop_tag(index),
            ..self.clone()
        }
    }

    /// The DTLS settings of the media plane, with the certificate our descriptions announce.
    pub fn dtls_config(&self) -> Result<DtlsConfig> {
        let provider = crypto::default_provider().map_err(|e| Error::WebRtc(e.to_string()))?;
        DtlsConfig::new(self.certificate.dtls_certificate.clone(), provider)
    }

    /// Builds a connection that offers the stream's tracks, send-only.
    pub fn new_peer(&self, now: Instant, tracks: &TrackSpec) -> Result<NewPeer> {
        let (mut pc, ice) = self.build(now, tracks, tracks.audio_ssrc.is_some(), false)?;
        let msid = format!("rtcast-{}", tracks.stream);
        let video_codec = video_codec(tracks.video_codec);
        pc.add_track(track(
            &msid,
            "video",
            RtpCodecKind::Video,
            tracks.video_ssrc,
            &video_codec,
        ))?;
        if let Some(ssrc) = tracks.audio_ssrc {
            pc.add_track(track(
                &msid,
                "audio",
                RtpCodecKind::Audio,
                ssrc,
                &opus_codec(),
            ))?;
        }
        // Our candidates are trickled by signalling, not put in the offer.
        let offer = pc.create_offer(None)?;
        pc.set_local_description(now, offer)?;
        let local_sdp = pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| Error::WebRtc("offer missing after set_local_description".into()))?;
        Ok(NewPeer {
            pc,
            ice,
            twcc_ext: crate::plane::bwe::twcc_extmap(&local_sdp),
            local_sdp,
            video_pt: video_codec.payload_type,
            audio_pt: tracks.audio_ssrc.map(|_| OPUS_PT),
        })
    }

    /// Builds a connection that answers a viewer's offer (WHEP): the offer's transceivers carry
    /// our tracks, send-only, with the offer's payload types. The answer holds our candidates
    /// (many WHEP clients do not trickle). `InvalidData` when the offer is unusable.
    pub fn new_answering_peer(
        &self,
        now: Instant,
        tracks: &TrackSpec,
        offer_sdp: String,
    ) -> Result<NewPeer> {
        if !offers_video(&offer_sdp, tracks.video_codec) {
            return Err(Error::InvalidData(match tracks.video_codec {
                VideoCodec::H264 => "offer has no H.264 (packetization-mode=1) video".into(),
                codec => format!(
                    "offer has no {codec} video (stream '{}' is {codec})",
                    tracks.stream
                ),
            }));
        }
        let offer = RTCSessionDescription::offer(offer_sdp)
            .map_err(|e| Error::InvalidData(format!("the offer is not valid SDP: {e}")))?;
        // Opus is always registered so that an audio m-line is answered (inactive when the
        // stream has no audio) rather than refused.
        let (mut pc, ice) = self.build(now, tracks, true, true)?;
        pc.set_remote_description(now, offer)
            .map_err(|e| Error::InvalidData(format!("the offer was refused: {e}")))?;
        let msid = format!("rtcast-{}", tracks.stream);
        // No codec in the encodings: the transceiver keeps every codec the offer and we share.
        let no_codec = RTCRtpCodecParameters::default();
        let video_sender = pc.add_track(track(
            &msid,
            "video",
            RtpCodecKind::Video,
            tracks.video_ssrc,
            &no_codec,
        ))?;
        let audio_sender = match tracks.audio_ssrc {
            Some(ssrc) if offers_kind(&pc, RtpCodecKind::Audio) => {
                Some(pc.add_track(track(&msid, "audio", RtpCodecKind::Audio, ssrc, &no_codec))?)
            }
            _ => None,
        };
        // Send-only, whatever the offer's direction (Flussonic's player offers sendrecv):
        // nothing of the viewer's is wanted. Transceivers without our track are inactive.
        let ids: Vec<_> = pc.get_transceivers().collect();
        for id in ids {
            if let Some(mut t) = pc.rtp_transceiver(id) {
                let dir = if t.sender().is_some() {
                    RTCRtpTransceiverDirection::Sendonly
                } else {
                    RTCRtpTransceiverDirection::Inactive
                };
                t.set_direction(dir);
            }
        }
        // What fails from here on fails on the offer's content (an m-line whose payload types
        // name no codec rtc knows leaves its sender without codecs): the viewer's fault, not ours.
        let unanswerable = |e: rtc::shared::error::Error| {
            Error::InvalidData(format!("the offer cannot be answered: {e}"))
        };
        let answer = pc.create_answer(None).map_err(unanswerable)?;
        pc.set_local_description(now, answer)
            .map_err(unanswerable)?;
        let sdp = pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| Error::WebRtc("answer missing after set_local_description".into()))?;
        let local_sdp = with_candidates(&sdp, &self.candidates);
        let video_pt = match tracks.video_codec {
            VideoCodec::H264 => h264_payload_type(&mut pc, video_sender)?,
            VideoCodec::Vp8 => pick_payload_type(&mut pc, video_sender, |c| {
                c.rtp_codec
                    .mime_type
                    .eq_ignore_ascii_case(MIME_TYPE_VP8)
                    .then_some(0)
            })
            .ok_or_else(|| Error::InvalidData("the offer's VP8 was not negotiated".into()))?,
        };
        let audio_pt = audio_sender.and_then(|s| {
            pick_payload_type(&mut pc, s, |c| {
                c.rtp_codec
                    .mime_type
                    .eq_ignore_ascii_case(MIME_TYPE_OPUS)
                    .then_some(0)
            })
        });
        Ok(NewPeer {
            pc,
            ice,
            twcc_ext: crate::plane::bwe::twcc_extmap(&local_sdp),
            local_sdp,
            video_pt,
            audio_pt,
        })
    }

    /// A connection with our ICE credentials, codecs and certificate: ICE-lite (the viewer's
    /// full agent checks, we only answer), and the DTLS server when we answer.
    fn build(
        &self,
        now: Instant,
        tracks: &TrackSpec,
        audio: bool,
        answering: bool,
    ) -> Result<(RTCPeerConnection, IceCredentials)> {
        let video = tracks.video_codec;
        let ice = IceCredentials {
            ufrag: format!(
                "{}{}",
                self.loop_tag,
                Alphanumeric.sample_string(&mut rand::rng(), 15)
            ),
            pwd: Alphanumeric.sample_string(&mut rand::rng(), 32),
        };
        let setting_engine = SettingEngineBuilder::new()
            .with_ice_credentials(ice.ufrag.clone(), ice.pwd.clone())
            .with_lite(true)
            .with_answering_dtls_role(RTCDtlsRole::Server)
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();

        let mut media_engine = MediaEngine::default();
        if video == VideoCodec::Vp8 {
            media_engine.register_codec(vp8_codec(), RtpCodecKind::Video)?;
        } else if answering {
            // Every profile we can send as, so that the offer's H.264 entries find a match.
            for (i, profile) in H264_PROFILES.iter().enumerate() {
                let mut c = h264_codec();
                c.rtp_codec.sdp_fmtp_line = format!(
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id={profile}"
                );
                c.payload_type = H264_PT + i as u8;
                media_engine.register_codec(c, RtpCodecKind::Video)?;
            }
        } else {
            media_engine.register_codec(h264_codec(), RtpCodecKind::Video)?;
        }
        if audio {
            media_engine.register_codec(opus_codec(), RtpCodecKind::Audio)?;
        }
        // REMB (goog-remb) is negotiated so that browsers report their bandwidth estimate: the
        // stream's bitrate hint. NACKs are answered by the media plane from the stream's packet
        // history.
        for (typ, parameter) in [("nack", ""), ("nack", "pli"), ("goog-remb", "")] {
            media_engine.register_feedback(
                RTCPFeedback {
                    typ: typ.to_owned(),
                    parameter: parameter.to_owned(),
                },
                RtpCodecKind::Video,
            );
        }
        // A stream that adapts estimates each viewer's bandwidth itself (GCC over transport-wide
        // feedback; browsers then stop sending REMB). Video only: the estimate is for the
        // rendition choice, and audio's few kbit/s do not move it.
        if tracks.adaptive {
            media_engine.register_feedback(
                RTCPFeedback {
                    typ: "transport-cc".to_owned(),
                    parameter: String::new(),
                },
                RtpCodecKind::Video,
            );
            media_engine.register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: crate::plane::bwe::TWCC_URI.to_owned(),
                },
                RtpCodecKind::Video,
                None,
            )?;
        }
        let config = RTCConfigurationBuilder::new()
            .with_certificates(vec![self.certificate.clone()])
            .build();
        let pc = RTCPeerConnectionBuilder::new()
            .with_configuration(config)
            .with_setting_engine(setting_engine)
            .with_media_engine(media_engine)
            .build(now)?;
        Ok((pc, ice))
    }
}

/// The negotiated H.264 payload type of the sender, in the profile we rank best.
fn h264_payload_type(pc: &mut RTCPeerConnection, video_sender: RTCRtpSenderId) -> Result<u8> {
    pick_payload_type(pc, video_sender, |c| {
        let fmtp = c.rtp_codec.sdp_fmtp_line.to_ascii_lowercase();
        if !c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_H264)
            || !fmtp.contains("packetization-mode=1")
        {
            return None;
        }
        H264_PROFILES.iter().position(|p| {
            // Profile and constraints (the first 4 hex digits); any level.
            p.get(..4)
                .is_some_and(|idc| fmtp.contains(&format!("profile-level-id={idc}")))
        })
    })
    .ok_or_else(|| {
        Error::InvalidData(format!(
            "offer has no H.264 (packetization-mode=1) video in a profile we send ({})",
            H264_PROFILES.join(", ")
        ))
    })
}

/// Whether an offer has a payload type of `codec` (for H.264, with packetization-mode=1).
fn offers_video(sdp: &str, codec: VideoCodec) -> bool {
    let encoding = match codec {
        VideoCodec::H264 => "h264/",
        VideoCodec::Vp8 => "vp8/",
    };
    let mut pts = Vec::new();
    for line in sdp.lines() {
        if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            let mut it = rest.split_whitespace();
            if let (Some(pt), Some(enc)) = (it.next(), it.next()) {
                if enc.to_ascii_lowercase().starts_with(encoding) {
                    pts.push(pt.to_owned());
                }
            }
        }
    }
    if codec == VideoCodec::Vp8 {
        return !pts.is_empty();
    }
    let h264_pts = pts;
    sdp.lines().any(|line| {
        line.strip_prefix("a=fmtp:").is_some_and(|rest| {
            let mut it = rest.splitn(2, ' ');
            let pt = it.next().unwrap_or("");
            let params = it.next().unwrap_or("").to_ascii_lowercase();
            h264_pts.iter().any(|p| p == pt) && params.contains("packetization-mode=1")
        })
    })
}

/// Whether the remote offer created a transceiver of this kind.
fn offers_kind(pc: &RTCPeerConnection, kind: RtpCodecKind) -> bool {
    let want = match kind {
        RtpCodecKind::Audio => "m=audio",
        _ => "m=video",
    };
    pc.remote_description()
        .is_some_and(|d| d.sdp.lines().any(|l| l.starts_with(want)))
}

/// The negotiated payload type of a sender's codec ranked best (lowest) by `rank`.
fn pick_payload_type(
    pc: &mut RTCPeerConnection,
    sender: RTCRtpSenderId,
    rank: impl Fn(&RTCRtpCodecParameters) -> Option<usize>,
) -> Option<u8> {
    let mut s = pc.rtp_sender(sender)?;
    s.get_parameters()
        .rtp_parameters
        .codecs
        .iter()
        .filter_map(|c| rank(c).map(|r| (r, c.payload_type)))
        .min_by_key(|(r, _)| *r)
        .map(|(_, pt)| pt)
}

/// Puts our candidates and `a=end-of-candidates` into every m-section that lacks them
/// (rtc writes candidates into a local description only in some states).
fn with_candidates(sdp: &str, candidates: &[RTCIceCandidateInit]) -> String {
    let eol = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    // The session part, then one section per m= line.
    let mut sections: Vec<Vec<&str>> = Vec::new();
    let mut section = Vec::new();
    for line in sdp.lines() {
        if line.starts_with("m=") {
            sections.push(std::mem::take(&mut section));
        }
        section.push(line);
    }
    sections.push(section);
    let mut out = String::with_capacity(sdp.len() + 200);
    for (i, section) in sections.iter().enumerate() {
        for line in section {
            out.push_str(line);
            out.push_str(eol);
        }
        if i == 0 {
            continue;
        }
        if !section.iter().any(|l| l.starts_with("a=candidate:")) {
            for c in candidates {
                out.push_str("a=");
                out.push_str(&c.candidate);
                out.push_str(eol);
            }
        }
        if !section.contains(&"a=end-of-candidates") {
            out.push_str("a=end-of-candidates");
            out.push_str(eol);
        }
    }
    out
}

/// A recvonly H.264 + Opus offer as a WHEP viewer makes it, for the fuzz targets and their seeds.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn fuzz_offer() -> String {
    use rtc::rtp_transceiver::RTCRtpTransceiverInit;
    let built = (|| -> Result<String> {
        let mut media = MediaEngine::default();
        media.register_codec(h264_codec(), RtpCodecKind::Video)?;
        media.register_codec(opus_codec(), RtpCodecKind::Audio)?;
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_media_engine(media)
            .build(Instant::now())?;
        for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )?;
        }
        let offer = pc.create_offer(None)?;
        pc.set_local_description(Instant::now(), offer)?;
        Ok(pc.local_description().map(|d| d.sdp).unwrap_or_default())
    })();
    built.unwrap_or_default()
}

/// A foundation for a TCP server-reflexive candidate: the same for the same address (RFC 8445
/// §5.1.1.3), distinct from rtc's (which are CRC32 numbers).
fn srflx_tcp_foundation(ip: &std::net::IpAddr) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in format!("srflx-tcp-{ip}").bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("t{h}")
}

fn candidate_init(c: &RTCIceCandidate) -> Result<RTCIceCandidateInit> {
    let mut init = c.to_json()?;
    // One BUNDLE transport: every candidate belongs to the first m-line.
    init.sdp_mid = Some("0".to_owned());
    init.sdp_mline_index = Some(0);
    Ok(init)
}

fn track(
    msid: &str,
    id: &str,
    kind: RtpCodecKind,
    ssrc: u32,
    codec: &RTCRtpCodecParameters,
) -> MediaStreamTrack {
    MediaStreamTrack::new(
        msid.to_owned(),
        format!("{msid}-{id}"),
        id.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: codec.rtp_codec.clone(),
            ..Default::default()
        }],
    )
}

fn h264_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_H264.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                .to_owned(),
            rtcp_feedback: vec![RTCPFeedback {
                typ: "ccm".to_owned(),
                parameter: "fir".to_owned(),
            }],
        },
        payload_type: H264_PT,
    }
}

fn vp8_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![RTCPFeedback {
                typ: "ccm".to_owned(),
                parameter: "fir".to_owned(),
            }],
        },
        payload_type: VP8_PT,
    }
}

fn video_codec(codec: VideoCodec) -> RTCRtpCodecParameters {
    match codec {
        VideoCodec::H264 => h264_codec(),
        VideoCodec::Vp8 => vp8_codec(),
    }
}

fn opus_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: OPUS_PT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp_transceiver::RTCRtpTransceiverInit;

    fn template() -> PeerTemplate {
        PeerTemplate::new(
            &["127.0.0.1:5000".parse().unwrap()],
            &[],
            &[],
            CandidatePolicy::default(),
        )
        .unwrap()
    }

    fn spec(audio: bool) -> TrackSpec {
        TrackSpec {
            stream: "s".into(),
            video_codec: VideoCodec::H264,
            video_ssrc: 1111,
            audio_ssrc: audio.then_some(2222),
            adaptive: false,
        }
    }

    /// An offer like a browser's: H.264 entries `(pt, fmtp)` in this order, Opus 109.
    fn offer(h264: &[(u8, &str)], direction: RTCRtpTransceiverDirection) -> String {
        let video: Vec<_> = h264
            .iter()
            .map(|(pt, fmtp)| {
                let mut c = h264_codec();
                c.payload_type = *pt;
                c.rtp_codec.sdp_fmtp_line = (*fmtp).to_owned();
                c
            })
            .collect();
        offer_with(video, direction)
    }

    fn offer_with(
        video: Vec<RTCRtpCodecParameters>,
        direction: RTCRtpTransceiverDirection,
    ) -> String {
        let mut media = MediaEngine::default();
        for c in video {
            media.register_codec(c, RtpCodecKind::Video).unwrap();
        }
        let mut opus = opus_codec();
        opus.payload_type = 109;
        media.register_codec(opus, RtpCodecKind::Audio).unwrap();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_media_engine(media)
            .build(Instant::now())
            .unwrap();
        for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction,
                    ..Default::default()
                }),
            )
            .unwrap();
        }
        let o = pc.create_offer(None).unwrap();
        pc.set_local_description(Instant::now(), o).unwrap();
        pc.local_description().unwrap().sdp
    }

    const CHROME_LIKE: [(u8, &str); 4] = [
        (
            102,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
        ),
        (
            104,
            "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
        ),
        (
            106,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
        (
            112,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f",
        ),
    ];

    #[test]
    fn answer_uses_the_offers_payload_types_preferring_42e01f_mode_1() {
        let sdp = offer(&CHROME_LIKE, RTCRtpTransceiverDirection::Recvonly);
        let peer = template()
            .new_answering_peer(Instant::now(), &spec(true), sdp)
            .unwrap();
        assert_eq!(peer.video_pt, 106);
        assert_eq!(peer.audio_pt, Some(109));
        assert!(
            peer.local_sdp.contains("a=candidate:"),
            "{}",
            peer.local_sdp
        );
        assert!(peer.local_sdp.contains("a=end-of-candidates"));
        assert!(peer.local_sdp.contains("a=sendonly"));
    }

    #[test]
    fn sendrecv_offer_is_answered_send_only_and_42001f_is_accepted() {
        // Flussonic's player offers sendrecv (rtc makes no sendrecv transceiver without a track).
        let sdp = offer(&CHROME_LIKE[..1], RTCRtpTransceiverDirection::Recvonly)
            .replace("a=recvonly", "a=sendrecv");
        let peer = template()
            .new_answering_peer(Instant::now(), &spec(false), sdp)
            .unwrap();
        assert_eq!(peer.video_pt, 102);
        // No audio in the stream: the audio m-line is answered inactive.
        assert_eq!(peer.audio_pt, None);
        let sdp = &peer.local_sdp;
        assert!(sdp.contains("a=sendonly"), "{sdp}");
        assert!(sdp.contains("a=inactive"), "{sdp}");
        assert!(!sdp.contains("a=sendrecv"), "{sdp}");
    }

    #[test]
    fn offer_without_usable_h264_is_invalid_data() {
        for h264 in [&CHROME_LIKE[1..2], &CHROME_LIKE[3..4]] {
            let sdp = offer(h264, RTCRtpTransceiverDirection::Recvonly);
            match template().new_answering_peer(Instant::now(), &spec(true), sdp) {
                Err(Error::InvalidData(m)) => assert!(m.contains("H.264"), "{m}"),
                Err(e) => panic!("{e}"),
                Ok(p) => panic!("answered with pt {}", p.video_pt),
            }
        }
    }

    #[test]
    fn offer_whose_audio_names_no_codec_is_invalid_data() {
        // Found by the `http` fuzz target (fuzz/regressions/http): the audio m-line offers
        // payload type 111, whose rtpmap is gone; it was answered with a 500.
        let sdp: String = fuzz_offer()
            .split_inclusive('\n')
            .filter(|l| !l.contains("opus/48000"))
            .collect();
        match template().new_answering_peer(Instant::now(), &spec(true), sdp) {
            Err(Error::InvalidData(m)) => assert!(m.contains("cannot be answered"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(p) => panic!("answered with pt {}", p.video_pt),
        }
    }

    #[test]
    fn vp8_stream_answers_with_the_offers_vp8_payload_type() {
        let mut vp8 = vp8_codec();
        vp8.payload_type = 120;
        let mut h264 = h264_codec();
        h264.payload_type = 106;
        let sdp = offer_with(vec![h264, vp8], RTCRtpTransceiverDirection::Recvonly);
        let spec = TrackSpec {
            video_codec: VideoCodec::Vp8,
            ..spec(true)
        };
        let peer = template()
            .new_answering_peer(Instant::now(), &spec, sdp)
            .unwrap();
        assert_eq!(peer.video_pt, 120);
        assert!(peer.local_sdp.contains("VP8/90000"), "{}", peer.local_sdp);
        assert!(!peer.local_sdp.contains("H264/90000"), "{}", peer.local_sdp);
    }

    #[test]
    fn vp8_stream_refuses_an_offer_without_vp8() {
        let sdp = offer(&CHROME_LIKE, RTCRtpTransceiverDirection::Recvonly);
        let spec = TrackSpec {
            video_codec: VideoCodec::Vp8,
            ..spec(true)
        };
        match template().new_answering_peer(Instant::now(), &spec, sdp) {
            Err(Error::InvalidData(m)) => assert!(m.contains("no VP8"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(p) => panic!("answered with pt {}", p.video_pt),
        }
    }

    #[test]
    fn vp8_stream_offers_vp8_only() {
        let spec = TrackSpec {
            video_codec: VideoCodec::Vp8,
            ..spec(false)
        };
        let peer = template().new_peer(Instant::now(), &spec).unwrap();
        assert_eq!(peer.video_pt, VP8_PT);
        let sdp = &peer.local_sdp;
        assert!(
            sdp.contains(&format!("a=rtpmap:{VP8_PT} VP8/90000")),
            "{sdp}"
        );
        assert!(!sdp.contains("H264"), "{sdp}");
    }

    #[test]
    fn candidates_are_added_to_sections_that_lack_them() {
        let c = RTCIceCandidateInit {
            candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
            ..Default::default()
        };
        let sdp = "v=0\r\nm=video 9 X 96\r\na=mid:0\r\nm=audio 9 X 111\r\na=mid:1\r\na=candidate:2 1 udp 1 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n";
        let out = with_candidates(sdp, &[c]);
        assert_eq!(out.matches("a=candidate:").count(), 2, "{out}");
        assert_eq!(out.matches("a=end-of-candidates").count(), 2, "{out}");
        assert!(out.ends_with("\r\n"));
    }
}
