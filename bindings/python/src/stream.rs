//! `rtcast.Stream`: the push calls. Each converts its arguments, releases the GIL and calls the
//! core, which validates and packetizes on this thread (raw frames: validates and copies them
//! for the stream's encoder thread) without waiting for the network or the encoder.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::error::to_py;
use crate::frame::FrameArrays;
use crate::stats::{StreamStats, ViewerStats};

/// One video rendition of a stream's ladder (`Server.stream(renditions=[...])`), named by its
/// place in the ladder: "v1" (the first, the best), "v2", ...
#[pyclass(
    module = "rtcast",
    name = "Rendition",
    frozen,
    get_all,
    eq,
    hash,
    from_py_object
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rendition {
    /// Width in pixels: raw frames are scaled to it.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bits per second: the built-in encoder's target for it, and what a viewer's bandwidth
    /// estimate must carry to be sent it.
    pub bitrate_bps: u32,
}

#[pymethods]
impl Rendition {
    #[new]
    fn new(width: u32, height: u32, bitrate_bps: u32) -> Self {
        Self {
            width,
            height,
            bitrate_bps,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "Rendition(width={}, height={}, bitrate_bps={})",
            self.width, self.height, self.bitrate_bps
        )
    }
}

/// A ladder entry as `Server.stream()` takes it: a `Rendition` or a `(width, height,
/// bitrate_bps)` tuple.
#[derive(FromPyObject)]
pub enum RenditionArg {
    Object(Rendition),
    Tuple(u32, u32, u32),
}

impl From<RenditionArg> for rtcast::Rendition {
    fn from(arg: RenditionArg) -> Self {
        let (width, height, bitrate_bps) = match arg {
            RenditionArg::Object(r) => (r.width, r.height, r.bitrate_bps),
            RenditionArg::Tuple(w, h, b) => (w, h, b),
        };
        rtcast::Rendition {
            width,
            height,
            bitrate_bps,
        }
    }
}

/// A live stream that viewers watch and the host pushes into. Got from `Server.stream()`.
/// Every push may be called from any thread and never waits for the network.
#[pyclass(module = "rtcast", name = "Stream", frozen)]
pub struct Stream {
    pub(crate) inner: rtcast::Stream,
}

/// `pts` in seconds (int, float or `datetime.timedelta`); `None` takes the wall clock.
fn pts(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Duration>> {
    let Some(value) = value else {
        return Ok(None);
    };
    if value.is_none() {
        return Ok(None);
    }
    let seconds: f64 = match value.extract::<f64>() {
        Ok(s) => s,
        Err(_) if value.hasattr("total_seconds")? => {
            value.call_method0("total_seconds")?.extract()?
        }
        Err(_) => {
            return Err(PyTypeError::new_err(format!(
                "pts is seconds (int, float or datetime.timedelta) or None, got {}",
                value.get_type().name()?
            )))
        }
    };
    Duration::try_from_secs_f64(seconds).map(Some).map_err(|_| {
        PyValueError::new_err(format!(
            "pts must be a finite number of seconds >= 0, got {seconds}"
        ))
    })
}

/// Bytes-like data: `bytes` without a copy, anything else `bytes()` accepts (bytearray,
/// memoryview, a uint8 NumPy array) with one copy.
fn bytes_like<'py>(data: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyBytes>> {
    if let Ok(b) = data.cast::<PyBytes>() {
        return Ok(b.clone());
    }
    if data.is_instance_of::<PyString>() || data.extract::<i64>().is_ok() {
        return Err(PyTypeError::new_err(format!(
            "{what} takes bytes-like data (bytes, bytearray, memoryview), got {}",
            data.get_type().name()?
        )));
    }
    let py = data.py();
    py.get_type::<PyBytes>()
        .call1((data,))?
        .cast_into::<PyBytes>()
        .map_err(Into::into)
}

/// A coroutine running `obj.method(*args)` on the running loop's default executor (see
/// `rtcast/_aio.py`).
pub(crate) fn off_loop<'py>(
    obj: &Bound<'py, PyAny>,
    method: &str,
    args: impl IntoPyObject<'py, Target = PyTuple, Output = Bound<'py, PyTuple>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = obj.py();
    let call = obj.getattr(method)?;
    let args = args.into_pyobject(py).map_err(Into::into)?;
    py.import("rtcast._aio")?
        .getattr("off_loop")?
        .call1((call, args))
}

/// A core push of encoded media: the stream, the data, its media time.
type Push = fn(&rtcast::Stream, &[u8], Option<Duration>) -> rtcast::Result<()>;

/// A core push of one rendition's encoded video: the stream, the rendition, the data, its time.
type PushRendition = fn(&rtcast::Stream, &str, &[u8], Option<Duration>) -> rtcast::Result<()>;

impl Stream {
    /// The body of the encoded pushes: `data` as bytes (`what` names the call in a type
    /// error), `pts` converted, then `push` run with the GIL released.
    fn push_encoded(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        pts: Option<&Bound<'_, PyAny>>,
        what: &str,
        push: impl FnOnce(&rtcast::Stream, &[u8], Option<Duration>) -> rtcast::Result<()> + Send,
    ) -> PyResult<()> {
        let pts = self::pts(pts)?;
        let data = bytes_like(data, what)?;
        let bytes = data.as_bytes();
        let stream = &self.inner;
        py.detach(|| push(stream, bytes, pts)).map_err(to_py)
    }

