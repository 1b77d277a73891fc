//! Reassembling received video frames from RTP payloads, without decoding: H.264 access units in
//! Annex B form (RFC 6184) or VP8 frames (RFC 7741), told apart by payload type.

use bytes::{Bytes, BytesMut};
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;

/// Builds frames out of the video packets of one receiver.
#[derive(Default)]
pub(crate) struct FrameAssembler {
    vp8_pts: Vec<u8>,
    h264: H264Packet,
    vp8: Vp8Packet,
    frame: BytesMut,
}

impl FrameAssembler {
    /// Packets with these payload types are VP8; every other video payload type is H.264.
    pub(crate) fn new(vp8_pts: &[u8]) -> Self {
        Self {
            vp8_pts: vp8_pts.to_vec(),
            ..Self::default()
        }
    }

    /// Adds one packet's payload; returns the frame once the marker bit closes it.
    pub(crate) fn push(&mut self, pt: u8, payload: &Bytes, marker: bool) -> Option<Bytes> {
        let part = if self.vp8_pts.contains(&pt) {
            self.vp8.depacketize(payload)
        } else {
            self.h264.depacketize(payload)
        };
        if let Ok(part) = part {
            self.frame.extend_from_slice(&part);
        }
        marker.then(|| self.frame.split().freeze())
    }
}
