//! Events from the server to the host: viewers coming and going, keyframe requests, bitrate hints.
//!
//! Events go through a bounded broadcast queue: a host that does not read them loses the oldest
//! (and is told how many), the server never waits for it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{JoinHandle, Thread, ThreadId};
use std::time::{Duration, Instant};

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
    /// one per stream and rendition every 500 ms. Streams fed raw frames never ask: the built-in
    /// encoder makes one.
    KeyframeRequested {
        /// Stream name.
        stream: String,
        /// The rendition that needs it (`v1` for a stream of one rendition).
        rendition: String,
    },
    /// A viewer was moved to another rendition of its stream (at a keyframe of it): its
    /// bandwidth estimate fell under its rendition or held above a better one, or it asked for
    /// a rendition (Flussonic's `request_tracks`).
    RenditionSwitched {
        /// Stream name.
        stream: String,
        /// Viewer id.
        viewer: ViewerId,
        /// The rendition it had (`v1`, `v2`, …).
        from: String,
        /// The rendition it has now.
        to: String,
        /// Its bandwidth estimate when the switch was decided, bits per second (0 when none).
        estimate_bps: u64,
    },
    /// What the slowest viewer of a stream can receive, bits per second: the lowest of the
    /// viewers' bandwidth estimates (transport-wide congestion control on adaptive streams, else
    /// REMB). Reported when it moves by more than 10%, at most once a second per stream. A host
    /// encoding for everyone may lower its bitrate toward it, or keep it for the other viewers;
    /// the built-in encoder follows it when `EncoderConfig::follow_viewers_floor_bps` is set.
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

    /// Waits at most `timeout` for the next event, blocking the calling thread (it sleeps until an
    /// event comes, the server stops or the time is up: no polling). Must not be called from
    /// inside an async runtime.
    pub fn recv_blocking(&mut self, timeout: Duration) -> Recv {
        // None: a timeout past the range of Instant (Duration::MAX) waits for ever.
        let deadline = Instant::now().checked_add(timeout);
        match block_on(self.recv(), || false, deadline) {
            Wait::Ready(Some(e)) => Recv::Event(e),
            Wait::Ready(None) => Recv::Closed,
            Wait::Interrupted | Wait::TimedOut => Recv::Timeout,
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

/// Where an [`EventDispatcher`] delivers: a binding's conversion of events into its language.
pub trait EventSink: Send + 'static {
    /// Delivers one event. Returns how many copies of it were dropped rather than delivered
    /// (a binding's own bounded queue to its language was full): they are counted in
    /// [`Events::lost`] and the server's `events_dropped`.
    fn deliver(&mut self, event: Event) -> u64;

    /// The server stopped and every event it sent was delivered: no more will come. Not called
    /// when the dispatcher is stopped by [`EventDispatcher::stop`].
    fn end(&mut self) {}
}

thread_local! {
    static ON_DISPATCHER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Delivers a subscription's events, in order and one at a time, to an [`EventSink`] on a
/// thread of its own: the host's callbacks never run on a network thread, never concurrently
/// with each other, and a slow one only makes the subscription's queue fill (past
/// [`EVENT_QUEUE`] the oldest are dropped and counted). The thread sleeps until an event comes
/// or it is told to stop; it never polls.
///
/// The shutdown rule, the same for every binding: once the server stops, the thread delivers
/// every event sent before (the viewers that left on shutdown included), calls
/// [`EventSink::end`] and ends; [`EventDispatcher::wait`] waits for that. [`EventDispatcher::stop`]
/// ends it earlier (to change the callback): it delivers what is already queued, then hands the
/// subscription back.
pub struct EventDispatcher {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Events>,
}

impl EventDispatcher {
    /// Starts a thread named `name` delivering `events` to `sink`.
    pub fn start(events: Events, name: &str, sink: impl EventSink) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || dispatch(events, sink, &flag))?;
        Ok(Self { stop, thread })
    }

    /// The dispatcher thread's id.
    pub fn thread_id(&self) -> ThreadId {
        self.thread.thread().id()
    }

    /// Whether the calling thread is a dispatcher's thread, i.e. inside a sink's call (where
    /// waiting for a dispatcher would wait for itself).
    pub fn on_dispatcher_thread() -> bool {
        ON_DISPATCHER.with(|f| f.get())
    }

    /// Stops delivering once the events already queued are delivered, waits for the thread, and
    /// gives the subscription back so that another dispatcher can go on from there. Called from
    /// the dispatcher's own thread (from inside the sink), it only asks the thread to end after
    /// the current delivery and returns `None`.
    pub fn stop(self) -> Option<Events> {
        self.stop.store(true, Ordering::Release);
        self.thread.thread().unpark();
        if std::thread::current().id() == self.thread_id() {
            return None;
        }
        self.thread.join().ok()
    }

    /// Waits until the server stopped and the last event was delivered (see the shutdown rule).
    /// Called from the dispatcher's own thread it returns at once.
    pub fn wait(self) {
        if std::thread::current().id() != self.thread_id() {
            let _ = self.thread.join();
        }
    }
}

