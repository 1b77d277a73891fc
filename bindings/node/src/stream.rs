//! `Stream`: what the host pushes into. Every push validates and hands the frame to the core
//! without copying the caller's buffer, and never waits for the network.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::{Uint8Array, Uint8ArraySlice};
use napi::Env;
use napi_derive::napi;
use rtcast_core::{
    EncoderConfig, PixelFormat, RawFrame, Rendition as CoreRendition,
    StreamOptions as CoreStreamOptions, VideoCodec,
};

use crate::error::{BResult, Failure, OrThrow};
use crate::server::Shared;

/// Options of a stream, fixed when it is created.
#[napi(object)]
pub struct StreamOptions {
    /// Video codec of the stream, offered to every viewer (default `'h264'`). A `'vp8'` stream
    /// takes `pushVp8` only: the built-in encoder (`pushFrame`) makes H.264.
    #[napi(ts_type = "'h264' | 'vp8'")]
    pub video: Option<String>,
    /// Offer an Opus audio track (default true).
    pub audio: Option<bool>,
    /// Target bitrate of the built-in encoder (`pushFrame`), bits per second (default 2000000).
    pub bitrate: Option<u32>,
    /// Highest frame rate the host pushes raw frames at (default 30).
    pub max_fps: Option<f64>,
    /// Longest time between two keyframes of the built-in encoder, ms (default 4000; 0 turns
    /// the periodic keyframe off: viewers still get one when they join).
    pub keyframe_interval_ms: Option<u32>,
    /// A ladder of video renditions, best first with decreasing bitrates (at most 8), named by
    /// their place: `'v1'`, `'v2'`... Each viewer is sent the best one its network carries. Raw
    /// frames are scaled and encoded once per rendition; encoded video is pushed per rendition
    /// (`pushH264(data, { rendition: 'v2' })`). Default: one rendition, the frames as pushed.
    pub renditions: Option<Vec<Rendition>>,
    /// Lets the built-in encoder of a stream of one rendition lower its bitrate to its slowest
    /// viewer's bandwidth estimate, not under this floor, bits per second (default: a fixed
    /// bitrate).
    pub follow_viewers_floor_bps: Option<u32>,
}

/// One video rendition of a stream's ladder (`StreamOptions.renditions`).
#[napi(object)]
pub struct Rendition {
    /// Width in pixels (even, at least 16): raw frames are scaled to it.
    pub width: u32,
    /// Height in pixels (even, at least 16).
    pub height: u32,
    /// Bits per second: the built-in encoder's target for it, and what a viewer's bandwidth
    /// estimate must carry to be sent it.
    pub bitrate_bps: u32,
}

pub(crate) fn options(o: Option<StreamOptions>) -> BResult<CoreStreamOptions> {
    let mut out = CoreStreamOptions::default();
    let Some(o) = o else { return Ok(out) };
    if let Some(name) = &o.video {
        out.video = name.parse::<VideoCodec>().map_err(Failure::from)?;
    }
    if let Some(audio) = o.audio {
        out.audio = audio;
    }
    let e: &mut EncoderConfig = &mut out.encoder;
    if let Some(bps) = o.bitrate {
        e.bitrate_bps = bps;
    }
    if let Some(fps) = o.max_fps {
        // Checked by the core when the stream is made (1-240).
        e.max_fps = fps as f32;
    }
    if let Some(ms) = o.keyframe_interval_ms {
        e.keyframe_interval = Duration::from_millis(ms.into());
    }
    e.follow_viewers_floor_bps = o.follow_viewers_floor_bps;
    // Checked by the core when the stream is made (sizes, decreasing bitrates, how many).
    out.renditions = o
        .renditions
        .into_iter()
        .flatten()
        .map(|r| CoreRendition {
            width: r.width,
            height: r.height,
            bitrate_bps: r.bitrate_bps,
        })
        .collect();
    Ok(out)
}

/// A raw frame for `stream.pushFrame`.
#[napi(object)]
pub struct VideoFrame {
    /// The pixels, tightly packed (I420: Y then U then V; NV12: Y then interleaved UV; RGB
    /// formats: rows top to bottom). Read during the call only: with viewers connected rtcast
    /// copies it for the stream's encoder thread and returns.
    pub data: Uint8Array,
    /// Width in pixels (even).
    pub width: u32,
    /// Height in pixels (even).
    pub height: u32,
    /// Layout of `data`.
    #[napi(ts_type = "'rgba' | 'bgra' | 'rgb24' | 'bgr24' | 'i420' | 'nv12'")]
    pub format: String,
    /// Media time in milliseconds from any fixed origin; omitted: the wall clock.
    pub timestamp: Option<f64>,
}

/// Options of an encoded push.
#[napi(object)]
pub struct PushOptions {
    /// Media time in milliseconds from any fixed origin; omitted: the wall clock.
    pub timestamp: Option<f64>,
}

