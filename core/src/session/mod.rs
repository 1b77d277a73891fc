//! One viewer's WebRTC session: building its peer connection, sending it shared frames with its
//! own RTP header fields, and reading its feedback.

pub(crate) mod feedback;
pub(crate) mod peer;
pub(crate) mod viewer;
