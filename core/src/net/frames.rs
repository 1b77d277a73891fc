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
    /// Queues a frame, or gives it back when its stream's queue is full.
    pub fn try_send(&self, input: MediaInput) -> Result<(), MediaInput> {
        {
            let mut q = self.0.lock();
            let stream = input.stream;
            let queue = q.by_stream.entry(stream).or_default();
            if queue.len() >= self.0.capacity {
                return Err(input);
            }
            let first = queue.is_empty();
            queue.push_back(input);
            if first {
                q.turn.push_back(stream);
            }
        }
        self.0.notify.notify_one();
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
            tx.try_send(input(1, ts)).unwrap();
        }
        assert!(tx.try_send(input(1, 3)).is_err(), "stream 1 is full");
        tx.try_send(input(2, 100)).unwrap();
        tx.try_send(input(2, 101)).unwrap();
        let order: Vec<(u64, u32)> = std::iter::from_fn(|| rx.try_recv())
            .map(|i| (i.stream, i.frame.rtp_timestamp))
            .collect();
        assert_eq!(order, vec![(1, 0), (2, 100), (1, 1), (2, 101), (1, 2)]);
        // Drained: room again, nothing left behind.
        tx.try_send(input(1, 4)).unwrap();
        assert_eq!(rx.try_recv().unwrap().frame.rtp_timestamp, 4);
        assert!(rx.try_recv().is_none());
        assert!(rx.0.lock().by_stream.is_empty());
    }
}
