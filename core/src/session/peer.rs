//! Building one viewer's peer connection (webrtc-rs `rtc`, sans-IO): the server's codecs, the
//! send-only tracks of the stream with the stream's SSRCs, our ICE credentials and candidates, the
//! shared DTLS certificate, and the interceptors that answer NACKs and send sender reports.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};
use rtc::crypto::{self, SignatureScheme};
use rtc::interceptor::{NackResponderBuilder, Registry, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, CandidateServerReflexiveConfig, RTCIceCandidate,
    RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::RTCRtpSenderId;

use crate::metrics::Metrics;
use crate::session::feedback::{FeedbackInterceptor, FEEDBACK_SLOT};
use crate::{Error, Result};

/// RTP payload type of H.264 in our offers.
pub(crate) const H264_PT: u8 = 102;
/// RTP payload type of Opus in our offers.
pub(crate) const OPUS_PT: u8 = 111;
/// Packets kept per viewer to answer NACKs.
const NACK_BUFFER_PACKETS: u16 = 512;

/// The tracks a stream offers, with the SSRCs every viewer shares.
#[derive(Debug, Clone)]
pub(crate) struct TrackSpec {
    pub stream: String,
    pub video_ssrc: u32,
    pub audio_ssrc: Option<u32>,
}

/// A freshly built viewer connection with its offer made.
pub(crate) struct NewPeer {
    pub pc: RTCPeerConnection,
    pub ufrag: String,
    pub offer_sdp: String,
    pub video_sender: RTCRtpSenderId,
    pub audio_sender: Option<RTCRtpSenderId>,
}

/// What every viewer connection of a server shares.
pub(crate) struct PeerTemplate {
    certificate: RTCCertificate,
    metrics: Arc<Metrics>,
    consent_timeout: Duration,
    /// Our ICE candidates, the same for every viewer (one UDP port).
    pub candidates: Vec<RTCIceCandidateInit>,
}

impl PeerTemplate {
    /// Generates the server's DTLS certificate (once: ~55 µs per viewer saved) and its candidates.
    pub fn new(
        metrics: Arc<Metrics>,
        consent_timeout: Duration,
        host_addrs: &[std::net::SocketAddr],
        public_ips: &[std::net::IpAddr],
    ) -> Result<Self> {
        let provider = crypto::default_provider().map_err(|e| Error::WebRtc(e.to_string()))?;
        let certificate = RTCCertificate::generate(
            provider.crypto(),
            SignatureScheme::EcdsaP256Sha256,
            CertificateParams::new(vec!["rtcast".to_owned()])
                .map_err(|e| Error::WebRtc(e.to_string()))?,
        )?;
        let mut candidates = Vec::new();
        for addr in host_addrs {
            let c = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "udp".to_owned(),
                    address: addr.ip().to_string(),
                    port: addr.port(),
                    component: 1,
                    ..Default::default()
                },
                ..Default::default()
            }
            .new_candidate_host()?;
            candidates.push(candidate_init(&RTCIceCandidate::from(&c))?);
        }
        // A public IP of a 1:1 NAT reaches the same socket as the first host address; announcing
        // it as server-reflexive with that base lets ICE match datagrams to it (rtc's
        // nat_1to1_ips is declared but unused).
        if let Some(base) = host_addrs.first() {
            for ip in public_ips {
                let c = CandidateServerReflexiveConfig {
                    base_config: CandidateConfig {
                        network: "udp".to_owned(),
                        address: ip.to_string(),
                        port: base.port(),
                        component: 1,
                        ..Default::default()
                    },
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
            metrics,
            consent_timeout,
            candidates,
        })
    }

    /// Builds a connection that offers the stream's tracks, send-only.
    pub fn new_peer(&self, now: Instant, tracks: &TrackSpec) -> Result<NewPeer> {
        let ufrag = Alphanumeric.sample_string(&mut rand::rng(), 16);
        let pwd = Alphanumeric.sample_string(&mut rand::rng(), 32);

        // Consent: disconnected after a third of the budget without answers, failed at the end.
        let disconnected = self.consent_timeout / 3;
        let failed = self.consent_timeout - disconnected;
        let setting_engine = SettingEngineBuilder::new()
            .with_ice_credentials(ufrag.clone(), pwd)
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            // A server with host candidates has nothing better to wait for: nominate the first
            // pair that works (the defaults wait up to a second for "better" candidate types,
            // and browsers hiding behind mDNS show up as peer-reflexive).
            .with_host_acceptance_min_wait(Some(Duration::ZERO))
            .with_srflx_acceptance_min_wait(Some(Duration::ZERO))
            .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
            .with_relay_acceptance_min_wait(Some(Duration::ZERO))
            .with_ice_timeouts(
                Some(disconnected),
                Some(failed),
                Some(Duration::from_secs(2)),
            )
            .build();

        let mut media_engine = MediaEngine::default();
        let video = h264_codec();
        media_engine.register_codec(video.clone(), RtpCodecKind::Video)?;
        let audio = opus_codec();
        if tracks.audio_ssrc.is_some() {
            media_engine.register_codec(audio.clone(), RtpCodecKind::Audio)?;
        }
        // NACK feedback is negotiated for video; the responder answers from a send buffer. Its
        // default (1024 packets, allocated up front per viewer) would be the largest part of a
        // viewer's memory: 512 packets keep 2.5 s of a 2 Mbit/s stream, longer than any round
        // trip where a retransmission still arrives in time. No NACK generator: we receive no
        // media.
        for parameter in ["", "pli"] {
            media_engine.register_feedback(
                RTCPFeedback {
                    typ: "nack".to_owned(),
                    parameter: parameter.to_owned(),
                },
                RtpCodecKind::Video,
            );
        }
        let registry = configure_rtcp_reports(Registry::new())
            .with(
                Slot::NackResponder,
                NackResponderBuilder::new()
                    .with_size(NACK_BUFFER_PACKETS)
                    .build(),
            )
            .with(
                Slot::from(FEEDBACK_SLOT),
                FeedbackInterceptor::new(self.metrics.clone()),
            );

        let config = RTCConfigurationBuilder::new()
            .with_certificates(vec![self.certificate.clone()])
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(config)
            .with_setting_engine(setting_engine)
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .build(now)?;

        // The msid (stream id) makes the browser put the tracks in one MediaStream, which
        // `video.srcObject = event.streams[0]` relies on.
        let msid = format!("rtcast-{}", tracks.stream);
        let video_sender = pc.add_track(track(
            &msid,
            "video",
            RtpCodecKind::Video,
            tracks.video_ssrc,
            &video,
        ))?;
        let audio_sender = match tracks.audio_ssrc {
            Some(ssrc) => {
                Some(pc.add_track(track(&msid, "audio", RtpCodecKind::Audio, ssrc, &audio))?)
            }
            None => None,
        };
        for c in &self.candidates {
            pc.add_local_candidate(c.clone())?;
        }
        let offer = pc.create_offer(None)?;
        pc.set_local_description(now, offer)?;
        let offer_sdp = pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| Error::WebRtc("offer missing after set_local_description".into()))?;
        Ok(NewPeer {
            pc,
            ufrag,
            offer_sdp,
            video_sender,
            audio_sender,
        })
    }
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
