//! `rtcast_stream`: pushing encoded media and raw frames, and the stream's counters.

use std::time::Duration;

use rtcast_core::{PixelFormat, RawFrame, Stream, StreamStats};

use crate::error::{guard, guard_void, rtcast_result, Failure, FfiResult};
use crate::handle::{self, borrow, out, Handle};

/// Pass as `pts_us` to stamp a push with the wall clock.
pub const RTCAST_PTS_NOW: i64 = -1;

/// Raw pixel layouts accepted by `rtcast_stream_push_frame` (passed as a `uint32_t`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum rtcast_pixel_format {
    /// Planar YUV 4:2:0: Y plane, then quarter-size U and V planes (3 planes).
    RTCAST_FORMAT_I420 = 0,
    /// Semi-planar YUV 4:2:0: Y plane, then one quarter-size plane of interleaved U,V (2 planes).
    RTCAST_FORMAT_NV12 = 1,
    /// Packed 8-bit R, G, B, 3 bytes a pixel (1 plane).
    RTCAST_FORMAT_RGB24 = 2,
    /// Packed 8-bit R, G, B, A, 4 bytes a pixel; alpha ignored (1 plane).
    RTCAST_FORMAT_RGBA = 3,
    /// Packed 8-bit B, G, R, A, 4 bytes a pixel; alpha ignored (1 plane).
    RTCAST_FORMAT_BGRA = 4,
    /// Packed 8-bit B, G, R, 3 bytes a pixel, as OpenCV's `Mat` holds it (1 plane).
    RTCAST_FORMAT_BGR24 = 5,
}

fn pixel_format(format: u32) -> FfiResult<PixelFormat> {
    Ok(match format {
        0 => PixelFormat::I420,
        1 => PixelFormat::Nv12,
        2 => PixelFormat::Rgb24,
        3 => PixelFormat::Rgba,
        4 => PixelFormat::Bgra,
        5 => PixelFormat::Bgr24,
        n => {
            return Err(Failure::invalid(format!(
                "pixel format {n} is not one of RTCAST_FORMAT_I420 (0), NV12 (1), RGB24 (2), \
                 RGBA (3), BGRA (4), BGR24 (5)"
            )))
        }
    })
}

/// A handle to a stream (opaque). Got from `rtcast_server_stream`; `rtcast_stream_free` frees
/// the handle only (exactly once), not the stream.
///
/// Pushes may be made from any thread: pushes into different streams run in parallel, pushes
/// into one stream (through one handle or several) are serialized inside rtcast. No push waits
/// for the network: when viewers or the network are behind, frames are dropped for them.
pub struct rtcast_stream {
    magic: u64,
    stream: Stream,
}

impl Handle for rtcast_stream {
    const NAME: &'static str = "stream";
    const MAGIC: u64 = 0x7274_6361_7374_7374; // "rtcastst"
    fn magic(&self) -> u64 {
        self.magic
    }
    fn clear_magic(&mut self) {
        self.magic = 0;
    }
}

impl rtcast_stream {
    pub(crate) fn new_raw(stream: Stream) -> *mut rtcast_stream {
        handle::into_raw(rtcast_stream {
            magic: Self::MAGIC,
            stream,
        })
    }
}

/// Counters of one stream, filled by `rtcast_stream_stats`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct rtcast_stream_stats {
    /// Viewers connected now.
    pub viewers: u64,
    /// Video frames pushed (raw or encoded).
    pub video_frames: u64,
    /// Audio packets pushed.
    pub audio_packets: u64,
    /// Frames dropped because the server was behind.
    pub frames_dropped: u64,
    /// Raw frames encoded by the built-in encoder (0 with no viewers: nothing is encoded then).
    pub frames_encoded: u64,
    /// Keyframes asked for (coalesced).
    pub keyframe_requests: u64,
}

impl From<StreamStats> for rtcast_stream_stats {
    fn from(s: StreamStats) -> Self {
        Self {
            viewers: s.viewers as u64,
            video_frames: s.video_frames,
            audio_packets: s.audio_packets,
            frames_dropped: s.frames_dropped,
            frames_encoded: s.frames_encoded,
            keyframe_requests: s.keyframe_requests,
        }
    }
}

