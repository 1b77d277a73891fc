//! The built-in H.264 encoder (openh264). A stream with raw input has exactly one, whatever
//! the number of viewers: every viewer gets the same access units, so a viewer who joins or
//! loses packets asks for an IDR from this one encoder instead of getting its own.

use std::time::{Duration, Instant};

use openh264::encoder::{
    BitRate, Encoder, EncoderConfig as OpenH264Config, FrameRate, FrameType, IntraFramePeriod,
    Level, Profile, RateControlMode, SpsPpsStrategy, UsageType, VuiConfig,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};

use super::pixel::{to_i420, I420Buffer, PixelFormat, RawFrame};
use crate::{Error, Result};

/// Lowest bitrate the encoder is given: below this openh264 rejects the setting (it needs at
/// least one bit per frame) and the picture would be useless anyway.
pub(crate) const MIN_BITRATE_BPS: u32 = 30_000;

/// openh264's own size limit (its README: "encoder errors when resolution exceeds 3840x2160").
const MAX_ENCODER_LONG_SIDE: u32 = 3840;
const MAX_ENCODER_SHORT_SIDE: u32 = 2160;

/// Refuses a frame size openh264 cannot encode, with a message that says what to do.
pub(crate) fn check_encoder_size(width: u32, height: u32) -> Result<()> {
    if width.max(height) > MAX_ENCODER_LONG_SIDE || width.min(height) > MAX_ENCODER_SHORT_SIDE {
        return Err(Error::InvalidFrame(format!(
            "frame {width}x{height} is too large for the built-in H.264 encoder \
             (openh264 encodes at most 3840x2160 or 2160x3840); scale it down or push \
             encoded H.264"
        )));
    }
    Ok(())
}

/// Settings of the built-in encoder.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EncoderConfig {
    /// Target bitrate in bits per second; changed live with [`H264Encoder::set_bitrate`].
    pub bitrate_bps: u32,
    /// Highest frame rate the host pushes; rate control spreads the bitrate over it.
    pub max_fps: f32,
    /// Longest time between two IDRs. Viewers get an IDR on demand anyway (join, PLI); this
    /// periodic one is a safety net for a decoder that lost its reference without asking.
    /// `Duration::ZERO` turns it off.
    pub keyframe_interval: Duration,
    /// `None` (the default): the bitrate stays `bitrate_bps`. `Some(floor)`: the encoder of a
    /// stream of one rendition follows its slowest viewer, at three quarters of that viewer's
    /// bandwidth estimate (headroom for audio, retransmissions and keyframes), between `floor`
    /// and `bitrate_bps`, so that every viewer can receive it (at the cost of the others'
    /// quality: a ladder of renditions serves both).
    pub follow_viewers_floor_bps: Option<u32>,
}

impl Default for EncoderConfig {
    /// 2 Mbit/s, 30 fps, an IDR at least every 4 s.
    fn default() -> Self {
        Self {
            bitrate_bps: 2_000_000,
            max_fps: 30.0,
            keyframe_interval: Duration::from_secs(4),
            follow_viewers_floor_bps: None,
        }
    }
}

/// One encoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedVideo {
    /// The access unit in Annex B form (each NAL unit after a start code); an IDR carries its
    /// SPS and PPS in front, so a viewer can start decoding from it alone.
    pub data: Vec<u8>,
    /// Whether this access unit is an IDR, where a new viewer can start.
    pub keyframe: bool,
}

/// The openh264 encoder of the current frame size.
struct SizedEncoder {
    encoder: Encoder,
    width: u32,
    height: u32,
}

/// The built-in H.264 encoder: constrained baseline (what every browser decodes, no B-frames so
/// no reordering delay), one slice a frame, bitrate rate control, no skipped frames.
pub struct H264Encoder {
    config: EncoderConfig,
    /// Created at the first frame, since openh264 needs the size; re-created on a size change.
    current: Option<SizedEncoder>,
    /// Conversion target for non-I420 input, kept to avoid an allocation per frame.
    i420: I420Buffer,
    /// Time of the first frame, origin of the timestamps openh264's rate control sees.
    started_at: Option<Instant>,
    /// When the last IDR came out, for the periodic one.
    last_keyframe_at: Option<Instant>,
}

