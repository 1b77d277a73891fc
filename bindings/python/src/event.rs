//! Events to Python: the core's event dispatcher (one thread per server, no polling) calls the
//! registered callables with the GIL, one event at a time. `Server.events()` builds its
//! async iterator on the same listeners (see `rtcast/_aio.py`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::gc::PyVisit;
use pyo3::prelude::*;
use pyo3::PyTraverseError;

/// Something that happened on the server: `kind` says what, the other fields are set when they
/// apply to that kind (else None).
#[pyclass(module = "rtcast", name = "Event", frozen, get_all)]
#[derive(Clone, Debug)]
pub struct Event {
    /// "viewer_joined", "viewer_left", "keyframe_requested", "rendition_switched" or
    /// "bitrate_hint".
    pub kind: &'static str,
    /// Stream name.
    pub stream: String,
    /// Viewer id (viewer_joined, viewer_left, rendition_switched).
    pub viewer: Option<u64>,
    /// "websocket" or "whep" (viewer_joined).
    pub protocol: Option<&'static str>,
    /// "ip:port" of the viewer's signalling connection (viewer_joined).
    pub remote: Option<String>,
    /// "closed", "connection_lost", "timeout" or "shutdown" (viewer_left).
    pub reason: Option<&'static str>,
    /// Bits per second (bitrate_hint).
    pub bps: Option<u64>,
    /// The rendition that needs a keyframe, "v1" for a stream of one (keyframe_requested).
    pub rendition: Option<String>,
    /// The rendition the viewer had (rendition_switched). `from` is a Python keyword.
    pub from_: Option<String>,
    /// The rendition the viewer has now (rendition_switched).
    pub to: Option<String>,
    /// The viewer's bandwidth estimate when the switch was decided, bits per second; 0 when it
    /// had none (rendition_switched).
    pub estimate_bps: Option<u64>,
}

impl Event {
    fn from_core(e: rtcast::Event) -> Option<Self> {
        let blank = |kind, stream| Event {
            kind,
            stream,
            viewer: None,
            protocol: None,
            remote: None,
            reason: None,
            bps: None,
            rendition: None,
            from_: None,
            to: None,
            estimate_bps: None,
        };
        Some(match e {
            rtcast::Event::ViewerJoined {
                stream,
                viewer,
                protocol,
                remote,
            } => Event {
                viewer: Some(viewer),
                protocol: Some(protocol.name()),
                remote: Some(remote.to_string()),
                ..blank("viewer_joined", stream)
            },
            rtcast::Event::ViewerLeft {
                stream,
                viewer,
                reason,
            } => Event {
                viewer: Some(viewer),
                reason: Some(reason.name()),
                ..blank("viewer_left", stream)
            },
            rtcast::Event::KeyframeRequested { stream, rendition } => Event {
                rendition: Some(rendition),
                ..blank("keyframe_requested", stream)
            },
            rtcast::Event::RenditionSwitched {
                stream,
                viewer,
                from,
                to,
                estimate_bps,
            } => Event {
                viewer: Some(viewer),
                from_: Some(from),
                to: Some(to),
                estimate_bps: Some(estimate_bps),
                ..blank("rendition_switched", stream)
            },
            rtcast::Event::BitrateHint { stream, bps } => Event {
                bps: Some(bps),
                ..blank("bitrate_hint", stream)
            },
            _ => return None,
        })
    }
}

#[pymethods]
impl Event {
    fn __repr__(&self) -> String {
        let mut fields = vec![
            format!("kind={:?}", self.kind),
            format!("stream={:?}", self.stream),
        ];
        if let Some(v) = self.viewer {
            fields.push(format!("viewer={v}"));
        }
        if let Some(p) = self.protocol {
            fields.push(format!("protocol={p:?}"));
        }
        if let Some(r) = &self.remote {
            fields.push(format!("remote={r:?}"));
        }
        if let Some(r) = self.reason {
            fields.push(format!("reason={r:?}"));
        }
        if let Some(b) = self.bps {
            fields.push(format!("bps={b}"));
        }
        if let Some(r) = &self.rendition {
            fields.push(format!("rendition={r:?}"));
        }
        if let Some(f) = &self.from_ {
            fields.push(format!("from_={f:?}"));
        }
        if let Some(t) = &self.to {
            fields.push(format!("to={t:?}"));
        }
        if let Some(e) = self.estimate_bps {
            fields.push(format!("estimate_bps={e}"));
        }
        format!("Event({})", fields.join(", "))
    }
}

