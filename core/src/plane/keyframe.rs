//! The keyframe policy of a stream, in one place: when a viewer needs a keyframe (it joined, it
//! lost packets, its decoder asked with PLI/FIR, frames were dropped before the plane), is the
//! source asked for one now?

use std::time::{Duration, Instant};

/// Least time between two requests to a host that pushes encoded video: its encoder may take a
/// while, and a burst of joiners or PLIs must not become a burst of keyframes.
pub(crate) const ENCODED_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// Frames since the last keyframe beyond which a new viewer of the built-in encoder gets a fresh
/// IDR rather than a replay (a replay is a burst: a long one overflows receive buffers).
pub(crate) const MAX_RAW_REPLAY_FRAMES: usize = 15;

/// Whether a new viewer should start on the stream's cached GOP of `frames` frames (the frames
/// since the last keyframe), rather than wait for a new keyframe. A host's keyframes are slow
/// and costly to ask for, so its GOP is replayed whole; the built-in encoder makes one on demand,
/// so only a short GOP is worth replaying.
pub(crate) fn replay_worthy(frames: usize, raw_source: bool) -> bool {
    frames > 0 && (!raw_source || frames <= MAX_RAW_REPLAY_FRAMES)
}

/// Coalesces the keyframe requests of one stream.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyframePolicy {
    last: Option<Instant>,
}

impl KeyframePolicy {
    /// A viewer needs a keyframe: whether to ask the source now. The built-in encoder (raw
    /// source) is always asked: it keeps one pending request and makes the IDR with its next
    /// frame, so asking again costs nothing and a late joiner never waits for an interval.
    pub fn request(&mut self, now: Instant, raw_source: bool) -> bool {
        if raw_source {
            return true;
        }
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < ENCODED_REQUEST_INTERVAL)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_gop_is_replayed_whole_the_encoders_only_when_short() {
        assert!(!replay_worthy(0, false));
        assert!(!replay_worthy(0, true));
        assert!(replay_worthy(300, false));
        assert!(replay_worthy(MAX_RAW_REPLAY_FRAMES, true));
        assert!(!replay_worthy(MAX_RAW_REPLAY_FRAMES + 1, true));
    }

    #[test]
    fn requests_to_a_host_are_coalesced_the_encoder_is_always_asked() {
        let t0 = Instant::now();
        let mut p = KeyframePolicy::default();
        assert!(p.request(t0, false));
        assert!(!p.request(t0 + Duration::from_millis(100), false));
        assert!(!p.request(t0 + Duration::from_millis(499), false));
        assert!(p.request(t0 + Duration::from_millis(500), false));
        assert!(p.request(t0 + Duration::from_millis(501), true));
        assert!(p.request(t0 + Duration::from_millis(502), true));
    }
}
