//! Events to C: the core's event dispatcher (one thread per server, see
//! `rtcast_core::EventDispatcher`) calls the host's callback with each event converted to
//! `rtcast_event`, so callbacks never run concurrently and never on a network thread.

use std::ffi::{c_char, c_void, CString};
use std::ptr;

use rtcast_core::{Event, EventDispatcher, EventSink, Events, LeaveReason, Protocol};

/// What happened.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum rtcast_event_kind {
    /// A viewer's media is connected; frames flow to it from now on. `stream`, `viewer`,
    /// `protocol` and `remote` are set.
    RTCAST_EVENT_VIEWER_JOINED = 1,
    /// A viewer that had joined is gone. `stream`, `viewer` and `leave_reason` are set.
    RTCAST_EVENT_VIEWER_LEFT = 2,
    /// A viewer needs a keyframe of `rendition` and rtcast has none: push one soon (coalesced,
    /// at most one per stream and rendition every 500 ms; streams fed raw frames never ask).
    /// `stream` and `rendition` are set.
    RTCAST_EVENT_KEYFRAME_REQUESTED = 3,
    /// Estimated bandwidth toward the slowest viewer of `stream`, in `bps`.
    RTCAST_EVENT_BITRATE_HINT = 4,
    /// A viewer was moved from one rendition of its stream to another (at a keyframe of it): its
    /// bandwidth estimate fell under its rendition or held above a better one, or it asked for
    /// one. `stream`, `viewer`, `from`, `to` and `estimate_bps` are set.
    RTCAST_EVENT_RENDITION_SWITCHED = 5,
}

/// Signalling protocol a viewer came through.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum rtcast_protocol {
    /// Not applicable to this event.
    RTCAST_PROTOCOL_NONE = 0,
    /// Flussonic's WebSocket protocol (`/STREAM/webrtc`).
    RTCAST_PROTOCOL_WEBSOCKET = 1,
    /// WHEP (`/STREAM/whep`).
    RTCAST_PROTOCOL_WHEP = 2,
}

/// Why a viewer left.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum rtcast_leave_reason {
    /// Not applicable to this event.
    RTCAST_LEAVE_NONE = 0,
    /// Its signalling connection closed (or WHEP DELETE).
    RTCAST_LEAVE_CLOSED = 1,
    /// ICE consent was lost (the viewer vanished) or DTLS failed.
    RTCAST_LEAVE_CONNECTION_LOST = 2,
    /// Media did not connect within the connect timeout.
    RTCAST_LEAVE_TIMEOUT = 3,
    /// The stream was removed or the server stopped.
    RTCAST_LEAVE_SHUTDOWN = 4,
}

/// One event, lent to the callback: it and its strings are valid only until the callback
/// returns (copy what you keep).
#[repr(C)]
#[derive(Debug)]
pub struct rtcast_event {
    /// What happened.
    pub kind: rtcast_event_kind,
    /// Stream name, NUL-terminated; never NULL.
    pub stream: *const c_char,
    /// Viewer id, unique for the life of the server; 0 for stream events.
    pub viewer: u64,
    /// Address of the viewer's signalling connection ("203.0.113.7:51234"), NUL-terminated;
    /// "" when not applicable; never NULL.
    pub remote: *const c_char,
    /// Signalling protocol of a joining viewer; `RTCAST_PROTOCOL_NONE` otherwise.
    pub protocol: rtcast_protocol,
    /// Why a viewer left; `RTCAST_LEAVE_NONE` otherwise.
    pub leave_reason: rtcast_leave_reason,
    /// Bits per second of a bitrate hint; 0 otherwise.
    pub bps: u64,
    /// The rendition a keyframe is requested for ("v1" for a stream of one), NUL-terminated;
    /// "" otherwise; never NULL.
    pub rendition: *const c_char,
    /// The rendition a switched viewer had ("v1", "v2", ...), NUL-terminated; "" otherwise;
    /// never NULL.
    pub from: *const c_char,
    /// The rendition a switched viewer has now, NUL-terminated; "" otherwise; never NULL.
    pub to: *const c_char,
    /// A switched viewer's bandwidth estimate when the switch was decided, bits per second (0
    /// when it had none); 0 otherwise.
    pub estimate_bps: u64,
}

/// Receives server events. Runs on the server's one event thread (named "rtcast-events"), one
/// call at a time, never concurrently with itself; `userdata` is the pointer given to
/// `rtcast_server_set_event_callback`. It must return promptly (events queue up meanwhile; past
/// 1024 the oldest are dropped) and must not unwind (C++ exceptions, longjmp) out of itself.
/// It may call any rtcast function, including `rtcast_server_stop` and `rtcast_server_free`
/// (the event thread then ends after the callback returns), but not
/// `rtcast_server_set_event_callback`.
#[allow(non_camel_case_types)]
pub type rtcast_event_callback =
    Option<unsafe extern "C" fn(event: *const rtcast_event, userdata: *mut c_void)>;

/// The callback and its userdata, moved to the event thread.
struct Target {
    callback: unsafe extern "C" fn(*const rtcast_event, *mut c_void),
    userdata: *mut c_void,
}

