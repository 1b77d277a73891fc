//! The built-in encoder's own thread, one per stream fed with raw frames.
//!
//! Encoding a 1280x720 frame takes openh264 tens of milliseconds on a small machine: done on the
//! host's thread it would cost the host about a frame's time per push (and hold the stream's
//! state while it runs). Instead a push validates the frame, copies it into a recycled buffer and
//! queues it; this thread converts, encodes and hands the access unit on. The queue holds at most
//! [`QUEUE_DEPTH`] frames: when the host pushes faster than the encoder runs, the oldest queued
//! frame is dropped (counted by the caller) so latency stays bounded and the push never waits.
//!
//! An error of the encoder itself (openh264 failing, which validation should have prevented) is
//! logged and returned by the next push, since the push that carried the frame has returned.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::media::encoder::{EncodedVideo, EncoderConfig, H264Encoder};
use crate::media::pixel::{to_i420, I420Buffer, PixelFormat, RawFrame};
use crate::media::scale::Scaler;
use crate::{Error, Result};

/// Frames waiting for the encoder. Two absorb the jitter of encode times (an IDR takes several
/// times longer than a P frame) without adding more than a frame of latency in steady state.
pub(crate) const QUEUE_DEPTH: usize = 2;

/// Buffers kept for reuse: the queued frames plus the one being encoded.
const MAX_SPARE: usize = QUEUE_DEPTH + 1;

/// Where encoded frames go (the stream).
pub(crate) trait EncodedSink: Send + Sync + 'static {
    /// Whether rendition `rendition`'s next frame must be an IDR (a viewer joined, asked for
    /// one or switches to it); clears the request.
    fn take_keyframe_request(&self, rendition: usize) -> bool;
    /// Puts back a request taken by [`EncodedSink::take_keyframe_request`] that the encoder
    /// could not serve (it failed or skipped the frame).
    fn restore_keyframe_request(&self, rendition: usize);
    /// The bitrate rendition `rendition` should be encoded at now, when it follows its viewers
    /// (`None`: keep the configured one).
    fn target_bitrate(&self, _rendition: usize) -> Option<u32> {
        None
    }
    /// One encoded access unit of a rendition, with the media time the host pushed its frame
    /// with. Returns whether it was taken (false: the stream is closed or could not packetize it).
    fn deliver(&self, rendition: usize, encoded: EncodedVideo, pts: Duration) -> bool;
}

/// What became of a push.
#[derive(Debug, Default)]
pub(crate) struct Pushed {
    /// An older queued frame was dropped to make room.
    pub dropped: bool,
    /// The encoder failed on an earlier frame since the last push (this one is queued anyway).
    pub earlier_failure: Option<Error>,
}

/// A raw frame copied out of the host's buffer, planes tightly packed.
struct Job {
    format: PixelFormat,
    width: u32,
    height: u32,
    data: Vec<u8>,
    pts: Duration,
}

