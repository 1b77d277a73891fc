//! Raw pixel frames a host pushes: their layouts, the checks that turn a wrong buffer into a
//! clear error instead of a crash or a garbled picture, and the conversion to I420, the only
//! layout the built-in H.264 encoder takes.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// Largest frame side, in pixels. With [`MAX_PIXELS`] it is the frame size limit of H.264 level
/// 5.1 (36864 macroblocks), the highest level browsers are sure to decode.
pub const MAX_SIDE: u32 = 4096;

/// Largest frame area, in pixels: 4096x2304, see [`MAX_SIDE`].
pub const MAX_PIXELS: u64 = 4096 * 2304;

/// Raw pixel layouts a host may push.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Planar YUV 4:2:0: a Y plane, then a quarter-size U plane and V plane.
    I420,
    /// Semi-planar YUV 4:2:0: a Y plane, then one quarter-size plane of interleaved U,V pairs.
    Nv12,
    /// Packed 8-bit R, G, B (3 bytes a pixel).
    Rgb24,
    /// Packed 8-bit B, G, R (3 bytes a pixel), the layout of OpenCV images.
    Bgr24,
    /// Packed 8-bit R, G, B, A (4 bytes a pixel); alpha is ignored.
    Rgba,
    /// Packed 8-bit B, G, R, A (4 bytes a pixel), the usual layout of Windows and macOS
    /// screen captures; alpha is ignored.
    Bgra,
}

impl PixelFormat {
    /// Every format, in the order error messages list them.
    pub const ALL: [PixelFormat; 6] = [
        PixelFormat::I420,
        PixelFormat::Nv12,
        PixelFormat::Rgb24,
        PixelFormat::Bgr24,
        PixelFormat::Rgba,
        PixelFormat::Bgra,
    ];

    /// The lower-case name used in configuration and in every binding ("i420", "nv12"...).
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::I420 => "i420",
            PixelFormat::Nv12 => "nv12",
            PixelFormat::Rgb24 => "rgb24",
            PixelFormat::Bgr24 => "bgr24",
            PixelFormat::Rgba => "rgba",
            PixelFormat::Bgra => "bgra",
        }
    }

    /// The format with this name, ignoring ASCII case, `"rgb"` and `"bgr"` also naming `rgb24`
    /// and `bgr24`; `None` for an unknown name.
    pub fn from_name(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("rgb") {
            return Some(PixelFormat::Rgb24);
        }
        if s.eq_ignore_ascii_case("bgr") {
            return Some(PixelFormat::Bgr24);
        }
        Self::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(s))
    }

    /// How many planes a frame of this format has (1 for packed RGB, 2 for NV12, 3 for I420).
    pub fn plane_count(self) -> usize {
        match self {
            PixelFormat::I420 => 3,
            PixelFormat::Nv12 => 2,
            PixelFormat::Rgb24 | PixelFormat::Bgr24 | PixelFormat::Rgba | PixelFormat::Bgra => 1,
        }
    }

    /// Bytes per row and number of rows of each plane of a `width` x `height` frame; unused
    /// planes are `(0, 0)`. Dimensions are even (checked before), so chroma is exactly half.
    fn plane_geometry(self, width: u32, height: u32) -> [(usize, usize); 3] {
        let (w, h) = (width as usize, height as usize);
        match self {
            PixelFormat::I420 => [(w, h), (w / 2, h / 2), (w / 2, h / 2)],
            // One interleaved U,V pair for every 2x2 block: as many bytes per row as Y.
            PixelFormat::Nv12 => [(w, h), (w, h / 2), (0, 0)],
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => [(w * 3, h), (0, 0), (0, 0)],
            PixelFormat::Rgba | PixelFormat::Bgra => [(w * 4, h), (0, 0), (0, 0)],
        }
    }

    /// The packed size as a formula, so a size error shows how it was computed.
    fn size_formula(self, width: u32, height: u32) -> String {
        match self {
            PixelFormat::I420 | PixelFormat::Nv12 => format!("{width}*{height}*3/2"),
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => format!("{width}*{height}*3"),
            PixelFormat::Rgba | PixelFormat::Bgra => format!("{width}*{height}*4"),
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PixelFormat {
    type Err = Error;

    /// A format by name, as every binding takes it: [`PixelFormat::from_name`]; an unknown name
    /// is `InvalidFrame` listing the valid ones.
    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|f| f.name()).collect();
            Error::InvalidFrame(format!(
                "unknown pixel format '{s}'; valid formats: {}",
                names.join(", ")
            ))
        })
    }
}

