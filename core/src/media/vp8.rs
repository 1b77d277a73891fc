//! Pushed VP8: checking that a buffer is a VP8 frame, telling keyframes apart, and packetizing
//! (RFC 7741) once per stream.

use bytes::Bytes;
use rtc::rtp::codec::vp8::Vp8Payloader;
use rtc::rtp::packetizer::Payloader;

use crate::media::packetizer::RTP_PAYLOAD_MTU;
use crate::{Error, Result};

/// What the frame header of a VP8 frame says (RFC 6386 §9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8FrameInfo {
    /// An intra frame: a decoder can start here.
    pub keyframe: bool,
    /// Picture size, from a keyframe's header (`None` for inter frames).
    pub size: Option<(u16, u16)>,
}

/// Reads the frame tag (and, for a keyframe, the start code and size) of one VP8 frame, as an
/// encoder (libvpx `vpx_codec_get_cx_data`, or an IVF/WebM frame) produces it.
pub fn parse_frame(data: &[u8]) -> Result<Vp8FrameInfo> {
    let Some(&[t0, t1, t2]) = data.get(..3) else {
        return Err(Error::InvalidData(format!(
            "data is not a VP8 frame: {} bytes, shorter than the 3-byte frame tag",
            data.len()
        )));
    };
    let tag = u32::from(t0) | u32::from(t1) << 8 | u32::from(t2) << 16;
    let keyframe = tag & 1 == 0;
    let version = (tag >> 1) & 7;
    let first_partition = (tag >> 5) as usize;
    if version > 3 {
        return Err(Error::InvalidData(format!(
            "data is not a VP8 frame: frame tag version {version} (VP8 has 0..=3)"
        )));
    }
    let header = if keyframe { 10 } else { 3 };
    let too_short = || {
        Error::InvalidData(format!(
            "data is not a VP8 frame: the frame tag announces a {first_partition}-byte first \
             partition, the frame has {} bytes",
            data.len()
        ))
    };
    if data.len() < header || first_partition > data.len() - header {
        return Err(too_short());
    }
    if !keyframe {
        return Ok(Vp8FrameInfo {
            keyframe,
            size: None,
        });
    }
    // A keyframe's tag is followed by a start code and the 14-bit width and height.
    let Some(&[s0, s1, s2, w0, w1, h0, h1]) = data.get(3..10) else {
        return Err(too_short());
    };
    if [s0, s1, s2] != [0x9d, 0x01, 0x2a] {
        return Err(Error::InvalidData(format!(
            "data is not a VP8 frame: a keyframe starts 9d 01 2a after its tag, found {s0:02x} {s1:02x} {s2:02x}"
        )));
    }
    let width = u16::from_le_bytes([w0, w1]) & 0x3fff;
    let height = u16::from_le_bytes([h0, h1]) & 0x3fff;
    if width == 0 || height == 0 {
        return Err(Error::InvalidData(format!(
            "data is not a VP8 frame: keyframe of {width}x{height} pixels"
        )));
    }
    Ok(Vp8FrameInfo {
        keyframe,
        size: Some((width, height)),
    })
}

/// Splits VP8 frames into RTP payloads with a 1-byte descriptor plus a 15-bit picture ID, which
/// lets receivers tell a lost frame from a late one.
#[derive(Debug)]
pub struct Vp8Packetizer {
    payloader: Vp8Payloader,
}

impl Default for Vp8Packetizer {
    fn default() -> Self {
        let mut payloader = Vp8Payloader::default();
        payloader.enable_picture_id = true;
        Self { payloader }
    }
}

impl Vp8Packetizer {
    /// Packetizes one frame (already checked by [`parse_frame`]).
    pub fn packetize(&mut self, frame: &[u8]) -> Result<Vec<Bytes>> {
        let payloads = self
            .payloader
            .payload(RTP_PAYLOAD_MTU, &Bytes::copy_from_slice(frame))
            .map_err(|e| Error::InvalidData(format!("cannot packetize VP8: {e}")))?;
        if payloads.is_empty() {
            return Err(Error::InvalidData("empty VP8 frame".into()));
        }
        Ok(payloads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keyframe header for 320x240 (tag: keyframe, version 0, show_frame, 5-byte partition).
    fn keyframe(extra: usize) -> Vec<u8> {
        let partition = 5u32;
        let tag = (partition << 5) | 1 << 4;
        let mut f = vec![tag as u8, (tag >> 8) as u8, (tag >> 16) as u8];
        f.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
        f.extend(std::iter::repeat_n(0x5a, partition as usize + extra));
        f
    }

    #[test]
    fn keyframe_header_gives_the_picture_size() {
        let info = parse_frame(&keyframe(0)).unwrap();
        assert_eq!(
            info,
            Vp8FrameInfo {
                keyframe: true,
                size: Some((320, 240))
            }
        );
    }

    #[test]
    fn inter_frame_is_told_apart_by_the_tag() {
        let tag = (2u32 << 5) | 1 << 4 | 1;
        let f = [tag as u8, (tag >> 8) as u8, (tag >> 16) as u8, 1, 2];
        assert!(!parse_frame(&f).unwrap().keyframe);
    }

    #[test]
    fn what_is_not_vp8_is_refused_with_the_reason() {
        let cases: [(&[u8], &str); 4] = [
            (&[0x10], "shorter than the 3-byte frame tag"),
            (&[0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 0, 0], "9d 01 2a"), // H.264 Annex B
            (&[0x0e, 0, 0, 0x9d, 0x01, 0x2a, 1, 0, 1, 0], "version 7"),
            (
                &[0xf0, 0xff, 0xff, 0x9d, 0x01, 0x2a, 1, 0, 1, 0],
                "first partition",
            ),
        ];
        for (data, want) in cases {
            let e = parse_frame(data).unwrap_err().to_string();
            assert!(e.contains(want), "{data:02x?}: {e}");
        }
    }

    #[test]
    fn large_frame_is_split_under_the_mtu_with_the_start_bit_on_the_first() {
        let frame = keyframe(5000);
        let payloads = Vp8Packetizer::default().packetize(&frame).unwrap();
        assert!(payloads.len() >= 5);
        assert!(payloads.iter().all(|p| p.len() <= RTP_PAYLOAD_MTU));
        // X bit (picture ID follows) everywhere, S bit on the first payload only.
        assert!(payloads.iter().all(|p| p[0] & 0x80 != 0));
        assert_eq!(payloads[0][0] & 0x10, 0x10);
        assert!(payloads[1..].iter().all(|p| p[0] & 0x10 == 0));
    }
}
