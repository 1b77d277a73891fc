//! The frames handed to one media loop: one bounded queue per stream, served in turn, so that a
//! burst on one stream drops frames of that stream only (its host is told, `frames_dropped`),
//! never another stream's.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::net::driver::MediaInput;

/// Frames of one stream waiting for a loop. Past this, that stream's pushes drop frames (and its
/// viewers wait for the next keyframe) instead of waiting.
pub(crate) const STREAM_FRAME_QUEUE: usize = 64;

/// Frames of one stream queued without waking a loop that has no viewer of it (it keeps the
/// stream's GOP for the next viewer; it takes them whenever it wakes, and at the latest at this
/// many): an idle loop costs a wake-up every half second per stream instead of one per frame.
pub(crate) const LAZY_WAKE: usize = 16;

#[derive(Default)]
struct Queues {
    by_stream: HashMap<u64, VecDeque<MediaInput>>,
    /// The streams with frames waiting, in the order they are served (each exactly once).
    turn: VecDeque<u64>,
}

struct Shared {
    queues: Mutex<Queues>,
    capacity: usize,
    notify: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The streams' side: cheap to clone, never waits.
#[derive(Clone)]
pub(crate) struct FrameSender(Arc<Shared>);

/// The loop's side.
pub(crate) struct FrameReceiver(Arc<Shared>);

/// A loop's frame queues, `capacity` frames per stream.
pub(crate) fn channel(capacity: usize) -> (FrameSender, FrameReceiver) {
    let shared = Arc::new(Shared {
        queues: Mutex::new(Queues::default()),
        capacity,
        notify: Notify::new(),
    });
    (FrameSender(shared.clone()), FrameReceiver(shared))
}

impl FrameSender {
    /// Queues a frame, or gives it back when its stream's queue is full. `urgent`: the loop has
    /// viewers of the stream, wake it now; otherwise only once [`LAZY_WAKE`] frames wait.
    pub fn try_send(&self, input: MediaInput, urgent: bool) -> Result<(), MediaInput> {
        let wake = {
            let mut q = self.0.lock();
            let stream = input.stream;
            let queue = q.by_stream.entry(stream).or_default();
            if queue.len() >= self.0.capacity {
                return Err(input);
            }
            let first = queue.is_empty();
            queue.push_back(input);
            let wake = urgent || queue.len() >= LAZY_WAKE.min(self.0.capacity);
            if first {
                q.turn.push_back(stream);
            }
            wake
        };
        if wake {
            self.0.notify.notify_one();
        }
        Ok(())
    }
}

impl FrameReceiver {
    /// The next frame, the streams taking turns; `None` when none waits.
    pub fn try_recv(&self) -> Option<MediaInput> {
        let mut q = self.0.lock();
        while let Some(stream) = q.turn.pop_front() {
            let Some(queue) = q.by_stream.get_mut(&stream) else {
                continue;
            };
            let Some(input) = queue.pop_front() else {
                q.by_stream.remove(&stream);
                continue;
            };
            if queue.is_empty() {
                q.by_stream.remove(&stream);
            } else {
                q.turn.push_back(stream);
            }
            return Some(input);
        }
        None
    }

    /// Waits for the next frame (cancel-safe: a frame is taken only when it is returned).
    pub async fn recv(&mut self) -> MediaInput {
        loop {
            if let Some(input) = self.try_recv() {
                return input;
            }
            self.0.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::packetizer::{MediaFrame, TrackKind};
    use std::future::Future;

    fn input(stream: u64, ts: u32) -> MediaInput {
        MediaInput {
            stream,
            frame: Arc::new(MediaFrame::new(TrackKind::Video, ts, false, Vec::new())),
            after_gap: false,
            raw_source: false,
        }
    }

    #[test]
    fn a_burst_on_one_stream_fills_its_queue_only_and_streams_take_turns() {
        let (tx, rx) = channel(3);
        for ts in 0..3 {
            tx.try_send(input(1, ts), true).unwrap();
        }
        assert!(tx.try_send(input(1, 3), true).is_err(), "stream 1 is full");
        tx.try_send(input(2, 100), true).unwrap();
        tx.try_send(input(2, 101), true).unwrap();
        let order: Vec<(u64, u32)> = std::iter::from_fn(|| rx.try_recv())
            .map(|i| (i.stream, i.frame.rtp_timestamp))
            .collect();
        assert_eq!(order, vec![(1, 0), (2, 100), (1, 1), (2, 101), (1, 2)]);
        // Drained: room again, nothing left behind.
        tx.try_send(input(1, 4), true).unwrap();
        assert_eq!(rx.try_recv().unwrap().frame.rtp_timestamp, 4);
        assert!(rx.try_recv().is_none());
        assert!(rx.0.lock().by_stream.is_empty());
    }

    #[test]
    fn a_loop_without_viewers_of_a_stream_is_woken_only_every_few_frames() {
        let (tx, mut rx) = channel(STREAM_FRAME_QUEUE);
        let woken = |rx: &mut FrameReceiver| {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let notified = std::pin::pin!(rx.0.notify.notified());
            notified.poll(&mut cx).is_ready()
        };
        for ts in 0..LAZY_WAKE as u32 - 1 {
            tx.try_send(input(1, ts), false).unwrap();
        }
        assert!(!woken(&mut rx), "not woken for fewer than LAZY_WAKE frames");
        tx.try_send(input(1, 99), false).unwrap();
        assert!(woken(&mut rx));
        // Whenever it wakes it takes them all, in order.
        let got: Vec<u32> = std::iter::from_fn(|| rx.try_recv())
            .map(|i| i.frame.rtp_timestamp)
            .collect();
        assert_eq!(got.len(), LAZY_WAKE);
        assert_eq!(got.last(), Some(&99));
        tx.try_send(input(1, 100), true).unwrap();
        assert!(woken(&mut rx), "a frame for viewers wakes at once");
    }
}
