//! A stream: what a host pushes into and viewers watch. Pushing encoded media validates and
//! packetizes it once on the caller's thread; a raw frame is validated and copied there, then
//! encoded once on the stream's encoder thread (`media::encode_worker`). Either way the frame
//! goes to the event loop without ever waiting: when the loop or the encoder is behind, a frame
//! is dropped and viewers wait for the next keyframe.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::broadcast;

use crate::event::Event;
use crate::media::encode_worker::{EncodeWorker, EncodedSink};
use crate::media::encoder::{check_encoder_size, EncodedVideo, EncoderConfig};
use crate::media::h264::ParameterSets;
use crate::media::packetizer::{
    H264Packetizer, MediaFrame, RtpClock, TrackKind, OPUS_CLOCK_RATE, VIDEO_CLOCK_RATE,
};
use crate::media::pixel::RawFrame;
use crate::media::vp8::{self, Vp8Packetizer};
use crate::media::VideoCodec;
use crate::metrics::Metrics;
use crate::net::driver::MediaInput;
use crate::net::frames::FrameSender;
use crate::plane::keyframe::KeyframePolicy;
use crate::{Error, Result};

/// Largest Opus packet (RFC 6716 §3.4: 1275 bytes per frame, up to 120 ms): anything bigger is
/// not Opus.
const MAX_OPUS_PACKET: usize = 1275 * 3;

/// Options of a stream, fixed when it is created.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Offer an Opus audio track (default true).
    pub audio: bool,
    /// The video codec (default H.264). A VP8 stream takes [`Stream::push_vp8`] only: the
    /// built-in encoder makes H.264.
    pub video: VideoCodec,
    /// Settings of the built-in encoder used by [`Stream::push_frame`].
    pub encoder: EncoderConfig,
}

impl StreamOptions {
    /// Checks the options (done by [`Server::stream_with`](crate::Server::stream_with)): a frame
    /// rate of 1-240 and a bitrate of at least 30 kbit/s, else `InvalidConfig` naming the field.
    pub fn validate(&self) -> Result<()> {
        let e = &self.encoder;
        if !(e.max_fps.is_finite() && (1.0..=240.0).contains(&e.max_fps)) {
            return Err(Error::InvalidConfig(format!(
                "max_fps {} is not a frame rate of 1 to 240",
                e.max_fps
            )));
        }
        if e.bitrate_bps < crate::media::encoder::MIN_BITRATE_BPS {
            return Err(Error::InvalidConfig(format!(
                "bitrate {} bit/s is under the encoder's least, {} bit/s",
                e.bitrate_bps,
                crate::media::encoder::MIN_BITRATE_BPS
            )));
        }
        Ok(())
    }
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            audio: true,
            video: VideoCodec::default(),
            encoder: EncoderConfig::default(),
        }
    }
}

/// Counters of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamStats {
    /// Stream name.
    pub name: String,
    /// Viewers connected now.
    pub viewers: usize,
    /// Video frames pushed (raw or encoded).
    pub video_frames: u64,
    /// Audio packets pushed.
    pub audio_packets: u64,
    /// Frames dropped because the event loop or the built-in encoder was behind (the host pushed
    /// faster than they run).
    pub frames_dropped: u64,
    /// Raw frames encoded by the built-in encoder (0 with no viewers: nothing is encoded then).
    pub frames_encoded: u64,
    /// Keyframes asked for (coalesced).
    pub keyframe_requests: u64,
}

pub(crate) struct StreamShared {
    pub name: String,
    pub id: u64,
    pub video_codec: VideoCodec,
    pub video_ssrc: u32,
    pub audio_ssrc: Option<u32>,
    /// One queue per media loop: each loop gets every frame once.
    media_tx: Vec<FrameSender>,
    events: broadcast::Sender<Event>,
    metrics: Arc<Metrics>,
    input: Mutex<Input>,
    encoder_config: EncoderConfig,
    /// The built-in encoder's thread, started by the first raw frame that needs encoding.
    encode_worker: Mutex<Option<EncodeWorker>>,
    /// Set when a viewer needs a keyframe and the built-in encoder can make one.
    force_keyframe: AtomicBool,
    /// Whether the host feeds raw frames (the encoder answers keyframe requests) or encoded video.
    raw_source: AtomicBool,
    /// Connected viewers per media loop.
    loop_viewers: Vec<AtomicUsize>,
    closed: AtomicBool,
    /// Coalesces the keyframe events to the host over the media loops.
    host_requests: Mutex<KeyframePolicy>,
    /// Its viewers' counters, bumped by the media loops (`/metrics`).
    pub counters: Arc<crate::metrics::StreamCounters>,
    video_frames: AtomicU64,
    audio_packets: AtomicU64,
    frames_dropped: AtomicU64,
    frames_encoded: AtomicU64,
    keyframe_requests: AtomicU64,
}

