//! One viewer's WebRTC session: building its peer connection, sending it shared frames with its
//! own RTP header fields, and reading its feedback (keyframe requests, NACKs, bitrate estimates).

pub(crate) mod bitrate;
pub(crate) mod feedback;
pub(crate) mod peer;
pub(crate) mod viewer;