/// `RTCAST_PTS_NOW` or a non-negative number of microseconds.
fn pts(pts_us: i64) -> FfiResult<Option<Duration>> {
    match pts_us {
        RTCAST_PTS_NOW => Ok(None),
        us if us >= 0 => Ok(Some(Duration::from_micros(us as u64))),
        us => Err(Failure::invalid(format!(
            "pts_us {us} is negative; pass microseconds >= 0 or RTCAST_PTS_NOW"
        ))),
    }
}

/// A byte buffer argument.
///
/// # Safety
/// `data` must be NULL or readable for `len` bytes.
unsafe fn bytes<'a>(data: *const u8, len: usize, what: &str) -> FfiResult<&'a [u8]> {
    if data.is_null() {
        return Err(Failure::null(what));
    }
    Ok(std::slice::from_raw_parts(data, len))
}

/// Frees a stream handle (not the stream: it stays in the server, and other handles to it stay
/// valid). NULL is a no-op. Free each handle exactly once, after its last push has returned.
///
/// # Safety
/// `stream` must be NULL or a live stream handle, not in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_free(stream: *mut rtcast_stream) {
    guard_void("rtcast_stream_free", || {
        let _ = handle::free(stream);
    })
}

/// Pushes one H.264 access unit in Annex B form (start codes; constrained baseline or main, no
/// B-frames). `pts_us` is its media time in microseconds from any fixed origin, or
/// `RTCAST_PTS_NOW`. Keyframes should carry SPS and PPS. The data is copied: the buffer may be
/// reused once the call returns. Errors: `RTCAST_ERR_INVALID_DATA` (not Annex B),
/// `RTCAST_ERR_CLOSED` (stream removed or server stopped). Any thread (see `rtcast_stream`).
///
/// # Safety
/// `stream` must be NULL or a live stream handle; `data` NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_push_h264(
    stream: *const rtcast_stream,
    data: *const u8,
    len: usize,
    pts_us: i64,
) -> rtcast_result {
    guard("rtcast_stream_push_h264", || {
        let stream = borrow(stream)?;
        let data = bytes(data, len, "data")?;
        let pts = pts(pts_us)?;
        Ok(stream.stream.push_h264(data, pts)?)
    })
}

/// Pushes one VP8 frame, as a VP8 encoder produces it (frame tag first; the payload of an IVF or
/// WebM frame). The stream must have been created with `RTCAST_CODEC_VP8`
/// (`rtcast_server_stream_with`). `pts_us` as for `rtcast_stream_push_h264`. The data is copied.
/// Errors: `RTCAST_ERR_UNSUPPORTED` (an H.264 stream), `RTCAST_ERR_INVALID_DATA` (not a VP8
/// frame), `RTCAST_ERR_CLOSED`. Any thread (see `rtcast_stream`).
///
/// # Safety
/// `stream` must be NULL or a live stream handle; `data` NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_push_vp8(
    stream: *const rtcast_stream,
    data: *const u8,
    len: usize,
    pts_us: i64,
) -> rtcast_result {
    guard("rtcast_stream_push_vp8", || {
        let stream = borrow(stream)?;
        let data = bytes(data, len, "data")?;
        let pts = pts(pts_us)?;
        Ok(stream.stream.push_vp8(data, pts)?)
    })
}

/// Pushes one Opus packet (as an Opus encoder produces it, typically 20 ms). `pts_us` as for
/// `rtcast_stream_push_h264`. The data is copied. Errors: `RTCAST_ERR_INVALID_DATA` (empty or
/// larger than an Opus packet can be), `RTCAST_ERR_CLOSED`. Any thread (see `rtcast_stream`).
///
/// # Safety
/// `stream` must be NULL or a live stream handle; `data` NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_push_opus(
    stream: *const rtcast_stream,
    data: *const u8,
    len: usize,
    pts_us: i64,
) -> rtcast_result {
    guard("rtcast_stream_push_opus", || {
        let stream = borrow(stream)?;
        let data = bytes(data, len, "data")?;
        let pts = pts(pts_us)?;
        Ok(stream.stream.push_opus(data, pts)?)
    })
}