struct Input {
    start: Instant,
    video_clock: RtpClock,
    audio_clock: RtpClock,
    params: ParameterSets,
    packetizer: H264Packetizer,
    vp8: Vp8Packetizer,
    /// Per media loop: a video frame was dropped since the last one that went through, and the
    /// next video frame must tell the loop (audio frames neither set nor clear it: each Opus
    /// packet decodes alone).
    video_gap: Vec<bool>,
}

impl StreamShared {
    pub(crate) fn new(
        name: String,
        id: u64,
        options: &StreamOptions,
        media_tx: Vec<FrameSender>,
        events: broadcast::Sender<Event>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let loops = media_tx.len();
        Self {
            name,
            id,
            video_codec: options.video,
            video_ssrc: rand::random(),
            audio_ssrc: options.audio.then(rand::random),
            media_tx,
            events,
            metrics,
            input: Mutex::new(Input {
                start: Instant::now(),
                video_clock: RtpClock::new(VIDEO_CLOCK_RATE),
                audio_clock: RtpClock::new(OPUS_CLOCK_RATE),
                params: ParameterSets::default(),
                packetizer: H264Packetizer::default(),
                vp8: Vp8Packetizer::default(),
                video_gap: vec![false; loops],
            }),
            encoder_config: options.encoder,
            encode_worker: Mutex::new(None),
            force_keyframe: AtomicBool::new(false),
            raw_source: AtomicBool::new(false),
            loop_viewers: (0..loops).map(|_| AtomicUsize::new(0)).collect(),
            closed: AtomicBool::new(false),
            host_requests: Mutex::new(KeyframePolicy::default()),
            counters: Default::default(),
            video_frames: AtomicU64::new(0),
            audio_packets: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            frames_encoded: AtomicU64::new(0),
            keyframe_requests: AtomicU64::new(0),
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Relaxed);
        // Stopped under the slot's lock, so that a concurrent close (remove_stream racing
        // Server::stop) returns only once the thread is gone. The encoder thread never takes
        // this lock; a push waiting on it waits for one frame's encoding at most, then fails.
        let mut slot = self.encode_worker_slot();
        if let Some(worker) = slot.take() {
            worker.stop();
        }
    }

    fn encode_worker_slot(&self) -> std::sync::MutexGuard<'_, Option<EncodeWorker>> {
        self.encode_worker.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn count_dropped(&self) {
        self.frames_dropped.fetch_add(1, Relaxed);
        Metrics::add(&self.metrics.frames_dropped, 1);
    }

    pub(crate) fn is_raw_source(&self) -> bool {
        self.raw_source.load(Relaxed)
    }

    /// A media loop asks for a keyframe (it coalesced its viewers' requests): the encoder makes
    /// one at the next raw frame; a host pushing encoded video gets an event, coalesced again
    /// here over the loops by the same policy.
    pub(crate) fn request_keyframe(&self) {
        if self.is_raw_source() {
            if !self.force_keyframe.swap(true, Relaxed) {
                self.count_keyframe_request();
            }
            return;
        }
        let asked = self
            .host_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .request(Instant::now(), false);
        if !asked {
            return;
        }
        self.count_keyframe_request();
        let _ = self.events.send(Event::KeyframeRequested {
            stream: self.name.clone(),
        });
    }

    /// Media loop `index`'s count of connected viewers.
    pub(crate) fn set_viewers(&self, index: usize, connected: usize) {
        if let Some(v) = self.loop_viewers.get(index) {
            v.store(connected, Relaxed);
        }
    }

    /// Viewers connected now, over every loop.
    pub(crate) fn viewers(&self) -> usize {
        self.loop_viewers.iter().map(|v| v.load(Relaxed)).sum()
    }