impl H264Encoder {
    /// An encoder with these settings; openh264 itself is created at the first frame, when the
    /// size is known. Out-of-range settings are clamped (bitrate at least 30 kbit/s, frame rate
    /// 1 to 240, 30 if not a number) since a bad value should not stop a stream.
    pub fn new(config: EncoderConfig) -> Self {
        let max_fps = if config.max_fps.is_finite() {
            config.max_fps.clamp(1.0, 240.0)
        } else {
            30.0
        };
        Self {
            config: EncoderConfig {
                bitrate_bps: config.bitrate_bps.max(MIN_BITRATE_BPS),
                max_fps,
                ..config
            },
            current: None,
            i420: I420Buffer::new(2, 2),
            started_at: None,
            last_keyframe_at: None,
        }
    }

    /// The settings in use (after clamping, with the latest bitrate).
    pub fn config(&self) -> &EncoderConfig {
        &self.config
    }

    /// Encodes one frame. force_keyframe => this frame is an IDR (used when a viewer joins or
    /// asks with PLI). Re-creates the encoder if the frame size changes (and the first frame
    /// after that is an IDR). Returns Ok(None) if openh264 skipped the frame (rate control).
    pub fn encode(
        &mut self,
        frame: &RawFrame,
        force_keyframe: bool,
    ) -> Result<Option<EncodedVideo>> {
        self.encode_at(frame, force_keyframe, Instant::now())
    }

    /// [`H264Encoder::encode`] with the clock passed in, so the periodic IDR is testable.
    fn encode_at(
        &mut self,
        frame: &RawFrame,
        force_keyframe: bool,
        now: Instant,
    ) -> Result<Option<EncodedVideo>> {
        // The fields of RawFrame are public: re-check, so a hand-built frame errors, not panics.
        frame.validate()?;
        let (width, height) = (frame.width, frame.height);
        check_encoder_size(width, height)?;

        let (current, fresh) = match self.current.take() {
            Some(c) if (c.width, c.height) == (width, height) => (c, false),
            old => {
                // A new openh264 instance (rather than its in-place reconfiguration) keeps the
                // state simple; its first frame is always an IDR with SPS and PPS.
                drop(old);
                let encoder = self.new_openh264()?;
                (
                    SizedEncoder {
                        encoder,
                        width,
                        height,
                    },
                    true,
                )
            }
        };
        let current = self.current.insert(current);
        let periodic_due = match self.last_keyframe_at {
            Some(at) => {
                !self.config.keyframe_interval.is_zero()
                    && now.saturating_duration_since(at) >= self.config.keyframe_interval
            }
            None => true,
        };
        let started_at = *self.started_at.get_or_insert(now);
        let timestamp =
            Timestamp::from_millis(now.saturating_duration_since(started_at).as_millis() as u64);

        if (force_keyframe || periodic_due) && !fresh {
            current.encoder.force_intra_frame();
        }

        // I420 with equal chroma strides goes to openh264 as it is; the rest is converted.
        let direct = frame.format == PixelFormat::I420 && frame.strides[1] == frame.strides[2];
        let source = if direct {
            PlanesSource::from_frame(frame)
        } else {
            to_i420(frame, &mut self.i420)?;
            PlanesSource::from_frame(&self.i420.as_raw_frame())
        };
        let bitstream = current.encoder.encode_at(&source, timestamp).map_err(|e| {
            Error::Encoder(format!(
                "openh264 could not encode a {width}x{height} frame: {e}"
            ))
        })?;

        let keyframe = match bitstream.frame_type() {
            FrameType::Skip | FrameType::Invalid => return Ok(None),
            FrameType::IDR => true,
            _ => false,
        };
        let data = bitstream.to_vec();
        if data.is_empty() {
            return Ok(None);
        }
        if keyframe {
            self.last_keyframe_at = Some(now);
        }
        Ok(Some(EncodedVideo { data, keyframe }))
    }

    /// Changes the target bitrate from the next frame on, without a new IDR (e.g. from the
    /// viewers' bandwidth estimates). Clamped to at least 30 kbit/s.
    pub fn set_bitrate(&mut self, bps: u32) {
        let bps = bps.max(MIN_BITRATE_BPS);
        let old = self.config.bitrate_bps;
        self.config.bitrate_bps = bps;
        if let Some(current) = &mut self.current {
            if let Err(e) = apply_bitrate(&mut current.encoder, old, bps) {
                // Still safe: the next size change (or a new stream) starts at the new bitrate.
                tracing::warn!("openh264 refused bitrate {bps} bit/s: {e}");
            }
        }
    }

