//! The live test pattern of `rtcast demo`: colour bars (colours and levels are easy to judge),
//! a moving box (motion and smoothness are visible at a glance) and the frame counter and clock
//! in large digits (latency is measured by filming the screen next to the source, and frozen or
//! dropped frames show as jumps).

use std::fmt::Write as _;
use std::time::Duration;

use super::pixel::{rgb_to_yuv, I420Buffer};

/// 20 ms of Opus silence (a valid Opus packet: [0xf8, 0xff, 0xfe]) for the demo's audio track.
pub const OPUS_SILENCE_20MS: &[u8] = &[0xf8, 0xff, 0xfe];

/// Luma of the text and of the moving box: 100% white, brighter than the 75% bars.
const WHITE_Y: u8 = 235;

/// Glyph width and height of the built-in font, in font pixels.
const GLYPH_W: usize = 5;
const GLYPH_H: usize = 7;
/// A character cell: the glyph plus one font pixel of spacing.
const CELL_W: usize = GLYPH_W + 1;
/// The longest line the layout is sized for ("rtcast 00:00:00.000" and "frame " + 13 digits).
const LINE_CHARS: usize = 20;

/// The rows of a 5x7 glyph, top first; bit 4 is the leftmost pixel. Only the characters the
/// pattern writes; anything else draws as a blank.
fn glyph(c: char) -> [u8; GLYPH_H] {
    match c {
        '0' => [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
        '1' => [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
        '2' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
        '3' => [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
        '4' => [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
        '5' => [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
        '6' => [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
        '7' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
        '9' => [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
        ':' => [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c],
        'a' => [0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f],
        'c' => [0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e],
        'e' => [0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e],
        'f' => [0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08],
        'm' => [0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11],
        'r' => [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10],
        's' => [0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e],
        't' => [0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06],
        _ => [0; GLYPH_H],
    }
}

/// The demo's live picture, drawn straight into I420.
///
/// The static part (bars) is drawn once into a cached buffer; each frame copies it (one memcpy
/// of 1.4 MB at 720p) and draws the box and the text on top, which costs a fraction of a
/// millisecond, far less than encoding.
pub struct TestPattern {
    background: I420Buffer,
    frame: I420Buffer,
    /// Height of the colour bar area, where the box moves.
    bars_height: usize,
    /// Side of the moving box (even, so it covers whole chroma samples).
    box_size: usize,
    /// Size of one font pixel, in picture pixels.
    font_scale: usize,
    /// Top-left corner of the first text line, and the distance to the second.
    text_x: usize,
    text_y: usize,
    line_step: usize,
    /// Reused for the text of each frame, so rendering allocates nothing.
    line: String,
}

impl TestPattern {
    /// A pattern of this size (even dimensions, as every raw frame has).
    pub fn new(width: u32, height: u32) -> Self {
        let (w, h) = (width as usize, height as usize);
        let even = |x: usize| x & !1;
        // SMPTE-like layout: 60% bars, 10% reversed strip, 30% black band for the text.
        let bars_height = even(h * 60 / 100);
        let strip_end = even(h * 70 / 100);
        let band_height = h - strip_end;
        // Two lines of up to LINE_CHARS cells in the band, with margins.
        let font_scale = (band_height / 20).min(w / (LINE_CHARS * CELL_W + 2)).max(1);
        let text_width = LINE_CHARS * CELL_W * font_scale;
        let text_height = (2 * GLYPH_H + 2) * font_scale;
        let mut pattern = Self {
            background: I420Buffer::new(width, height),
            frame: I420Buffer::new(width, height),
            bars_height,
            box_size: even(bars_height / 3).max(2),
            font_scale,
            text_x: w.saturating_sub(text_width) / 2,
            text_y: strip_end + band_height.saturating_sub(text_height) / 2,
            line_step: (GLYPH_H + 2) * font_scale,
            line: String::with_capacity(32),
        };
        pattern.draw_background(strip_end);
        pattern
    }

    /// Draws frame number `frame_index` (at `elapsed` since start) into an I420 buffer owned
    /// by the pattern and returns it.
    pub fn render(&mut self, frame_index: u64, elapsed: Duration) -> &I420Buffer {
        self.frame.y.copy_from_slice(&self.background.y);
        self.frame.u.copy_from_slice(&self.background.u);
        self.frame.v.copy_from_slice(&self.background.v);

        // The box bounces across the bars, about 2 s per crossing at 30 fps.
        let w = self.frame.width as usize;
        let travel = w.saturating_sub(self.box_size);
        if travel > 0 {
            let step = (w / 60).max(2) as u64;
            let pos = (frame_index.wrapping_mul(step) % (2 * travel as u64)) as usize;
            let x = if pos > travel { 2 * travel - pos } else { pos } & !1;
            let y = (self.bars_height.saturating_sub(self.box_size) / 2) & !1;
            fill_rect(
                &mut self.frame,
                x,
                y,
                self.box_size,
                self.box_size,
                [WHITE_Y, 128, 128],
            );
        }

        let total_ms = elapsed.as_millis();
        let (ms, s) = (total_ms % 1000, total_ms / 1000);
        self.line.clear();
        // Writing into a String cannot fail.
        let _ = write!(
            self.line,
            "rtcast {:02}:{:02}:{:02}.{ms:03}",
            s / 3600,
            s / 60 % 60,
            s % 60
        );
        let line = std::mem::take(&mut self.line);
        self.draw_text(&line, self.text_x, self.text_y);
        self.line = line;

        self.line.clear();
        let _ = write!(self.line, "frame {frame_index}");
        let line = std::mem::take(&mut self.line);
        self.draw_text(&line, self.text_x, self.text_y + self.line_step);
        self.line = line;

        &self.frame
    }

    /// Bars, reversed strip and black band, into the cached background.
    fn draw_background(&mut self, strip_end: usize) {
        let bg = &mut self.background;
        let (w, h) = (bg.width as usize, bg.height as usize);
        // 75% bars: white, yellow, cyan, green, magenta, red, blue.
        let bars = [
            [191, 191, 191],
            [191, 191, 0],
            [0, 191, 191],
            [0, 191, 0],
            [191, 0, 191],
            [191, 0, 0],
            [0, 0, 191],
        ];
        // Under each bar, the SMPTE reversed strip: blue, black, magenta, black, cyan, black,
        // white (it shows chroma/luma crosstalk against the bar above).
        let strip = [
            [0, 0, 191],
            [0, 0, 0],
            [191, 0, 191],
            [0, 0, 0],
            [0, 191, 191],
            [0, 0, 0],
            [191, 191, 191],
        ];
        for (i, (&[r, g, b], &[sr, sg, sb])) in bars.iter().zip(&strip).enumerate() {
            // Even edges so each bar covers whole chroma samples.
            let x0 = (i * w / bars.len()) & !1;
            let x1 = if i + 1 == bars.len() {
                w
            } else {
                ((i + 1) * w / bars.len()) & !1
            };
            fill_rect(bg, x0, 0, x1 - x0, self.bars_height, rgb_to_yuv(r, g, b));
            let strip_height = strip_end - self.bars_height;
            fill_rect(
                bg,
                x0,
                self.bars_height,
                x1 - x0,
                strip_height,
                rgb_to_yuv(sr, sg, sb),
            );
        }
        fill_rect(bg, 0, strip_end, w, h - strip_end, rgb_to_yuv(0, 0, 0));
    }

    /// Draws white text with the built-in font. The band under the text is neutral grey in
    /// chroma, so only luma is written; pixels outside the picture are clipped.
    fn draw_text(&mut self, text: &str, x: usize, y: usize) {
        let s = self.font_scale;
        let (w, h) = (self.frame.width as usize, self.frame.height as usize);
        for (i, c) in text.chars().enumerate() {
            let cell_x = x + i * CELL_W * s;
            for (gy, bits) in glyph(c).into_iter().enumerate() {
                for gx in 0..GLYPH_W {
                    if bits & (0x10 >> gx) == 0 {
                        continue;
                    }
                    let px = cell_x + gx * s;
                    let py = y + gy * s;
                    if px >= w || py >= h {
                        continue;
                    }
                    let run = s.min(w - px);
                    for row in py..(py + s).min(h) {
                        if let Some(span) = self.frame.y.get_mut(row * w + px..row * w + px + run) {
                            span.fill(WHITE_Y);
                        }
                    }
                }
            }
        }
    }
}

/// Fills a rectangle with one colour. `x`, `y`, `width` and `height` are even (chroma is per 2x2
/// block); the rectangle is clipped to the picture.
fn fill_rect(buf: &mut I420Buffer, x: usize, y: usize, width: usize, height: usize, yuv: [u8; 3]) {
    let (w, h) = (buf.width as usize, buf.height as usize);
    let (x1, y1) = ((x + width).min(w), (y + height).min(h));
    if x >= x1 || y >= y1 {
        return;
    }
    let [luma, cb, cr] = yuv;
    // Clipped above, so every span is inside its plane.
    for row in y..y1 {
        if let Some(span) = buf.y.get_mut(row * w + x..row * w + x1) {
            span.fill(luma);
        }
    }
    let cw = buf.chroma_width();
    let (cx0, cx1) = (x / 2, x1.div_ceil(2));
    for row in y / 2..y1.div_ceil(2) {
        if let Some(span) = buf.u.get_mut(row * cw + cx0..row * cw + cx1) {
            span.fill(cb);
        }
        if let Some(span) = buf.v.get_mut(row * cw + cx0..row * cw + cx1) {
            span.fill(cr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::encoder::{EncoderConfig, H264Encoder};

    /// Luma rows `rows` of a rendered frame.
    fn rows(buf: &I420Buffer, rows: std::ops::Range<usize>) -> &[u8] {
        let w = buf.width as usize;
        &buf.y[rows.start * w..rows.end * w]
    }

    #[test]
    fn buffers_have_i420_sizes_at_common_resolutions() {
        for (w, h) in [(2, 2), (16, 8), (320, 240), (1280, 720), (1920, 1080)] {
            let mut pattern = TestPattern::new(w, h);
            let frame = pattern.render(123_456, Duration::from_millis(3_723_456));
            let (w, h) = (w as usize, h as usize);
            assert_eq!((frame.width as usize, frame.height as usize), (w, h));
            assert_eq!(frame.y.len(), w * h);
            assert_eq!((frame.u.len(), frame.v.len()), (w * h / 4, w * h / 4));
            frame.as_raw_frame().validate().unwrap();
        }
    }

    #[test]
    fn consecutive_frames_differ_and_rendering_is_deterministic() {
        let mut pattern = TestPattern::new(320, 240);
        let first = pattern.render(0, Duration::ZERO).clone();
        let second = pattern.render(1, Duration::from_millis(33)).clone();
        assert_ne!(first, second);
        assert_eq!(&first, pattern.render(0, Duration::ZERO));
    }

    #[test]
    fn clock_changes_only_the_text_band() {
        let mut pattern = TestPattern::new(1280, 720);
        let band = pattern.text_y..720;
        let a = pattern.render(42, Duration::from_millis(1_000)).clone();
        let b = pattern.render(42, Duration::from_millis(1_001)).clone();
        assert_ne!(rows(&a, band.clone()), rows(&b, band.clone()), "clock text");
        assert_eq!(
            rows(&a, 0..band.start),
            rows(&b, 0..band.start),
            "same box, same bars"
        );
        // Some text is really drawn: white pixels in an otherwise black band.
        assert!(rows(&a, band).contains(&WHITE_Y));
    }

    #[test]
    fn frame_counter_changes_the_text_and_the_box_moves() {
        let mut pattern = TestPattern::new(640, 360);
        let text_rows = pattern.text_y..360;
        let bars = 0..pattern.bars_height;
        let a = pattern.render(10, Duration::from_secs(1)).clone();
        let b = pattern.render(11, Duration::from_secs(1)).clone();
        assert_ne!(rows(&a, text_rows.clone()), rows(&b, text_rows));
        assert_ne!(rows(&a, bars.clone()), rows(&b, bars));
    }

    #[test]
    fn every_character_the_pattern_writes_has_a_glyph() {
        for c in "rtcast frame 0123456789:.".chars().filter(|&c| c != ' ') {
            assert_ne!(glyph(c), [0; GLYPH_H], "{c:?}");
        }
    }

    #[test]
    fn background_has_bars_in_bt601_colours() {
        let mut pattern = TestPattern::new(1280, 720);
        let frame = pattern.render(0, Duration::ZERO);
        // Middle of the first row: bar 4 (green) starts at 3/7 of the width.
        let x = 1280 * 3 / 7 + 40;
        assert_eq!(frame.y[x], rgb_to_yuv(0, 191, 0)[0]);
        assert_eq!(frame.u[x / 2], rgb_to_yuv(0, 191, 0)[1]);
        // Bottom-left corner is black band.
        assert_eq!(frame.y[719 * 1280], 16);
    }

    #[test]
    fn pattern_frames_encode() {
        let mut pattern = TestPattern::new(320, 240);
        let mut encoder = H264Encoder::new(EncoderConfig::default());
        let first = encoder
            .encode(&pattern.render(0, Duration::ZERO).as_raw_frame(), false)
            .unwrap()
            .unwrap();
        let second = encoder
            .encode(
                &pattern.render(1, Duration::from_millis(33)).as_raw_frame(),
                false,
            )
            .unwrap()
            .unwrap();
        assert!(first.keyframe && !second.keyframe);
    }
}
