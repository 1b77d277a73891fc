//! Negotiating one viewer's session: its description (offer or answer, built with webrtc-rs),
//! and the stream's bitrate hint from its viewers' estimates.

pub(crate) mod bitrate;
pub(crate) mod peer;
