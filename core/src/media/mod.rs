//! Media handling that happens once per stream, whatever the number of viewers: validating and
//! converting raw pixels, encoding them, parsing pushed H.264 and VP8, packetizing into RTP
//! payloads, and keeping what a late joiner needs.

pub(crate) mod encode_worker;
pub mod encoder;
pub mod gop;
pub mod h264;
pub mod packetizer;
#[cfg(any(test, feature = "demo"))]
pub mod pattern;
pub mod pixel;
pub(crate) mod scale;
pub mod vp8;

use serde::Serialize;

/// The video codec of a stream, fixed when the stream is created: every viewer is offered (or
/// must offer) this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    /// H.264 (constrained baseline or main, no B-frames): pushed Annex B access units or raw
    /// frames for the built-in encoder.
    #[default]
    H264,
    /// VP8: pushed frames only (there is no built-in VP8 encoder).
    Vp8,
}

impl VideoCodec {
    /// Lower-case name, as in `media_info.json` and the bindings: `h264`, `vp8`.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Vp8 => "vp8",
        }
    }

    /// Parses a codec name, case-insensitively (`h264`, `H.264`, `avc`, `vp8`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "h264" | "h.264" | "avc" => Some(VideoCodec::H264),
            "vp8" => Some(VideoCodec::Vp8),
            _ => None,
        }
    }
}

impl std::str::FromStr for VideoCodec {
    type Err = crate::Error;

    /// A codec by name, as every binding takes it: [`VideoCodec::from_name`]; an unknown name is
    /// `UnsupportedCodec` listing the valid ones.
    fn from_str(s: &str) -> crate::Result<Self> {
        Self::from_name(s).ok_or_else(|| {
            crate::Error::UnsupportedCodec(format!("unknown video codec '{s}'; codecs: h264, vp8"))
        })
    }
}

impl std::fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VideoCodec::H264 => "H.264",
            VideoCodec::Vp8 => "VP8",
        })
    }
}
