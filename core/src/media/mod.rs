//! Media handling that happens once per stream, whatever the number of viewers: validating and
//! converting raw pixels, encoding them, parsing pushed H.264, packetizing into RTP payloads, and
//! keeping what a late joiner needs.

pub mod encoder;
pub mod gop;
pub mod h264;
pub mod packetizer;
pub mod pattern;
pub mod pixel;