    fn new_openh264(&self) -> Result<Encoder> {
        let config = OpenH264Config::new()
            .bitrate(BitRate::from_bps(self.config.bitrate_bps))
            .max_frame_rate(FrameRate::from_hz(self.config.max_fps))
            .rate_control_mode(RateControlMode::Bitrate)
            // Every pushed frame should reach the viewers; a skipped frame is a visible stall.
            .skip_frames(false)
            // Baseline with openh264 sets constraint_set0 and 1: constrained baseline, the
            // profile every WebRTC browser decodes (profile-level-id 42c01f at level 3.1).
            .profile(Profile::Baseline)
            // A floor: openh264 raises the level itself when the size, rate or bitrate need it.
            .level(Level::Level_3_1)
            // openh264 threads work per slice, and one slice per frame keeps packetizing simple,
            // so more threads would only idle (it clamps them to the slice count anyway).
            .num_threads(1)
            .usage_type(UsageType::CameraVideoRealTime)
            // The periodic IDR is timed here (keyframe_interval), not counted in frames, since
            // hosts push at uneven rates.
            .intra_frame_period(IntraFramePeriod::auto())
            // IDRs only when a viewer needs one (join, PLI) or the safety-net interval is up:
            // openh264 saw scene cuts in plain motion and each IDR is a 10x bitrate spike.
            // A real cut is still coded well, as a P frame of intra blocks.
            .scene_change_detect(false)
            .sps_pps_strategy(SpsPpsStrategy::ConstantId)
            // Tells decoders the matrix and range that pixel::to_i420 uses.
            .vui(VuiConfig::bt601());
        Encoder::with_api_config(OpenH264API::from_source(), config)
            .map_err(|e| Error::Encoder(format!("openh264 could not start: {e}")))
    }
}

/// Sets a new target bitrate on a running openh264 encoder. The maximum must stay at or above
/// the target at every step, so it goes first when raising and last when lowering.
fn apply_bitrate(encoder: &mut Encoder, old: u32, new: u32) -> std::result::Result<(), String> {
    use openh264_sys2::{
        SBitrateInfo, ENCODER_OPTION, ENCODER_OPTION_BITRATE, ENCODER_OPTION_MAX_BITRATE,
        SPATIAL_LAYER_0, SPATIAL_LAYER_ALL,
    };
    let set = |encoder: &mut Encoder, option: ENCODER_OPTION, layer, bps: u32| {
        let mut info = SBitrateInfo {
            iLayer: layer,
            iBitrate: i32::try_from(bps).unwrap_or(i32::MAX),
        };
        // SAFETY: the encoder is initialized (it has encoded a frame), and both options take a
        // pointer to an SBitrateInfo that lives across the call; they change only rate control.
        let rc = unsafe { encoder.raw_api().set_option(option, (&raw mut info).cast()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("SetOption({option}) returned {rc}"))
        }
    };
    let set_max = |e: &mut Encoder| set(e, ENCODER_OPTION_MAX_BITRATE, SPATIAL_LAYER_0, new);
    let set_target = |e: &mut Encoder| set(e, ENCODER_OPTION_BITRATE, SPATIAL_LAYER_ALL, new);
    if new >= old {
        set_max(encoder)?;
        set_target(encoder)
    } else {
        set_target(encoder)?;
        set_max(encoder)
    }
}

/// I420 planes handed to openh264 without copying. openh264's own `YUVSlices` insists on
/// planes of exactly `height * stride` bytes; a validated frame may end right after its last
/// visible row, which is all the encoder reads.
struct PlanesSource<'a> {
    width: usize,
    height: usize,
    planes: [&'a [u8]; 3],
    strides: [usize; 3],
}

impl<'a> PlanesSource<'a> {
    fn from_frame(frame: &RawFrame<'a>) -> Self {
        Self {
            width: frame.width as usize,
            height: frame.height as usize,
            planes: frame.planes,
            strides: frame.strides,
        }
    }
}