    fn count_keyframe_request(&self) {
        self.keyframe_requests.fetch_add(1, Relaxed);
        Metrics::add(&self.metrics.keyframe_requests, 1);
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Relaxed) {
            return Err(Error::StreamClosed(self.name.clone()));
        }
        Ok(())
    }

    /// Refuses a push of `what` into a stream whose codec is not `codec`.
    fn check_codec(&self, codec: VideoCodec, what: &str) -> Result<()> {
        if self.video_codec == codec {
            return Ok(());
        }
        Err(Error::UnsupportedCodec(format!(
            "stream '{}' carries {} video, {what} needs a {codec} stream; create the stream \
             with StreamOptions {{ video: VideoCodec::{codec:?}, .. }}",
            self.name, self.video_codec
        )))
    }

    fn input(&self) -> std::sync::MutexGuard<'_, Input> {
        // A panic while holding the lock cannot leave Input in a state worse than "skip a frame".
        self.input.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands a frame to the media plane without waiting. `raw_source`: it comes from the
    /// built-in encoder.
    fn submit(&self, input: &mut Input, frame: MediaFrame, raw_source: bool) {
        let video = frame.kind == TrackKind::Video;
        let frame = Arc::new(frame);
        let mut dropped = false;
        for (tx, gap) in self.media_tx.iter().zip(input.video_gap.iter_mut()) {
            let msg = MediaInput {
                stream: self.id,
                frame: frame.clone(),
                after_gap: video && std::mem::take(gap),
                raw_source,
            };
            if tx.try_send(msg).is_err() {
                *gap |= video;
                dropped = true;
            }
        }
        if dropped {
            self.count_dropped();
        }
    }

    pub(crate) fn stats(&self) -> StreamStats {
        StreamStats {
            name: self.name.clone(),
            viewers: self.viewers(),
            video_frames: self.video_frames.load(Relaxed),
            audio_packets: self.audio_packets.load(Relaxed),
            frames_dropped: self.frames_dropped.load(Relaxed),
            frames_encoded: self.frames_encoded.load(Relaxed),
            keyframe_requests: self.keyframe_requests.load(Relaxed),
        }
    }
}

impl EncodedSink for StreamShared {
    fn take_keyframe_request(&self) -> bool {
        self.force_keyframe.swap(false, Relaxed)
    }

    fn restore_keyframe_request(&self) {
        self.force_keyframe.store(true, Relaxed);
    }

    fn deliver(&self, encoded: EncodedVideo, pts: Duration) -> bool {
        if self.closed.load(Relaxed) {
            return false;
        }
        self.frames_encoded.fetch_add(1, Relaxed);
        let mut input = self.input();
        let packetized = input
            .params
            .access_unit(&encoded.data)
            .and_then(|au| Ok((input.packetizer.packetize(&au)?, au.keyframe)));
        let (payloads, keyframe) = match packetized {
            Ok(p) => p,
            Err(e) => {
                // openh264's output always parses; if it ever does not, say so and skip it.
                tracing::warn!(stream = %self.name, "encoded frame not packetized: {e}");
                return false;
            }
        };
        let ts = input.video_clock.timestamp(pts);
        let frame = MediaFrame::new(TrackKind::Video, ts, keyframe, payloads);
        self.submit(&mut input, frame, true);
        true
    }
}

/// A live stream. Cheap to clone; every clone pushes into the same stream. All push methods may
/// be called from any thread, never wait for the network, and fail with a clear error on bad
/// input without disturbing viewers.
#[derive(Clone)]
pub struct Stream {
    pub(crate) shared: Arc<StreamShared>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("name", &self.shared.name)
            .finish()
    }
}

impl Stream {
    /// The stream's name (the `STREAM` of its URLs).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Viewers connected now.
    pub fn viewers(&self) -> usize {
        self.shared.viewers()
    }

    /// Counters of this stream.
    pub fn stats(&self) -> StreamStats {
        self.shared.stats()
    }

    /// The figures of this stream's connected viewers (see [`crate::Server::viewer_stats`]).
    pub fn viewer_stats(&self) -> Vec<crate::metrics::ViewerStats> {
        self.shared.metrics.viewer_stats(Some(&self.shared.name))
    }