/// A borrowed raw frame: up to 3 planes with their strides (bytes per row).
///
/// Build it with [`RawFrame::packed`] or [`RawFrame::with_planes`], which check every size; the
/// fields are public so bindings can read them, and [`RawFrame::validate`] re-checks a frame
/// built by hand.
#[derive(Clone, Copy, Debug)]
pub struct RawFrame<'a> {
    /// Layout of the planes.
    pub format: PixelFormat,
    /// Width in pixels (even, non-zero).
    pub width: u32,
    /// Height in pixels (even, non-zero).
    pub height: u32,
    /// The planes in format order (I420: Y, U, V; NV12: Y, UV; packed RGB: the pixels); unused
    /// planes are empty.
    pub planes: [&'a [u8]; 3],
    /// Bytes from the start of one row to the start of the next, per plane; 0 for unused planes.
    pub strides: [usize; 3],
}

impl<'a> RawFrame<'a> {
    /// One tightly packed buffer (I420: Y then U then V; NV12: Y then UV; packed RGB: rows).
    ///
    /// The size must match exactly, since a buffer of another size almost always means the host
    /// declared the wrong format or dimensions. Errors with a message like
    /// "rgba frame 1280x720 needs 3686400 bytes (1280*720*4), got 100".
    pub fn packed(format: PixelFormat, width: u32, height: u32, data: &'a [u8]) -> Result<Self> {
        check_dimensions(format, width, height)?;
        let geometry = format.plane_geometry(width, height);
        let needed = packed_size(&geometry);
        if data.len() != needed {
            return Err(Error::InvalidFrame(format!(
                "{format} frame {width}x{height} needs {needed} bytes ({}), got {}",
                format.size_formula(width, height),
                data.len()
            )));
        }
        let mut planes: [&[u8]; 3] = [&[]; 3];
        let mut strides = [0; 3];
        let mut rest = data;
        let slots = planes.iter_mut().zip(&mut strides).zip(&geometry);
        for ((plane, stride), &(row, rows)) in slots.take(format.plane_count()) {
            // `data` is the sum of the plane sizes (checked above): each split is inside it.
            let (head, tail) = rest
                .split_at_checked(row * rows)
                .ok_or_else(|| Error::InvalidFrame(format!("{format} frame is too short")))?;
            *plane = head;
            *stride = row;
            rest = tail;
        }
        Ok(Self {
            format,
            width,
            height,
            planes,
            strides,
        })
    }

    /// Explicit planes and strides (unused planes empty, stride 0).
    ///
    /// Each used plane needs a stride of at least its row size and at least
    /// `stride * (rows - 1) + row size` bytes: the padding after the last row may be cut off,
    /// as capture APIs often do.
    pub fn with_planes(
        format: PixelFormat,
        width: u32,
        height: u32,
        planes: [&'a [u8]; 3],
        strides: [usize; 3],
    ) -> Result<Self> {
        let frame = Self {
            format,
            width,
            height,
            planes,
            strides,
        };
        frame.validate()?;
        Ok(frame)
    }

    /// Checks dimensions, strides and plane lengths, as [`RawFrame::with_planes`] does; for
    /// frames built field by field.
    pub fn validate(&self) -> Result<()> {
        let format = self.format;
        check_dimensions(format, self.width, self.height)?;
        let geometry = format.plane_geometry(self.width, self.height);
        let planes = geometry.iter().zip(self.planes).zip(self.strides);
        for (i, ((&(row, rows), plane), stride)) in planes.enumerate() {
            if i >= format.plane_count() {
                // A stray plane usually means the host mixed up formats (I420 planes sent as NV12).
                if !plane.is_empty() || stride != 0 {
                    return Err(Error::InvalidFrame(format!(
                        "{format} has {} plane(s) but plane {i} is not empty \
                         ({} bytes, stride {stride}); pass an empty plane with stride 0",
                        format.plane_count(),
                        plane.len()
                    )));
                }
                continue;
            }
            if stride < row {
                return Err(Error::InvalidFrame(format!(
                    "{format} frame {}x{}: plane {i} stride {stride} is less than its row size \
                     of {row} bytes",
                    self.width, self.height
                )));
            }
            let needed = stride
                .checked_mul(rows - 1)
                .and_then(|n| n.checked_add(row))
                .ok_or_else(|| {
                    Error::InvalidFrame(format!("{format} plane {i} stride {stride} is too large"))
                })?;
            if plane.len() < needed {
                return Err(Error::InvalidFrame(format!(
                    "{format} frame {}x{}: plane {i} needs at least {needed} bytes \
                     ({stride}*{}+{row}), got {}",
                    self.width,
                    self.height,
                    rows - 1,
                    plane.len()
                )));
            }
        }
        Ok(())
    }
}

impl RawFrame<'_> {
    /// Copies the visible rows of every plane into `out` (resized to the packed size, its
    /// allocation reused), tightly packed: `RawFrame::packed(format, width, height, out)` reads
    /// it back. The frame must be valid ([`RawFrame::validate`]).
    pub(crate) fn copy_packed_into(&self, out: &mut Vec<u8>) {
        let geometry = self.format.plane_geometry(self.width, self.height);
        out.resize(packed_size(&geometry), 0);
        let mut rest = out.as_mut_slice();
        let planes = geometry.iter().zip(self.planes).zip(self.strides);
        for ((&(row, rows), plane), stride) in planes.take(self.format.plane_count()) {
            // `out` has just been sized to the sum of the plane sizes.
            let Some((dst, tail)) = rest.split_at_mut_checked(row * rows) else {
                return;
            };
            copy_plane(plane, stride, dst, row, rows);
            rest = tail;
        }
    }
}