struct State {
    queue: VecDeque<Job>,
    spare: Vec<Vec<u8>>,
    stopped: bool,
    /// The encoder's last failure, for the next push to report.
    failure: Option<Error>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves State consistent; a panic elsewhere does not matter.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The encoder thread of one stream. Stopped (and joined) by [`EncodeWorker::stop`] or on drop.
pub(crate) struct EncodeWorker {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl EncodeWorker {
    /// Starts the thread. It holds only a weak reference to the sink, so the stream is freed
    /// when its last handle goes, and the thread ends with it.
    pub(crate) fn start<S: EncodedSink>(rungs: Vec<Rung>, sink: Weak<S>) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(QUEUE_DEPTH),
                spare: Vec::new(),
                stopped: false,
                failure: None,
            }),
            wake: Condvar::new(),
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("rtcast-encode".into())
            .spawn(move || run(&thread_shared, rungs, &sink))
            .map_err(|e| Error::Encoder(format!("could not start the encoder thread: {e}")))?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a copy of `frame` (valid, of a size the encoder takes) and returns at once (a
    /// stopped worker ignores it).
    pub(crate) fn push(&self, frame: &RawFrame<'_>, pts: Duration) -> Pushed {
        let (mut data, failure) = {
            let mut state = self.shared.lock();
            if state.stopped {
                return Pushed::default();
            }
            (state.spare.pop().unwrap_or_default(), state.failure.take())
        };
        // The copy (milliseconds for a large frame) runs without the lock, so the encoder
        // thread can pick up the previous frame meanwhile.
        frame.copy_packed_into(&mut data);
        let dropped = self.enqueue(frame, pts, data);
        Pushed {
            dropped,
            earlier_failure: failure.map(|e| {
                Error::Encoder(format!(
                    "an earlier frame could not be encoded ({e}); this frame was queued"
                ))
            }),
        }
    }

    fn enqueue(&self, frame: &RawFrame<'_>, pts: Duration, data: Vec<u8>) -> bool {
        let job = Job {
            format: frame.format,
            width: frame.width,
            height: frame.height,
            data,
            pts,
        };
        let mut state = self.shared.lock();
        if state.stopped {
            return false;
        }
        let mut dropped = false;
        if state.queue.len() >= QUEUE_DEPTH {
            if let Some(old) = state.queue.pop_front() {
                dropped = true;
                if state.spare.len() < MAX_SPARE {
                    state.spare.push(old.data);
                }
            }
        }
        state.queue.push_back(job);
        drop(state);
        self.shared.wake.notify_one();
        dropped
    }

    /// Stops the thread after the frame it is encoding, drops the queued ones and waits for
    /// the thread (unless called on that thread, when the stream's last reference goes there).
    /// Idempotent.
    pub(crate) fn stop(&self) {
        {
            let mut state = self.shared.lock();
            state.stopped = true;
            state.queue.clear();
            state.spare.clear();
        }
        self.shared.wake.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

impl Drop for EncodeWorker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One rendition of the ladder as the worker encodes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rung {
    pub config: EncoderConfig,
    /// The size it is scaled to; `None`: the pushed frame's own size (a stream of one rendition).
    pub size: Option<(u32, u32)>,
}

/// The encoders of a stream's ladder, with the buffers the frames are converted and scaled into.
struct Ladder {
    rungs: Vec<Rung>,
    encoders: Vec<H264Encoder>,
    /// The pushed frame in I420 at its own size (a ladder converts once for every rendition).
    full: I420Buffer,
    scaled: I420Buffer,
    scaler: Scaler,
}

impl Ladder {
    fn new(rungs: Vec<Rung>) -> Self {
        let encoders = rungs.iter().map(|r| H264Encoder::new(r.config)).collect();
        Self {
            rungs,
            encoders,
            full: I420Buffer::new(2, 2),
            scaled: I420Buffer::new(2, 2),
            scaler: Scaler::default(),
        }
    }

    /// Fresh encoders (each starts with an IDR), after a panic left them in an unknown state.
    fn reset(&mut self) {
        self.encoders = self
            .rungs
            .iter()
            .map(|r| H264Encoder::new(r.config))
            .collect();
    }

    /// Encodes `frame` for every rendition and hands each access unit to the sink. Returns,
    /// per rendition, whether an IDR reached the stream, or the error it failed with.
    fn encode<S: EncodedSink>(
        &mut self,
        sink: &S,
        frame: &RawFrame<'_>,
        pts: Duration,
        forced: &[bool],
    ) -> Vec<Result<bool>> {
        let single = matches!(self.rungs.as_slice(), [Rung { size: None, .. }]);
        if !single {
            if let Err(e) = to_i420(frame, &mut self.full) {
                return self.rungs.iter().map(|_| Err(again(&e))).collect();
            }
        }
        let mut results = Vec::with_capacity(self.rungs.len());
        for (index, (rung, encoder)) in self.rungs.iter().zip(&mut self.encoders).enumerate() {
            let force = forced.get(index).copied().unwrap_or(false);
            let encoded = match rung.size {
                _ if single => encoder.encode(frame, force),
                Some((w, h)) if (w, h) != (self.full.width, self.full.height) => self
                    .scaler
                    .scale(&self.full, &mut self.scaled, w, h)
                    .and_then(|()| encoder.encode(&self.scaled.as_raw_frame(), force)),
                _ => encoder.encode(&self.full.as_raw_frame(), force),
            };
            results.push(encoded.map(|encoded| match encoded {
                Some(encoded) => {
                    let keyframe = encoded.keyframe;
                    sink.deliver(index, encoded, pts) && keyframe
                }
                None => false,
            }));
        }
        results
    }
}

/// The same failure again, for each rendition it stopped.
fn again(e: &Error) -> Error {
    Error::Encoder(e.to_string())
}

fn run<S: EncodedSink>(shared: &Shared, rungs: Vec<Rung>, sink: &Weak<S>) {
    let mut ladder = Ladder::new(rungs);
    loop {
        let job = {
            let mut state = shared.lock();
            loop {
                if state.stopped {
                    return;
                }
                if let Some(job) = state.queue.pop_front() {
                    break job;
                }
                state = shared.wake.wait(state).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Some(sink) = sink.upgrade() else {
            return;
        };
        let forced: Vec<bool> = (0..ladder.rungs.len())
            .map(|r| sink.take_keyframe_request(r))
            .collect();
        for (r, target) in ladder.encoders.iter_mut().enumerate() {
            if let Some(bps) = sink.target_bitrate(r) {
                if bps != target.config().bitrate_bps {
                    tracing::debug!(
                        rendition = r + 1,
                        bps,
                        "encoder bitrate follows the viewers"
                    );
                    target.set_bitrate(bps);
                }
            }
        }
        // Everything that runs for the job is guarded: a panic must not end the thread, or the
        // stream would silently stop encoding while pushes keep succeeding.
        let results = catch_unwind(AssertUnwindSafe(|| {
            let frame = RawFrame::packed(job.format, job.width, job.height, &job.data)?;
            Ok(ladder.encode(&*sink, &frame, job.pts, &forced))
        }))
        .unwrap_or_else(|_| {
            Err(Error::Encoder(
                "the encoder panicked; it was restarted".into(),
            ))
        });
        let results = match results {
            Ok(r) => r,
            Err(e) => {
                // Whatever state the encoders were left in, fresh ones start with an IDR.
                ladder.reset();
                forced.iter().map(|_| Err(again(&e))).collect()
            }
        };
        let mut failure = None;
        for (r, result) in results.into_iter().enumerate() {
            // A request is served only by an IDR that reached the stream.
            if forced.get(r).copied().unwrap_or(false) && !matches!(result, Ok(true)) {
                sink.restore_keyframe_request(r);
            }
            if let Err(e) = result {
                tracing::warn!(
                    "built-in encoder: {}x{} {} frame not encoded for rendition {}: {e}",
                    job.width,
                    job.height,
                    job.format,
                    r + 1
                );
                failure.get_or_insert(e);
            }
        }
        // The stream may go with this reference (its last handle was dropped meanwhile): then
        // its worker is stopped from this thread, and the loop ends at the top.
        drop(sink);
        let mut state = shared.lock();
        if failure.is_some() {
            state.failure = failure;
        }
        if !state.stopped && state.spare.len() < MAX_SPARE {
            state.spare.push(job.data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

    type Delivered = (usize, Option<(u32, u32)>);

    #[derive(Default)]
    struct Collect {
        keyframe_wanted: AtomicBool,
        delivered: Mutex<Vec<(bool, Duration)>>,
        /// Rendition and the size its access unit decodes to.
        sizes: Mutex<Vec<Delivered>>,
        count: AtomicUsize,
    }

    impl EncodedSink for Collect {
        fn take_keyframe_request(&self, _rendition: usize) -> bool {
            self.keyframe_wanted.swap(false, SeqCst)
        }
        fn restore_keyframe_request(&self, _rendition: usize) {
            self.keyframe_wanted.store(true, SeqCst);
        }
        fn deliver(&self, rendition: usize, encoded: EncodedVideo, pts: Duration) -> bool {
            self.delivered.lock().unwrap().push((encoded.keyframe, pts));
            self.sizes
                .lock()
                .unwrap()
                .push((rendition, sps_size(&encoded.data)));
            self.count.fetch_add(1, SeqCst);
            true
        }
    }

    fn one() -> Vec<Rung> {
        vec![Rung {
            config: EncoderConfig::default(),
            size: None,
        }]
    }

    /// The picture size an access unit decodes to.
    fn sps_size(au: &[u8]) -> Option<(u32, u32)> {
        let mut decoder = openh264::decoder::Decoder::new().ok()?;
        let yuv = decoder.decode(au).ok()??;
        let (w, h) = openh264::formats::YUVSource::dimensions(&yuv);
        Some((w as u32, h as u32))
    }

    #[test]
    fn a_ladder_scales_and_encodes_each_rendition_once_per_frame() {
        let sink = Arc::new(Collect::default());
        let rung = |w, h, bps| Rung {
            config: EncoderConfig {
                bitrate_bps: bps,
                ..EncoderConfig::default()
            },
            size: Some((w, h)),
        };
        let rungs = vec![
            rung(320, 240, 600_000),
            rung(160, 120, 200_000),
            rung(80, 60, 100_000),
        ];
        let worker = EncodeWorker::start(rungs, Arc::downgrade(&sink)).unwrap();
        let pixels = vec![90u8; 320 * 240 * 4];
        let frame = RawFrame::packed(PixelFormat::Bgra, 320, 240, &pixels).unwrap();
        worker.push(&frame, Duration::from_millis(0));
        wait_for(&sink, 3);
        let sizes = sink.sizes.lock().unwrap().clone();
        assert_eq!(
            sizes,
            vec![
                (0, Some((320, 240))),
                (1, Some((160, 120))),
                (2, Some((80, 60)))
            ]
        );
        worker.stop();
    }

    fn wait_for(sink: &Collect, n: usize) {
        for _ in 0..500 {
            if sink.count.load(SeqCst) >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("only {} of {n} frames encoded", sink.count.load(SeqCst));
    }

    #[test]
    fn frames_are_encoded_on_the_worker_with_their_pts_and_keyframes_on_request() {
        let sink = Arc::new(Collect::default());
        let worker = EncodeWorker::start(one(), Arc::downgrade(&sink)).unwrap();
        let pixels = vec![128u8; 64 * 48 * 4];
        let frame = RawFrame::packed(PixelFormat::Rgba, 64, 48, &pixels).unwrap();
        for i in 0..2u64 {
            assert!(worker
                .push(&frame, Duration::from_millis(i * 33))
                .earlier_failure
                .is_none());
            wait_for(&sink, i as usize + 1);
        }
        sink.keyframe_wanted.store(true, SeqCst);
        worker.push(&frame, Duration::from_millis(66));
        wait_for(&sink, 3);
        let got = sink.delivered.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![
                (true, Duration::from_millis(0)),
                (false, Duration::from_millis(33)),
                (true, Duration::from_millis(66)),
            ]
        );
        assert!(!sink.keyframe_wanted.load(SeqCst), "request served");
    }

    #[test]
    fn a_full_queue_drops_the_oldest_frame_and_never_waits() {
        let sink = Arc::new(Collect::default());
        let worker = EncodeWorker::start(one(), Arc::downgrade(&sink)).unwrap();
        let pixels = vec![90u8; 640 * 480 * 3 / 2];
        let frame = RawFrame::packed(PixelFormat::I420, 640, 480, &pixels).unwrap();
        // Far faster than openh264 encodes 640x480: the queue must overflow.
        let pushed = 200;
        let dropped = (0..pushed)
            .filter(|&i| worker.push(&frame, Duration::from_millis(i)).dropped)
            .count();
        assert!(
            dropped > 0,
            "200 back-to-back pushes never filled a queue of 2"
        );
        // Every frame was either dropped or is encoded eventually: nothing else is lost.
        wait_for(&sink, pushed as usize - dropped);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(sink.count.load(SeqCst), pushed as usize - dropped);
        // The newest frame is never the dropped one.
        let last = sink.delivered.lock().unwrap().last().copied().unwrap();
        assert_eq!(last.1, Duration::from_millis(pushed - 1));
    }

    #[test]
    fn stop_joins_the_thread_and_later_pushes_are_ignored() {
        let sink = Arc::new(Collect::default());
        let worker = EncodeWorker::start(one(), Arc::downgrade(&sink)).unwrap();
        let handle_thread = worker
            .thread
            .lock()
            .unwrap()
            .as_ref()
            .unwrap()
            .thread()
            .clone();
        assert_eq!(handle_thread.name(), Some("rtcast-encode"));
        worker.stop();
        assert!(worker.thread.lock().unwrap().is_none());
        let pixels = vec![0u8; 16 * 16 * 4];
        let frame = RawFrame::packed(PixelFormat::Bgra, 16, 16, &pixels).unwrap();
        assert!(!worker.push(&frame, Duration::ZERO).dropped);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(sink.count.load(SeqCst), 0);
    }

    #[test]
    fn the_thread_ends_when_the_sink_is_gone() {
        let sink = Arc::new(Collect::default());
        let worker = EncodeWorker::start(one(), Arc::downgrade(&sink)).unwrap();
        drop(sink);
        let pixels = vec![0u8; 16 * 16 * 4];
        let frame = RawFrame::packed(PixelFormat::Rgba, 16, 16, &pixels).unwrap();
        worker.push(&frame, Duration::ZERO);
        let handle = worker.thread.lock().unwrap().take().unwrap();
        for _ in 0..500 {
            if handle.is_finished() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the encoder thread outlived its stream");
    }
}
