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
use crate::media::encode_worker::{EncodeWorker, EncodedSink, Rung};
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

/// Share of its slowest viewer's estimate an encoder that follows its viewers aims at.
const FOLLOW_SHARE_PERCENT: u64 = 75;

/// Most renditions a stream may carry.
pub const MAX_RENDITIONS: usize = 8;

/// One video rendition of a stream's ladder. The renditions of a stream are named by their
/// place in [`StreamOptions::renditions`], as Flussonic names tracks: `v1` (the first, the best),
/// `v2`, …
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendition {
    /// Width in pixels: raw frames are scaled to it; for pushed video, what
    /// `media_info.json` announces.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bits per second: the built-in encoder's target for it, and what a viewer's bandwidth
    /// estimate must carry for rtcast to send it this rendition.
    pub bitrate_bps: u32,
}

impl Rendition {
    /// The track name of the rendition at `index` of a ladder: `v1`, `v2`, …
    pub fn track_name(index: usize) -> String {
        format!("v{}", index + 1)
    }

    /// The index of a track name (`v1` → 0), if it names one of `count` renditions.
    pub fn index_of(name: &str, count: usize) -> Option<usize> {
        let n: usize = name.strip_prefix('v')?.parse().ok()?;
        (1..=count).contains(&n).then(|| n - 1)
    }
}

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
    /// A ladder of video renditions, best first (strictly decreasing bitrates), each viewer
    /// getting the best one its network carries; raw frames are scaled and encoded once per
    /// rendition, encoded video is pushed per rendition ([`Stream::push_h264_rendition`]).
    /// Empty (the default): one rendition, the pushed frames as they are, at the encoder's
    /// bitrate.
    pub renditions: Vec<Rendition>,
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
        if self.renditions.len() > MAX_RENDITIONS {
            return Err(Error::InvalidConfig(format!(
                "{} renditions; a stream carries at most {MAX_RENDITIONS}",
                self.renditions.len()
            )));
        }
        for (i, r) in self.renditions.iter().enumerate() {
            let name = Rendition::track_name(i);
            if r.width < 16 || r.height < 16 || r.width % 2 == 1 || r.height % 2 == 1 {
                return Err(Error::InvalidConfig(format!(
                    "rendition {name} is {}x{}: width and height must be even and at least 16",
                    r.width, r.height
                )));
            }
            check_encoder_size(r.width, r.height)
                .map_err(|e| Error::InvalidConfig(format!("rendition {name}: {e}")))?;
            if r.bitrate_bps < crate::media::encoder::MIN_BITRATE_BPS {
                return Err(Error::InvalidConfig(format!(
                    "rendition {name}: bitrate {} bit/s is under the encoder's least, {} bit/s",
                    r.bitrate_bps,
                    crate::media::encoder::MIN_BITRATE_BPS
                )));
            }
            if let Some(before) = i.checked_sub(1).and_then(|b| self.renditions.get(b)) {
                if r.bitrate_bps >= before.bitrate_bps {
                    return Err(Error::InvalidConfig(format!(
                        "rendition {name} ({} bit/s) must have a lower bitrate than {} ({} bit/s): \
                         renditions are listed best first",
                        r.bitrate_bps,
                        Rendition::track_name(i - 1),
                        before.bitrate_bps
                    )));
                }
            }
        }
        Ok(())
    }

    /// How many renditions the stream carries (one when none are listed).
    pub(crate) fn rendition_count(&self) -> usize {
        self.renditions.len().max(1)
    }
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            audio: true,
            video: VideoCodec::default(),
            encoder: EncoderConfig::default(),
            renditions: Vec::new(),
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
    /// Video frames pushed (raw or encoded; of a ladder, those of its first rendition).
    pub video_frames: u64,
    /// Audio packets pushed.
    pub audio_packets: u64,
    /// Frames dropped because the event loop or the built-in encoder was behind (the host pushed
    /// faster than they run).
    pub frames_dropped: u64,
    /// Raw frames encoded by the built-in encoder (0 with no viewers: nothing is encoded then;
    /// of a ladder, counted once per frame, not per rendition).
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
    /// The ladder as configured (empty: one rendition).
    pub renditions: Vec<Rendition>,
    /// One queue per media loop: each loop gets every frame once.
    media_tx: Vec<FrameSender>,
    events: broadcast::Sender<Event>,
    metrics: Arc<Metrics>,
    input: Mutex<Input>,
    encoder_config: EncoderConfig,
    /// The built-in encoder's thread, started by the first raw frame that needs encoding.
    encode_worker: Mutex<Option<EncodeWorker>>,
    /// Per rendition: set when a viewer needs a keyframe and the built-in encoder can make one.
    force_keyframe: Vec<AtomicBool>,
    /// Whether the host feeds raw frames (the encoder answers keyframe requests) or encoded video.
    raw_source: AtomicBool,
    /// Connected viewers per media loop.
    loop_viewers: Vec<AtomicUsize>,
    /// Per media loop, its viewer sessions (connected or connecting): a loop without any is
    /// not woken by each frame.
    loop_sessions: Vec<AtomicUsize>,
    /// Per media loop: the bandwidth its slowest viewer can receive (0: none known), for an
    /// encoder that follows its viewers.
    loop_slowest: Vec<AtomicU64>,
    closed: AtomicBool,
    /// Coalesces the keyframe events to the host over the media loops, per rendition.
    host_requests: Mutex<Vec<KeyframePolicy>>,
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
    /// One clock for every rendition: a frame's timestamp is the same in each, so a viewer
    /// moved from one to another sees its timestamps go on.
    video_clock: RtpClock,
    audio_clock: RtpClock,
    renditions: Vec<RenditionInput>,
    /// Per media loop and rendition (`loop * renditions + rendition`): a video frame was
    /// dropped since the last one that went through, and the next video frame of the rendition
    /// must tell the loop (audio frames neither set nor clear it: each Opus packet decodes alone).
    video_gap: Vec<bool>,
}

