//! Scaling an I420 picture to a rendition's size, with `fast_image_resize` (SIMD convolution:
//! SSE4.1/AVX2 on x86-64, NEON on ARM) applied to each plane.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use crate::media::pixel::I420Buffer;
use crate::{Error, Result};

/// Scales I420 pictures, keeping the resizer's scratch buffers between frames.
pub(crate) struct Scaler {
    resizer: Resizer,
    options: ResizeOptions,
}

impl Default for Scaler {
    fn default() -> Self {
        Self {
            resizer: Resizer::new(),
            // Bilinear: what a live ladder needs (each output pixel from its neighbourhood, no
            // aliasing shimmer at 2x and 4x down), at a fraction of Lanczos's cost.
            options: ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        }
    }
}

impl Scaler {
    /// Scales `src` into `dst` at `width` x `height` (`dst` is resized, its allocations reused).
    pub fn scale(
        &mut self,
        src: &I420Buffer,
        dst: &mut I420Buffer,
        width: u32,
        height: u32,
    ) -> Result<()> {
        dst.resize(width, height);
        let (scw, sch) = (src.chroma_width() as u32, src.chroma_height() as u32);
        let (dcw, dch) = (dst.chroma_width() as u32, dst.chroma_height() as u32);
        let planes = [
            (&src.y, (src.width, src.height), &mut dst.y, (width, height)),
            (&src.u, (scw, sch), &mut dst.u, (dcw, dch)),
            (&src.v, (scw, sch), &mut dst.v, (dcw, dch)),
        ];
        for (from, (fw, fh), to, (tw, th)) in planes {
            let from = ImageRef::new(fw, fh, from, PixelType::U8).map_err(scale_error)?;
            let mut to = Image::from_slice_u8(tw, th, to, PixelType::U8).map_err(scale_error)?;
            self.resizer
                .resize(&from, &mut to, &self.options)
                .map_err(scale_error)?;
        }
        Ok(())
    }
}

fn scale_error(e: impl std::fmt::Display) -> Error {
    Error::Encoder(format!("could not scale a frame for a rendition: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_is_scaled_plane_by_plane_keeping_its_content() {
        // Left half dark, right half bright; chroma likewise.
        let mut src = I420Buffer::new(64, 32);
        for row in src.y.chunks_mut(64) {
            row[..32].fill(20);
            row[32..].fill(220);
        }
        for row in src.u.chunks_mut(32) {
            row[..16].fill(60);
            row[16..].fill(180);
        }
        let mut dst = I420Buffer::new(2, 2);
        Scaler::default().scale(&src, &mut dst, 16, 8).unwrap();
        assert_eq!((dst.width, dst.height), (16, 8));
        assert_eq!(dst.y.len(), 16 * 8);
        assert_eq!(dst.u.len(), 8 * 4);
        for row in dst.y.chunks(16) {
            assert_eq!(row[0], 20, "{row:?}");
            assert_eq!(row[15], 220, "{row:?}");
        }
        for row in dst.u.chunks(8) {
            assert_eq!((row[0], row[7]), (60, 180), "{row:?}");
        }
        assert!(dst.v.iter().all(|&v| v == 128));
    }

    #[test]
    fn odd_sizes_round_their_chroma_up() {
        let src = I420Buffer::new(33, 17);
        let mut dst = I420Buffer::new(2, 2);
        Scaler::default().scale(&src, &mut dst, 11, 7).unwrap();
        assert_eq!((dst.u.len(), dst.v.len()), (6 * 4, 6 * 4));
        assert!(dst.y.iter().all(|&y| y == 16));
    }
}
