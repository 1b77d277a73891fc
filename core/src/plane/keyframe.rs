//! The keyframe policy of a stream, in one place: when a viewer needs a keyframe (it joined, it
//! lost packets, its decoder asked with PLI/FIR, frames were dropped before the plane), is the
//! source asked for one now?

use std::time::{Duration, Instant};

/// Least time between two requests to a host that pushes encoded video: its encoder may take a
/// while, and a burst of joiners or PLIs must not become a burst of keyframes.
pub(crate) const ENCODED_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// How long a request to the built-in encoder stays pending: the IDR it makes comes with one of
/// its next frames. Asked again meanwhile, the encoder would make a second IDR right after the
/// first (a viewer joining asks at signalling and again when connected ~30 ms later).
pub(crate) const RAW_REQUEST_PENDING: Duration = Duration::from_millis(250);

/// Frames since the last keyframe beyond which a new viewer of the built-in encoder gets a fresh
/// IDR rather than a replay (a replay is a burst: a long one overflows receive buffers).
pub(crate) const MAX_RAW_REPLAY_FRAMES: usize = 15;

/// A GOP of the built-in encoder whose newest frame is older than this is not replayed: the
/// encoder stops while a stream has no viewer, so such a GOP shows a moment long past (and the
/// encoder, starting again for the new viewer, sends an IDR of its own right after it).
pub(crate) const RAW_GOP_FRESH: Duration = Duration::from_millis(250);

/// Whether a new viewer should start on the stream's cached GOP of `frames` frames (the frames
/// since the last keyframe, the newest `age` old), rather than wait for a new keyframe. A host's
/// keyframes are slow and costly to ask for, so its GOP is replayed whole, however old; the
/// built-in encoder makes one on demand, so only a short and fresh GOP is worth replaying.
pub(crate) fn replay_worthy(frames: usize, raw_source: bool, age: Duration) -> bool {
    frames > 0 && (!raw_source || (frames <= MAX_RAW_REPLAY_FRAMES && age <= RAW_GOP_FRESH))
}

/// Coalesces the keyframe requests of one stream.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeyframePolicy {
    last: Option<Instant>,
    /// A keyframe was asked for and none came since.
    pending: bool,
}

impl KeyframePolicy {
    /// A viewer needs a keyframe: whether to ask the source now. A host is asked at most once
    /// per [`ENCODED_REQUEST_INTERVAL`]. The built-in encoder makes an IDR with its next frame,
    /// so it is asked whenever no request is pending (none, or one older than
    /// [`RAW_REQUEST_PENDING`]): a late joiner never waits for an interval, and viewers asking
    /// while an IDR is on its way share it.
    pub fn request(&mut self, now: Instant, raw_source: bool) -> bool {
        let since = |t: Instant, d: Duration| now.saturating_duration_since(t) < d;
        let wait = if raw_source {
            self.pending && self.last.is_some_and(|t| since(t, RAW_REQUEST_PENDING))
        } else {
            self.last
                .is_some_and(|t| since(t, ENCODED_REQUEST_INTERVAL))
        };
        if wait {
            return false;
        }
        self.last = Some(now);
        self.pending = true;
        true
    }

    /// A keyframe of the stream arrived: a request from now on asks for a new one.
    pub fn arrived(&mut self) {
        self.pending = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_gop_is_replayed_whole_the_encoders_only_when_short_and_fresh() {
        let fresh = Duration::from_millis(30);
        assert!(!replay_worthy(0, false, fresh));
        assert!(!replay_worthy(0, true, fresh));
        assert!(replay_worthy(300, false, fresh));
        assert!(replay_worthy(300, false, Duration::from_secs(60)));
        assert!(replay_worthy(MAX_RAW_REPLAY_FRAMES, true, fresh));
        assert!(!replay_worthy(MAX_RAW_REPLAY_FRAMES + 1, true, fresh));
        assert!(replay_worthy(3, true, RAW_GOP_FRESH));
        assert!(
            !replay_worthy(3, true, RAW_GOP_FRESH + Duration::from_millis(1)),
            "the encoder stopped: its last GOP is a picture of the past"
        );
    }

    #[test]
    fn requests_to_a_host_are_coalesced_the_encoder_is_always_asked() {
        let t0 = Instant::now();
        let mut p = KeyframePolicy::default();
        assert!(p.request(t0, false));
        assert!(!p.request(t0 + Duration::from_millis(100), false));
        assert!(!p.request(t0 + Duration::from_millis(499), false));
        assert!(p.request(t0 + Duration::from_millis(500), false));
    }

    #[test]
    fn the_encoder_is_asked_once_per_keyframe_on_its_way() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut p = KeyframePolicy::default();
        assert!(p.request(t0, true), "nothing pending: asked");
        assert!(!p.request(ms(30), true), "its IDR is on its way");
        p.arrived();
        assert!(
            p.request(ms(40), true),
            "the IDR came: a new need asks again"
        );
        assert!(!p.request(ms(100), true));
        assert!(
            p.request(ms(40) + RAW_REQUEST_PENDING, true),
            "an IDR that never came is asked for again"
        );
    }
}
