//! Raw frame geometry from a host: format, width, height, strides and plane lengths that need
//! not agree; what validates is converted to I420 as the encoder thread would, the rest refused.
#![no_main]
use rtcast::media::pixel::{to_i420, I420Buffer, PixelFormat, RawFrame};

const FORMATS: [&str; 6] = ["i420", "nv12", "rgb24", "bgr24", "rgba", "bgra"];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let (head, pixels) = data.split_at(16);
    let Some(format) = PixelFormat::from_name(FORMATS[usize::from(head[0]) % FORMATS.len()]) else {
        return;
    };
    // Sizes up to 255x255 keep each run small; the checks are the same at any size.
    let (width, height) = (u32::from(head[1]), u32::from(head[2]));
    let stride = |i: usize| usize::from(u16::from_le_bytes([head[3 + 2 * i], head[4 + 2 * i]]));
    let cut = |i: usize| usize::from(head[9 + i]) * pixels.len() / 256;
    let (a, rest) = pixels.split_at(cut(0).min(pixels.len()));
    let (b, c) = rest.split_at(cut(1).min(rest.len()));
    let frame = if head[12] & 1 == 0 {
        RawFrame::packed(format, width, height, pixels)
    } else {
        RawFrame::with_planes(format, width, height, [a, b, c], [stride(0), stride(1), stride(2)])
    };
    if let Ok(frame) = frame {
        let mut out = I420Buffer::new(frame.width, frame.height);
        assert_eq!(to_i420(&frame, &mut out).is_ok(), frame.validate().is_ok());
    }
});