    /// Whether the stream was removed or its server stopped.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Relaxed)
    }

    /// Pushes one H.264 access unit in Annex B form (start codes; constrained baseline or main,
    /// no B-frames). `pts` is the frame's media time from any fixed origin; `None` takes the wall
    /// clock. Keyframes should carry SPS and PPS; if they do not, the last ones seen are added.
    pub fn push_h264(&self, data: &[u8], pts: Option<Duration>) -> Result<()> {
        let s = &*self.shared;
        s.check_open()?;
        s.check_codec(VideoCodec::H264, "push_h264")?;
        let mut input = s.input();
        let au = input.params.access_unit(data)?;
        let payloads = input.packetizer.packetize(&au)?;
        s.raw_source.store(false, Relaxed);
        s.video_frames.fetch_add(1, Relaxed);
        let ts = input
            .video_clock
            .timestamp(pts.unwrap_or_else(|| input.start.elapsed()));
        let frame = MediaFrame::new(TrackKind::Video, ts, au.keyframe, payloads);
        s.submit(&mut input, frame, false);
        Ok(())
    }

    /// Pushes one VP8 frame (as an encoder produces it: frame tag first; an IVF or WebM frame
    /// payload). The stream must have been created with [`VideoCodec::Vp8`]. `pts` as in
    /// [`Stream::push_h264`].
    pub fn push_vp8(&self, data: &[u8], pts: Option<Duration>) -> Result<()> {
        let s = &*self.shared;
        s.check_open()?;
        s.check_codec(VideoCodec::Vp8, "push_vp8")?;
        let info = vp8::parse_frame(data)?;
        let mut input = s.input();
        let payloads = input.vp8.packetize(data)?;
        s.raw_source.store(false, Relaxed);
        s.video_frames.fetch_add(1, Relaxed);
        let ts = input
            .video_clock
            .timestamp(pts.unwrap_or_else(|| input.start.elapsed()));
        let frame = MediaFrame::new(TrackKind::Video, ts, info.keyframe, payloads);
        s.submit(&mut input, frame, false);
        Ok(())
    }

    /// Pushes one Opus packet (as produced by an Opus encoder, typically 20 ms). Fails if the
    /// stream was created without audio.
    pub fn push_opus(&self, data: &[u8], pts: Option<Duration>) -> Result<()> {
        let s = &*self.shared;
        s.check_open()?;
        if s.audio_ssrc.is_none() {
            return Err(Error::UnsupportedCodec(format!(
                "stream '{}' was created without audio; create it with StreamOptions {{ audio: true, .. }}",
                s.name
            )));
        }
        if data.is_empty() || data.len() > MAX_OPUS_PACKET {
            return Err(Error::InvalidData(format!(
                "an Opus packet is 1..={MAX_OPUS_PACKET} bytes, got {}",
                data.len()
            )));
        }
        let mut input = s.input();
        s.audio_packets.fetch_add(1, Relaxed);
        let ts = input
            .audio_clock
            .timestamp(pts.unwrap_or_else(|| input.start.elapsed()));
        let frame = MediaFrame::new(
            TrackKind::Audio,
            ts,
            true,
            vec![Bytes::copy_from_slice(data)],
        );
        s.submit(&mut input, frame, false);
        Ok(())
    }

    /// Pushes a raw frame for the built-in H.264 encoder, which encodes it once for all viewers
    /// on the stream's encoder thread. The call validates the frame, copies it and returns: it
    /// costs the caller a copy of the frame, not its encoding. When frames come faster than the
    /// encoder runs, the oldest waiting one is dropped (`frames_dropped`). With no viewer
    /// connected nothing is encoded (the call only validates). `pts` as in
    /// [`Stream::push_h264`]; `None` takes the wall clock at the call.
    pub fn push_frame(&self, frame: &RawFrame<'_>, pts: Option<Duration>) -> Result<()> {
        let s = &*self.shared;
        s.check_open()?;
        s.check_codec(
            VideoCodec::H264,
            "push_frame (the built-in encoder makes H.264)",
        )?;
        frame.validate()?;
        check_encoder_size(frame.width, frame.height)?;
        s.raw_source.store(true, Relaxed);
        s.video_frames.fetch_add(1, Relaxed);
        if s.viewers() == 0 && !s.force_keyframe.load(Relaxed) {
            return Ok(());
        }
        let pts = match pts {
            Some(pts) => pts,
            None => s.input().start.elapsed(),
        };
        let mut slot = s.encode_worker_slot();
        // Checked again under the lock: close() takes the worker under it after setting the flag.
        s.check_open()?;
        let worker = match &mut *slot {
            Some(worker) => worker,
            empty => empty.insert(EncodeWorker::start(
                s.encoder_config,
                Arc::downgrade(&self.shared),
            )?),
        };
        let pushed = worker.push(frame, pts);
        if pushed.dropped {
            s.count_dropped();
        }
        pushed.earlier_failure.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_options_are_checked_not_clamped() {
        let mut o = StreamOptions::default();
        o.validate().unwrap();
        for fps in [0.0, -1.0, f32::NAN, 241.0] {
            o.encoder.max_fps = fps;
            let e = o.validate().unwrap_err().to_string();
            assert!(e.contains("max_fps"), "{e}");
        }
        o.encoder.max_fps = 25.0;
        o.encoder.bitrate_bps = 1000;
        let e = o.validate().unwrap_err().to_string();
        assert!(e.contains("bitrate 1000"), "{e}");
    }

    /// A stream whose media channel holds one frame, with its receiving end.
    fn stream_with_channel_of_one() -> (Stream, crate::net::frames::FrameReceiver) {
        let (media_tx, media_rx) = crate::net::frames::channel(1);
        let (events, _) = broadcast::channel(4);
        let shared = StreamShared::new(
            "s".into(),
            1,
            &StreamOptions::default(),
            vec![media_tx],
            events,
            Arc::new(Metrics::default()),
        );
        let stream = Stream {
            shared: Arc::new(shared),
        };
        (stream, media_rx)
    }

    const P_SLICE: &[u8] = &[0, 0, 0, 1, 0x41, 0x9a, 0x02, 0x04];
    const OPUS: &[u8] = &[0xfc, 0xff, 0xfe];

    #[test]
    fn a_dropped_video_frame_is_reported_by_the_next_video_frame_even_after_audio() {
        let (stream, rx) = stream_with_channel_of_one();
        stream.push_h264(P_SLICE, None).unwrap(); // fills the channel
        stream.push_h264(P_SLICE, None).unwrap(); // dropped: the loop is "behind"
        assert_eq!(stream.stats().frames_dropped, 1);
        assert!(!rx.try_recv().unwrap().after_gap);

        // Audio in between neither carries nor clears the video gap.
        stream.push_opus(OPUS, None).unwrap();
        let audio = rx.try_recv().unwrap();
        assert_eq!(audio.frame.kind, TrackKind::Audio);
        assert!(!audio.after_gap);

        stream.push_h264(P_SLICE, None).unwrap();
        let video = rx.try_recv().unwrap();
        assert_eq!(video.frame.kind, TrackKind::Video);
        assert!(
            video.after_gap,
            "the loop must learn that a video frame was lost"
        );

        stream.push_h264(P_SLICE, None).unwrap();
        assert!(!rx.try_recv().unwrap().after_gap, "reported once");
    }

    #[test]
    fn a_dropped_audio_packet_does_not_mark_a_video_gap() {
        let (stream, rx) = stream_with_channel_of_one();
        stream.push_opus(OPUS, None).unwrap();
        stream.push_opus(OPUS, None).unwrap(); // dropped
        rx.try_recv().unwrap();
        stream.push_h264(P_SLICE, None).unwrap();
        assert!(!rx.try_recv().unwrap().after_gap);
    }

    #[test]
    fn close_stops_the_encoder_thread_and_later_pushes_fail() {
        let (stream, rx) = stream_with_channel_of_one();
        stream.shared.set_viewers(0, 1);
        let pixels = vec![60u8; 64 * 48 * 4];
        let frame = RawFrame::packed(crate::PixelFormat::Rgba, 64, 48, &pixels).unwrap();
        stream.push_frame(&frame, None).unwrap();
        // The first frame comes back encoded (an IDR: the encoder's first frame).
        let mut encoded = None;
        for _ in 0..500 {
            if let Some(m) = rx.try_recv() {
                encoded = Some(m);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(encoded.expect("no encoded frame").frame.keyframe);
        assert_eq!(stream.stats().frames_encoded, 1);

        stream.shared.close();
        assert!(stream.shared.encode_worker_slot().is_none());
        assert!(matches!(
            stream.push_frame(&frame, None),
            Err(Error::StreamClosed(_))
        ));
    }
}
