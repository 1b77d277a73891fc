//! `rtcast_stream`: pushing encoded media and raw frames, and the stream's counters.

use std::time::Duration;

use std::ffi::c_char;

use rtcast_core::{PixelFormat, Protocol, RawFrame, Stream, StreamStats, Transport, ViewerStats};

use crate::error::{guard, guard_void, rtcast_result, str_arg, Failure, FfiResult};
use crate::event::rtcast_protocol;
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

/// What a viewer's media travels on.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum rtcast_transport {
    /// UDP (the usual).
    RTCAST_TRANSPORT_UDP = 1,
    /// ICE-TCP (RFC 6544), for viewers whose network blocks UDP.
    RTCAST_TRANSPORT_TCP = 2,
}

/// One connected viewer's figures, filled by `rtcast_stream_viewer_stats`, as its media loop
/// last published them (about once a second).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rtcast_viewer_stats {
    /// Viewer id (as in `rtcast_event`).
    pub id: u64,
    /// Signalling protocol it came through.
    pub protocol: rtcast_protocol,
    /// What its media travels on.
    pub transport: rtcast_transport,
    /// `ip:port` of its media, NUL-terminated.
    pub remote: [c_char; 64],
    /// Milliseconds since its media connected.
    pub connected_ms: u64,
    /// RTP and RTCP packets sent to it.
    pub packets_sent: u64,
    /// Bytes of those packets.
    pub bytes_sent: u64,
    /// Bits per second sent to it over the last second or so.
    pub bitrate_bps: u64,
    /// Round-trip time from its receiver reports, ms; -1 before the first.
    pub rtt_ms: f64,
    /// Share of its video packets lost since its previous receiver report, 0 to 1.
    pub fraction_lost: f64,
    /// Video packets it lost in all.
    pub packets_lost: i64,
    /// Interarrival jitter of its video, ms.
    pub jitter_ms: f64,
    /// NACK messages it sent.
    pub nacks: u64,
    /// PLI/FIR messages it sent.
    pub plis: u64,
    /// The rendition it is sent ("v1", "v2", ...; "v1" for a stream of one), NUL-terminated.
    pub rendition: [c_char; 16],
    /// Its bandwidth estimate, bits per second (from transport-wide congestion control feedback
    /// where it sends it, else its REMB); -1 before the first.
    pub estimate_bps: i64,
}

impl From<&ViewerStats> for rtcast_viewer_stats {
    fn from(v: &ViewerStats) -> Self {
        // An address with its port is at most 47 bytes, a rendition name 2; the last byte of
        // each array stays NUL.
        let remote = fixed_str(&v.remote.to_string());
        let rendition = fixed_str(&v.rendition);
        Self {
            id: v.id,
            protocol: match v.protocol {
                Protocol::WebSocket => rtcast_protocol::RTCAST_PROTOCOL_WEBSOCKET,
                Protocol::Whep => rtcast_protocol::RTCAST_PROTOCOL_WHEP,
            },
            transport: match v.transport {
                Transport::Udp => rtcast_transport::RTCAST_TRANSPORT_UDP,
                Transport::Tcp => rtcast_transport::RTCAST_TRANSPORT_TCP,
            },
            remote,
            connected_ms: v.connected_ms,
            packets_sent: v.packets_sent,
            bytes_sent: v.bytes_sent,
            bitrate_bps: v.bitrate_bps,
            rtt_ms: v.rtt_ms.unwrap_or(-1.0),
            fraction_lost: v.fraction_lost,
            packets_lost: v.packets_lost,
            jitter_ms: v.jitter_ms,
            nacks: v.nacks,
            plis: v.plis,
            rendition,
            estimate_bps: v
                .estimate_bps
                .map_or(-1, |bps| i64::try_from(bps).unwrap_or(i64::MAX)),
        }
    }
}