impl YUVSource for PlanesSource<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn strides(&self) -> (usize, usize, usize) {
        (self.strides[0], self.strides[1], self.strides[2])
    }

    fn y(&self) -> &[u8] {
        self.planes[0]
    }

    fn u(&self) -> &[u8] {
        self.planes[1]
    }

    fn v(&self) -> &[u8] {
        self.planes[2]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openh264::decoder::Decoder;

    /// NAL unit types of an Annex B access unit, in order.
    fn nal_types(data: &[u8]) -> Vec<u8> {
        nal_units(data).map(|nal| nal[0] & 0x1f).collect()
    }

    /// NAL units of an Annex B stream without their start codes.
    fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
        let mut starts = Vec::new();
        let mut i = 0;
        while i + 3 <= data.len() {
            if data[i..i + 3] == [0, 0, 1] {
                starts.push(i + 3);
                i += 3;
            } else {
                i += 1;
            }
        }
        let ends: Vec<usize> = starts
            .iter()
            .skip(1)
            .map(|&s| {
                // Drop the start code and the zero byte of a 4-byte start code.
                let mut e = s - 3;
                while e > 0 && data[e - 1] == 0 {
                    e -= 1;
                }
                e
            })
            .chain(std::iter::once(data.len()))
            .collect();
        starts.into_iter().zip(ends).map(move |(s, e)| &data[s..e])
    }

    fn rgba(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
        [rgb[0], rgb[1], rgb[2], 255].repeat((w * h) as usize)
    }

    /// A picture with detail, motion and grain (a noise texture scrolling 2 pixels a frame plus
    /// fresh low-level noise), so rate control has more detail than bits at any test bitrate.
    fn busy_i420(w: u32, h: u32, frame: u32) -> I420Buffer {
        let mut buf = I420Buffer::new(w, h);
        let w = w as usize;
        let shift = 2 * frame as usize;
        let mut grain = frame.wrapping_mul(2_654_435_761) | 1;
        for (r, row) in buf.y.chunks_exact_mut(w).enumerate() {
            for (c, p) in row.iter_mut().enumerate() {
                let mut x = ((r * 7919 + (c + shift) % w) as u32).wrapping_mul(2_654_435_761);
                x ^= x >> 15;
                grain ^= grain << 13;
                grain ^= grain >> 17;
                grain ^= grain << 5;
                *p = 16 + (x % 200) as u8 + (grain % 20) as u8;
            }
        }
        buf
    }

    fn encode_rgba(
        enc: &mut H264Encoder,
        w: u32,
        h: u32,
        rgb: [u8; 3],
        force: bool,
    ) -> EncodedVideo {
        let data = rgba(w, h, rgb);
        let frame = RawFrame::packed(PixelFormat::Rgba, w, h, &data).unwrap();
        enc.encode(&frame, force)
            .unwrap()
            .expect("frame not skipped")
    }

    fn decode(data: &[u8]) -> (usize, usize, [f64; 3]) {
        let mut decoder = Decoder::new().unwrap();
        let yuv = decoder.decode(data).unwrap().expect("a picture");
        let (w, h) = yuv.dimensions();
        let (sy, su, _) = yuv.strides();
        let mean = |plane: &[u8], stride: usize, w: usize, h: usize| {
            let sum: u64 = (0..h)
                .flat_map(|r| plane[r * stride..][..w].iter())
                .map(|&b| u64::from(b))
                .sum();
            sum as f64 / (w * h) as f64
        };
        let means = [
            mean(yuv.y(), sy, w, h),
            mean(yuv.u(), su, w / 2, h / 2),
            mean(yuv.v(), su, w / 2, h / 2),
        ];
        (w, h, means)
    }

    #[test]
    fn first_frame_is_idr_with_constrained_baseline_sps_and_pps() {
        for (w, h, level) in [(320, 240, 31), (1280, 720, 31)] {
            let mut enc = H264Encoder::new(EncoderConfig::default());
            let out = encode_rgba(&mut enc, w, h, [10, 200, 30], false);
            assert!(out.keyframe);
            assert_eq!(&out.data[..4], &[0, 0, 0, 1], "Annex B start code");
            let types = nal_types(&out.data);
            assert_eq!(&types[..2], &[7, 8], "{w}x{h}: {types:?}");
            assert!(types[2..].iter().all(|&t| t == 5), "{w}x{h}: {types:?}");
            let sps = nal_units(&out.data).next().unwrap();
            // profile_idc 66 (baseline) + constraint_set0/1 = constrained baseline.
            assert_eq!(sps[1], 66);
            assert_eq!(sps[2] & 0xc0, 0xc0, "constraint flags {:#x}", sps[2]);
            assert_eq!(sps[3], level);
        }
    }

    #[test]
    fn unforced_second_frame_is_a_p_frame_and_forced_one_is_an_idr() {
        let mut enc = H264Encoder::new(EncoderConfig::default());
        assert!(encode_rgba(&mut enc, 320, 240, [0, 0, 255], false).keyframe);
        let p = encode_rgba(&mut enc, 320, 240, [0, 0, 250], false);
        assert!(!p.keyframe);
        assert_eq!(nal_types(&p.data), [1]);
        let idr = encode_rgba(&mut enc, 320, 240, [0, 0, 245], true);
        assert!(idr.keyframe);
        let types = nal_types(&idr.data);
        assert!(types.starts_with(&[7, 8, 5]), "{types:?}");
        let after = encode_rgba(&mut enc, 320, 240, [0, 0, 240], false);
        assert_eq!(nal_types(&after.data), [1]);
    }

    #[test]
    fn size_change_restarts_with_an_idr_of_the_new_size() {
        let mut enc = H264Encoder::new(EncoderConfig::default());
        encode_rgba(&mut enc, 320, 240, [255, 0, 0], false);
        encode_rgba(&mut enc, 320, 240, [255, 0, 0], false);
        let out = encode_rgba(&mut enc, 640, 360, [255, 0, 0], false);
        assert!(out.keyframe);
        assert!(nal_types(&out.data).starts_with(&[7, 8, 5]));
        let (w, h, _) = decode(&out.data);
        assert_eq!((w, h), (640, 360));
        assert!(!encode_rgba(&mut enc, 640, 360, [255, 0, 0], false).keyframe);
    }

    #[test]
    fn decoded_solid_colour_matches_the_input() {
        let mut enc = H264Encoder::new(EncoderConfig::default());
        // Red RGB is Y 82, U 90, V 240 in BT.601 limited range.
        let out = encode_rgba(&mut enc, 320, 240, [255, 0, 0], false);
        let (w, h, [y, u, v]) = decode(&out.data);
        assert_eq!((w, h), (320, 240));
        assert!((y - 82.0).abs() <= 10.0, "Y {y}");
        assert!((u - 90.0).abs() <= 10.0, "U {u}");
        assert!((v - 240.0).abs() <= 10.0, "V {v}");
    }

    #[test]
    fn strided_i420_and_nv12_inputs_encode_to_their_colour() {
        let (w, h) = (320usize, 240usize);
        // I420 with padded rows, last row's padding cut off: passed to openh264 as is.
        let (stride, cstride) = (w + 64, w / 2 + 32);
        let y = vec![82u8; stride * (h - 1) + w];
        let u = vec![90u8; cstride * (h / 2 - 1) + w / 2];
        let v = vec![240u8; cstride * (h / 2 - 1) + w / 2];
        let frame = RawFrame::with_planes(
            PixelFormat::I420,
            w as u32,
            h as u32,
            [&y, &u, &v],
            [stride, cstride, cstride],
        )
        .unwrap();
        let mut enc = H264Encoder::new(EncoderConfig::default());
        let out = enc.encode(&frame, false).unwrap().unwrap();
        let (_, _, [dy, du, dv]) = decode(&out.data);
        assert!(
            (dy - 82.0).abs() <= 10.0 && (du - 90.0).abs() <= 10.0 && (dv - 240.0).abs() <= 10.0
        );

        let mut nv12 = vec![82u8; w * h];
        nv12.extend([90u8, 240].repeat(w * h / 4));
        let frame = RawFrame::packed(PixelFormat::Nv12, w as u32, h as u32, &nv12).unwrap();
        let mut enc = H264Encoder::new(EncoderConfig::default());
        let out = enc.encode(&frame, false).unwrap().unwrap();
        let (_, _, [dy, du, dv]) = decode(&out.data);
        assert!(
            (dy - 82.0).abs() <= 10.0 && (du - 90.0).abs() <= 10.0 && (dv - 240.0).abs() <= 10.0
        );
    }

    #[test]
    fn periodic_idr_comes_after_the_keyframe_interval() {
        let mut enc = H264Encoder::new(EncoderConfig {
            keyframe_interval: Duration::from_secs(4),
            ..EncoderConfig::default()
        });
        let buf = I420Buffer::new(320, 240);
        let t0 = Instant::now();
        let mut at = |secs: f64| {
            let now = t0 + Duration::from_secs_f64(secs);
            enc.encode_at(&buf.as_raw_frame(), false, now)
                .unwrap()
                .unwrap()
                .keyframe
        };
        assert!(at(0.0));
        assert!(!at(1.0));
        assert!(!at(3.9));
        assert!(at(4.0));
        assert!(!at(5.0));
        // A forced IDR restarts the interval.
        assert!(
            enc.encode_at(&buf.as_raw_frame(), true, t0 + Duration::from_secs(6))
                .unwrap()
                .unwrap()
                .keyframe
        );
        let mut at = |secs: f64| {
            let now = t0 + Duration::from_secs_f64(secs);
            enc.encode_at(&buf.as_raw_frame(), false, now)
                .unwrap()
                .unwrap()
                .keyframe
        };
        assert!(!at(9.0));
        assert!(at(10.0));
    }

    #[test]
    fn set_bitrate_changes_the_output_size_without_an_idr() {
        let mut enc = H264Encoder::new(EncoderConfig {
            bitrate_bps: 3_000_000,
            max_fps: 30.0,
            keyframe_interval: Duration::ZERO,
            ..EncoderConfig::default()
        });
        let t0 = Instant::now();
        let run = |enc: &mut H264Encoder, from: u32, n: u32| -> (usize, usize) {
            let (mut bytes, mut idrs) = (0, 0);
            for i in from..from + n {
                let buf = busy_i420(320, 240, i);
                let now = t0 + Duration::from_millis(u64::from(i) * 33);
                if let Some(out) = enc.encode_at(&buf.as_raw_frame(), false, now).unwrap() {
                    // Skip the frames where rate control is still adapting.
                    if i >= from + n / 2 {
                        bytes += out.data.len();
                    }
                    idrs += usize::from(out.keyframe);
                }
            }
            (bytes, idrs)
        };
        run(&mut enc, 0, 1);
        let (high, high_idrs) = run(&mut enc, 1, 30);
        assert_eq!(high_idrs, 0);
        enc.set_bitrate(200_000);
        assert_eq!(enc.config().bitrate_bps, 200_000);
        let (low, idrs) = run(&mut enc, 31, 30);
        assert_eq!(idrs, 0, "a bitrate change must not cost an IDR");
        assert!(low * 3 < high, "low {low} high {high}");
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        let mut enc = H264Encoder::new(EncoderConfig::default());
        let short = [0u8; 10];
        let frame = RawFrame {
            format: PixelFormat::I420,
            width: 320,
            height: 240,
            planes: [&short, &short, &short],
            strides: [320, 160, 160],
        };
        assert!(matches!(
            enc.encode(&frame, false),
            Err(Error::InvalidFrame(_))
        ));
        let big = vec![0u8; 4096 * 2160 * 3 / 2];
        let frame = RawFrame::packed(PixelFormat::I420, 4096, 2160, &big).unwrap();
        let err = enc.encode(&frame, false).unwrap_err();
        assert!(err.to_string().contains("3840x2160"), "{err}");
    }

    #[test]
    fn config_is_clamped_to_what_openh264_accepts() {
        let enc = H264Encoder::new(EncoderConfig {
            bitrate_bps: 0,
            max_fps: f32::NAN,
            keyframe_interval: Duration::from_secs(1),
            ..EncoderConfig::default()
        });
        assert_eq!(enc.config().bitrate_bps, MIN_BITRATE_BPS);
        assert_eq!(enc.config().max_fps, 30.0);
        let mut enc = enc;
        assert!(encode_rgba(&mut enc, 64, 64, [1, 2, 3], false).keyframe);
    }
}
