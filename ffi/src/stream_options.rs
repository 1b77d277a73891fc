//! `rtcast_stream_options`: the tracks and encoder settings a stream is created with.

use rtcast_core::{Rendition, StreamOptions, VideoCodec};

use crate::error::{guard, guard_void, rtcast_result, Failure, FfiResult};
use crate::handle::{self, borrow, out, Handle};

/// Video codecs of a stream (passed as a `uint32_t`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum rtcast_video_codec {
    /// H.264: `rtcast_stream_push_h264` and the raw-frame pushes (the built-in encoder).
    RTCAST_CODEC_H264 = 0,
    /// VP8: `rtcast_stream_push_vp8` only (there is no built-in VP8 encoder).
    RTCAST_CODEC_VP8 = 1,
}

/// Most renditions a stream carries (`rtcast_stream_options_add_rendition`).
pub const RTCAST_MAX_RENDITIONS: u32 = 8;
const _: () = assert!(RTCAST_MAX_RENDITIONS as usize == rtcast_core::MAX_RENDITIONS);

/// Settings a stream is created with (opaque). Made by `rtcast_stream_options_new`, changed by
/// the `rtcast_stream_options_set_*` and `rtcast_stream_options_add_rendition` calls, read (not
/// consumed) by `rtcast_server_stream_with`, freed by `rtcast_stream_options_free` exactly once.
/// Not synchronized: do not change one from two threads at once.
pub struct rtcast_stream_options {
    magic: u64,
    inner: StreamOptions,
}

impl Handle for rtcast_stream_options {
    const NAME: &'static str = "stream options";
    const MAGIC: u64 = 0x7274_6361_7374_736f; // "rtcastso"
    fn magic(&self) -> u64 {
        self.magic
    }
    fn clear_magic(&mut self) {
        self.magic = 0;
    }
}

impl rtcast_stream_options {
    /// The options behind a live handle.
    ///
    /// # Safety
    /// `options` must be NULL or a live handle.
    pub(crate) unsafe fn get<'a>(
        options: *const rtcast_stream_options,
    ) -> FfiResult<&'a StreamOptions> {
        Ok(&borrow(options)?.inner)
    }
}

/// # Safety
/// `options` must be NULL or a live handle, not used by another thread during the call.
unsafe fn with_options(
    options: *mut rtcast_stream_options,
    f: impl FnOnce(&mut StreamOptions) -> FfiResult,
) -> FfiResult {
    borrow(options.cast_const())?;
    f(&mut (*options).inner)
}

/// Creates stream options with the defaults: H.264 video, an Opus audio track, and for raw
/// frames 2 Mbit/s at up to 30 fps with an IDR at least every 4 s. On success `*out_options`
/// owns a new handle: free it with `rtcast_stream_options_free`.
///
/// # Safety
/// `out_options` must be NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_options_new(
    out_options: *mut *mut rtcast_stream_options,
) -> rtcast_result {
    guard("rtcast_stream_options_new", || {
        let slot = out(out_options, "out_options")?;
        *slot = handle::into_raw(rtcast_stream_options {
            magic: rtcast_stream_options::MAGIC,
            inner: StreamOptions::default(),
        });
        Ok(())
    })
}

/// Frees stream options. NULL is a no-op. Free each exactly once; streams created with them are
/// not affected.
///
/// # Safety
/// `options` must be NULL or a live handle not used by any other thread.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_options_free(options: *mut rtcast_stream_options) {
    guard_void("rtcast_stream_options_free", || {
        let _ = handle::free(options);
    })
}

/// Sets the video codec: `RTCAST_CODEC_H264` (default) or `RTCAST_CODEC_VP8`.
///
/// # Safety
/// `options` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_options_set_video_codec(
    options: *mut rtcast_stream_options,
    codec: u32,
) -> rtcast_result {
    guard("rtcast_stream_options_set_video_codec", || {
        borrow(options.cast_const())?;
        let codec = match codec {
            0 => VideoCodec::H264,
            1 => VideoCodec::Vp8,
            n => {
                return Err(Failure::invalid(format!(
                    "video codec {n} is not RTCAST_CODEC_H264 (0) or RTCAST_CODEC_VP8 (1)"
                )))
            }
        };
        with_options(options, |o| {
            o.video = codec;
            Ok(())
        })
    })
}

