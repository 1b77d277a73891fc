//! The one error adapter: every `rtcast::Error` variant becomes an exception of a small hierarchy
//! rooted at `rtcast.RtcastError`. Input errors also derive from `ValueError` and bind errors from
//! `OSError`, so code that catches the built-in kinds keeps working.

use pyo3::exceptions::{PyException, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

/// The exception classes of the module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `RtcastError`: the base of all.
    Base,
    /// A configuration value is out of range or inconsistent (also `ValueError`).
    Config,
    /// A port could not be bound (also `OSError`, with `errno`).
    Bind,
    /// The TLS certificate or key could not be read or used.
    Tls,
    /// A raw frame does not match its format: dtype, shape, size, strides (also `ValueError`).
    InvalidFrame,
    /// Encoded data is not what the call says it is (also `ValueError`).
    InvalidData,
    /// The codec is unknown or not enabled for this stream (also `ValueError`).
    UnsupportedCodec,
    /// The built-in encoder failed.
    Encoder,
    /// The stream was removed or its server stopped.
    StreamClosed,
    /// The server was stopped.
    ServerStopped,
    /// A limit was reached.
    Limit,
}

impl Kind {
    const ALL: [Kind; 11] = [
        Kind::Base,
        Kind::Config,
        Kind::Bind,
        Kind::Tls,
        Kind::InvalidFrame,
        Kind::InvalidData,
        Kind::UnsupportedCodec,
        Kind::Encoder,
        Kind::StreamClosed,
        Kind::ServerStopped,
        Kind::Limit,
    ];

    /// Class name and docstring.
    fn spec(self) -> (&'static str, &'static str) {
        match self {
            Kind::Base => ("RtcastError", "Base class of every error raised by rtcast."),
            Kind::Config => (
                "ConfigError",
                "A configuration value is out of range or inconsistent (also a ValueError).",
            ),
            Kind::Bind => (
                "BindError",
                "A port could not be bound, e.g. already in use (also an OSError with errno).",
            ),
            Kind::Tls => ("TlsError", "The TLS certificate or key could not be read or used."),
            Kind::InvalidFrame => (
                "InvalidFrameError",
                "A raw frame does not match its format: dtype, shape, size or strides (also a ValueError).",
            ),
            Kind::InvalidData => (
                "InvalidDataError",
                "Encoded data is not what the call says it is, e.g. not H.264 Annex B (also a ValueError).",
            ),
            Kind::UnsupportedCodec => (
                "UnsupportedCodecError",
                "The codec is unknown or not enabled for this stream (also a ValueError).",
            ),
            Kind::Encoder => ("EncoderError", "The built-in H.264 encoder failed."),
            Kind::StreamClosed => (
                "StreamClosedError",
                "The stream was removed or its server stopped: pushing into it is no longer possible.",
            ),
            Kind::ServerStopped => ("ServerStoppedError", "The server was stopped."),
            Kind::Limit => ("LimitError", "A limit was reached (viewers, queues)."),
        }
    }

    fn builtin_base<'py>(self, py: Python<'py>) -> Option<Bound<'py, PyType>> {
        match self {
            Kind::Config | Kind::InvalidFrame | Kind::InvalidData | Kind::UnsupportedCodec => {
                Some(py.get_type::<PyValueError>())
            }
            Kind::Bind => Some(py.get_type::<PyOSError>()),
            _ => None,
        }
    }
}

static CLASSES: PyOnceLock<Vec<Py<PyType>>> = PyOnceLock::new();

fn create_classes(py: Python<'_>) -> PyResult<Vec<Py<PyType>>> {
    let type_ = py.get_type::<PyType>();
    let mut classes: Vec<Py<PyType>> = Vec::with_capacity(Kind::ALL.len());
    for kind in Kind::ALL {
        let (name, doc) = kind.spec();
        let mut bases: Vec<Bound<'_, PyType>> = Vec::new();
        match classes.first() {
            Some(base) => bases.push(base.bind(py).clone()),
            None => bases.push(py.get_type::<PyException>()),
        }
        bases.extend(kind.builtin_base(py));
        let dict = PyDict::new(py);
        dict.set_item("__module__", "rtcast")?;
        dict.set_item("__doc__", doc)?;
        let class = type_.call1((name, PyTuple::new(py, bases)?, dict))?;
        classes.push(class.cast_into::<PyType>()?.unbind());
    }
    Ok(classes)
}

/// Creates the exception classes and adds them to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let classes = CLASSES.get_or_try_init(py, || create_classes(py))?;
    for (kind, class) in Kind::ALL.iter().zip(classes) {
        m.add(kind.spec().0, class.bind(py))?;
    }
    Ok(())
}

/// An exception of `kind` built from `args` (the message, or `(errno, message)` for OSError).
fn new_err<A>(kind: Kind, args: A) -> PyErr
where
    A: pyo3::PyErrArguments + Send + Sync + 'static,
{
    Python::attach(|py| match CLASSES.get(py) {
        Some(classes) => {
            let index = Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
            PyErr::from_type(classes[index].bind(py).clone(), args)
        }
        // Only before the module is initialized, which no caller can reach.
        None => PyException::new_err(args),
    })
}

/// An exception of `kind` with `message`.
pub fn raise(kind: Kind, message: impl Into<String>) -> PyErr {
    new_err(kind, (message.into(),))
}

/// The adapter: a core error as the exception of its category, with the core's message.
pub fn to_py(error: rtcast::Error) -> PyErr {
    let message = error.to_string();
    let kind = match &error {
        rtcast::Error::InvalidConfig(_) => Kind::Config,
        rtcast::Error::Bind { source, .. } => {
            // OSError(errno, strerror) sets `errno`, so `e.errno == errno.EADDRINUSE` works.
            if let Some(errno) = source.raw_os_error() {
                return new_err(Kind::Bind, (errno, message));
            }
            Kind::Bind
        }
        rtcast::Error::Tls(_) => Kind::Tls,
        rtcast::Error::InvalidFrame(_) => Kind::InvalidFrame,
        rtcast::Error::InvalidData(_) => Kind::InvalidData,
        rtcast::Error::UnsupportedCodec(_) => Kind::UnsupportedCodec,
        rtcast::Error::Encoder(_) => Kind::Encoder,
        rtcast::Error::StreamClosed(_) => Kind::StreamClosed,
        rtcast::Error::ServerStopped => Kind::ServerStopped,
        rtcast::Error::LimitReached(_) => Kind::Limit,
        _ => Kind::Base,
    };
    raise(kind, message)
}