/// Bytes of a frame with every plane tightly packed, one after the other.
fn packed_size(geometry: &[(usize, usize); 3]) -> usize {
    geometry.iter().map(|(row, rows)| row * rows).sum()
}

/// Width and height must be non-zero, even (4:2:0 chroma covers 2x2 blocks, and an odd size
/// would need a half chroma sample the encoder cannot take) and within H.264 level 5.1.
pub(crate) fn check_dimensions(format: PixelFormat, width: u32, height: u32) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(Error::InvalidFrame(format!(
            "{format} frame {width}x{height} is empty; width and height must be non-zero"
        )));
    }
    if width % 2 != 0 || height % 2 != 0 {
        return Err(Error::InvalidFrame(format!(
            "{format} frame {width}x{height} has an odd dimension; width and height must be \
             even because 4:2:0 chroma covers 2x2 pixel blocks (crop or pad by one pixel)"
        )));
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(Error::InvalidFrame(format!(
            "{format} frame {width}x{height} is too large; at most 4096x2304 pixels \
             (and 4096 a side), the H.264 level 5.1 limit browsers decode"
        )));
    }
    Ok(())
}

/// An owned I420 picture with tightly packed planes (strides = width and width/2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct I420Buffer {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Luma, `width * height` bytes.
    pub y: Vec<u8>,
    /// Cb, `chroma_width * chroma_height` bytes.
    pub u: Vec<u8>,
    /// Cr, `chroma_width * chroma_height` bytes.
    pub v: Vec<u8>,
}

impl I420Buffer {
    /// A black picture (Y 16, U and V 128: black in limited range) of this size.
    pub fn new(width: u32, height: u32) -> Self {
        let mut buffer = Self {
            width: 0,
            height: 0,
            y: Vec::new(),
            u: Vec::new(),
            v: Vec::new(),
        };
        buffer.resize(width, height);
        buffer
    }

    /// Changes the size, reusing the allocations (nothing is allocated when the size does not
    /// grow). The content is unspecified after a size change; callers overwrite it.
    pub fn resize(&mut self, width: u32, height: u32) {
        if (width, height) == (self.width, self.height) {
            return;
        }
        self.width = width;
        self.height = height;
        let (cw, ch) = (self.chroma_width(), self.chroma_height());
        self.y.resize(width as usize * height as usize, 16);
        self.u.resize(cw * ch, 128);
        self.v.resize(cw * ch, 128);
    }

    /// Width of the U and V planes: half the width, rounded up.
    pub fn chroma_width(&self) -> usize {
        (self.width as usize).div_ceil(2)
    }

    /// Height of the U and V planes: half the height, rounded up.
    pub fn chroma_height(&self) -> usize {
        (self.height as usize).div_ceil(2)
    }

