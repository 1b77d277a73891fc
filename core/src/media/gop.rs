//! What a late joiner needs to show a picture at once when the host pushes encoded video: the
//! frames since the last keyframe, bounded in frames and bytes.

use std::sync::Arc;

use crate::media::packetizer::MediaFrame;

/// Bounds of a [`GopCache`].
#[derive(Debug, Clone, Copy)]
pub struct GopLimits {
    /// Most frames kept after a keyframe (10 s at 30 fps by default).
    pub max_frames: usize,
    /// Most payload bytes kept (a 10 s GOP at 4 Mbit/s is 5 MB).
    pub max_bytes: usize,
}

impl Default for GopLimits {
    fn default() -> Self {
        Self {
            max_frames: 300,
            max_bytes: 6 << 20,
        }
    }
}

/// Frames since the last keyframe. When the bounds are exceeded the cache gives up on this GOP (it
/// could not replay it whole anyway) and waits for the next keyframe.
#[derive(Debug, Default)]
pub struct GopCache {
    frames: Vec<Arc<MediaFrame>>,
    bytes: usize,
    limits: GopLimits,
}

impl GopCache {
    /// An empty cache with these bounds.
    pub fn new(limits: GopLimits) -> Self {
        Self {
            frames: Vec::new(),
            bytes: 0,
            limits,
        }
    }

    /// Records a video frame.
    pub fn push(&mut self, frame: &Arc<MediaFrame>) {
        if frame.keyframe {
            self.frames.clear();
            self.bytes = 0;
        } else if self.frames.is_empty() {
            return; // nothing to build on until a keyframe
        }
        if self.frames.len() >= self.limits.max_frames
            || self.bytes + frame.bytes > self.limits.max_bytes
        {
            self.clear();
            return;
        }
        self.bytes += frame.bytes;
        self.frames.push(frame.clone());
    }

    /// Forgets everything (e.g. after frames were lost before reaching the cache).
    pub fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }

    /// The frames from the last keyframe on; empty when there is no usable keyframe.
    pub fn frames(&self) -> &[Arc<MediaFrame>] {
        &self.frames
    }

    /// Payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::packetizer::TrackKind;
    use bytes::Bytes;

    fn frame(keyframe: bool, size: usize) -> Arc<MediaFrame> {
        Arc::new(MediaFrame::new(
            TrackKind::Video,
            0,
            keyframe,
            vec![Bytes::from(vec![0u8; size])],
        ))
    }

    #[test]
    fn keeps_frames_from_the_last_keyframe() {
        let mut gop = GopCache::default();
        gop.push(&frame(false, 10));
        assert!(gop.frames().is_empty(), "no keyframe yet");
        gop.push(&frame(true, 100));
        gop.push(&frame(false, 10));
        gop.push(&frame(true, 100));
        gop.push(&frame(false, 10));
        assert_eq!(gop.frames().len(), 2);
        assert!(gop.frames()[0].keyframe);
        assert_eq!(gop.bytes(), 110);
    }

    #[test]
    fn gives_up_on_a_gop_over_its_bounds_until_the_next_keyframe() {
        let mut gop = GopCache::new(GopLimits {
            max_frames: 3,
            max_bytes: 1000,
        });
        gop.push(&frame(true, 100));
        gop.push(&frame(false, 10));
        gop.push(&frame(false, 10));
        gop.push(&frame(false, 10));
        assert!(gop.frames().is_empty());
        gop.push(&frame(false, 10));
        assert!(gop.frames().is_empty());
        gop.push(&frame(true, 2000));
        assert!(
            gop.frames().is_empty(),
            "a keyframe over the byte bound is not kept"
        );
        gop.push(&frame(true, 500));
        assert_eq!(gop.frames().len(), 1);
    }
}