/// Whether the stream has an Opus audio track (default true). Without one,
/// `rtcast_stream_push_opus` fails with `RTCAST_ERR_UNSUPPORTED`.
///
/// # Safety
/// `options` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_options_set_audio(
    options: *mut rtcast_stream_options,
    audio: bool,
) -> rtcast_result {
    guard("rtcast_stream_options_set_audio", || {
        with_options(options, |o| {
            o.audio = audio;
            Ok(())
        })
    })
}

/// Sets the built-in encoder's target bitrate in bits per second (default 2000000; values under
/// 30000 are raised to it). Only raw-frame pushes are encoded.
///
/// # Safety
/// `options` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_options_set_encoder_bitrate(
    options: *mut rtcast_stream_options,
    bits_per_second: u32,
) -> rtcast_result {
    guard("rtcast_stream_options_set_encoder_bitrate", || {
        with_options(options, |o| {
            o.encoder.bitrate_bps = bits_per_second;
            Ok(())
        })
    })
}

/// Sets the highest frame rate the host pushes raw frames at (default 30; clamped to 1..240);
/// the encoder's rate control spreads the bitrate over it.
///
/// # Safety
/// `options` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_options_set_encoder_max_fps(
    options: *mut rtcast_stream_options,
    fps: u32,
) -> rtcast_result {
    guard("rtcast_stream_options_set_encoder_max_fps", || {
        with_options(options, |o| {
            o.encoder.max_fps = fps as f32;
            Ok(())
        })
    })
}

/// Sets the longest time between two IDRs the built-in encoder makes, in milliseconds (default
/// 4000; 0 turns the periodic IDR off: viewers still get one when they join or ask).
///
/// # Safety
/// `options` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_options_set_keyframe_interval_ms(
    options: *mut rtcast_stream_options,
    milliseconds: u32,
) -> rtcast_result {
    guard("rtcast_stream_options_set_keyframe_interval_ms", || {
        with_options(options, |o| {
            o.encoder.keyframe_interval = std::time::Duration::from_millis(u64::from(milliseconds));
            Ok(())
        })
    })
}

/// Lets the built-in encoder of a stream of one rendition follow its slowest viewer: its bitrate
/// goes down to that viewer's bandwidth estimate, but not under `floor_bps`, and back up to the
/// encoder bitrate (`rtcast_stream_options_set_encoder_bitrate`) as the estimate recovers.
/// 0 (the default) keeps the bitrate fixed. A ladder of renditions
/// (`rtcast_stream_options_add_rendition`) serves slow viewers without lowering the others'
/// quality; this setting does not apply to one.
///
/// # Safety
/// `options` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_options_set_follow_viewers_floor_bps(
    options: *mut rtcast_stream_options,
    floor_bps: u32,
) -> rtcast_result {
    guard("rtcast_stream_options_set_follow_viewers_floor_bps", || {
        with_options(options, |o| {
            o.encoder.follow_viewers_floor_bps = (floor_bps > 0).then_some(floor_bps);
            Ok(())
        })
    })
}

/// Adds a video rendition to the stream's ladder, after those added before: best first, each
/// with a lower bitrate than the one before, at most `RTCAST_MAX_RENDITIONS`. Each viewer is
/// sent the best rendition its network carries. The renditions are named by their place:
/// "v1" (the first added), "v2", ... Raw frames are scaled to each rendition's size and encoded
/// once per rendition at its bitrate; encoded video is pushed per rendition with
/// `rtcast_stream_push_h264_rendition` / `rtcast_stream_push_vp8_rendition` (the plain pushes
/// then fail with `RTCAST_ERR_INVALID_DATA`). With none added, the stream has one rendition.
///
/// Width and height must be even and at least 16; `bitrate_bps` at least 30000.
/// Errors: `RTCAST_ERR_INVALID_ARGUMENT` (a size or bitrate out of range, a bitrate not lower
/// than the previous rendition's, one rendition too many), and the ladder is unchanged.
///
/// # Safety
/// `options` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn rtcast_stream_options_add_rendition(
    options: *mut rtcast_stream_options,
    width: u32,
    height: u32,
    bitrate_bps: u32,
) -> rtcast_result {
    guard("rtcast_stream_options_add_rendition", || {
        with_options(options, |o| {
            let mut renditions = o.renditions.clone();
            renditions.push(Rendition {
                width,
                height,
                bitrate_bps,
            });
            // The core's check of a ladder, made with the default options around it: an error is
            // the ladder's, reported now rather than when the stream is created.
            let checked = StreamOptions {
                renditions,
                ..StreamOptions::default()
            };
            checked.validate()?;
            o.renditions = checked.renditions;
            Ok(())
        })
    })
}