    /// Borrows the picture as an I420 [`RawFrame`], e.g. to hand it to the encoder.
    pub fn as_raw_frame(&self) -> RawFrame<'_> {
        RawFrame {
            format: PixelFormat::I420,
            width: self.width,
            height: self.height,
            planes: [&self.y, &self.u, &self.v],
            strides: [
                self.width as usize,
                self.chroma_width(),
                self.chroma_width(),
            ],
        }
    }
}

/// Converts any frame to I420 into `out` (resized to the frame's size, allocations reused).
///
/// RGB uses BT.601 limited range (what browsers assume for H.264 without colour information),
/// in integer arithmetic; each chroma sample comes from the average of its 2x2 pixels.
///
/// # Errors
///
/// [`Error::InvalidFrame`] if the frame fails [`RawFrame::validate`] (a hand-built frame whose
/// planes are shorter than its strides say); `out` is then left as it was.
pub fn to_i420(frame: &RawFrame, out: &mut I420Buffer) -> Result<()> {
    frame.validate()?;
    out.resize(frame.width, frame.height);
    let (w, h) = (frame.width as usize, frame.height as usize);
    let cw = out.chroma_width();
    let [y_plane, plane1, plane2] = frame.planes;
    let [y_stride, stride1, stride2] = frame.strides;
    match frame.format {
        PixelFormat::I420 => {
            copy_plane(y_plane, y_stride, &mut out.y, w, h);
            copy_plane(plane1, stride1, &mut out.u, cw, h / 2);
            copy_plane(plane2, stride2, &mut out.v, cw, h / 2);
        }
        PixelFormat::Nv12 => {
            copy_plane(y_plane, y_stride, &mut out.y, w, h);
            for row in 0..h / 2 {
                // Validated above: the plane holds every row, `out` was sized for them.
                let (Some(src), Some(u), Some(v)) = (
                    plane_row(plane1, stride1, row, cw * 2),
                    plane_row_mut(&mut out.u, cw, row),
                    plane_row_mut(&mut out.v, cw, row),
                ) else {
                    break;
                };
                for ((pair, u), v) in src.chunks_exact(2).zip(u).zip(v) {
                    if let [cb, cr] = *pair {
                        *u = cb;
                        *v = cr;
                    }
                }
            }
        }
        PixelFormat::Rgb24 => rgb_to_i420::<3, 0, 1, 2>(frame, out),
        PixelFormat::Bgr24 => rgb_to_i420::<3, 2, 1, 0>(frame, out),
        PixelFormat::Rgba => rgb_to_i420::<4, 0, 1, 2>(frame, out),
        PixelFormat::Bgra => rgb_to_i420::<4, 2, 1, 0>(frame, out),
    }
    Ok(())
}

/// Row `r` (`len` bytes) of a plane with rows `stride` bytes apart; `None` past its end.
#[inline(always)]
fn plane_row(plane: &[u8], stride: usize, r: usize, len: usize) -> Option<&[u8]> {
    plane.get(r * stride..)?.get(..len)
}

/// Row `r` of a packed plane of `row`-byte rows; `None` past its end.
#[inline(always)]
fn plane_row_mut(plane: &mut [u8], row: usize, r: usize) -> Option<&mut [u8]> {
    plane.get_mut(r * row..)?.get_mut(..row)
}

/// Copies `rows` rows of `row` bytes from a strided plane into a packed one (as many as both
/// hold; a valid frame holds them all).
fn copy_plane(src: &[u8], stride: usize, dst: &mut [u8], row: usize, rows: usize) {
    if stride == row {
        let n = row * rows;
        if let (Some(dst), Some(src)) = (dst.get_mut(..n), src.get(..n)) {
            dst.copy_from_slice(src);
        }
        return;
    }
    for r in 0..rows {
        let (Some(dst_row), Some(src_row)) =
            (plane_row_mut(dst, row, r), plane_row(src, stride, r, row))
        else {
            return;
        };
        dst_row.copy_from_slice(src_row);
    }
}

