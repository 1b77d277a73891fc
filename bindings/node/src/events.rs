//! Events to JavaScript: the core's event dispatcher (one thread per server, no polling) queues
//! each event to the listeners registered with `server.on(name, listener)`, through threadsafe
//! functions.
//!
//! Listeners are weak threadsafe functions: they never keep the process alive on their own (the
//! server's keep-alive handle does that while it runs, see `server.rs`). After `close()` the thread
//! has delivered the shutdown's events and ended, and the listeners are released.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::Either5;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use rtcast_core::{Event, EventDispatcher, EventSink, Events};

/// `server.on('viewer', ...)`: a viewer's media is connected; frames flow to it from now on.
#[napi(object)]
#[derive(Clone)]
pub struct ViewerEvent {
    /// Stream name.
    pub stream: String,
    /// Viewer id, unique for the life of the server.
    pub viewer: i64,
    /// Signalling protocol it came through.
    #[napi(ts_type = "'websocket' | 'whep'")]
    pub protocol: String,
    /// Address of its signalling connection, `ip:port`.
    pub remote: String,
}

/// `server.on('viewerLeft', ...)`: a viewer that had joined is gone.
#[napi(object)]
#[derive(Clone)]
pub struct ViewerLeftEvent {
    /// Stream name.
    pub stream: String,
    /// Viewer id.
    pub viewer: i64,
    /// Why it left.
    #[napi(ts_type = "'closed' | 'connection_lost' | 'timeout' | 'shutdown'")]
    pub reason: String,
}

/// `server.on('keyframeRequest', ...)`: a viewer needs a keyframe of a rendition and rtcast has
/// none; push one soon. Coalesced (at most one per stream and rendition every 500 ms); streams
/// fed raw frames never ask.
#[napi(object)]
#[derive(Clone)]
pub struct KeyframeRequestEvent {
    /// Stream name.
    pub stream: String,
    /// The rendition that needs it (`'v1'` for a stream of one).
    pub rendition: String,
}

/// `server.on('renditionSwitch', ...)`: a viewer was moved to another rendition of its stream
/// (at a keyframe of it): its bandwidth estimate fell under its rendition or held above a better
/// one, or it asked for one.
#[napi(object)]
#[derive(Clone)]
pub struct RenditionSwitchEvent {
    /// Stream name.
    pub stream: String,
    /// Viewer id.
    pub viewer: i64,
    /// The rendition it had (`'v1'`, `'v2'`...).
    pub from: String,
    /// The rendition it has now.
    pub to: String,
    /// Its bandwidth estimate when the switch was decided, bits per second (0 when it had none).
    pub estimate_bps: i64,
}

/// `server.on('bitrate', ...)`: estimated bandwidth toward the slowest viewer of a stream.
#[napi(object)]
#[derive(Clone)]
pub struct BitrateEvent {
    /// Stream name.
    pub stream: String,
    /// Bits per second.
    pub bps: i64,
}

/// The event names `server.on` takes, and what each listener receives.
#[napi(object)]
#[allow(dead_code)] // only its TypeScript shape is used (the `on` listener types)
pub struct ServerEvents {
    /// A viewer joined.
    pub viewer: ViewerEvent,
    /// A viewer left.
    pub viewer_left: ViewerLeftEvent,
    /// A keyframe is needed.
    pub keyframe_request: KeyframeRequestEvent,
    /// A viewer was moved to another rendition.
    pub rendition_switch: RenditionSwitchEvent,
    /// A bitrate hint.
    pub bitrate: BitrateEvent,
}

pub type JsEvent =
    Either5<ViewerEvent, ViewerLeftEvent, KeyframeRequestEvent, BitrateEvent, RenditionSwitchEvent>;

/// Events waiting for one listener on the JS thread. When the JS thread is too busy to take
/// them, newer events are dropped and counted in `stats().eventsDropped`.
pub const LISTENER_QUEUE: usize = 1024;