/// `text` in a NUL-terminated array of `N` bytes, cut to `N - 1` bytes if longer.
fn fixed_str<const N: usize>(text: &str) -> [c_char; N] {
    let mut out = [0 as c_char; N];
    for (slot, b) in out.iter_mut().take(N.saturating_sub(1)).zip(text.bytes()) {
        *slot = b as c_char;
    }
    out
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
/// reused once the call returns. Errors: `RTCAST_ERR_INVALID_DATA` (not Annex B; a stream with
/// several renditions, which takes `rtcast_stream_push_h264_rendition`), `RTCAST_ERR_CLOSED`
/// (stream removed or server stopped). Any thread (see `rtcast_stream`).
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

/// Pushes one H.264 access unit of the rendition named `rendition` ("v1", "v2", ... in the order
/// of `rtcast_stream_options_add_rendition`) into a stream with a ladder of renditions, as
/// `rtcast_stream_push_h264` does. Push every rendition's frame of an instant with the same
/// `pts_us`: a viewer moved from one rendition to another then sees one continuous track.
/// Errors: `RTCAST_ERR_INVALID_DATA` (no rendition of that name, with the stream's renditions in
/// the message; not Annex B), `RTCAST_ERR_INVALID_ARGUMENT` (`rendition` not UTF-8),
/// `RTCAST_ERR_UNSUPPORTED` (a VP8 stream), `RTCAST_ERR_CLOSED`. Any thread (see `rtcast_stream`).
///
/// # Safety
/// `stream` must be NULL or a live stream handle; `rendition` NULL or a NUL-terminated string;
/// `data` NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_push_h264_rendition(
    stream: *const rtcast_stream,
    rendition: *const c_char,
    data: *const u8,
    len: usize,
    pts_us: i64,
) -> rtcast_result {
    guard("rtcast_stream_push_h264_rendition", || {
        let stream = borrow(stream)?;
        let rendition = str_arg(rendition, "rendition")?;
        let data = bytes(data, len, "data")?;
        let pts = pts(pts_us)?;
        Ok(stream.stream.push_h264_rendition(rendition, data, pts)?)
    })
}

/// Pushes one VP8 frame of the rendition named `rendition` into a VP8 stream with a ladder of
/// renditions, as `rtcast_stream_push_h264_rendition` does for H.264. Errors as
/// `rtcast_stream_push_vp8`, and `RTCAST_ERR_INVALID_DATA` for a rendition the stream does not
/// have. Any thread (see `rtcast_stream`).
///
/// # Safety
/// `stream` must be NULL or a live stream handle; `rendition` NULL or a NUL-terminated string;
/// `data` NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_push_vp8_rendition(
    stream: *const rtcast_stream,
    rendition: *const c_char,
    data: *const u8,
    len: usize,
    pts_us: i64,
) -> rtcast_result {
    guard("rtcast_stream_push_vp8_rendition", || {
        let stream = borrow(stream)?;
        let rendition = str_arg(rendition, "rendition")?;
        let data = bytes(data, len, "data")?;
        let pts = pts(pts_us)?;
        Ok(stream.stream.push_vp8_rendition(rendition, data, pts)?)
    })
}

/// Pushes one VP8 frame, as a VP8 encoder produces it (frame tag first; the payload of an IVF or
/// WebM frame). The stream must have been created with `RTCAST_CODEC_VP8`
/// (`rtcast_server_stream_with`). `pts_us` as for `rtcast_stream_push_h264`. The data is copied.
/// Errors: `RTCAST_ERR_UNSUPPORTED` (an H.264 stream), `RTCAST_ERR_INVALID_DATA` (not a VP8
/// frame; a stream with several renditions, which takes `rtcast_stream_push_vp8_rendition`),
/// `RTCAST_ERR_CLOSED`. Any thread (see `rtcast_stream`).
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

/// Fills `out` (room for `capacity` entries) with the figures of the stream's connected viewers,
/// by id, and writes how many there are into `*out_count`. When there are more than
/// `capacity`: `RTCAST_ERR_BUFFER_TOO_SMALL`, `out` untouched and `*out_count` says how many
/// there are (call again with more room; `out` may be NULL when `capacity` is 0, to ask for the
/// count). Any thread.
///
/// # Safety
/// `stream` must be NULL or a live stream handle; `out` NULL or writable for `capacity`
/// entries; `out_count` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_viewer_stats(
    stream: *const rtcast_stream,
    out: *mut rtcast_viewer_stats,
    capacity: usize,
    out_count: *mut usize,
) -> rtcast_result {
    guard("rtcast_stream_viewer_stats", || {
        let stream = borrow(stream)?;
        let count = crate::handle::out(out_count, "out_count")?;
        if out.is_null() && capacity > 0 {
            return Err(Failure::new(
                rtcast_result::RTCAST_ERR_NULL,
                "out is NULL with a capacity above 0",
            ));
        }
        let all = stream.stream.viewer_stats();
        *count = all.len();
        if all.len() > capacity {
            return Err(Failure::new(
                rtcast_result::RTCAST_ERR_BUFFER_TOO_SMALL,
                format!(
                    "{} viewers, room for {capacity}: call again with more room",
                    all.len()
                ),
            ));
        }
        for (i, v) in all.iter().enumerate() {
            // SAFETY: the caller gave room for `capacity` entries, and i < all.len() <= capacity.
            unsafe { out.add(i).write(v.into()) };
        }
        Ok(())
    })
}