    /// An encoded video push: `push` without a rendition, `push_rendition` with one.
    #[allow(clippy::too_many_arguments)]
    fn push_video(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        pts: Option<&Bound<'_, PyAny>>,
        rendition: Option<&str>,
        what: &str,
        push: Push,
        push_rendition: PushRendition,
    ) -> PyResult<()> {
        match rendition {
            None => self.push_encoded(py, data, pts, what, push),
            Some(name) => {
                self.push_encoded(py, data, pts, what, |s, d, t| push_rendition(s, name, d, t))
            }
        }
    }
}

#[pymethods]
impl Stream {
    /// The stream's name (the STREAM of its URLs).
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// Viewers connected now.
    #[getter]
    fn viewers(&self) -> usize {
        self.inner.viewers()
    }

    /// Whether the stream was removed or its server stopped.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Counters of this stream.
    fn stats(&self) -> StreamStats {
        self.inner.stats().into()
    }

    /// The figures of this stream's connected viewers, by id.
    fn viewer_stats(&self) -> Vec<ViewerStats> {
        self.inner
            .viewer_stats()
            .into_iter()
            .map(Into::into)
            .collect()
    }

    /// Pushes one raw frame, encoded once (H.264) by the built-in encoder for every viewer.
    ///
    /// `frame` is a uint8 NumPy array: (H, W, 3) rgb24 (or bgr24 with `format="bgr24"`, as
    /// OpenCV gives), (H, W, 4) rgba (or bgra with `format="bgra"`), (H*3/2, W) packed i420/nv12
    /// with `format=`; or a tuple of planes:
    /// `(y, u, v)` i420, `(y, uv)` nv12. Arrays with contiguous rows are read in place. The GIL is
    /// released while the core validates the frame and copies it for its encoder thread.
    #[pyo3(signature = (frame, format=None, pts=None))]
    fn push_frame(
        &self,
        py: Python<'_>,
        frame: &Bound<'_, PyAny>,
        format: Option<&str>,
        pts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let pts = self::pts(pts)?;
        let arrays = FrameArrays::from_py(frame, format)?;
        let raw = arrays.raw_frame()?;
        let stream = &self.inner;
        py.detach(|| stream.push_frame(&raw, pts)).map_err(to_py)
    }

    /// Pushes one H.264 access unit in Annex B form (start codes; constrained baseline or main,
    /// no B-frames). Keyframes should carry SPS and PPS (the last ones seen are added if not).
    /// A stream with several renditions takes each one's video with `rendition="v1"`, "v2"...
    #[pyo3(signature = (data, pts=None, rendition=None))]
    fn push_h264(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        pts: Option<&Bound<'_, PyAny>>,
        rendition: Option<&str>,
    ) -> PyResult<()> {
        self.push_video(
            py,
            data,
            pts,
            rendition,
            "push_h264",
            rtcast::Stream::push_h264,
            rtcast::Stream::push_h264_rendition,
        )
    }

    /// Pushes one VP8 frame (frame tag first, as an encoder or an IVF/WebM file gives it). The
    /// stream must have been created with `video="vp8"`. `rendition` as for `push_h264`.
    #[pyo3(signature = (data, pts=None, rendition=None))]
    fn push_vp8(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        pts: Option<&Bound<'_, PyAny>>,
        rendition: Option<&str>,
    ) -> PyResult<()> {
        self.push_video(
            py,
            data,
            pts,
            rendition,
            "push_vp8",
            rtcast::Stream::push_vp8,
            rtcast::Stream::push_vp8_rendition,
        )
    }

    /// Pushes one Opus packet (typically 20 ms). The stream must have audio.
    #[pyo3(signature = (data, pts=None))]
    fn push_opus(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        pts: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.push_encoded(py, data, pts, "push_opus", rtcast::Stream::push_opus)
    }

    /// `push_frame` on a worker thread, as a coroutine: the event loop is not blocked while the
    /// frame is converted and encoded.
    #[pyo3(signature = (frame, format=None, pts=None))]
    fn push_frame_async<'py>(
        slf: &Bound<'py, Self>,
        frame: Bound<'py, PyAny>,
        format: Option<Bound<'py, PyAny>>,
        pts: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        off_loop(slf.as_any(), "push_frame", (frame, format, pts))
    }

    /// `push_h264` on a worker thread, as a coroutine.
    #[pyo3(signature = (data, pts=None, rendition=None))]
    fn push_h264_async<'py>(
        slf: &Bound<'py, Self>,
        data: Bound<'py, PyAny>,
        pts: Option<Bound<'py, PyAny>>,
        rendition: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        off_loop(slf.as_any(), "push_h264", (data, pts, rendition))
    }

    /// `push_vp8` on a worker thread, as a coroutine.
    #[pyo3(signature = (data, pts=None, rendition=None))]
    fn push_vp8_async<'py>(
        slf: &Bound<'py, Self>,
        data: Bound<'py, PyAny>,
        pts: Option<Bound<'py, PyAny>>,
        rendition: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        off_loop(slf.as_any(), "push_vp8", (data, pts, rendition))
    }

    /// `push_opus` on a worker thread, as a coroutine.
    #[pyo3(signature = (data, pts=None))]
    fn push_opus_async<'py>(
        slf: &Bound<'py, Self>,
        data: Bound<'py, PyAny>,
        pts: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        off_loop(slf.as_any(), "push_opus", (data, pts))
    }

    fn __repr__(&self) -> String {
        format!(
            "<rtcast.Stream '{}' viewers={}{}>",
            self.inner.name(),
            self.inner.viewers(),
            if self.inner.is_closed() {
                " closed"
            } else {
                ""
            }
        )
    }
}