/// Options of an encoded video push (`pushH264`, `pushVp8`).
#[napi(object)]
pub struct VideoPushOptions {
    /// Media time in milliseconds from any fixed origin; omitted: the wall clock.
    pub timestamp: Option<f64>,
    /// The rendition the video is of, `'v1'`, `'v2'`...: required on a stream with several
    /// renditions (`StreamOptions.renditions`). Push every rendition's frame of an instant with
    /// the same `timestamp`.
    pub rendition: Option<String>,
}

fn pts(timestamp: Option<f64>) -> BResult<Option<Duration>> {
    match timestamp {
        None => Ok(None),
        Some(ms) if ms.is_finite() && ms >= 0.0 => Duration::try_from_secs_f64(ms / 1000.0)
            .map(Some)
            .map_err(|_| {
                Failure::invalid(format!(
                    "timestamp {ms} ms is too large to be a media time; pass milliseconds from \
                     a recent origin (or omit it for the wall clock)"
                ))
            }),
        Some(ms) => Err(Failure::invalid(format!(
            "timestamp {ms} is not a time: pass milliseconds >= 0 (or omit it for the wall clock)"
        ))),
    }
}

/// Counters of one stream.
#[napi(object)]
pub struct StreamStats {
    /// Stream name.
    pub name: String,
    /// Viewers connected now.
    pub viewers: i64,
    /// Video frames pushed (raw or encoded).
    pub video_frames: i64,
    /// Audio packets pushed.
    pub audio_packets: i64,
    /// Frames dropped because the media loop or the built-in encoder was behind.
    pub frames_dropped: i64,
    /// Raw frames encoded by the built-in encoder (0 with no viewers: nothing is encoded then).
    pub frames_encoded: i64,
    /// Keyframes asked for (coalesced).
    pub keyframe_requests: i64,
}

/// One connected viewer's figures (`server.viewerStats()`, `stream.viewerStats()`), as its media
/// loop last published them (about once a second).
#[napi(object)]
pub struct ViewerStats {
    /// Viewer id.
    pub id: i64,
    /// Stream name.
    pub stream: String,
    /// Signalling protocol it came through.
    #[napi(ts_type = "'websocket' | 'whep'")]
    pub protocol: String,
    /// What its media travels on (`'tcp'`: ICE-TCP).
    #[napi(ts_type = "'udp' | 'tcp'")]
    pub transport: String,
    /// `ip:port` of its media.
    pub remote: String,
    /// Milliseconds since its media connected.
    pub connected_ms: i64,
    /// RTP and RTCP packets sent to it.
    pub packets_sent: i64,
    /// Bytes of those packets.
    pub bytes_sent: i64,
    /// Bits per second sent to it over the last second or so.
    pub bitrate_bps: i64,
    /// Round-trip time from its receiver reports, ms; absent before the first.
    pub rtt_ms: Option<f64>,
    /// Share of its video packets lost since its previous receiver report, 0 to 1.
    pub fraction_lost: f64,
    /// Video packets it lost in all.
    pub packets_lost: i64,
    /// Interarrival jitter of its video, ms.
    pub jitter_ms: f64,
    /// NACK messages it sent.
    pub nacks: i64,
    /// PLI/FIR messages it sent.
    pub plis: i64,
    /// The rendition it is sent: `'v1'`, `'v2'`... (`'v1'` for a stream of one).
    pub rendition: String,
    /// Its bandwidth estimate, bits per second; absent before the first.
    pub estimate_bps: Option<i64>,
}

impl From<rtcast_core::ViewerStats> for ViewerStats {
    fn from(v: rtcast_core::ViewerStats) -> Self {
        let n = |v: u64| v.min(i64::MAX as u64) as i64;
        Self {
            id: n(v.id),
            stream: v.stream,
            protocol: v.protocol.name().to_owned(),
            transport: v.transport.name().to_owned(),
            remote: v.remote.to_string(),
            connected_ms: n(v.connected_ms),
            packets_sent: n(v.packets_sent),
            bytes_sent: n(v.bytes_sent),
            bitrate_bps: n(v.bitrate_bps),
            rtt_ms: v.rtt_ms,
            fraction_lost: v.fraction_lost,
            packets_lost: v.packets_lost,
            jitter_ms: v.jitter_ms,
            nacks: n(v.nacks),
            plis: n(v.plis),
            rendition: v.rendition,
            estimate_bps: v.estimate_bps.map(n),
        }
    }
}

/// A live stream, got from `server.stream(name)`. Pushes may come at any rate; none waits for the
/// network (a slow viewer drops frames and waits for the next keyframe). Bad input throws an
/// `Error` with a `code` and changes nothing. Pushes run with `catch_unwind`: a panic in rtcast
/// becomes a thrown `Error` instead of aborting Node.
#[napi]
pub struct Stream {
    stream: rtcast_core::Stream,
    /// Keeps the server alive as long as the stream object is.
    _server: Arc<Shared>,
}