struct Listener {
    callback: Py<PyAny>,
    /// Also called with None once no more events will come (the async iterator's end).
    wants_end: bool,
}

/// The callables events go to. Only touched with the GIL held (or from `__traverse__`).
#[derive(Default)]
pub struct Listeners {
    list: Mutex<Vec<Listener>>,
    /// The event thread delivered its last event: a new listener would never hear the end.
    ended: AtomicBool,
}

impl Listeners {
    fn lock(&self) -> MutexGuard<'_, Vec<Listener>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a callable; false if the server already stopped and delivered its last event.
    pub fn add(&self, callback: Py<PyAny>, wants_end: bool) -> bool {
        let mut list = self.lock();
        if self.ended.load(Ordering::Acquire) {
            return false;
        }
        list.push(Listener {
            callback,
            wants_end,
        });
        true
    }

    /// Removes the first listener equal to `callback`; whether there was one.
    pub fn remove(&self, callback: &Bound<'_, PyAny>) -> PyResult<bool> {
        let py = callback.py();
        let snapshot: Vec<Py<PyAny>> = self
            .lock()
            .iter()
            .map(|l| l.callback.clone_ref(py))
            .collect();
        for (i, cb) in snapshot.iter().enumerate() {
            if cb.bind(py).eq(callback)? {
                let mut list = self.lock();
                if i < list.len() && list[i].callback.is(cb) {
                    list.remove(i);
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn dispatch(&self, event: Option<Event>) {
        Python::attach(|py| {
            let targets: Vec<Py<PyAny>> = {
                let list = self.lock();
                if event.is_none() {
                    self.ended.store(true, Ordering::Release);
                }
                list.iter()
                    .filter(|l| event.is_some() || l.wants_end)
                    .map(|l| l.callback.clone_ref(py))
                    .collect()
            };
            let arg: Py<PyAny> = match &event {
                Some(e) => match Py::new(py, e.clone()) {
                    Ok(obj) => obj.into_any(),
                    Err(err) => return err.write_unraisable(py, None),
                },
                None => py.None(),
            };
            for cb in targets {
                // A failing callback is reported like an exception in a __del__ and does not stop
                // the others or the thread.
                if let Err(err) = cb.call1(py, (arg.clone_ref(py),)) {
                    err.write_unraisable(py, Some(cb.bind(py)));
                }
            }
        })
    }

    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Never block in a GC pass: a listener list being changed right now is skipped.
        if let Ok(list) = self.list.try_lock() {
            for l in list.iter() {
                visit.call(&l.callback)?;
            }
        }
        Ok(())
    }

    pub fn clear(&self) {
        let taken = std::mem::take(&mut *self.lock());
        drop(taken);
    }
}

/// The listeners as the core's dispatcher sees them.
struct Sink(Arc<Listeners>);

impl rtcast::EventSink for Sink {
    fn deliver(&mut self, event: rtcast::Event) -> u64 {
        if let Some(event) = Event::from_core(event) {
            self.0.dispatch(Some(event));
        }
        0
    }

    fn end(&mut self) {
        self.0.dispatch(None);
    }
}

/// The thread delivering one server's events: the core's dispatcher (its delivery and shutdown
/// rule) with the Python listeners as its sink.
pub struct EventThread(rtcast::EventDispatcher);

impl EventThread {
    pub fn start(events: rtcast::Events, listeners: Arc<Listeners>) -> std::io::Result<Self> {
        rtcast::EventDispatcher::start(events, "rtcast-py-events", Sink(listeners)).map(Self)
    }

    /// Waits for the thread to deliver the last events (the server must be stopped); at once
    /// when called from the event thread itself (a listener closing the server).
    pub fn join(self) {
        self.0.wait();
    }
}
