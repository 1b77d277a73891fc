//! Events from the server to the host: viewers coming and going, keyframe requests, bitrate hints.
//!
//! Events go through a bounded broadcast queue: a host that does not read them loses the oldest
//! (and is told how many), the server never waits for it.

use std::net::SocketAddr;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::config::Protocol;

/// Identifies one viewer session for the life of the server.
pub type ViewerId = u64;

/// Something that happened that a host may act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A viewer's media is connected (ICE and DTLS done); frames flow to it from now on.
    ViewerJoined {
        /// Stream name.
        stream: String,
        /// Viewer id.
        viewer: ViewerId,
        /// Signalling protocol it came through.
        protocol: Protocol,
        /// Address of its signalling connection.
        remote: SocketAddr,
    },
    /// A viewer that had joined is gone, and everything it held is freed.
    ViewerLeft {
        /// Stream name.
        stream: String,
        /// Viewer id.
        viewer: ViewerId,
        /// Why it left.
        reason: LeaveReason,
    },
    /// A viewer needs a keyframe and rtcast has none to give: push one soon. Coalesced, at most
    /// one per stream every 500 ms. Streams fed raw frames never ask: the built-in encoder makes one.
    KeyframeRequested {
        /// Stream name.
        stream: String,
    },
    /// What the slowest viewer of a stream can receive, bits per second: the lowest of the
    /// viewers' own bandwidth estimates (REMB, which browsers send). Reported when it moves by
    /// more than 10%, at most once a second per stream. A host encoding for everyone may lower
    /// its bitrate toward it, or keep it for the other viewers: rtcast does not change it.
    BitrateHint {
        /// Stream name.
        stream: String,
        /// Bits per second.
        bps: u64,
    },
}

/// Why a viewer left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// Its signalling connection closed (or WHEP DELETE).
    Closed,
    /// ICE consent was lost (the viewer vanished) or DTLS failed.
    ConnectionLost,
    /// Media did not connect within the connect timeout.
    Timeout,
    /// The stream was removed or the server stopped.
    Shutdown,
}

impl LeaveReason {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            LeaveReason::Closed => "closed",
            LeaveReason::ConnectionLost => "connection_lost",
            LeaveReason::Timeout => "timeout",
            LeaveReason::Shutdown => "shutdown",
        }
    }
}

/// Capacity of the event queue of each subscriber.
pub const EVENT_QUEUE: usize = 1024;

/// A subscription to server events (see [`crate::Server::subscribe`]).
pub struct Events {
    rx: broadcast::Receiver<Event>,
    /// Becomes true when the server stops: streams a host still holds keep the channel open, so
    /// its closing cannot tell.
    stopped: tokio::sync::watch::Receiver<bool>,
    lost: u64,
    /// The server's counters: what this subscriber loses is counted there too.
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

/// Result of waiting for an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Recv {
    /// The next event.
    Event(Event),
    /// No event within the time asked.
    Timeout,
    /// The server stopped; no more events will come.
    Closed,
}

impl Events {
    pub(crate) fn new(
        rx: broadcast::Receiver<Event>,
        stopped: tokio::sync::watch::Receiver<bool>,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self {
            rx,
            stopped,
            lost: 0,
            metrics,
        }
    }

    fn lagged(&mut self, n: u64) {
        self.lost += n;
        crate::metrics::Metrics::add(&self.metrics.events_dropped, n);
    }

    /// Counts `n` events that a consumer of this subscription dropped after reading them (a
    /// binding's own bounded queue to its language was full): they show in [`Events::lost`] and
    /// in the server's `events_dropped`.
    pub fn dropped(&mut self, n: u64) {
        self.lagged(n);
    }

    /// Waits for the next event (async). `None` once the server stopped and every event sent
    /// before was read.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.try_recv() {
                return Some(e);
            }
            if *self.stopped.borrow() {
                return None;
            }
            tokio::select! {
                r = self.rx.recv() => match r {
                    Ok(e) => return Some(e),
                    Err(broadcast::error::RecvError::Lagged(n)) => self.lagged(n),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                r = self.stopped.changed() => {
                    if r.is_err() {
                        // The server is gone entirely; drain what is left.
                        return self.try_recv();
                    }
                }
            }
        }
    }

    /// Waits at most `timeout` for the next event, blocking the calling thread. Must not be called
    /// from inside an async runtime.
    pub fn recv_blocking(&mut self, timeout: std::time::Duration) -> Recv {
        // None: a timeout past the range of Instant (Duration::MAX) waits for ever.
        let deadline = std::time::Instant::now().checked_add(timeout);
        loop {
            match self.rx.try_recv() {
                Ok(e) => return Recv::Event(e),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.lagged(n),
                Err(broadcast::error::TryRecvError::Closed) => return Recv::Closed,
                Err(broadcast::error::TryRecvError::Empty) => {
                    if *self.stopped.borrow() {
                        return Recv::Closed;
                    }
                    if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                        return Recv::Timeout;
                    }
                    // A blocking receiver with a timeout does not exist on broadcast; 5 ms polling
                    // keeps latency low and costs nothing measurable.
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        loop {
            match self.rx.try_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.lagged(n),
                Err(_) => return None,
            }
        }
    }

    /// How many events this subscriber lost because it read too slowly (or its consumer
    /// dropped, see [`Events::dropped`]).
    pub fn lost(&self) -> u64 {
        self.lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_without_a_time_limit_is_allowed() {
        // Was `Instant::now() + timeout`: "overflow when adding duration to instant".
        let (tx, rx) = broadcast::channel(1);
        let (_stop_tx, stopped) = tokio::sync::watch::channel(false);
        let mut events = Events {
            rx,
            stopped,
            lost: 0,
            metrics: Default::default(),
        };
        drop(tx);
        assert_eq!(events.recv_blocking(std::time::Duration::MAX), Recv::Closed);
    }
}
