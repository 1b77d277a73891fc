//! Packetizing once per stream: a pushed frame becomes RTP payloads shared (by reference count) by
//! every viewer. Per viewer only the RTP header and the SRTP encryption differ.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::packetizer::Payloader;

use crate::media::h264::{to_annex_b, AccessUnit};
use crate::{Error, Result};

/// RTP payload budget per packet: fits a 1280-byte path MTU after IP/UDP/RTP/SRTP overheads, as
/// browsers use.
pub const RTP_PAYLOAD_MTU: usize = 1200;

/// Clock rate of video RTP timestamps.
pub const VIDEO_CLOCK_RATE: u32 = 90_000;
/// Clock rate of Opus RTP timestamps.
pub const OPUS_CLOCK_RATE: u32 = 48_000;

/// Which track of a stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    /// The video track.
    Video,
    /// The audio track.
    Audio,
}

/// One frame packetized once, shared by all viewers.
#[derive(Debug)]
pub struct MediaFrame {
    /// Video or audio.
    pub kind: TrackKind,
    /// RTP timestamp (stream clock, random origin).
    pub rtp_timestamp: u32,
    /// Whether a decoder can start here.
    pub keyframe: bool,
    /// RTP payloads in order; the last one of a video frame carries the marker bit.
    pub payloads: Vec<Bytes>,
    /// Total payload bytes.
    pub bytes: usize,
    /// When the host pushed it (for time-to-first-frame figures).
    pub pushed_at: Instant,
    /// Video: the index of the stream's rendition it belongs to (0 for a stream of one).
    pub rendition: usize,
}

/// Maps host timestamps to an RTP clock with a random origin (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy)]
pub struct RtpClock {
    origin: u32,
    rate: u32,
}

impl RtpClock {
    /// A clock of `rate` Hz with a random origin.
    pub fn new(rate: u32) -> Self {
        Self {
            origin: rand::random(),
            rate,
        }
    }

    /// The RTP timestamp of a media time.
    pub fn timestamp(&self, t: Duration) -> u32 {
        let ticks = t.as_nanos() * u128::from(self.rate) / 1_000_000_000;
        self.origin.wrapping_add(ticks as u32)
    }
}

/// Splits H.264 access units into RTP payloads (RFC 6184 single NAL, STAP-A, FU-A).
#[derive(Debug, Default)]
pub struct H264Packetizer {
    payloader: H264Payloader,
}

impl H264Packetizer {
    /// Packetizes one access unit.
    pub fn packetize(&mut self, au: &AccessUnit) -> Result<Vec<Bytes>> {
        let payloads = self
            .payloader
            .payload(RTP_PAYLOAD_MTU, &to_annex_b(&au.nals))
            .map_err(|e| Error::InvalidData(format!("cannot packetize H.264: {e}")))?;
        if payloads.is_empty() {
            return Err(Error::InvalidData(
                "H.264 access unit holds only parameter sets or delimiters; push them with the \
                 picture that follows"
                    .into(),
            ));
        }
        Ok(payloads)
    }
}

impl MediaFrame {
    /// A frame made of `payloads`.
    pub fn new(kind: TrackKind, rtp_timestamp: u32, keyframe: bool, payloads: Vec<Bytes>) -> Self {
        let bytes = payloads.iter().map(Bytes::len).sum();
        Self {
            kind,
            rtp_timestamp,
            keyframe,
            payloads,
            bytes,
            pushed_at: Instant::now(),
            rendition: 0,
        }
    }

    /// The same frame, of rendition `rendition`.
    pub fn of_rendition(self, rendition: usize) -> Self {
        Self { rendition, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::h264::ParameterSets;

    #[test]
    fn large_idr_is_fragmented_under_the_mtu_and_parameter_sets_are_aggregated() {
        let mut ps = ParameterSets::default();
        let mut data = vec![
            0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80,
        ];
        data.extend_from_slice(&[0, 0, 0, 1, 0x65]);
        data.extend(std::iter::repeat_n(0xab, 5000));
        let au = ps.access_unit(&data).unwrap();
        let payloads = H264Packetizer::default().packetize(&au).unwrap();
        assert!(payloads.iter().all(|p| p.len() <= RTP_PAYLOAD_MTU));
        // STAP-A (type 24) with SPS+PPS, then FU-A (type 28) fragments of the IDR.
        assert_eq!(payloads[0][0] & 0x1f, 24);
        assert!(payloads[1..].iter().all(|p| p[0] & 0x1f == 28));
        let total: usize = payloads[1..].iter().map(|p| p.len() - 2).sum();
        assert_eq!(total, 5000); // IDR payload minus its 1-byte header, all carried
    }

    #[test]
    fn rtp_clock_counts_in_its_rate() {
        let c = RtpClock::new(90_000);
        let a = c.timestamp(Duration::from_secs(1));
        let b = c.timestamp(Duration::from_millis(1033) + Duration::from_micros(333));
        assert_eq!(b.wrapping_sub(a), 2999);
    }
}