// SAFETY: the host promises, by registering the callback, that `userdata` may be used from the
// rtcast event thread (documented on rtcast_server_set_event_callback).
unsafe impl Send for Target {}

impl EventSink for Target {
    fn deliver(&mut self, event: Event) -> u64 {
        deliver(self, &event);
        0
    }
}

/// The event thread of a server: the core's dispatcher (its delivery and shutdown rule) with the
/// host's callback as its sink.
pub(crate) struct EventThread(EventDispatcher);

impl EventThread {
    /// Starts a thread delivering the events of `events` to `callback`.
    pub fn start(
        events: Events,
        callback: unsafe extern "C" fn(*const rtcast_event, *mut c_void),
        userdata: *mut c_void,
    ) -> std::io::Result<Self> {
        EventDispatcher::start(events, "rtcast-events", Target { callback, userdata }).map(Self)
    }

    /// Stops the thread after it delivered the events already queued, and waits for it; returns
    /// the subscription so a new callback can go on from there. Called on the event thread
    /// itself (from the callback), it only asks the thread to end and returns `None`.
    pub fn stop(self) -> Option<Events> {
        self.0.stop()
    }

    /// Waits until the (stopped) server's last event was delivered; at once on the event
    /// thread itself.
    pub fn wait(self) {
        self.0.wait()
    }
}

/// Whether the calling thread is an rtcast event thread (i.e. inside an event callback).
pub(crate) fn on_event_thread() -> bool {
    EventDispatcher::on_dispatcher_thread()
}

fn deliver(target: &Target, event: &Event) {
    let empty = c"";
    let mut out = rtcast_event {
        kind: rtcast_event_kind::RTCAST_EVENT_KEYFRAME_REQUESTED,
        stream: ptr::null(),
        viewer: 0,
        remote: empty.as_ptr(),
        protocol: rtcast_protocol::RTCAST_PROTOCOL_NONE,
        leave_reason: rtcast_leave_reason::RTCAST_LEAVE_NONE,
        bps: 0,
        rendition: empty.as_ptr(),
        from: empty.as_ptr(),
        to: empty.as_ptr(),
        estimate_bps: 0,
    };
    // The strings the event points to, kept until the callback returns.
    let (mut remote, mut rendition_name, mut from_name, mut to_name) = (None, None, None, None);
    let stream = match event {
        Event::ViewerJoined {
            stream,
            viewer,
            protocol,
            remote: addr,
        } => {
            out.kind = rtcast_event_kind::RTCAST_EVENT_VIEWER_JOINED;
            out.viewer = *viewer;
            out.protocol = match protocol {
                Protocol::WebSocket => rtcast_protocol::RTCAST_PROTOCOL_WEBSOCKET,
                Protocol::Whep => rtcast_protocol::RTCAST_PROTOCOL_WHEP,
            };
            remote = Some(c_string(&addr.to_string()));
            stream
        }
        Event::ViewerLeft {
            stream,
            viewer,
            reason,
        } => {
            out.kind = rtcast_event_kind::RTCAST_EVENT_VIEWER_LEFT;
            out.viewer = *viewer;
            out.leave_reason = match reason {
                LeaveReason::Closed => rtcast_leave_reason::RTCAST_LEAVE_CLOSED,
                LeaveReason::ConnectionLost => rtcast_leave_reason::RTCAST_LEAVE_CONNECTION_LOST,
                LeaveReason::Timeout => rtcast_leave_reason::RTCAST_LEAVE_TIMEOUT,
                LeaveReason::Shutdown => rtcast_leave_reason::RTCAST_LEAVE_SHUTDOWN,
            };
            stream
        }
        Event::KeyframeRequested { stream, rendition } => {
            rendition_name = Some(c_string(rendition));
            stream
        }
        Event::RenditionSwitched {
            stream,
            viewer,
            from,
            to,
            estimate_bps,
        } => {
            out.kind = rtcast_event_kind::RTCAST_EVENT_RENDITION_SWITCHED;
            out.viewer = *viewer;
            out.estimate_bps = *estimate_bps;
            from_name = Some(c_string(from));
            to_name = Some(c_string(to));
            stream
        }
        Event::BitrateHint { stream, bps } => {
            out.kind = rtcast_event_kind::RTCAST_EVENT_BITRATE_HINT;
            out.bps = *bps;
            stream
        }
        // An event kind this binding does not know yet is not delivered.
        _ => return,
    };
    let stream = c_string(stream);
    out.stream = stream.as_ptr();
    for (field, text) in [
        (&mut out.remote, &remote),
        (&mut out.rendition, &rendition_name),
        (&mut out.from, &from_name),
        (&mut out.to, &to_name),
    ] {
        if let Some(text) = text {
            *field = text.as_ptr();
        }
    }
    // SAFETY: the host registered this callback for these events; `out` and its strings live
    // until it returns.
    unsafe { (target.callback)(&out, target.userdata) };
}

/// Stream names and addresses hold no NUL; anything after one would be cut rather than fail.
fn c_string(s: &str) -> CString {
    let s = s.split('\0').next().unwrap_or_default();
    CString::new(s).unwrap_or_default()
}
