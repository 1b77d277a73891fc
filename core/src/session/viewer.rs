//! A viewer as the event loop sees it: its peer connection plus the few fields that differ per
//! viewer on the media path (sequence numbers, whether it waits for a keyframe).

use std::net::SocketAddr;
use std::time::Instant;

use rtc::peer_connection::RTCPeerConnection;
use rtc::rtp;
use rtc::rtp_transceiver::RTCRtpSenderId;
use tokio::sync::mpsc;

use crate::config::Protocol;
use crate::event::LeaveReason;
use crate::media::packetizer::{MediaFrame, TrackKind};
use crate::session::peer::NewPeer;
use crate::Result;

/// What the event loop tells a viewer's signalling task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// Media is connected.
    Connected,
    /// The session is over; the signalling connection should close.
    Closed(LeaveReason),
}

/// Where a viewer is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Offer sent, no answer yet.
    Offered,
    /// Answer applied; ICE and DTLS under way.
    Answered,
    /// Media flows.
    Connected,
}

pub(crate) struct Viewer {
    pub stream: u64,
    pub protocol: Protocol,
    pub remote: SocketAddr,
    pub started: Instant,
    pub pc: RTCPeerConnection,
    pub ufrag: String,
    pub phase: Phase,
    video_sender: RTCRtpSenderId,
    audio_sender: Option<RTCRtpSenderId>,
    video_ssrc: u32,
    audio_ssrc: Option<u32>,
    /// Negotiated payload types (the offer's when the viewer offered).
    video_pt: u8,
    audio_pt: Option<u8>,
    /// Until a keyframe reaches it, sending a viewer delta frames is wasted: it cannot decode them.
    pub waiting_keyframe: bool,
    video_seq: u16,
    audio_seq: u16,
    pub first_video_sent: bool,
    pub notices: mpsc::Sender<Notice>,
    /// Remote addresses seen in its STUN requests (for routing its other datagrams).
    pub addrs: Vec<SocketAddr>,
    /// Its entry in the event loop's timer set.
    pub deadline: Option<Instant>,
    /// Its last receiver bandwidth estimate (REMB), bits per second.
    pub estimate_bps: Option<u64>,
}

impl Viewer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        stream: u64,
        protocol: Protocol,
        remote: SocketAddr,
        started: Instant,
        peer: NewPeer,
        video_ssrc: u32,
        audio_ssrc: Option<u32>,
        notices: mpsc::Sender<Notice>,
    ) -> Self {
        Self {
            stream,
            protocol,
            remote,
            started,
            pc: peer.pc,
            ufrag: peer.ufrag,
            phase: Phase::Offered,
            video_sender: peer.video_sender,
            video_pt: peer.video_pt,
            audio_pt: peer.audio_pt,
            audio_sender: peer.audio_sender,
            video_ssrc,
            audio_ssrc,
            waiting_keyframe: true,
            video_seq: rand::random(),
            audio_seq: rand::random(),
            first_video_sent: false,
            notices,
            addrs: Vec::new(),
            deadline: None,
            estimate_bps: None,
        }
    }

    /// Queues a shared frame for this viewer with its own sequence numbers. `timestamp` overrides
    /// the frame's RTP timestamp (a late joiner's catch-up burst). Returns the packets queued.
    pub fn send_frame(
        &mut self,
        now: Instant,
        frame: &MediaFrame,
        timestamp: u32,
    ) -> Result<usize> {
        let (sender, ssrc, pt, seq) = match frame.kind {
            TrackKind::Video => {
                if self.waiting_keyframe {
                    if !frame.keyframe {
                        return Ok(0);
                    }
                    self.waiting_keyframe = false;
                }
                (
                    self.video_sender,
                    self.video_ssrc,
                    self.video_pt,
                    &mut self.video_seq,
                )
            }
            TrackKind::Audio => match (self.audio_sender, self.audio_ssrc, self.audio_pt) {
                (Some(s), Some(ssrc), Some(pt)) => (s, ssrc, pt, &mut self.audio_seq),
                _ => return Ok(0),
            },
        };
        let Some(mut rtp_sender) = self.pc.rtp_sender(sender) else {
            return Ok(0);
        };
        let last = frame.payloads.len().saturating_sub(1);
        for (i, payload) in frame.payloads.iter().enumerate() {
            let packet = rtp::Packet {
                header: rtp::Header {
                    version: 2,
                    // Video: the marker ends a frame. Audio: each Opus packet stands alone.
                    marker: frame.kind == TrackKind::Video && i == last,
                    payload_type: pt,
                    sequence_number: *seq,
                    timestamp,
                    ssrc,
                    ..Default::default()
                },
                payload: payload.clone(),
            };
            *seq = seq.wrapping_add(1);
            rtp_sender.write_rtp(now, packet)?;
        }
        Ok(frame.payloads.len())
    }
}