/// Pushes a raw frame given plane by plane. The call validates and copies the frame and
/// returns; the built-in H.264 encoder encodes it once for all viewers on the stream's own
/// encoder thread (with no viewer, nothing is encoded). When frames come faster than the encoder
/// runs, the oldest waiting frame is dropped (counted in `frames_dropped`).
///
/// `format` is an `rtcast_pixel_format`. `planes`, `strides` (bytes from one row to the next)
/// and `sizes` (bytes readable from each plane) are arrays of 3: I420 uses Y, U, V; NV12 uses
/// Y, UV; packed RGB formats use the first only. Unused planes are NULL with stride and size 0.
/// Width and height must be even and non-zero. The pixels are read during the call only.
/// Errors: `RTCAST_ERR_INVALID_FRAME` (a size, stride or dimension that does not fit the format,
/// with the numbers in the message), `RTCAST_ERR_INVALID_ARGUMENT` (unknown format),
/// `RTCAST_ERR_CLOSED`, `RTCAST_ERR_INTERNAL` (the encoder failed on an earlier frame; this one
/// was queued). Any thread (see `rtcast_stream`).
///
/// # Safety
/// `stream` must be NULL or a live stream handle; `planes`, `strides`, `sizes` NULL or arrays of
/// 3; each non-NULL plane readable for its size.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_push_frame(
    stream: *const rtcast_stream,
    format: u32,
    width: u32,
    height: u32,
    planes: *const *const u8,
    strides: *const usize,
    sizes: *const usize,
    pts_us: i64,
) -> rtcast_result {
    guard("rtcast_stream_push_frame", || {
        let stream = borrow(stream)?;
        let format = pixel_format(format)?;
        if planes.is_null() {
            return Err(Failure::null("planes"));
        }
        if strides.is_null() {
            return Err(Failure::null("strides"));
        }
        if sizes.is_null() {
            return Err(Failure::null("sizes"));
        }
        let planes = std::slice::from_raw_parts(planes, 3);
        let strides = std::slice::from_raw_parts(strides, 3);
        let sizes = std::slice::from_raw_parts(sizes, 3);
        let mut views: [&[u8]; 3] = [&[]; 3];
        for i in 0..3 {
            if planes[i].is_null() {
                if i < format.plane_count() {
                    return Err(Failure::null(&format!(
                        "planes[{i}] (a {format} frame has {} plane(s))",
                        format.plane_count()
                    )));
                }
                if sizes[i] != 0 {
                    return Err(Failure::invalid(format!(
                        "planes[{i}] is NULL but sizes[{i}] is {}",
                        sizes[i]
                    )));
                }
            } else {
                views[i] = std::slice::from_raw_parts(planes[i], sizes[i]);
            }
        }
        let pts = pts(pts_us)?;
        let frame = RawFrame::with_planes(
            format,
            width,
            height,
            views,
            [strides[0], strides[1], strides[2]],
        )?;
        Ok(stream.stream.push_frame(&frame, pts)?)
    })
}

/// Pushes a raw frame in one tightly packed buffer of `len` bytes (I420: Y then U then V; NV12:
/// Y then UV; packed RGB: the rows), e.g. 1280*720*4 bytes for RGBA 1280x720. Otherwise as
/// `rtcast_stream_push_frame`; a `len` that does not match the format and size is
/// `RTCAST_ERR_INVALID_FRAME` with the size needed in the message.
///
/// # Safety
/// `stream` must be NULL or a live stream handle; `data` NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_push_frame_packed(
    stream: *const rtcast_stream,
    format: u32,
    width: u32,
    height: u32,
    data: *const u8,
    len: usize,
    pts_us: i64,
) -> rtcast_result {
    guard("rtcast_stream_push_frame_packed", || {
        let stream = borrow(stream)?;
        let format = pixel_format(format)?;
        let data = bytes(data, len, "data")?;
        let pts = pts(pts_us)?;
        let frame = RawFrame::packed(format, width, height, data)?;
        Ok(stream.stream.push_frame(&frame, pts)?)
    })
}

/// Fills `*out_stats` with the stream's counters (also after the stream was closed). Any
/// thread.
///
/// # Safety
/// `stream` must be NULL or a live stream handle; `out_stats` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_stats(
    stream: *const rtcast_stream,
    out_stats: *mut rtcast_stream_stats,
) -> rtcast_result {
    guard("rtcast_stream_stats", || {
        let stream = borrow(stream)?;
        let slot = out(out_stats, "out_stats")?;
        *slot = stream.stream.stats().into();
        Ok(())
    })
}
