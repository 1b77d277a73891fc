//! The built-in live source of `rtcast demo`: a moving test pattern with a frame counter and a
//! clock, encoded by the built-in encoder, plus Opus silence. Also used by tests and benchmarks.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::media::pattern::{TestPattern, OPUS_SILENCE_20MS};
use crate::media::pixel::{I420Buffer, PixelFormat};
use crate::Stream;

/// What the demo source pushes.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Fill the black band under the bars with moving noise: the pattern alone compresses to
    /// ~0.3 Mbit/s whatever the encoder's target, noise makes the encoder spend its bitrate (for
    /// benchmarks at a realistic rate).
    pub noise: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 30,
            noise: false,
        }
    }
}

/// A running demo source; stops when dropped.
pub struct DemoSource {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DemoSource {
    /// Starts pushing the pattern into `stream` from a thread of its own, paced by the clock.
    pub fn start(stream: Stream, options: DemoOptions) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("rtcast-demo".into())
            .spawn(move || run(stream, options, &flag))
            .inspect_err(|e| tracing::error!("cannot start the demo source's thread: {e}"))
            .ok();
        Self { stop, thread }
    }

    /// Stops the source and waits for its thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DemoSource {
    fn drop(&mut self) {
        self.halt();
    }
}

fn run(stream: Stream, options: DemoOptions, stop: &AtomicBool) {
    // Refused before the pattern's buffers are allocated (4 GB for a 65536x65536 picture).
    if let Err(e) = check_size(&options) {
        tracing::error!("demo source not started: {e}");
        return;
    }
    let mut pattern = TestPattern::new(options.width, options.height);
    let mut noisy = I420Buffer::new(options.width, options.height);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let frame_interval = Duration::from_secs(1) / options.fps.max(1);
    let audio_interval = Duration::from_millis(20);
    let start = Instant::now();
    let (mut frame_index, mut audio_index) = (0u64, 0u64);
    while !stop.load(Relaxed) && !stream.is_closed() {
        let next_video = start + frame_interval * frame_index as u32;
        let next_audio = start + audio_interval * audio_index as u32;
        let next = next_video.min(next_audio);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        if next_audio <= next_video {
            let _ = stream.push_opus(OPUS_SILENCE_20MS, Some(audio_interval * audio_index as u32));
            audio_index += 1;
        } else {
            let pts = frame_interval * frame_index as u32;
            let mut picture = pattern.render(frame_index, pts);
            if options.noise {
                noisy.y.copy_from_slice(&picture.y);
                noisy.u.copy_from_slice(&picture.u);
                noisy.v.copy_from_slice(&picture.v);
                add_noise(&mut noisy, &mut seed);
                picture = &noisy;
            }
            if let Err(e) = stream.push_frame(&picture.as_raw_frame(), Some(pts)) {
                tracing::warn!("demo frame not pushed: {e}");
            }
            frame_index += 1;
        }
    }
}

/// The sizes a raw frame may have (non-zero, even, within H.264 level 5.1).
fn check_size(options: &DemoOptions) -> crate::Result<()> {
    crate::media::pixel::check_dimensions(PixelFormat::I420, options.width, options.height)
}

/// Overwrites the band between 60% and 63% of the height (the top of the strip under the bars) with fresh
/// pseudo-random luma every frame: incompressible, so the encoder uses its whole bitrate.
fn add_noise(frame: &mut I420Buffer, seed: &mut u64) {
    let w = frame.width as usize;
    let h = frame.height as usize;
    let rows = (h * 60 / 100)..(h * 63 / 100);
    for row in rows {
        let Some(line) = frame.y.get_mut(row * w..(row + 1) * w) else {
            break;
        };
        for px in line.chunks_mut(8) {
            // xorshift64: cheap and plenty random for an encoder.
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let bytes = seed.to_le_bytes();
            for (p, b) in px.iter_mut().zip(bytes) {
                *p = 16 + b % 220;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_demo_size_no_raw_frame_may_have_is_refused_before_allocating() {
        let size = |width, height| DemoOptions {
            width,
            height,
            ..DemoOptions::default()
        };
        // 65536x65536 would be ~18 GB of pattern buffers; odd and empty sizes never push.
        for (w, h) in [(65_536, 65_536), (u32::MAX, 2), (641, 360), (0, 0)] {
            assert!(check_size(&size(w, h)).is_err(), "{w}x{h}");
        }
        assert!(check_size(&DemoOptions::default()).is_ok());
    }
}