/// A listener: called with one event object; weak (does not keep the process alive); at most
/// [`LISTENER_QUEUE`] events wait for it.
pub type Listener = ThreadsafeFunction<JsEvent, (), JsEvent, Status, false, true, LISTENER_QUEUE>;

/// Which event a listener wants.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Viewer,
    ViewerLeft,
    KeyframeRequest,
    Bitrate,
    RenditionSwitch,
}

impl Kind {
    pub const NAMES: [&'static str; 5] = [
        "viewer",
        "viewerLeft",
        "keyframeRequest",
        "bitrate",
        "renditionSwitch",
    ];

    pub fn from_name(name: &str) -> Option<Kind> {
        Some(match name {
            "viewer" => Kind::Viewer,
            "viewerLeft" => Kind::ViewerLeft,
            "keyframeRequest" => Kind::KeyframeRequest,
            "bitrate" => Kind::Bitrate,
            "renditionSwitch" => Kind::RenditionSwitch,
            _ => return None,
        })
    }
}

/// The listeners of one server.
pub type Listeners = Arc<Mutex<Vec<(Kind, Arc<Listener>)>>>;

/// Converts a core event; `None` for kinds this binding does not know (the core's enum is
/// non-exhaustive).
fn convert(event: Event) -> Option<(Kind, JsEvent)> {
    Some(match event {
        Event::ViewerJoined {
            stream,
            viewer,
            protocol,
            remote,
        } => (
            Kind::Viewer,
            Either5::A(ViewerEvent {
                stream,
                viewer: viewer as i64,
                protocol: protocol.name().to_owned(),
                remote: remote.to_string(),
            }),
        ),
        Event::ViewerLeft {
            stream,
            viewer,
            reason,
        } => (
            Kind::ViewerLeft,
            Either5::B(ViewerLeftEvent {
                stream,
                viewer: viewer as i64,
                reason: reason.name().to_owned(),
            }),
        ),
        Event::KeyframeRequested { stream, rendition } => (
            Kind::KeyframeRequest,
            Either5::C(KeyframeRequestEvent { stream, rendition }),
        ),
        Event::RenditionSwitched {
            stream,
            viewer,
            from,
            to,
            estimate_bps,
        } => (
            Kind::RenditionSwitch,
            Either5::E(RenditionSwitchEvent {
                stream,
                viewer: viewer as i64,
                from,
                to,
                estimate_bps: estimate_bps.min(i64::MAX as u64) as i64,
            }),
        ),
        Event::BitrateHint { stream, bps } => (
            Kind::Bitrate,
            Either5::D(BitrateEvent {
                stream,
                bps: bps.min(i64::MAX as u64) as i64,
            }),
        ),
        _ => return None,
    })
}

/// The listeners as the core's dispatcher sees them.
struct Sink(Listeners);

impl EventSink for Sink {
    fn deliver(&mut self, event: Event) -> u64 {
        let Some((kind, js)) = convert(event) else {
            return 0;
        };
        // Clone the matching listeners out of the lock: a listener added meanwhile must not wait
        // for this delivery.
        let targets: Vec<Arc<Listener>> = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, l)| l.clone())
            .collect();
        let mut dropped = 0;
        for listener in targets {
            // NonBlocking: never waits for JS; a full queue drops this event (counted).
            let status = listener.call(js.clone(), ThreadsafeFunctionCallMode::NonBlocking);
            if status == Status::QueueFull {
                dropped += 1;
            }
        }
        dropped
    }
}

/// Starts the core's dispatcher delivering `events` to `listeners` (its delivery and shutdown
/// rule: once the server stopped, every event sent before is delivered, then the thread ends).
pub fn spawn(events: Events, listeners: Listeners) -> std::io::Result<EventDispatcher> {
    EventDispatcher::start(events, "rtcast-node-events", Sink(listeners))
}