impl Stream {
    pub(crate) fn new(stream: rtcast_core::Stream, server: Arc<Shared>) -> Self {
        Self {
            stream,
            _server: server,
        }
    }
}

#[napi]
impl Stream {
    /// The stream's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.stream.name().to_owned()
    }

    /// Viewers connected now.
    #[napi(getter)]
    pub fn viewers(&self) -> u32 {
        self.stream.viewers() as u32
    }

    /// Whether the stream was removed or its server closed.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.stream.is_closed()
    }

    /// Counters of this stream.
    #[napi]
    pub fn stats(&self) -> StreamStats {
        let s = self.stream.stats();
        let n = |v: u64| v.min(i64::MAX as u64) as i64;
        StreamStats {
            name: s.name,
            viewers: s.viewers as i64,
            video_frames: n(s.video_frames),
            audio_packets: n(s.audio_packets),
            frames_dropped: n(s.frames_dropped),
            frames_encoded: n(s.frames_encoded),
            keyframe_requests: n(s.keyframe_requests),
        }
    }

    /// The figures of this stream's connected viewers, by id.
    #[napi]
    pub fn viewer_stats(&self) -> Vec<ViewerStats> {
        self.stream
            .viewer_stats()
            .into_iter()
            .map(Into::into)
            .collect()
    }

    /// Pushes a raw frame: copies it and returns; the built-in H.264 encoder encodes it once for
    /// every viewer on the stream's encoder thread (with no viewer nothing is encoded). Throws `ERR_RTCAST_INVALID_FRAME` when `data`
    /// does not match `format`, `width` and `height`, `ERR_RTCAST_STREAM_CLOSED` after close.
    #[napi(catch_unwind)]
    pub fn push_frame(&self, env: Env, frame: VideoFrame) -> napi::Result<()> {
        let format = frame
            .format
            .parse::<PixelFormat>()
            .map_err(Failure::from)
            .or_throw(&env)?;
        let pts = pts(frame.timestamp).or_throw(&env)?;
        let raw =
            RawFrame::packed(format, frame.width, frame.height, &frame.data).or_throw(&env)?;
        self.stream.push_frame(&raw, pts).or_throw(&env)
    }

    /// Pushes one H.264 access unit in Annex B form (start codes; constrained baseline or main, no
    /// B-frames). Keyframes should carry SPS and PPS. A stream with several renditions takes each
    /// one's video with `{ rendition: 'v1' }`, `'v2'`... Throws `ERR_RTCAST_INVALID_DATA` when it
    /// is not Annex B H.264, names a rendition the stream does not have, or names none on a
    /// stream of several.
    #[napi(js_name = "pushH264", catch_unwind)]
    pub fn push_h264(
        &self,
        env: Env,
        data: Uint8ArraySlice,
        options: Option<VideoPushOptions>,
    ) -> napi::Result<()> {
        let (timestamp, rendition) = options.map_or((None, None), |o| (o.timestamp, o.rendition));
        let pts = pts(timestamp).or_throw(&env)?;
        match rendition {
            None => self.stream.push_h264(&data, pts),
            Some(name) => self.stream.push_h264_rendition(&name, &data, pts),
        }
        .or_throw(&env)
    }

    /// Pushes one VP8 frame as a VP8 encoder outputs it (frame tag first, as stored in IVF or
    /// WebM), on a stream created with `video: 'vp8'`; `rendition` as for `pushH264`. Throws
    /// `ERR_RTCAST_INVALID_DATA` when it is not a VP8 frame or for a rendition as `pushH264`
    /// does, `ERR_RTCAST_UNSUPPORTED` on an H.264 stream.
    #[napi(js_name = "pushVp8", catch_unwind)]
    pub fn push_vp8(
        &self,
        env: Env,
        data: Uint8ArraySlice,
        options: Option<VideoPushOptions>,
    ) -> napi::Result<()> {
        let (timestamp, rendition) = options.map_or((None, None), |o| (o.timestamp, o.rendition));
        let pts = pts(timestamp).or_throw(&env)?;
        match rendition {
            None => self.stream.push_vp8(&data, pts),
            Some(name) => self.stream.push_vp8_rendition(&name, &data, pts),
        }
        .or_throw(&env)
    }

    /// Pushes one Opus packet (typically 20 ms). Throws `ERR_RTCAST_INVALID_DATA` when it is empty
    /// or too large to be Opus, `ERR_RTCAST_UNSUPPORTED` on a stream created with `audio: false`.
    #[napi(catch_unwind)]
    pub fn push_opus(
        &self,
        env: Env,
        data: Uint8ArraySlice,
        options: Option<PushOptions>,
    ) -> napi::Result<()> {
        let pts = pts(options.and_then(|o| o.timestamp)).or_throw(&env)?;
        self.stream.push_opus(&data, pts).or_throw(&env)
    }
}