/// What packetizing one rendition's encoded video keeps between frames.
#[derive(Default)]
struct RenditionInput {
    params: ParameterSets,
    packetizer: H264Packetizer,
    vp8: Vp8Packetizer,
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
        let count = options.rendition_count();
        Self {
            name,
            id,
            video_codec: options.video,
            video_ssrc: rand::random(),
            audio_ssrc: options.audio.then(rand::random),
            renditions: options.renditions.clone(),
            media_tx,
            events,
            metrics,
            input: Mutex::new(Input {
                start: Instant::now(),
                video_clock: RtpClock::new(VIDEO_CLOCK_RATE),
                audio_clock: RtpClock::new(OPUS_CLOCK_RATE),
                renditions: (0..count).map(|_| RenditionInput::default()).collect(),
                video_gap: vec![false; loops * count],
            }),
            encoder_config: options.encoder,
            encode_worker: Mutex::new(None),
            force_keyframe: (0..count).map(|_| AtomicBool::new(false)).collect(),
            raw_source: AtomicBool::new(false),
            loop_viewers: (0..loops).map(|_| AtomicUsize::new(0)).collect(),
            loop_sessions: (0..loops).map(|_| AtomicUsize::new(0)).collect(),
            loop_slowest: (0..loops).map(|_| AtomicU64::new(0)).collect(),
            closed: AtomicBool::new(false),
            host_requests: Mutex::new(vec![KeyframePolicy::default(); count]),
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

    /// How many renditions the stream carries.
    pub(crate) fn rendition_count(&self) -> usize {
        self.force_keyframe.len()
    }

    /// A media loop asks for a keyframe of a rendition (it coalesced its viewers' requests):
    /// the encoder makes one at the next raw frame; a host pushing encoded video gets an event,
    /// coalesced again here over the loops by the same policy.
    pub(crate) fn request_keyframe(&self, rendition: usize) {
        if self.is_raw_source() {
            let newly = self
                .force_keyframe
                .get(rendition)
                .is_some_and(|f| !f.swap(true, Relaxed));
            if newly {
                self.count_keyframe_request();
            }
            return;
        }
        let asked = self
            .host_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(rendition)
            .is_some_and(|p| p.request(Instant::now(), false));
        if !asked {
            return;
        }
        self.count_keyframe_request();
        let _ = self.events.send(Event::KeyframeRequested {
            stream: self.name.clone(),
            rendition: Rendition::track_name(rendition),
        });
    }

    /// The bitrates of the renditions, best first (the encoder's for a stream of one).
    pub(crate) fn ladder(&self) -> Vec<u32> {
        if self.renditions.is_empty() {
            return vec![self.encoder_config.bitrate_bps];
        }
        self.renditions.iter().map(|r| r.bitrate_bps).collect()
    }

    /// Whether the stream adapts to its viewers' bandwidth: several renditions to choose from,
    /// or an encoder that follows them.
    pub(crate) fn is_adaptive(&self) -> bool {
        self.rendition_count() > 1 || self.encoder_config.follow_viewers_floor_bps.is_some()
    }

    /// Media loop `index`'s bitrate hint (its slowest viewer's estimate).
    pub(crate) fn follow_viewers(&self, index: usize, bps: u64) {
        if let Some(s) = self.loop_slowest.get(index) {
            s.store(bps.max(1), Relaxed);
        }
    }

    /// Media loop `index`'s count of connected viewers, and of sessions (connected or
    /// connecting).
    pub(crate) fn set_viewers(&self, index: usize, connected: usize, sessions: usize) {
        if let Some(v) = self.loop_viewers.get(index) {
            v.store(connected, Relaxed);
        }
        if let Some(v) = self.loop_sessions.get(index) {
            v.store(sessions, Relaxed);
        }
    }

    /// Viewers connected now, over every loop.
    pub(crate) fn viewers(&self) -> usize {
        self.loop_viewers.iter().map(|v| v.load(Relaxed)).sum()
    }

    /// Viewers connected or still connecting, over every loop.
    pub(crate) fn sessions(&self) -> usize {
        self.loop_sessions.iter().map(|v| v.load(Relaxed)).sum()
    }

    fn count_keyframe_request(&self) {
        self.keyframe_requests.fetch_add(1, Relaxed);
        Metrics::add(&self.metrics.keyframe_requests, 1);
    }

    /// What the encoder thread encodes: the stream's renditions, or one at the encoder's
    /// settings and the pushed frames' size.
    fn rungs(&self) -> Vec<Rung> {
        if self.renditions.is_empty() {
            return vec![Rung {
                config: self.encoder_config,
                size: None,
            }];
        }
        self.renditions
            .iter()
            .map(|r| Rung {
                config: EncoderConfig {
                    bitrate_bps: r.bitrate_bps,
                    ..self.encoder_config
                },
                size: Some((r.width, r.height)),
            })
            .collect()
    }

    /// The index of a rendition by its track name, or `InvalidData` listing the names.
    fn rendition_index(&self, name: &str) -> Result<usize> {
        Rendition::index_of(name, self.rendition_count()).ok_or_else(|| self.no_rendition(name))
    }

    fn no_rendition(&self, name: &str) -> Error {
        let names: Vec<String> = (0..self.rendition_count())
            .map(Rendition::track_name)
            .collect();
        Error::InvalidData(format!(
            "stream '{}' has no rendition '{name}'; its renditions are {}",
            self.name,
            names.join(", ")
        ))
    }

    /// Refuses a push without a rendition into a stream of several.
    fn check_single(&self, what: &str) -> Result<()> {
        if self.rendition_count() == 1 {
            return Ok(());
        }
        Err(Error::InvalidData(format!(
            "stream '{}' has {} renditions: push each one's frames with {what}_rendition",
            self.name,
            self.rendition_count()
        )))
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
        let (count, rendition) = (self.rendition_count(), frame.rendition);
        let frame = Arc::new(frame);
        let mut dropped = false;
        let gaps = input.video_gap.iter_mut().skip(rendition).step_by(count);
        for ((tx, gap), sessions) in self.media_tx.iter().zip(gaps).zip(&self.loop_sessions) {
            let msg = MediaInput {
                stream: self.id,
                frame: frame.clone(),
                after_gap: video && std::mem::take(gap),
                raw_source,
            };
            // A loop without viewers of this stream only keeps its GOP: it need not wake now.
            if tx.try_send(msg, sessions.load(Relaxed) > 0).is_err() {
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
    fn take_keyframe_request(&self, rendition: usize) -> bool {
        self.force_keyframe
            .get(rendition)
            .is_some_and(|f| f.swap(false, Relaxed))
    }

    fn restore_keyframe_request(&self, rendition: usize) {
        if let Some(f) = self.force_keyframe.get(rendition) {
            f.store(true, Relaxed);
        }
    }

    /// With `follow_viewers_floor_bps` and one rendition: the slowest viewer's estimate over
    /// every loop, between the floor and the configured bitrate.
    fn target_bitrate(&self, rendition: usize) -> Option<u32> {
        let floor = self.encoder_config.follow_viewers_floor_bps?;
        if rendition != 0 || self.rendition_count() != 1 {
            return None;
        }
        let ceiling = self.encoder_config.bitrate_bps;
        let slowest = self
            .loop_slowest
            .iter()
            .zip(&self.loop_viewers)
            .filter(|(_, viewers)| viewers.load(Relaxed) > 0)
            .map(|(s, _)| s.load(Relaxed))
            .filter(|&s| s > 0)
            .min();
        // Headroom under the estimate: audio, retransmissions and the keyframes viewers ask for
        // ride on the same link.
        let bps = slowest.map_or(u64::from(ceiling), |s| {
            (s * FOLLOW_SHARE_PERCENT / 100).min(u64::from(ceiling))
        });
        Some((bps as u32).max(floor.min(ceiling)))
    }

    fn deliver(&self, rendition: usize, encoded: EncodedVideo, pts: Duration) -> bool {
        if self.closed.load(Relaxed) {
            return false;
        }
        if rendition == 0 {
            self.frames_encoded.fetch_add(1, Relaxed);
        }
        let mut input = self.input();
        let Some(r) = input.renditions.get_mut(rendition) else {
            return false;
        };
        let packetized = r
            .params
            .access_unit(&encoded.data)
            .and_then(|au| Ok((r.packetizer.packetize(&au)?, au.keyframe)));
        let (payloads, keyframe) = match packetized {
            Ok(p) => p,
            Err(e) => {
                // openh264's output always parses; if it ever does not, say so and skip it.
                tracing::warn!(stream = %self.name, "encoded frame not packetized: {e}");
                return false;
            }
        };
        let ts = input.video_clock.timestamp(pts);
        let frame =
            MediaFrame::new(TrackKind::Video, ts, keyframe, payloads).of_rendition(rendition);
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
    ///
    /// A stream with several renditions takes each one's video through
    /// [`Stream::push_h264_rendition`] instead.
    pub fn push_h264(&self, data: &[u8], pts: Option<Duration>) -> Result<()> {
        self.shared.check_single("push_h264")?;
        self.push_encoded(0, VideoCodec::H264, data, pts)
    }

    /// Pushes one H.264 access unit of the rendition named `rendition` (`v1`, `v2`, … in the
    /// order of [`StreamOptions::renditions`]), as [`Stream::push_h264`] does. Push every
    /// rendition's frame of an instant with the same `pts`: a viewer moved from one rendition to
    /// another then sees one continuous track.
    pub fn push_h264_rendition(
        &self,
        rendition: &str,
        data: &[u8],
        pts: Option<Duration>,
    ) -> Result<()> {
        let index = self.shared.rendition_index(rendition)?;
        self.push_encoded(index, VideoCodec::H264, data, pts)
    }

    /// Pushes one VP8 frame (as an encoder produces it: frame tag first; an IVF or WebM frame
    /// payload). The stream must have been created with [`VideoCodec::Vp8`]. `pts` as in
    /// [`Stream::push_h264`].
    pub fn push_vp8(&self, data: &[u8], pts: Option<Duration>) -> Result<()> {
        self.shared.check_single("push_vp8")?;
        self.push_encoded(0, VideoCodec::Vp8, data, pts)
    }

    /// Pushes one VP8 frame of the rendition named `rendition`, as
    /// [`Stream::push_h264_rendition`] does for H.264.
    pub fn push_vp8_rendition(
        &self,
        rendition: &str,
        data: &[u8],
        pts: Option<Duration>,
    ) -> Result<()> {
        let index = self.shared.rendition_index(rendition)?;
        self.push_encoded(index, VideoCodec::Vp8, data, pts)
    }

    /// One pushed, already encoded video frame of `rendition`: parsed and packetized for
    /// `codec` (which must be the stream's), then handed to the media loops.
    fn push_encoded(
        &self,
        rendition: usize,
        codec: VideoCodec,
        data: &[u8],
        pts: Option<Duration>,
    ) -> Result<()> {
        let s = &*self.shared;
        s.check_open()?;
        let call = match codec {
            VideoCodec::H264 => "push_h264",
            VideoCodec::Vp8 => "push_vp8",
        };
        s.check_codec(codec, call)?;
        let mut input = s.input();
        let Input {
            renditions,
            video_clock,
            start,
            ..
        } = &mut *input;
        let r = renditions
            .get_mut(rendition)
            .ok_or_else(|| s.no_rendition(&Rendition::track_name(rendition)))?;
        let (payloads, keyframe) = match codec {
            VideoCodec::H264 => {
                let au = r.params.access_unit(data)?;
                (r.packetizer.packetize(&au)?, au.keyframe)
            }
            VideoCodec::Vp8 => {
                let info = vp8::parse_frame(data)?;
                (r.vp8.packetize(data)?, info.keyframe)
            }
        };
        s.raw_source.store(false, Relaxed);
        if rendition == 0 {
            s.video_frames.fetch_add(1, Relaxed);
        }
        let ts = video_clock.timestamp(pts.unwrap_or_else(|| start.elapsed()));
        let frame =
            MediaFrame::new(TrackKind::Video, ts, keyframe, payloads).of_rendition(rendition);
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
        // Nobody watches: no encoding. A viewer that is still connecting already counts, so
        // that the IDR asked for at its signalling is followed by the frames after it and the
        // viewer starts on a short fresh GOP rather than on a lone IDR and a wait for the next.
        if s.sessions() == 0 && !s.force_keyframe.iter().any(|f| f.load(Relaxed)) {
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
                s.rungs(),
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

    #[test]
    fn an_encoder_that_follows_its_viewers_takes_the_slowest_loops_hint_within_its_bounds() {
        let shared = |options: &StreamOptions| {
            let (media_tx, _) = crate::net::frames::channel(1);
            let (media_tx2, _) = crate::net::frames::channel(1);
            let (events, _) = broadcast::channel(4);
            StreamShared::new(
                "s".into(),
                1,
                options,
                vec![media_tx, media_tx2],
                events,
                Arc::new(Metrics::default()),
            )
        };
        let mut o = StreamOptions::default();
        o.encoder.bitrate_bps = 2_000_000;
        assert_eq!(shared(&o).target_bitrate(0), None, "fixed by default");

        o.encoder.follow_viewers_floor_bps = Some(300_000);
        let s = shared(&o);
        assert_eq!(
            s.target_bitrate(0),
            Some(2_000_000),
            "no hint yet: the configured rate"
        );
        s.set_viewers(0, 1, 1);
        s.set_viewers(1, 2, 2);
        s.follow_viewers(0, 1_200_000);
        s.follow_viewers(1, 2_000_000);
        assert_eq!(
            s.target_bitrate(0),
            Some(900_000),
            "3/4 of the slowest loop's"
        );
        s.follow_viewers(0, 100_000);
        assert_eq!(s.target_bitrate(0), Some(300_000), "not under the floor");
        s.set_viewers(0, 0, 0);
        assert_eq!(
            s.target_bitrate(0),
            Some(1_500_000),
            "a loop without viewers says nothing"
        );
        s.follow_viewers(1, 9_000_000);
        assert_eq!(
            s.target_bitrate(0),
            Some(2_000_000),
            "not over the configured rate"
        );

        o.renditions = vec![
            Rendition {
                width: 640,
                height: 360,
                bitrate_bps: 600_000,
            },
            Rendition {
                width: 320,
                height: 180,
                bitrate_bps: 200_000,
            },
        ];
        assert_eq!(
            shared(&o).target_bitrate(0),
            None,
            "a ladder has its own bitrates"
        );
    }

    #[test]
    fn renditions_are_checked_and_pushed_by_name() {
        let mut o = StreamOptions::default();
        let r = |width, height, bitrate_bps| Rendition {
            width,
            height,
            bitrate_bps,
        };
        o.renditions = vec![r(640, 360, 600_000), r(320, 180, 700_000)];
        let e = o.validate().unwrap_err().to_string();
        assert!(e.contains("v2") && e.contains("best first"), "{e}");
        o.renditions = vec![r(641, 360, 600_000)];
        assert!(o.validate().unwrap_err().to_string().contains("even"));
        o.renditions = vec![r(640, 360, 600_000); MAX_RENDITIONS + 1];
        assert!(o.validate().unwrap_err().to_string().contains("at most"));
        assert_eq!(Rendition::index_of("v2", 3), Some(1));
        assert_eq!(Rendition::index_of("v4", 3), None);
        assert_eq!(Rendition::index_of("x1", 3), None);
        assert_eq!(Rendition::index_of("v0", 3), None);
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
    fn raw_frames_are_encoded_from_a_viewers_signalling_not_only_once_it_is_connected() {
        let (stream, _rx) = stream_with_channel_of_one();
        let pixels = vec![60u8; 64 * 48 * 4];
        let frame = RawFrame::packed(crate::PixelFormat::Rgba, 64, 48, &pixels).unwrap();
        // Nobody watches: the frame is not encoded, no encoder is started.
        stream.push_frame(&frame, None).unwrap();
        assert!(stream.shared.encode_worker_slot().is_none());
        // A viewer signals (a session, not connected yet): frames go to the encoder.
        stream.shared.set_viewers(0, 0, 1);
        stream.push_frame(&frame, None).unwrap();
        assert!(stream.shared.encode_worker_slot().is_some());
        stream.shared.close();
    }

    #[test]
    fn close_stops_the_encoder_thread_and_later_pushes_fail() {
        let (stream, rx) = stream_with_channel_of_one();
        stream.shared.set_viewers(0, 1, 1);
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