/// BT.601 limited-range luma of one pixel, 8-bit fixed point.
#[cfg(any(test, feature = "demo"))]
#[inline(always)]
fn luma(r: i32, g: i32, b: i32) -> u8 {
    (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8
}

/// One RGB colour in BT.601 limited range, as [`to_i420`] converts it; for drawing in I420.
#[cfg(any(test, feature = "demo"))]
pub(crate) fn rgb_to_yuv(r: u8, g: u8, b: u8) -> [u8; 3] {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    [
        luma(r, g, b),
        (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128) as u8,
        (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128) as u8,
    ]
}

/// Packed RGB to I420. Luma is a plain per-pixel map over each row, a shape the compiler
/// vectorizes; chroma then reads each 2x2 block once. Const parameters (bytes per pixel,
/// offsets of R, G, B) let the compiler build tight loops per layout.
fn rgb_to_i420<const BPP: usize, const R: usize, const G: usize, const B: usize>(
    frame: &RawFrame,
    out: &mut I420Buffer,
) {
    // Every pixel below is one BPP-byte chunk (`chunks_exact`), read at R, G and B.
    const { assert!(R < BPP && G < BPP && B < BPP) };
    let (w, h) = (frame.width as usize, frame.height as usize);
    let cw = w / 2;
    let [src, ..] = frame.planes;
    let [stride, ..] = frame.strides;
    let row_bytes = w * BPP;
    // The frame was validated by to_i420: every row is in `src`, `out` is sized for them, and
    // w >= 2 (chunks_exact_mut needs a non-zero size).
    for (row, y_row) in out.y.chunks_exact_mut(w).take(h).enumerate() {
        let Some(pixels) = plane_row(src, stride, row, row_bytes) else {
            break;
        };
        for (y, p) in y_row.iter_mut().zip(pixels.chunks_exact(BPP)) {
            // 16-bit lanes: the largest sum, (66+129+25)*255+128, fits in a u16, and twice as
            // many u16 as i32 fit in a vector register.
            #[allow(clippy::indexing_slicing)] // p has BPP bytes; R, G, B < BPP (asserted above)
            let (r, g, b) = (u16::from(p[R]), u16::from(p[G]), u16::from(p[B]));
            *y = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
        }
    }
    let chroma_rows = out.u.chunks_exact_mut(cw).zip(out.v.chunks_exact_mut(cw));
    for (cy, (u_row, v_row)) in chroma_rows.take(h / 2).enumerate() {
        let (Some(top), Some(bottom)) = (
            plane_row(src, stride, 2 * cy, row_bytes),
            plane_row(src, stride, 2 * cy + 1, row_bytes),
        ) else {
            break;
        };
        let blocks = top
            .chunks_exact(2 * BPP)
            .zip(bottom.chunks_exact(2 * BPP))
            .zip(u_row.iter_mut().zip(v_row.iter_mut()));
        for ((t, b), (u, v)) in blocks {
            // Sums of four pixels: the average is folded into the shift (>> 8 + 2).
            #[allow(clippy::indexing_slicing)] // t, b have 2*BPP bytes; c is R, G or B (< BPP)
            let sum = |c: usize| {
                i32::from(t[c]) + i32::from(t[BPP + c]) + i32::from(b[c]) + i32::from(b[BPP + c])
            };
            let (rs, gs, bs) = (sum(R), sum(G), sum(B));
            *u = (((-38 * rs - 74 * gs + 112 * bs + 512) >> 10) + 128) as u8;
            *v = (((112 * rs - 94 * gs - 18 * bs + 512) >> 10) + 128) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_once_here_for_every_language() {
        assert_eq!("RGBA".parse::<PixelFormat>().unwrap(), PixelFormat::Rgba);
        assert_eq!("rgb".parse::<PixelFormat>().unwrap(), PixelFormat::Rgb24);
        assert_eq!("BGR".parse::<PixelFormat>().unwrap(), PixelFormat::Bgr24);
        let e = "yuyv".parse::<PixelFormat>().unwrap_err();
        assert!(matches!(e, Error::InvalidFrame(_)), "{e:?}");
        assert!(e.to_string().contains("valid formats: i420, nv12"), "{e}");
        let e = "av1".parse::<crate::VideoCodec>().unwrap_err();
        assert!(matches!(e, Error::UnsupportedCodec(_)), "{e:?}");
        assert_eq!(
            "H.264".parse::<crate::VideoCodec>().unwrap(),
            crate::VideoCodec::H264
        );
    }

    fn solid_rgb(format: PixelFormat, w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
        let px: Vec<u8> = match format {
            PixelFormat::Rgb24 => rgb.to_vec(),
            PixelFormat::Bgr24 => vec![rgb[2], rgb[1], rgb[0]],
            PixelFormat::Rgba => vec![rgb[0], rgb[1], rgb[2], 255],
            PixelFormat::Bgra => vec![rgb[2], rgb[1], rgb[0], 255],
            _ => unreachable!(),
        };
        px.repeat((w * h) as usize)
    }

    fn convert(frame: &RawFrame) -> I420Buffer {
        let mut out = I420Buffer::new(2, 2);
        to_i420(frame, &mut out).unwrap();
        out
    }

    fn assert_solid(buf: &I420Buffer, yuv: (u8, u8, u8), tolerance: u8) {
        let close = |a: u8, b: u8| a.abs_diff(b) <= tolerance;
        assert!(
            buf.y.iter().all(|&y| close(y, yuv.0)),
            "Y {:?}",
            &buf.y[..4]
        );
        assert!(
            buf.u.iter().all(|&u| close(u, yuv.1)),
            "U {:?}",
            &buf.u[..2]
        );
        assert!(
            buf.v.iter().all(|&v| close(v, yuv.2)),
            "V {:?}",
            &buf.v[..2]
        );
    }

    #[test]
    fn names_round_trip_and_unknown_name_lists_valid_ones() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_name(f.name()), Some(f));
            assert_eq!(f.name().parse::<PixelFormat>().ok(), Some(f));
        }
        assert_eq!(PixelFormat::from_name("RGBA"), Some(PixelFormat::Rgba));
        let err = "yuv".parse::<PixelFormat>().unwrap_err().to_string();
        assert!(err.contains("'yuv'") && err.contains("i420, nv12, rgb24, bgr24, rgba, bgra"));
        assert_eq!(PixelFormat::Nv12.plane_count(), 2);
        assert_eq!(PixelFormat::Bgra.plane_count(), 1);
    }

    #[test]
    fn packed_rejects_wrong_size_for_each_format_with_the_formula() {
        let cases = [
            (PixelFormat::I420, 1382400, "1280*720*3/2"),
            (PixelFormat::Nv12, 1382400, "1280*720*3/2"),
            (PixelFormat::Rgb24, 2764800, "1280*720*3"),
            (PixelFormat::Rgba, 3686400, "1280*720*4"),
            (PixelFormat::Bgra, 3686400, "1280*720*4"),
        ];
        let data = vec![0u8; 4 * 1280 * 720 + 1];
        for (format, size, formula) in cases {
            let err = RawFrame::packed(format, 1280, 720, &data[..100]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid frame: {format} frame 1280x720 needs {size} bytes ({formula}), got 100"
                )
            );
            // One byte too many is as wrong as too few.
            assert!(RawFrame::packed(format, 1280, 720, &data[..size + 1]).is_err());
            let frame = RawFrame::packed(format, 1280, 720, &data[..size]).unwrap();
            assert_eq!(frame.planes.iter().map(|p| p.len()).sum::<usize>(), size);
        }
    }

    #[test]
    fn packed_splits_i420_and_nv12_planes() {
        let data = vec![0u8; 8 * 4 * 3 / 2];
        let i420 = RawFrame::packed(PixelFormat::I420, 8, 4, &data).unwrap();
        assert_eq!(i420.planes.map(<[u8]>::len), [32, 8, 8]);
        assert_eq!(i420.strides, [8, 4, 4]);
        let nv12 = RawFrame::packed(PixelFormat::Nv12, 8, 4, &data).unwrap();
        assert_eq!(nv12.planes.map(<[u8]>::len), [32, 16, 0]);
        assert_eq!(nv12.strides, [8, 8, 0]);
    }

    #[test]
    fn dimensions_must_be_even_non_zero_and_within_level_5_1() {
        let data = [0u8; 64];
        for (w, h) in [(0, 2), (2, 0), (3, 2), (2, 5)] {
            let err = RawFrame::packed(PixelFormat::I420, w, h, &data).unwrap_err();
            assert!(matches!(err, Error::InvalidFrame(_)), "{w}x{h}: {err}");
        }
        let err = RawFrame::with_planes(
            PixelFormat::Rgba,
            4098,
            2,
            [&data, &[], &[]],
            [4098 * 4, 0, 0],
        )
        .unwrap_err();
        assert!(err.to_string().contains("level 5.1"), "{err}");
        // Portrait within the area limit is fine.
        let big = vec![0u8; 2304 * 4096 * 3 / 2];
        assert!(RawFrame::packed(PixelFormat::I420, 2304, 4096, &big).is_ok());
        assert!(RawFrame::packed(PixelFormat::I420, 4096, 2304, &big).is_ok());
    }

    #[test]
    fn with_planes_checks_strides_and_plane_lengths() {
        let y = vec![0u8; 16 * 3 + 8];
        let c = vec![0u8; 8 + 4];
        // Stride 16 for 8-pixel rows, last row's padding cut off: accepted.
        assert!(RawFrame::with_planes(PixelFormat::I420, 8, 4, [&y, &c, &c], [16, 8, 8]).is_ok());
        let err =
            RawFrame::with_planes(PixelFormat::I420, 8, 4, [&y, &c, &c], [7, 8, 8]).unwrap_err();
        assert!(err.to_string().contains("stride 7 is less than"), "{err}");
        let err = RawFrame::with_planes(PixelFormat::I420, 8, 4, [&y[..50], &c, &c], [16, 8, 8])
            .unwrap_err();
        assert!(err.to_string().contains("needs at least 56 bytes"), "{err}");
        let err = RawFrame::with_planes(PixelFormat::I420, 8, 4, [&y, &c, &c[..11]], [16, 8, 8])
            .unwrap_err();
        assert!(err.to_string().contains("plane 2"), "{err}");
        // NV12 with a third plane: the host has mixed up formats.
        let uv = vec![0u8; 16];
        let err =
            RawFrame::with_planes(PixelFormat::Nv12, 8, 4, [&y, &uv, &c], [16, 8, 8]).unwrap_err();
        assert!(err.to_string().contains("plane 2 is not empty"), "{err}");
    }

    #[test]
    fn strided_rgb_ignores_row_padding() {
        // 4x2 red picture in rows of 20 bytes; padding bytes are green and must not leak in.
        let mut data = vec![0u8; 20 + 16];
        for row in data.chunks_mut(20) {
            for (i, b) in row.iter_mut().enumerate() {
                *b = if i >= 16 {
                    0
                } else if i % 4 == 0 {
                    255
                } else {
                    0
                };
            }
            for b in row.iter_mut().skip(16) {
                *b = 255;
            }
        }
        let frame =
            RawFrame::with_planes(PixelFormat::Rgba, 4, 2, [&data, &[], &[]], [20, 0, 0]).unwrap();
        assert_solid(&convert(&frame), (82, 90, 240), 1);
    }

    #[test]
    fn strided_i420_copies_only_visible_pixels() {
        let (w, h, stride, cstride) = (4usize, 4usize, 6usize, 5usize);
        let mut y = vec![99u8; stride * h];
        let mut u = vec![99u8; cstride * h / 2];
        let mut v = vec![99u8; cstride * h / 2];
        for r in 0..h {
            y[r * stride..r * stride + w].fill(r as u8);
        }
        for r in 0..h / 2 {
            u[r * cstride..r * cstride + 2].fill(10 + r as u8);
            v[r * cstride..r * cstride + 2].fill(20 + r as u8);
        }
        let frame = RawFrame::with_planes(
            PixelFormat::I420,
            4,
            4,
            [&y, &u, &v],
            [stride, cstride, cstride],
        )
        .unwrap();
        let out = convert(&frame);
        assert_eq!(out.y, [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]);
        assert_eq!(out.u, [10, 10, 11, 11]);
        assert_eq!(out.v, [20, 20, 21, 21]);
    }

    #[test]
    fn solid_colours_convert_to_bt601_limited_range() {
        let cases = [
            ([255, 0, 0], (82, 90, 240)),
            ([0, 255, 0], (144, 54, 34)),
            ([0, 0, 255], (41, 240, 110)),
            ([255, 255, 255], (235, 128, 128)),
            ([0, 0, 0], (16, 128, 128)),
        ];
        for format in [
            PixelFormat::Rgb24,
            PixelFormat::Bgr24,
            PixelFormat::Rgba,
            PixelFormat::Bgra,
        ] {
            for (rgb, yuv) in cases {
                let data = solid_rgb(format, 6, 4, rgb);
                let frame = RawFrame::packed(format, 6, 4, &data).unwrap();
                let out = convert(&frame);
                assert_eq!((out.width, out.height), (6, 4));
                assert_eq!((out.y.len(), out.u.len(), out.v.len()), (24, 6, 6));
                assert_solid(&out, yuv, 1);
            }
        }
    }

    #[test]
    fn rgba_and_bgra_read_channels_in_their_own_order() {
        // The same bytes mean red in RGBA and blue in BGRA.
        let data = [255u8, 0, 0, 255].repeat(4);
        let rgba = convert(&RawFrame::packed(PixelFormat::Rgba, 2, 2, &data).unwrap());
        let bgra = convert(&RawFrame::packed(PixelFormat::Bgra, 2, 2, &data).unwrap());
        assert_solid(&rgba, (82, 90, 240), 1);
        assert_solid(&bgra, (41, 240, 110), 1);
    }

    #[test]
    fn chroma_is_the_average_of_each_2x2_block() {
        // Left block: two red and two black pixels; right block all white.
        let px = |c: [u8; 3]| c.to_vec();
        let row0 = [px([255, 0, 0]), px([0, 0, 0]), px([255; 3]), px([255; 3])].concat();
        let row1 = [px([0, 0, 0]), px([255, 0, 0]), px([255; 3]), px([255; 3])].concat();
        let data = [row0, row1].concat();
        let out = convert(&RawFrame::packed(PixelFormat::Rgb24, 4, 2, &data).unwrap());
        assert_eq!(out.y, [82, 16, 235, 235, 16, 82, 235, 235]);
        // Half-red: chroma halfway between red's and grey's.
        assert!(
            out.u[0].abs_diff(109) <= 1 && out.v[0].abs_diff(184) <= 1,
            "{out:?}"
        );
        assert_eq!((out.u[1], out.v[1]), (128, 128));
    }

    #[test]
    fn nv12_chroma_is_deinterleaved() {
        let mut data = vec![50u8; 4 * 2];
        data.extend_from_slice(&[1, 2, 3, 4]);
        let out = convert(&RawFrame::packed(PixelFormat::Nv12, 4, 2, &data).unwrap());
        assert_eq!(out.y, [50; 8]);
        assert_eq!(out.u, [1, 3]);
        assert_eq!(out.v, [2, 4]);
    }

    #[test]
    fn i420_buffer_resize_reuses_allocation_and_as_raw_frame_is_valid() {
        let mut buf = I420Buffer::new(64, 32);
        assert_eq!((buf.y.len(), buf.u.len(), buf.v.len()), (2048, 512, 512));
        assert!(buf.y.iter().all(|&y| y == 16) && buf.u.iter().all(|&u| u == 128));
        let ptr = buf.y.as_ptr();
        buf.resize(32, 16);
        assert_eq!((buf.y.len(), buf.u.len()), (512, 128));
        buf.resize(64, 32);
        assert_eq!(
            buf.y.as_ptr(),
            ptr,
            "growing back within capacity must not reallocate"
        );
        buf.as_raw_frame().validate().unwrap();
    }

    #[test]
    fn copy_packed_drops_row_padding_and_reads_back_as_the_same_frame() {
        // I420 4x2 with padded rows: Y stride 6, U/V stride 4 (row sizes 4 and 2).
        let y = [1, 2, 3, 4, 0, 0, 5, 6, 7, 8];
        let u = [9, 10];
        let v = [11, 12, 0, 0];
        let frame =
            RawFrame::with_planes(PixelFormat::I420, 4, 2, [&y, &u, &v], [6, 4, 4]).unwrap();
        let mut out = vec![99; 100]; // a reused, larger buffer
        frame.copy_packed_into(&mut out);
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        RawFrame::packed(PixelFormat::I420, 4, 2, &out).unwrap();
    }

    #[test]
    fn to_i420_refuses_a_hand_built_frame_whose_planes_are_short_and_leaves_out_alone() {
        // The fields are public; this frame says 64x64 but holds 10 bytes. It used to panic
        // (slice index out of range) in to_i420.
        let tiny = [0u8; 10];
        for format in PixelFormat::ALL {
            let frame = RawFrame {
                format,
                width: 64,
                height: 64,
                planes: [&tiny, &[], &[]],
                strides: [256, 0, 0],
            };
            let mut out = I420Buffer::new(2, 2);
            let before = out.clone();
            let e = to_i420(&frame, &mut out).unwrap_err();
            assert!(matches!(e, Error::InvalidFrame(_)), "{format}: {e}");
            assert_eq!(out, before, "{format}");
        }
    }
}