fn dispatch(mut events: Events, mut sink: impl EventSink, stop: &AtomicBool) -> Events {
    ON_DISPATCHER.with(|f| f.set(true));
    let stopped = || stop.load(Ordering::Acquire);
    loop {
        match block_on(events.recv(), stopped, None) {
            Wait::Ready(Some(e)) => hand_over(&mut events, &mut sink, e),
            Wait::Ready(None) => {
                sink.end();
                return events;
            }
            Wait::Interrupted | Wait::TimedOut => {
                // Deliver what was queued before the stop.
                while let Some(e) = events.try_recv() {
                    hand_over(&mut events, &mut sink, e);
                }
                return events;
            }
        }
    }
}

/// Gives `e` to `sink`, counting on the subscription what the sink dropped.
fn hand_over(events: &mut Events, sink: &mut impl EventSink, e: Event) {
    let dropped = sink.deliver(e);
    if dropped > 0 {
        events.dropped(dropped);
    }
}

/// How [`block_on`] ended.
enum Wait<T> {
    Ready(T),
    /// `interrupted()` turned true.
    Interrupted,
    TimedOut,
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `fut` on the calling thread, which sleeps (parked) between its wake-ups, until it is
/// ready, `interrupted()` is true (checked at every wake-up; whoever sets it must unpark this
/// thread) or `deadline` passes. Enough for the runtime-independent channels of `tokio::sync`,
/// which is all it is used for; dropping `fut` early is fine for them (cancel-safe).
fn block_on<F: Future>(
    fut: F,
    interrupted: impl Fn() -> bool,
    deadline: Option<Instant>,
) -> Wait<F::Output> {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if interrupted() {
            return Wait::Interrupted;
        }
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Wait::Ready(v);
        }
        match deadline {
            None => std::thread::park(),
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => std::thread::park_timeout(left),
                _ => return Wait::TimedOut,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription() -> (
        broadcast::Sender<Event>,
        tokio::sync::watch::Sender<bool>,
        Events,
    ) {
        let (tx, rx) = broadcast::channel(4);
        let (stop_tx, stopped) = tokio::sync::watch::channel(false);
        let events = Events::new(rx, stopped, Default::default());
        (tx, stop_tx, events)
    }

    fn hint(bps: u64) -> Event {
        Event::BitrateHint {
            stream: "s".into(),
            bps,
        }
    }

    /// Records what it is given; drops every event whose bps is odd.
    struct Record(std::sync::mpsc::Sender<Option<u64>>);

    impl EventSink for Record {
        fn deliver(&mut self, event: Event) -> u64 {
            let Event::BitrateHint { bps, .. } = event else {
                return 0;
            };
            let _ = self.0.send(Some(bps));
            bps % 2
        }
        fn end(&mut self) {
            let _ = self.0.send(None);
        }
    }

    #[test]
    fn a_dispatcher_delivers_in_order_then_everything_sent_before_the_server_stopped_then_the_end()
    {
        let (tx, stop_tx, events) = subscription();
        let (out, got) = std::sync::mpsc::channel();
        let d = EventDispatcher::start(events, "test-events", Record(out)).unwrap();
        tx.send(hint(2)).unwrap();
        // Delivered while the thread sleeps: it is woken, not polling.
        assert_eq!(got.recv().unwrap(), Some(2));
        tx.send(hint(4)).unwrap();
        tx.send(hint(6)).unwrap();
        stop_tx.send_replace(true);
        d.wait();
        let rest: Vec<_> = got.try_iter().collect();
        assert_eq!(rest, vec![Some(4), Some(6), None]);
    }

    #[test]
    fn stopping_a_dispatcher_delivers_what_is_queued_and_hands_the_subscription_on() {
        let (tx, _stop_tx, events) = subscription();
        let (out, got) = std::sync::mpsc::channel();
        let d = EventDispatcher::start(events, "test-events", Record(out)).unwrap();
        tx.send(hint(3)).unwrap();
        assert_eq!(got.recv().unwrap(), Some(3));
        let mut events = d.stop().unwrap();
        // The sink's drop is counted on the subscription; no end() on a stop.
        assert_eq!(events.lost(), 1);
        assert!(got.try_recv().is_err());
        tx.send(hint(8)).unwrap();
        assert_eq!(
            events.recv_blocking(Duration::from_secs(5)),
            Recv::Event(hint(8))
        );
        assert_eq!(
            events.recv_blocking(Duration::from_millis(10)),
            Recv::Timeout
        );
    }

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
